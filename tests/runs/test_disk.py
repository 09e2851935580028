"""The disk a class leaves (issue 26): deleting runs whole (never one waiting or
training, and nothing half-deleted after a crash), retention of weights and
each person's quota on a public server (on a fake clock), a start refused in
one line when the disk cannot hold the run, and the disk each run uses."""

import json
import shutil

import pytest
from fake_runs import make_run
from holds import Holds
from tiny_runs import RECORDS, tiny_config

from finetune.cli.main import main as cli
from finetune.experiments.scheduler import QueueFull, Scheduler, Submission
from finetune.runs import disk, footprint, records, sweep_records
from finetune.runs.records import NoSuchRun
from finetune.train.config import TrainConfig, check

MB = disk.MB
KEPT_FILES = ("run.json", "config.json", "metrics.jsonl", "summary.json", "comparison.json", "probe.json")


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def weights(folder, mb: float = 1.0, checkpoints: bool = True):
    """A run's heavy folders as a run leaves them: model/, best/ and a checkpoint, `mb` each."""
    for name in ("model", "best", *(("checkpoints/checkpoint-4",) if checkpoints else ())):
        (folder / name).mkdir(parents=True)
        (folder / name / "model.safetensors").write_bytes(b"\0" * int(mb * MB))
    (folder / "comparison.json").write_text("[]")
    (folder / "probe.json").write_text("{}")
    return folder


def a_run(root, run_id, created_at, mb=1.0, **record):
    return weights(make_run(root, run_id, 2e-5, created_at=created_at, **record), mb)


def scheduler(root, public=False, **policy):
    return Scheduler(root, public=public, disk_policy=disk.DiskPolicy(**policy))


def listed(root, owner=None):
    return [r.id for r in records.list_runs(root, owner)]


# ------------------------------------------------------------------ sizes


def test_a_folder_counts_each_file_once_however_many_links_it_has(tmp_path):
    folder = a_run(tmp_path, "run", 1.0, mb=2)
    with_copy = disk.folder_bytes(folder)
    (folder / "best" / "model.safetensors").unlink()
    (folder / "best" / "model.safetensors").hardlink_to(folder / "model" / "model.safetensors")
    assert with_copy - disk.folder_bytes(folder) == 2 * MB  # best/ linked to model/: stored once
    assert disk.folder_bytes(tmp_path / "missing") == 0


# ------------------------------------------------------------------ deleting


def test_deleting_runs_removes_them_whole_and_says_what_it_freed(tmp_path):
    a_run(tmp_path, "old", 1.0, mb=2)
    a_run(tmp_path, "new", 2.0)
    deleted = scheduler(tmp_path).delete(["old"], records.LOCAL_OWNER)
    assert deleted["deleted"] == ["old"] and deleted["freed_mb"] >= 6.0  # model, best, checkpoint: 2 MB each
    assert listed(tmp_path) == ["new"] and not (tmp_path / "old").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["new"], "nothing left behind, hidden or not"


@pytest.mark.parametrize("status, advice", [("training", "stop it first"), ("queued", "cancel it first")])
def test_a_run_waiting_or_training_is_never_deleted_nor_anything_asked_with_it(tmp_path, status, advice):
    a_run(tmp_path, "done", 1.0)
    a_run(tmp_path, "busy", 2.0, status=status)  # held by this (live) process
    with pytest.raises(disk.CannotDelete) as refused:
        scheduler(tmp_path).delete(["done", "busy"], records.LOCAL_OWNER)
    assert str(refused.value).startswith(f"run busy is {status}: {advice}") and "\n" not in str(refused.value)
    assert sorted(listed(tmp_path)) == ["busy", "done"], "all the runs named are deleted, or none"


def test_a_run_whose_model_a_run_in_progress_started_from_is_kept_until_it_ends(tiny_model_dir, write, tmp_path):
    root = tmp_path / "runs"
    parent = make_run(root, "parent", 2e-5, created_at=1.0)
    shutil.copytree(tiny_model_dir, parent / "best")  # its best checkpoint, which a run continues from
    config = tiny_config(parent / "best", write("dates.json", json.dumps(RECORDS)), max_steps=1, general_probe=False)
    holds = Holds()
    sched = Scheduler(root, callbacks=(holds,))
    with holds.at("train_begin") as held:
        child = sched.submit(Submission(check(config, allow_out_of_range=True)), records.LOCAL_OWNER)
        held.wait()
        with pytest.raises(disk.CannotDelete, match=rf"^run parent holds the model of run {child.run_id} "
                                                    r"\(training\): delete it once that run has ended$"):
            sched.delete(["parent"], records.LOCAL_OWNER)
    assert child.wait(timeout=300).status == "completed"
    assert sched.delete(["parent"], records.LOCAL_OWNER)["deleted"] == ["parent"]


def test_in_public_mode_a_person_deletes_only_their_own_runs(tmp_path):
    sched = scheduler(tmp_path, public=True)
    mine, theirs = sched.owner("my-own-owner-key-0123"), sched.owner("someone-else-key-0123")
    a_run(tmp_path, "mine", 1.0, owner=mine)
    a_run(tmp_path, "theirs", 2.0, owner=theirs)
    with pytest.raises(NoSuchRun, match="^no such run$"):
        sched.delete(["mine", "theirs"], mine)
    assert sorted(listed(tmp_path)) == ["mine", "theirs"]
    assert sched.delete(["mine"], mine)["deleted"] == ["mine"] and listed(tmp_path) == ["theirs"]


def test_a_deletion_cut_short_leaves_no_half_run_listed_and_the_next_start_cleans_it(tmp_path):
    folder = a_run(tmp_path, "crashed", 1.0)
    trash = disk.move_aside(folder)  # the rename done, the removal never came (the server was killed)
    assert trash.parent == tmp_path and trash.name.startswith(".")
    assert listed(tmp_path) == [] and records.find_run(tmp_path, "crashed") is None
    scheduler(tmp_path)  # the next server start
    assert list(tmp_path.iterdir()) == []


def test_deleting_a_sweeps_member_updates_the_sweep_and_the_last_takes_the_sweep_along(tmp_path):
    sweep = tmp_path / "sweep-1"
    sweep_records.write_sweep(sweep, setting="learning_rate", values=[1e-5, 2e-5, 5e-5], runs=["a", "b", "c"],
                              verdict={"text": "a, b and c compared"})
    for i, (run_id, lr) in enumerate(zip("abc", (1e-5, 2e-5, 5e-5))):
        weights(make_run(sweep, run_id, lr, created_at=float(i), sweep="sweep-1", label=f"lr={lr:g}"))
    sched = scheduler(tmp_path)
    sched.delete(["a"], records.LOCAL_OWNER)
    found = sweep_records.read_sweep(tmp_path, "sweep-1")
    assert found.run_ids == ["b", "c"] and found.verdict and "lr=1e-05" not in found.verdict["text"]
    sched.delete(["b"], records.LOCAL_OWNER)
    assert sweep_records.read_sweep(tmp_path, "sweep-1").verdict is None, "one run left is no comparison"
    sched.delete(["c"], records.LOCAL_OWNER)
    assert list(tmp_path.iterdir()) == [] and sweep_records.list_sweeps(tmp_path) == []


def test_the_command_line_deletes_runs_and_refuses_one_training(tmp_path, capsys):
    a_run(tmp_path, "old", 1.0)
    a_run(tmp_path, "busy", 2.0, status="training")
    assert cli(["runs", "--root", str(tmp_path), "--delete", "old"]) == 0
    out = capsys.readouterr()
    assert out.out == "deleted old\n" and "freed" in out.err and listed(tmp_path) == ["busy"]
    assert cli(["runs", "--root", str(tmp_path), "--delete", "busy"]) == 2
    assert capsys.readouterr().err.startswith("error: run busy is training: stop it first")
    assert cli(["runs", "--root", str(tmp_path), "--delete", "nope"]) == 2
    assert "no such run" in capsys.readouterr().err and listed(tmp_path) == ["busy"]


# ------------------------------------------------------------------ retention


def test_weights_older_than_the_retention_go_and_the_record_stays(tmp_path):
    clock = Clock()
    sched = scheduler(tmp_path, public=True, keep_hours=24, clock=clock)
    a_run(tmp_path, "ended", clock.now - 3600)
    records.update_record(tmp_path / "ended", finished_at=clock.now)  # ended now, after an hour of training
    a_run(tmp_path, "training", clock.now - 30 * 3600, status="training")  # started long ago, still going
    clock.now += 23 * 3600
    assert sched.expire(force=True) == [] and (tmp_path / "ended" / "model").is_dir()
    clock.now += 2 * 3600  # 25 hours after it ended
    assert sched.expire(force=True) == ["ended"]
    left = sorted(p.name for p in (tmp_path / "ended").iterdir())
    assert left == sorted(KEPT_FILES), "record, metrics, comparison, summary and probe stay; weights go"
    assert (tmp_path / "training" / "checkpoints").is_dir(), "a run training keeps everything"
    record = records.read_run(tmp_path, "ended")
    assert record.status == "completed" and record.weights_removed == {"at": clock.now, "after_hours": 24.0}
    assert record.history, "its curves can still be compared"
    note = disk.removed_note(tmp_path / "ended")
    assert "removed 24 hours after it ended" in note and "export it" in note and "own machine" in note


def test_retention_looks_again_only_now_and_then_when_runs_are_listed(tmp_path):
    clock = Clock()
    sched = scheduler(tmp_path, public=True, keep_hours=1, clock=clock)
    sched.list("anyone")  # looked (nothing to do), and will not look again for a while
    a_run(tmp_path, "ended", clock.now - 2 * 3600)
    assert sched.list("anyone") == [] and (tmp_path / "ended" / "model").is_dir()
    clock.now += disk.EXPIRE_EVERY_S
    sched.list("anyone")
    assert not (tmp_path / "ended" / "model").exists()


def test_locally_nothing_is_removed_by_age(tmp_path, monkeypatch):
    monkeypatch.setenv("FINETUNE_KEEP_HOURS", "1")
    a_run(tmp_path, "ancient", 1.0)
    assert Scheduler(tmp_path).expire(force=True) == [] and (tmp_path / "ancient" / "model").is_dir()


def test_the_public_defaults_and_the_environment(monkeypatch):
    assert disk.DiskPolicy.from_env(public=False) == disk.DiskPolicy()  # locally no quota, no retention
    policy = disk.DiskPolicy.from_env(public=True)
    assert (policy.quota_mb, policy.keep_hours) == (disk.PUBLIC_QUOTA_MB, disk.PUBLIC_KEEP_HOURS)
    monkeypatch.setenv("FINETUNE_RUN_QUOTA_MB", "0")
    monkeypatch.setenv("FINETUNE_KEEP_HOURS", "6")
    policy = disk.DiskPolicy.from_env(public=True)
    assert (policy.quota_mb, policy.keep_hours) == (None, 6.0)  # 0 turns the quota off


# ------------------------------------------------------------------ quota and free space


def submission(model: str = "llama-2-7b", **settings) -> Submission:
    return Submission(check(TrainConfig(model=model, data="dates.jsonl", **settings)))


def test_a_person_over_their_quota_is_refused_naming_what_to_delete(tmp_path):
    sched = scheduler(tmp_path, public=True, quota_mb=5, free_bytes=lambda root: 10**15)
    me = sched.owner("my-own-owner-key-0123")
    a_run(tmp_path, "big", 1.0, mb=2, owner=me)  # 6 MB
    a_run(tmp_path, "small", 2.0, mb=0.5, owner=me)  # 1.5 MB
    a_run(tmp_path, "theirs", 3.0, mb=3, owner=sched.owner("someone-else-key-0123"))
    with pytest.raises(QueueFull) as refused:
        sched.submit(submission(), me)
    line = str(refused.value)
    assert line.startswith("your runs use 8 MB of this server's disk, over the 5 MB each person may keep")
    assert "big (6 MB)" in line and "small" not in line, "the biggest runs, until the rest fits"
    assert "\n" not in line and len(listed(tmp_path)) == 3, "nothing was queued"


def test_a_start_the_disk_cannot_hold_is_refused_in_one_line(tmp_path):
    sched = scheduler(tmp_path, free_bytes=lambda root: 50 * MB)
    with pytest.raises(QueueFull) as refused:
        sched.submit(submission("llama-2-7b"), records.LOCAL_OWNER)
    line = str(refused.value)
    assert line.startswith("not enough disk for this run") and "50 MB are free" in line and "\n" not in line
    assert listed(tmp_path) == [], "nothing was queued"


def test_a_class_starting_at_once_counts_what_the_runs_before_it_will_write(tiny_model_dir, write, tmp_path):
    """Thirty starts in a minute each see the same free space: the runs already waiting or
    training have yet to write theirs, so the disk is checked against all of them."""
    config = tiny_config(tiny_model_dir, write("dates.json", json.dumps(RECORDS)), max_steps=2,
                         general_probe=False)
    one = footprint.estimate_bytes(config)
    holds = Holds()
    sched = Scheduler(tmp_path / "runs", callbacks=(holds,),
                      disk_policy=disk.DiskPolicy(free_bytes=lambda root: int(1.5 * one)))
    with holds.at("train_begin") as held:
        first = sched.submit(Submission(check(config, allow_out_of_range=True)), records.LOCAL_OWNER)
        held.wait()  # training: it has written its config, not its models
        with pytest.raises(QueueFull, match=r"^not enough disk for this run: .* beside the \d+ MB the runs "
                                            r"waiting or training will write"):
            sched.submit(Submission(check(config, allow_out_of_range=True)), records.LOCAL_OWNER)
    assert first.wait(timeout=300).status == "completed"
    assert listed(tmp_path / "runs") == [first.run_id], "the second run was never queued"


def test_the_estimate_counts_the_final_model_best_and_checkpoints():
    config = TrainConfig(model="llama-2-7b")  # 6.7B parameters, saved in bf16 (2 bytes each)
    final_and_best = footprint.estimate_bytes(config)
    assert 2 * 13.4e9 < final_and_best < 4 * 13.4e9  # model/ and best/ plus one transient best and a margin
    no_best = footprint.estimate_bytes(config.replace(keep_best="off"))
    assert no_best < final_and_best
    with_checkpoints = footprint.estimate_bytes(config.replace(save_steps=100))
    assert with_checkpoints - final_and_best > 2 * 6.7e9 * 12, "two checkpoints of fp32 weights and AdamW states"
    lora = footprint.estimate_bytes(config.replace(method="lora", save_steps=100))
    assert lora < no_best * 1.5, "LoRA keeps the merged model, its adapters and small checkpoints"
    assert footprint.estimate_bytes(config.replace(model="/no/such/model")) is None


def test_a_run_folder_written_by_hand_is_json_the_policy_reads(tmp_path):
    """run.json's weights_removed, read back only when it is what disk.py writes."""
    folder = make_run(tmp_path, "r", 2e-5, created_at=1.0)
    record = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**record, "weights_removed": "yes"}))
    assert records.read_run(tmp_path, "r").weights_removed is None and disk.removed_note(folder) is None
