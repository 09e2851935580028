"""Runs as records: run folders built by hand in tmp_path (no training), read back
by finetune.runs.records the way the app, the CLI and the API read them."""

import json
import os
import socket
import subprocess
import sys

import pytest

from finetune.runs import records
from finetune.runs import status as run_status
from finetune.runs.records import NoSuchRun, list_runs, owner_hash, read_run, update_record, write_record
from finetune.runs.sweep_records import read_sweep, write_sweep
from finetune.train.config import TrainConfig


def make_run(root, run_id, *, created_at, status="completed", owner="local", summary=True, history=(), **record):
    """A run folder as the engine leaves it: config.json, metrics.jsonl, summary.json, run.json."""
    folder = root / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**TrainConfig(data="/srv/uploads/abc/train.jsonl").to_dict(),
                                                    "resolved": {"model": "SmolLM2-135M-Instruct"}}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    if summary:
        (folder / "summary.json").write_text(json.dumps({"status": status, "steps": len(history)}))
    write_record(folder, status=status, owner=owner, created_at=created_at, **record)
    return folder


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_runs_are_listed_newest_first(tmp_path):
    make_run(tmp_path, "older", created_at=100.0)
    make_run(tmp_path, "newest", created_at=300.0)
    make_run(tmp_path, "middle", created_at=200.0)
    assert [r.id for r in list_runs(tmp_path)] == ["newest", "middle", "older"]
    assert list_runs(tmp_path / "missing") == []


def test_owner_filter_and_no_such_run_says_the_same_for_every_miss(tmp_path):
    alice, bob = owner_hash("alice-key"), owner_hash("bob-key")
    make_run(tmp_path, "a1", created_at=1.0, owner=alice)
    make_run(tmp_path, "b1", created_at=2.0, owner=bob)
    assert [r.id for r in list_runs(tmp_path, owner=alice)] == ["a1"]
    assert {r.id for r in list_runs(tmp_path)} == {"a1", "b1"}
    assert read_run(tmp_path, "a1", owner=alice).owner == alice
    assert "alice-key" not in (tmp_path / "a1" / "run.json").read_text()
    messages = set()
    for bad in ["nope", "b1", "../x", "..", "a1/../b1", "/etc", str(tmp_path / "a1"), "", ".hidden", None]:
        with pytest.raises(NoSuchRun) as caught:
            read_run(tmp_path, bad, owner=alice)
        messages.add(str(caught.value))
    assert messages == {"no such run"}


def test_a_corrupt_or_half_written_run_is_listed_as_unreadable(tmp_path):
    make_run(tmp_path, "good", created_at=1.0)
    (make_run(tmp_path, "torn", created_at=2.0) / "run.json").write_text('{"status": "train')
    (make_run(tmp_path, "badconfig", created_at=3.0) / "config.json").write_text("not json")
    half = tmp_path / "half"
    half.mkdir()
    (half / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    (tmp_path / "empty").mkdir()  # no run files at all: not a run

    found = {r.id: r for r in list_runs(tmp_path)}
    assert set(found) == {"good", "torn", "badconfig", "half"}
    assert found["good"].status == "completed" and found["good"].unreadable is None
    assert found["torn"].status == "unreadable" and "run.json" in found["torn"].unreadable
    assert found["badconfig"].status == "unreadable" and "config.json" in found["badconfig"].unreadable
    assert found["half"].status == "unreadable" and "config.json is missing" in found["half"].unreadable
    assert read_run(tmp_path, "torn").unreadable == found["torn"].unreadable


def test_a_run_whose_process_died_is_interrupted_and_a_queued_one_cancelled(tmp_path):
    gone = dead_pid()
    make_run(tmp_path, "was-training", created_at=1.0, status="training", summary=False, pid=gone)
    make_run(tmp_path, "was-queued", created_at=2.0, status="queued", summary=False, pid=gone)
    make_run(tmp_path, "alive", created_at=3.0, status="training", summary=False)  # this process
    make_run(tmp_path, "elsewhere", created_at=4.0, status="training", summary=False, pid=gone,
             host=socket.gethostname() + "-other")
    found = {r.id: r for r in list_runs(tmp_path)}
    assert found["was-training"].status == "interrupted"
    assert found["was-queued"].status == "cancelled" and "server restarted" in found["was-queued"].message
    assert found["alive"].status == "training"
    assert found["elsewhere"].status == "training"  # another machine's processes are not ours to judge

    assert sorted(records.mark_orphans(tmp_path)) == ["was-queued", "was-training"]
    assert json.loads((tmp_path / "was-training" / "run.json").read_text())["status"] == "interrupted"
    assert json.loads((tmp_path / "was-queued" / "run.json").read_text())["status"] == "cancelled"
    assert records.mark_orphans(tmp_path) == []


def test_a_reused_pid_does_not_keep_a_dead_run_alive(tmp_path):
    """A restarted server may get its old pid back (pid 1 in a container): the start time tells them apart."""
    if run_status._process_start(os.getpid()) is None:
        pytest.skip("no /proc here")
    make_run(tmp_path, "stale", created_at=1.0, status="training", summary=False, pid=os.getpid(), pid_start=1)
    assert read_run(tmp_path, "stale").status == "interrupted"


def test_command_line_folders_without_run_json_are_still_listed(tmp_path):
    done = make_run(tmp_path, "cli-done", created_at=1.0, status="stopped")
    killed = make_run(tmp_path, "cli-killed", created_at=2.0, summary=False)
    for folder in (done, killed):
        (folder / "run.json").unlink()
    found = {r.id: r for r in list_runs(tmp_path)}
    assert found["cli-done"].status == "stopped" and found["cli-done"].owner == "local"
    assert found["cli-killed"].status == "interrupted"
    assert found["cli-done"].data_name == "train.jsonl"  # the file's name, never the server path
    assert list_runs(tmp_path, owner=owner_hash("someone")) == []


def test_a_cut_short_metrics_line_is_skipped(tmp_path):
    folder = make_run(tmp_path, "killed", created_at=1.0, history=[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    with (folder / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 3, "lo')
    assert [h["step"] for h in read_run(tmp_path, "killed").history] == [1, 2]


def test_update_record_fills_times_and_refuses_unknown_fields(tmp_path):
    folder = tmp_path / "r1"
    write_record(folder, data_name="mine.csv")
    assert json.loads((folder / "run.json").read_text())["status"] == "queued"
    update_record(folder, status="loading")
    update_record(folder, status="completed", message="done")
    saved = json.loads((folder / "run.json").read_text())
    assert saved["started_at"] and saved["finished_at"] >= saved["started_at"] and saved["data_name"] == "mine.csv"
    with pytest.raises(ValueError):
        update_record(folder, stauts="failed")
    with pytest.raises(ValueError):
        update_record(folder, status="done")
    assert not [p for p in folder.iterdir() if p.name.startswith(".run.json")]  # no temp files left


def test_sweeps_list_their_members_not_themselves(tmp_path):
    alice = owner_hash("alice")
    sweep = tmp_path / "sweep-lr"
    make_run(sweep, "s-1", created_at=1.0, owner=alice, sweep="sweep-lr", label="lr=1e-05")
    make_run(tmp_path, "s-2", created_at=2.0, owner=alice, sweep="sweep-lr", label="lr=2e-05")
    write_sweep(sweep, setting="learning_rate", values=[1e-5, 2e-5], runs=["s-1", "s-2", "gone"], owner=alice)
    (sweep / "s-1" / "model").mkdir()
    (sweep / "s-1" / "model" / "config.json").write_text("{}")  # a model's config is not a run

    assert {r.id for r in list_runs(tmp_path)} == {"s-1", "s-2"}
    assert read_run(tmp_path, "s-1").label == "lr=1e-05"
    found = read_sweep(tmp_path, "sweep-lr", owner=alice)
    assert {r.id for r in found.runs} == {"s-1", "s-2"} and found.setting == "learning_rate"
    for bad in ["sweep-lr", "../sweep-lr", "s-1"]:
        with pytest.raises(NoSuchRun):
            read_sweep(tmp_path, bad, owner=owner_hash("bob") if bad == "sweep-lr" else None)
    with pytest.raises(NoSuchRun):
        read_run(tmp_path, "model")
