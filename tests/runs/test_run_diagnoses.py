"""A run names its failure modes, measures the general probe and its memory,
and never fails because a diagnostic did."""

import json

import torch
from transformers import TrainerCallback

from finetune.cli.runs import print_findings
from finetune.diagnose import answer_modes as diagnose_answers
from finetune.diagnose import base as diagnose_base
from finetune.diagnose import curve_modes as diagnose_curves
from finetune.diagnose import findings
from finetune.diagnose import modes as diagnose
from finetune.runs.run import TrainingRun
from finetune.train.config import TrainConfig


def config(model_dir, data, **changes):
    values = dict(model=str(model_dir), data=str(data), learning_rate=3e-3, batch_size=4, grad_accum=1, epochs=3,
                  held_out=4, validation_fraction=0.2, eval_steps=3, max_new_tokens=8, seed=5, precision="fp32",
                  warmup_ratio=0.05)
    return TrainConfig(**{**values, **changes})


class SeeLive(TrainerCallback):
    """What the Train tab would show while training: the snapshot's findings at the end of training."""

    def __init__(self):
        self.run, self.seen = None, ()

    def on_train_end(self, args, state, control, **kwargs):
        self.seen = self.run.snapshot().diagnoses


def by_name(diagnoses):
    return {d["name"]: d for d in diagnoses}


def test_a_normal_run_reports_findings_probe_and_memory(tiny_model_dir, dates_jsonl, tmp_path):
    live = SeeLive()
    run = TrainingRun(config(tiny_model_dir, dates_jsonl), tmp_path / "run", allow_out_of_range=True,
                      callbacks=(live,))
    live.run = run
    snap = run.start().wait(timeout=300)
    assert snap.status == "completed", snap.error
    # Live: the history detectors were already on screen during training.
    assert [d["name"] for d in live.seen] == list(diagnose.LIVE)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    found = by_name(summary["diagnoses"])
    assert set(found) == set(diagnose.DETECTORS)
    losses = [h["loss"] for h in snap.history if "loss" in h]
    assert losses[-1] < losses[0] * 0.8, "the run must train normally for the quiet checks to mean anything"
    for name in ("divergence", "overfitting", "no_learning"):
        assert found[name]["status"] != diagnose_base.FOUND, found[name]
    assert found["divergence"]["status"] == found["no_learning"]["status"] == diagnose_base.CLEAR
    # The general probe: measured before and after, apart from the task's prompts.
    probe = summary["scores"]["general_probe"]
    assert probe["prompts"] == 45 and probe["perplexity_before"] > 1 and probe["perplexity_after"] > 1
    assert {"before_contains", "after_contains", "after_bleu"} <= set(probe)
    assert summary["scores"]["all"]["prompts"] == 4, "the probe's 45 prompts are not mixed into the task's"
    assert "reference perplexity" in found["forgetting"]["evidence"] and found["forgetting"]["status"] != "unknown"
    answers = json.loads((tmp_path / "run" / "probe.json").read_text())["answers"]
    assert len(answers) == 45 and all(a["before"] is not None and a["after"] is not None for a in answers)
    # Memory: the estimate before and the peak measured during training.
    memory = summary["memory"]
    assert memory["estimate_bytes"] > 0 and "optimizer states" in memory["estimate_text"]
    assert "peak_kind" in memory and (memory["peak_bytes"] is None or memory["peak_bytes"] > 0)


def test_a_failed_run_names_divergence_and_the_rest_say_not_enough_data(tiny_model_dir, dates_jsonl, tmp_path):
    class Poison(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 3:
                with torch.no_grad():
                    next(model.parameters()).fill_(float("nan"))

    run = TrainingRun(config(tiny_model_dir, dates_jsonl, validation_fraction=0.0), tmp_path / "run",
                      allow_out_of_range=True, callbacks=(Poison(),)).start()
    snap = run.wait(timeout=300)
    assert snap.status == "failed"
    found = by_name(json.loads((tmp_path / "run" / "summary.json").read_text())["diagnoses"])
    assert found["divergence"]["status"] == diagnose_base.FOUND and found["divergence"]["step"] == 4
    assert "Lower the learning rate from 3e-03 to 1e-03" in found["divergence"]["advice"]
    assert found["mode_collapse"]["evidence"].startswith("not enough data to judge")


def test_probe_off_and_a_broken_detector_never_fail_the_run(tiny_model_dir, dates_jsonl, tmp_path, monkeypatch):
    def broken(record):
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(diagnose.DETECTORS, "memorisation", broken)
    run = TrainingRun(config(tiny_model_dir, dates_jsonl, general_probe=False, max_steps=3), tmp_path / "run",
                      allow_out_of_range=True).start()
    snap = run.wait(timeout=300)
    assert snap.status == "completed", snap.error
    found = by_name(snap.diagnoses)
    assert found["memorisation"]["status"] == diagnose_base.UNKNOWN
    assert "the detector failed (ZeroDivisionError: a bug)" in found["memorisation"]["evidence"]
    assert found["forgetting"]["status"] == diagnose_base.UNKNOWN and "probe is off" in found["forgetting"]["evidence"]
    assert "general_probe" not in snap.scores and not (tmp_path / "run" / "probe.json").exists()


def test_live_findings_are_throttled_but_follow_every_evaluation():
    published, recorded, now = [], [], [0.0]
    live = findings.LiveDiagnoses(recorded.append, lambda **c: published.append(c), TrainConfig(),
                                  clock=lambda: now[0])
    for step in range(1, 6):
        live({"step": step, "loss": 2.0})
        now[0] += 0.5
    assert len(recorded) == 5 and len(published) == 2  # at t=0 and t=2.0
    live({"step": 6, "eval_loss": 2.1})
    assert len(published) == 3 and [d["name"] for d in published[-1]["diagnoses"]] == list(diagnose.LIVE)


def test_the_command_line_prints_found_failures_with_evidence_and_advice(capsys):
    found = diagnose_curves.DIVERGENCE.found("the training loss became nan at step 4", "Lower the learning rate.", 4)
    clear = diagnose_curves.OVERFITTING.clear("validation loss fell")
    print_findings([found.to_dict(), clear.to_dict()], "lr=1e-2")
    err = capsys.readouterr().err
    assert "lr=1e-2: found: Divergence (step 4)" in err and "evidence: the training loss became nan" in err
    assert "advice: Lower the learning rate." in err and "Overfitting" not in err
    print_findings([clear.to_dict()])
    assert "no failure mode found" in capsys.readouterr().err


def test_the_model_card_lists_what_was_found_with_evidence_and_mitigation(tmp_path):
    from finetune.export.bundle import model_card

    found = diagnose_curves.OVERFITTING.found("validation loss rose from 1.20 at step 10 to 1.50 at step 30 (+25%)",
                                              "Turn on early stopping with patience 2.", 12)
    clear = diagnose_curves.DIVERGENCE.clear("no spike")
    unknown = diagnose_answers.FORGETTING.unknown("the probe is off")
    (tmp_path / "summary.json").write_text(json.dumps({"diagnoses": [found.to_dict(), clear.to_dict(),
                                                                     unknown.to_dict()]}))
    card = model_card(tmp_path)
    assert "## Diagnosis" in card and "**Overfitting** (step 12)" in card
    assert "evidence: validation loss rose from 1.20" in card and "mitigation: Turn on early stopping" in card
    assert "Checked and clear: Divergence." in card and "Not enough data to judge: Forgetting." in card


def test_a_run_stopped_before_it_trained_says_not_enough_data(tiny_model_dir, dates_jsonl, tmp_path):
    run = TrainingRun(config(tiny_model_dir, dates_jsonl, general_probe=False), tmp_path / "run",
                      allow_out_of_range=True)
    run.stop()  # before the first step: nothing is logged
    snap = run.start().wait(timeout=300)
    assert snap.status == "stopped", snap.error
    found = by_name(json.loads((tmp_path / "run" / "summary.json").read_text())["diagnoses"])
    assert set(found) == set(diagnose.DETECTORS)
    for name in ("divergence", "overfitting", "no_learning"):
        assert found[name]["status"] == diagnose_base.UNKNOWN
        assert found[name]["evidence"].startswith("not enough data to judge")
