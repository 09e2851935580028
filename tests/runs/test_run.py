"""TrainingRun on a tiny in-process model: it learns, it stops cleanly, and
every failure ends the run with a clear status (never a silent hang)."""

import json
import math

import pytest
import torch
from holds import Holds
from safetensors.torch import load_file
from tiny_runs import RECORDS, run_to_end, tiny_config
from transformers import TrainerCallback

from finetune.runs.run import RunBusyError, TrainingRun, active_run


@pytest.fixture
def data_file(write):
    return write("dates.json", json.dumps(RECORDS))


def test_tiny_model_learns_and_writes_its_outputs(tiny_model_dir, data_file, tmp_path):
    run, snap = run_to_end(tiny_config(tiny_model_dir, data_file), tmp_path / "run")
    assert snap.status == "completed", snap.error
    losses = [h["loss"] for h in snap.history if "loss" in h]
    assert len(losses) == snap.max_steps == snap.step
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 * 0.8, losses
    assert any("eval_loss" in h for h in snap.history)
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(tmp_path / "run" / "model" / "model.safetensors")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) == len(before), "every parameter should change in full fine-tuning"
    for name in ("config.json", "metrics.jsonl", "comparison.json", "summary.json"):
        assert (tmp_path / "run" / name).is_file(), name
    comparison = json.loads((tmp_path / "run" / "comparison.json").read_text())
    assert len(comparison) == 3 and all(row["before"] is not None and row["after"] is not None for row in comparison)
    assert active_run() is None, "the slot is released"


def test_lora_trains_adapters_and_saves_a_merged_model(tiny_model_dir, data_file, tmp_path):
    config = tiny_config(tiny_model_dir, data_file, method="lora", learning_rate=1e-2, epochs=1, held_out=2)
    run, snap = run_to_end(config, tmp_path / "run")
    assert snap.status == "completed", snap.error
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_packing_on_and_off_give_the_same_loss_curve(tiny_model_dir, data_file, tmp_path):
    curves = []
    for packing in (True, False):
        config = tiny_config(tiny_model_dir, data_file, packing=packing, epochs=1, held_out=0, precision="fp32")
        _, snap = run_to_end(config, tmp_path / f"run-{packing}")
        assert snap.status == "completed", snap.error
        curves.append([h["loss"] for h in snap.history if "loss" in h])
    assert len(curves[0]) == len(curves[1]) > 3
    assert curves[0] == pytest.approx(curves[1], rel=1e-3, abs=1e-4)


class StopAtStep(TrainerCallback):
    def __init__(self, run_ref, step):
        self.run_ref, self.step = run_ref, step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            self.run_ref[0].stop()


def test_stop_saves_a_checkpoint_and_reports_stopped(tiny_model_dir, data_file, tmp_path):
    holder = []
    config = tiny_config(tiny_model_dir, data_file, epochs=5)
    run = TrainingRun(config, tmp_path / "run", allow_out_of_range=True, callbacks=(StopAtStep(holder, 2),))
    holder.append(run)
    snap = run.start().wait(timeout=300)
    assert snap.status == "stopped", snap.error
    # Asked at the end of step 2, before the run reads its stop requests: it stops on step 2 itself.
    assert snap.step == 2 < snap.max_steps
    assert (tmp_path / "run" / "checkpoints" / f"checkpoint-{snap.step}" / "checkpoint-complete").is_file()
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


class Explode(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 2:
            raise RuntimeError("injected failure")


def test_exception_in_the_thread_fails_the_run_and_frees_the_slot(tiny_model_dir, data_file, tmp_path):
    config = tiny_config(tiny_model_dir, data_file)
    run = TrainingRun(config, tmp_path / "run", allow_out_of_range=True, callbacks=(Explode(),)).start()
    snap = run.wait(timeout=300)
    assert snap.status == "failed"
    assert "injected failure" in snap.error
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
    assert active_run() is None
    again = TrainingRun(config.replace(max_steps=1, held_out=0), tmp_path / "again", allow_out_of_range=True)
    assert again.start().wait(timeout=300).status == "completed"


def test_a_finished_status_comes_after_the_summary_and_the_free_slot(tiny_model_dir, data_file, tmp_path,
                                                                     monkeypatch):
    """A client polling the status (the app, gradio_client) acts as soon as it
    reads "completed": the files must be written and a new start accepted."""
    from finetune.runs.outputs import RunFolder

    write = RunFolder.write_summary
    seen_while_writing = []

    def write_summary_watched(self, *args):
        seen_while_writing.append((run.snapshot().status, active_run() is run))
        return write(self, *args)

    monkeypatch.setattr(RunFolder, "write_summary", write_summary_watched)
    config = tiny_config(tiny_model_dir, data_file, max_steps=1, held_out=1, validation_fraction=0.0)
    run = TrainingRun(config, tmp_path / "run", allow_out_of_range=True)
    snap = run.start().wait(timeout=300)
    # While the summary was written no poll could read a final status, and the slot was still held.
    assert seen_while_writing == [("finishing", True)]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == snap.status == "completed"
    assert active_run() is None


@pytest.mark.parametrize("validation, expected", [(0.0, "the training loss became nan at step 4"),
                                                   (0.2, "the validation loss became nan at step 3")])
def test_non_finite_loss_halts_the_run_naming_the_step(tiny_model_dir, data_file, tmp_path, validation, expected):
    config = tiny_config(tiny_model_dir, data_file, epochs=5, validation_fraction=validation, eval_steps=1)

    class Poison(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 3:
                with torch.no_grad():
                    next(model.parameters()).fill_(float("nan"))

    run = TrainingRun(config, tmp_path / "run", allow_out_of_range=True, callbacks=(Poison(),)).start()
    snap = run.wait(timeout=300)
    assert snap.status == "failed"
    assert expected in snap.error
    logged = [h["loss"] for h in snap.history if "loss" in h]
    assert logged and all(math.isfinite(x) and x != 0.0 for x in logged)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(m.get("loss") != 0.0 for m in metrics)


def test_second_start_is_refused_while_a_run_is_active(tiny_model_dir, data_file, tmp_path):
    config = tiny_config(tiny_model_dir, data_file, epochs=3)
    holds = Holds()
    with holds.at_step(1) as hold:  # the first run is training while the second start is tried
        first = TrainingRun(config, tmp_path / "one", allow_out_of_range=True, callbacks=(holds,)).start()
        hold.wait()
        with pytest.raises(RunBusyError, match="a run is already training"):
            TrainingRun(config, tmp_path / "two", allow_out_of_range=True).start()
        first.stop()
    assert first.wait(timeout=300).status == "stopped"
    # The refused run trained nothing; its record says it never left the queue.
    assert not (tmp_path / "two" / "metrics.jsonl").exists() and not (tmp_path / "two" / "model").exists()
    assert json.loads((tmp_path / "two" / "run.json").read_text())["status"] == "queued"
