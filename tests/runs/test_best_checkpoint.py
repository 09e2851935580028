"""keep_best: a run keeps the model of its lowest validation loss in best/,
saved in the base model's dtype, never half-written, and says so in its
summary and snapshot; a run without validation (or with keep_best off) keeps none."""

import json

import pytest
import torch
from safetensors.torch import load_file
from test_saved_dtype import bf16_base  # noqa: F401 -- a fixture: a tiny model published in bf16
from tiny_runs import RECORDS, run_to_end, tiny_config
from transformers import TrainerCallback

from finetune.runs.outputs import RunFolder
from finetune.runs.run import TrainingRun


@pytest.fixture
def data_file(write):
    return write("dates.json", json.dumps(RECORDS))


class WorsenAfter(TrainerCallback):
    """Validation loss that rises after a minimum: from step `step` on, every
    step adds noise to the weights (after the optimizer, before the evaluation)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step >= self.step:
            generator = torch.Generator().manual_seed(state.global_step)
            with torch.no_grad():
                for param in model.parameters():
                    param.add_(torch.randn(param.shape, generator=generator) * 0.3)


class RecordAtEvaluations(TrainerCallback):
    """The weights as they were at each evaluation (trainable ones only, as a LoRA run saves)."""

    def __init__(self):
        self.states = {}

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        self.states[state.global_step] = {name: p.detach().clone() for name, p in model.named_parameters()
                                          if p.requires_grad}


class SeenLive(TrainerCallback):
    """The best step the run's snapshot shows at each evaluation, as the app's next poll would see it."""

    def __init__(self):
        self.run, self.seen = None, {}

    def on_evaluate(self, args, state, control, **kwargs):
        self.seen[state.global_step] = (self.run.snapshot().best_checkpoint or {}).get("step")


def evaluations(snap) -> dict[int, float]:
    return {h["step"]: h["eval_loss"] for h in snap.history if "eval_loss" in h}


def test_a_run_keeps_the_weights_of_its_lowest_validation_loss(bf16_base, data_file, tmp_path):  # noqa: F811
    recorder, live = RecordAtEvaluations(), SeenLive()
    config = tiny_config(bf16_base, data_file, max_steps=6, eval_steps=1, held_out=1, validation_fraction=0.2)
    live.run = TrainingRun(config, tmp_path / "run", allow_out_of_range=True,
                           callbacks=(WorsenAfter(4), recorder, live))
    snap = live.run.start().wait(timeout=300)
    assert snap.status == "completed", snap.error
    losses = evaluations(snap)
    best_step = min(losses, key=losses.get)
    assert best_step < max(losses) and losses[max(losses)] > losses[best_step], "validation rose after a minimum"
    so_far = {step: min((s for s in losses if s <= step), key=losses.get) for step in losses}
    assert live.seen == so_far, "the snapshot shows each new best as soon as it is saved"

    folder = tmp_path / "run"
    kept = json.loads((folder / "best" / "best.json").read_text())
    assert kept == {"step": best_step, "eval_loss": pytest.approx(losses[best_step])}
    saved = load_file(folder / "best" / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.bfloat16}, "saved in the base model's dtype"
    at_best = recorder.states[best_step]
    assert saved.keys() <= at_best.keys() and len(saved) >= len(at_best) - 1  # the tied lm_head is saved once
    assert all(torch.equal(tensor, at_best[name].to(torch.bfloat16)) for name, tensor in saved.items())
    final = load_file(folder / "model" / "model.safetensors")
    assert any(not torch.equal(final[name], saved[name]) for name in saved), "best/ is not the final model"
    assert (folder / "best" / "tokenizer.json").is_file()

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["best_checkpoint"] == {"step": best_step, "eval_loss": pytest.approx(losses[best_step]),
                                          "folder": "best"}
    assert snap.best_checkpoint == {"step": best_step, "eval_loss": pytest.approx(losses[best_step])}
    assert not list(folder.glob(".best*")), "no temporary or replaced folder is left behind"


def test_keeping_the_best_does_not_change_what_is_trained(bf16_base, data_file, tmp_path):  # noqa: F811
    """The best is copied in bf16 while training goes on in fp32: the final
    weights must be the same, to the bit, as a run that keeps no best."""
    finals = []
    for keep in ("eval_loss", "off"):
        config = tiny_config(bf16_base, data_file, max_steps=4, eval_steps=1, held_out=0, keep_best=keep,
                             general_probe=False)
        _, snap = run_to_end(config, tmp_path / keep)
        assert snap.status == "completed", snap.error
        finals.append(load_file(tmp_path / keep / "model" / "model.safetensors"))
    assert (tmp_path / "eval_loss" / "best").is_dir() and not (tmp_path / "off" / "best").exists()
    assert all(torch.equal(finals[0][name], finals[1][name]) for name in finals[0])


@pytest.mark.parametrize("changes", [{"keep_best": "off"}, {"validation_fraction": 0.0}])
def test_no_best_without_validation_or_when_off(tiny_model_dir, data_file, tmp_path, changes):
    config = tiny_config(tiny_model_dir, data_file, max_steps=2, eval_steps=1, held_out=0, general_probe=False,
                         **changes)
    _, snap = run_to_end(config, tmp_path / "run")
    assert snap.status == "completed", snap.error
    assert not (tmp_path / "run" / "best").exists()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["best_checkpoint"] is None
    assert snap.best_checkpoint is None


def test_a_lora_run_keeps_its_adapters_at_the_best_step(tiny_model_dir, data_file, tmp_path):
    recorder = RecordAtEvaluations()
    config = tiny_config(tiny_model_dir, data_file, method="lora", learning_rate=1e-2, max_steps=5, eval_steps=1,
                         held_out=0, validation_fraction=0.2, general_probe=False)
    _, snap = run_to_end(config, tmp_path / "run", callbacks=(WorsenAfter(3), recorder))
    assert snap.status == "completed", snap.error
    losses = evaluations(snap)
    best_step = min(losses, key=losses.get)
    best = tmp_path / "run" / "best"
    assert json.loads((best / "best.json").read_text())["step"] == best_step
    assert (best / "adapter_config.json").is_file() and not (best / "model.safetensors").exists()
    adapters = load_file(best / "adapter_model.safetensors")
    recorded = {name.replace(".default", ""): tensor for name, tensor in recorder.states[best_step].items()}
    assert adapters and adapters.keys() == recorded.keys()
    assert all(torch.equal(adapters[name], recorded[name]) for name in adapters)


def test_a_crash_keeps_the_last_good_best(tiny_model_dir, data_file, tmp_path):
    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:
                raise RuntimeError("injected failure")

    config = tiny_config(tiny_model_dir, data_file, epochs=5, eval_steps=1, held_out=0, general_probe=False)
    run = TrainingRun(config, tmp_path / "run", allow_out_of_range=True, callbacks=(Crash(),)).start()
    snap = run.wait(timeout=300)
    assert snap.status == "failed"
    losses = evaluations(snap)
    assert max(losses) == 3
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["best_checkpoint"]["step"] == min(losses, key=losses.get)
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()


def test_a_fresh_run_drops_an_old_best_and_a_resumed_one_keeps_an_earlier_one(tmp_path):
    folder = RunFolder(tmp_path / "run")

    def keep(step):
        (folder.best_dir).mkdir(parents=True, exist_ok=True)
        (folder.best_dir / "best.json").write_text(json.dumps({"step": step, "eval_loss": 1.5}))
        (folder.root / ".best-x1.partial").mkdir(exist_ok=True)  # a save killed halfway

    keep(4)
    folder.prepare(keep_metrics_until=4)
    assert folder.best() == {"step": 4, "eval_loss": 1.5, "folder": "best"}
    assert not (folder.root / ".best-x1.partial").exists()
    folder.prepare(keep_metrics_until=3)  # resumed from a checkpoint before the best: its point is gone
    assert folder.best() is None and not folder.best_dir.exists()
    keep(2)
    folder.prepare()
    assert folder.best() is None and not folder.best_dir.exists()
