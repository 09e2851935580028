"""BestCheckpoint on its own: it saves only on improvement, a save that fails
halfway never replaces the kept best, and only the main process writes."""

import json
from types import SimpleNamespace

import pytest

from finetune.runs.outputs import RunFolder
from finetune.train import ranks
from finetune.train.trainer import BestCheckpoint, CheckpointError, replace_folder


def saver(fail_at_step=None):
    """A stand-in for the worker's saver: weights, then best.json; fails halfway at `fail_at_step`."""
    calls = []

    def save(model, folder, found):
        calls.append(found["step"])
        (folder / "model.safetensors").write_text(f"weights of step {found['step']}")
        if found["step"] == fail_at_step:
            raise OSError(28, "No space left on device")
        (folder / "best.json").write_text(json.dumps(found))

    return save, calls


def evaluate(keeper, step, loss):
    keeper.on_evaluate(None, SimpleNamespace(global_step=step), None, metrics={"eval_loss": loss}, model=None)


def test_saves_only_when_the_validation_loss_improves(tmp_path):
    save, calls = saver()
    published = []
    keeper = BestCheckpoint(tmp_path / "best", save, on_best=published.append)
    for step, loss in ((1, 2.0), (2, 1.5), (3, 1.5), (4, 1.7), (5, 1.2), (6, float("nan"))):
        evaluate(keeper, step, loss)
    assert calls == [1, 2, 5]
    assert [p["step"] for p in published] == [1, 2, 5]
    assert RunFolder(tmp_path).best() == {"step": 5, "eval_loss": 1.2, "folder": "best"}
    assert (tmp_path / "best" / "model.safetensors").read_text() == "weights of step 5"


def test_a_resumed_run_must_beat_the_best_it_kept(tmp_path):
    save, calls = saver()
    keeper = BestCheckpoint(tmp_path / "best", save, best={"step": 3, "eval_loss": 1.0})
    evaluate(keeper, 4, 1.1)
    assert calls == []
    evaluate(keeper, 5, 0.9)
    assert calls == [5]


def test_a_save_that_fails_halfway_never_replaces_the_good_one(tmp_path):
    save, _ = saver(fail_at_step=2)
    published = []
    keeper = BestCheckpoint(tmp_path / "best", save, on_best=published.append)
    evaluate(keeper, 1, 2.0)
    with pytest.raises(CheckpointError, match="saving the best model at step 2 failed"):
        evaluate(keeper, 2, 1.5)
    assert RunFolder(tmp_path).best()["step"] == 1
    assert (tmp_path / "best" / "model.safetensors").read_text() == "weights of step 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"], "the half-written folder is removed"
    assert keeper.best["step"] == 1 and [p["step"] for p in published] == [1]


def test_a_kill_between_the_renames_keeps_the_previous_best_readable(tmp_path):
    save, _ = saver()
    keeper = BestCheckpoint(tmp_path / "best", save)
    evaluate(keeper, 1, 2.0)
    (tmp_path / "best").rename(tmp_path / ".best-replaced")  # where a kill after the first rename leaves it
    assert RunFolder(tmp_path).best() == {"step": 1, "eval_loss": 2.0, "folder": ".best-replaced"}
    evaluate(keeper, 2, 1.0)  # the next best moves in, then the old one goes
    assert RunFolder(tmp_path).best()["folder"] == "best"
    assert not (tmp_path / ".best-replaced").exists()


def test_a_folder_without_its_record_is_never_a_best(tmp_path):
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "model.safetensors").write_text("half")
    (tmp_path / ".best-abc.partial").mkdir()
    (tmp_path / ".best-abc.partial" / "best.json").write_text('{"step": 9, "eval_loss": 0.1}')
    assert RunFolder(tmp_path).best() is None


def test_only_the_main_process_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(ranks, "is_main", lambda: False)
    save, calls = saver()
    published = []
    keeper = BestCheckpoint(tmp_path / "best", save, on_best=published.append)
    evaluate(keeper, 1, 2.0)
    assert calls == [] and not (tmp_path / "best").exists()
    assert keeper.best["step"] == 1  # every process agrees on what is best (the losses are gathered)


def test_replace_folder_swaps_a_whole_folder(tmp_path):
    replace_folder(tmp_path / "model", lambda folder: (folder / "a").write_text("one"))
    replace_folder(tmp_path / "model", lambda folder: (folder / "b").write_text("two"))
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
