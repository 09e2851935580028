"""How a run's models are written: the final model in the base model's dtype,
a LoRA run's adapters alone, the best checkpoint as training finds it, each
into a temporary folder that then takes the final name; and a best checkpoint
that is the final model stored once (store_best_once).
"""

from __future__ import annotations

import copy
import filecmp
import json
import os
from contextlib import contextmanager
from pathlib import Path

from ..sources import models
from ..train import ranks
from ..train.trainer import (
    BestCheckpoint,
    replace_folder,
)
from .job import Job
from .outputs import BEST_INFO, RunFolder


def merged_over_full_base(peft_model, source: models.ModelSource, dtype, token: str | None):
    """QLoRA's adapters merged into the base loaded in `dtype` (not into its 4-bit
    copy, which would save a quantized model), on the CPU: a 7B base in bf16
    takes 14 GB of RAM and none of the GPU's."""
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    adapters = {k: v.detach().to("cpu", dtype) for k, v in get_peft_model_state_dict(peft_model).items()}
    base, _ = models.load(source, token=token, dtype=dtype)
    wrapped = get_peft_model(base, peft_model.peft_config["default"])
    set_peft_model_state_dict(wrapped, adapters)
    return wrapped.merge_and_unload()


def save_model(model, tokenizer, target: Path, dtype=None, state_dict=None) -> None:
    """safetensors + tokenizer, written to a temporary folder then renamed,
    so a reader never sees half a model. With `dtype` (the base model's), the
    weights are written in it: the fp32 master copy would double the download."""
    replace_folder(target, lambda folder: write_model(model, tokenizer, folder, dtype, state_dict))


def save_adapter(peft_model, tokenizer, target: Path, dtype, base_name: str) -> None:
    """A LoRA run's adapters alone (a few MB), in the base model's dtype, with
    the tokenizer: PeftModel.from_pretrained(base, target) loads them."""
    replace_folder(target, lambda folder: write_model(peft_model, tokenizer, folder, base_name=base_name,
                                                      state_dict=trained_weights(peft_model, dtype)))


def write_model(model, tokenizer, folder: Path, dtype=None, state_dict=None, base_name: str | None = None) -> None:
    """The model (a PeftModel: its adapters) and tokenizer into `folder`; `state_dict`, when given, is what is saved.
    `base_name`: what the adapters' config calls their base model (peft writes this machine's path)."""
    # The engine never resizes the vocabulary, and peft's "auto" would ask the hub about the base model at every save.
    adapters_only = {"save_embedding_layers": False} if hasattr(model, "peft_config") else {}
    with _cast(model, dtype if state_dict is None else None):
        model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict, **adapters_only)
    tokenizer.save_pretrained(folder)
    if adapters_only:
        (folder / "README.md").unlink(missing_ok=True)  # peft's empty template: the lab writes its own card
        if base_name:
            adapter_config = folder / "adapter_config.json"
            settings = json.loads(adapter_config.read_text(encoding="utf-8"))
            adapter_config.write_text(json.dumps({**settings, "base_model_name_or_path": base_name}, indent=2))


def adapter_base_name(job: Job) -> str:
    """The base model as an adapter names it: the hub id of the bundled default
    (its converted copy lives in this machine's cache), else the spec as the run records it."""
    return models.DEFAULT_HUB_ID if job.config.model == models.DEFAULT_SPEC else job.folder.portable(job.config.model)


def best_keeper(job: Job, tokenizer, dtype, publish) -> BestCheckpoint:
    """The callback that keeps the model at its lowest validation loss in best/,
    saved as model/ is (the base model's dtype; a LoRA run's adapters only),
    with best.json; each new best is published for the live plot."""
    def save(model, folder: Path, found: dict) -> None:
        write_model(model, tokenizer, folder, state_dict=trained_weights(model, dtype), base_name=adapter_base_name(job))
        _config_in(model, folder, dtype)
        (folder / BEST_INFO).write_text(json.dumps(found))

    kept = job.folder.best() if ranks.is_main() else None  # a resumed run's, to beat
    kept = {"step": kept["step"], "eval_loss": kept["eval_loss"]} if kept else None
    if kept:
        publish(best_checkpoint=kept)
    return BestCheckpoint(job.folder.best_dir, save, on_best=lambda found: publish(best_checkpoint=found), best=kept)


def _config_in(model, folder: Path, dtype) -> None:
    """config.json naming the dtype the weights were saved in, as the final model's does:
    save_pretrained names the live model's (fp32 master weights), not the state dict's."""
    if dtype is None or hasattr(model, "peft_config") or not (folder / "config.json").is_file():
        return
    config = copy.deepcopy(model.config)
    config.dtype = str(dtype).removeprefix("torch.")
    config.save_pretrained(folder)


def store_best_once(folder: RunFolder, final_step: int) -> int:
    """When best/ was saved at the run's final step, each of its files that is byte for
    byte the final model's (model/, or a LoRA run's adapter/) becomes a hard link to it:
    the disk holds the weights once, and exporting best or final reads the same bytes.
    Where the disk cannot link, best/ stays a copy. Returns the bytes no longer held twice.

    Safe with everything that writes models: a save replaces a whole folder by renaming
    (train.trainer.replace_folder), never a file in place, so a later save of either
    folder leaves the other's bytes as they were."""
    best = folder.best()
    if best is None or best["step"] != final_step or best["folder"] != folder.best_dir.name:
        return 0
    shared = 0
    try:
        for path in sorted(folder.best_dir.iterdir()):
            twin = _identical_twin(path, (folder.model_dir, folder.adapter_dir))
            if twin is not None and _link_over(twin, path):
                shared += path.stat().st_size
    except OSError:  # a file that cannot be read: it stays a copy, and the run goes on
        pass
    return shared


def _identical_twin(path: Path, folders) -> Path | None:
    """The file of the same name in one of `folders` with the same bytes as `path`, if any."""
    if not path.is_file() or path.name == BEST_INFO:
        return None
    for other in folders:
        twin = other / path.name
        if twin.is_file() and not os.path.samefile(twin, path) and filecmp.cmp(twin, path, shallow=False):
            return twin
    return None


def _link_over(source: Path, target: Path) -> bool:
    """`target` replaced by a hard link to `source` in one rename (never missing meanwhile); False where links fail."""
    temporary = target.with_name(f".{target.name}.link")
    try:
        temporary.unlink(missing_ok=True)
        os.link(source, temporary)
        os.replace(temporary, target)
    except OSError:
        temporary.unlink(missing_ok=True)
        return False
    return True


def trained_weights(model, dtype) -> dict:
    """A copy of what training changes (a PeftModel's adapters, else every
    weight) in `dtype` on the CPU, to save while training goes on: casting the
    model in place, as the final save does, would round the weights that the
    next steps train. Tied weights stay one tensor."""
    if hasattr(model, "peft_config"):
        tensors = {name: p for name, p in model.named_parameters() if p.requires_grad}
    else:
        tensors = model.state_dict()
    copies, saved = {}, {}
    for name, tensor in tensors.items():
        key = (tensor.data_ptr(), tuple(tensor.shape), tensor.stride())
        if key not in copies:
            copies[key] = tensor.detach().to("cpu", dtype if tensor.is_floating_point() and dtype else None)
        saved[name] = copies[key]
    return saved


@contextmanager
def _cast(model, dtype):
    """The model in `dtype` while saved, then back in its own dtype. Casting tensor
    by tensor in place never holds two copies; coming back, the weights are the
    saved ones exactly, so the answers given after saving are the saved model's."""
    own = next(model.parameters()).dtype
    if dtype is None or dtype == own or not own.is_floating_point:
        yield
        return
    model.to(dtype)
    try:
        yield
    finally:
        model.to(own)
