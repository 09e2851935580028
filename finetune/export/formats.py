"""The forms a trained model leaves in, as one folder of files to pack or push:

    merged     the whole model (safetensors, the base model's dtype) and tokenizer: from_pretrained
    adapter    a LoRA or QLoRA run's adapters alone and the tokenizer: PeftModel.from_pretrained(base, ...)
    gguf-f16, gguf-bf16, gguf-q8_0
               one GGUF file for llama.cpp, with an Ollama Modelfile carrying the chat template

Each is of the final model or of the best checkpoint (checkpoint.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..runs.outputs import RunFolder
from .checkpoint import ADAPTER_CONFIG, ExportError, model_folder

# The GGUF types a run is shared in (gguf.OUTTYPES also has f32, twice the size of f16 for nothing).
GGUF_TYPES = {"f16": "in f16", "bf16": "in bf16", "q8_0": "quantised to 8 bits (about half the size)"}
FORMATS = {
    "merged": "the whole model (safetensors) and tokenizer, loadable with from_pretrained",
    "adapter": "the LoRA adapters alone (a few MB) and the tokenizer, loadable with PeftModel.from_pretrained",
    **{f"gguf-{t}": f"one GGUF file {how} for llama.cpp, with an Ollama Modelfile" for t, how in GGUF_TYPES.items()},
}


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


@contextmanager
def format_files(folder: str | Path, which: str, fmt: str, progress=lambda text: None) -> Iterator[Path]:
    """A folder holding exactly the files of `fmt` for the run's `which` model
    (a temporary one for GGUF, removed after)."""
    check_format(fmt)
    if fmt == "adapter":
        yield adapter_folder(folder, which)
        return
    with model_folder(folder, which, progress) as model_dir:
        if fmt == "merged":
            yield model_dir
            return
        with tempfile.TemporaryDirectory(prefix=".gguf-", dir=folder) as scratch:
            gguf_files(folder, model_dir, Path(scratch), fmt.split("-", 1)[1], progress)
            yield Path(scratch)


def gguf_name(fmt: str) -> str:
    """The GGUF file's name for a format ("gguf-f16") or a type ("f16"): model-f16.gguf."""
    return f"model-{fmt.removeprefix('gguf-')}.gguf"


def adapter_folder(folder: str | Path, which: str) -> Path:
    """The adapters: adapter/ (the final ones) or best/ (a LoRA run's best holds its adapters)."""
    run = RunFolder(Path(folder))
    if which == "best":
        best = run.best()
        kept = run.root / best["folder"] if best else None
        if kept is not None and (kept / ADAPTER_CONFIG).is_file():
            return kept
    elif (run.adapter_dir / ADAPTER_CONFIG).is_file():
        return run.adapter_dir
    raise ExportError(f"{run.root.name} has no adapters to export: only LoRA and QLoRA runs train them "
                      "(export this run's model merged, or as GGUF)")


def gguf_files(folder: str | Path, model_dir: Path, target: Path, outtype: str, progress=lambda text: None) -> list[str]:
    """model-<type>.gguf and its Modelfile (when the chat template can be
    written as Ollama's) into `target`; returns their names."""
    from transformers import AutoTokenizer

    from .gguf import GGUFError, export_gguf
    from .ollama import TemplateError, modelfile

    config = _run_config(Path(folder))
    name = gguf_name(outtype)
    progress(f"writing {name}")
    try:  # llama.cpp's converter names SmolLM2's pre-tokenizer "smollm"; others are read off tokenizer.json
        export_gguf(model_dir, target / name, outtype, name=Path(folder).name,
                    pre_tokenizer="smollm" if config.get("model") == "default" else None)
    except GGUFError as err:
        raise ExportError(str(err)) from None
    files = [name]
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    try:
        text = modelfile(tokenizer, name, system=config.get("system_prompt") or None)
    except TemplateError as err:
        progress(f"no Modelfile: {err} (Ollama reads the template from the GGUF when it knows it)")
        return files
    (target / "Modelfile").write_text(text, encoding="utf-8")
    return files + ["Modelfile"]


def copy_files(source: Path, target: Path, link=False) -> None:
    """Every file of `source` into `target` (hard links where the disk allows)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.is_file():
            try:
                if not link:
                    raise OSError
                (target / path.name).hardlink_to(path)  # no second copy of hundreds of MB of weights
            except OSError:
                shutil.copy2(path, target / path.name)


def _run_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
