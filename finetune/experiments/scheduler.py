"""The trainer, a first-in-first-out queue in front of it, and who owns what.

The app and the command line submit runs here, so both obey the same rules:
runs start in order, beside the ones training while the machine has room for
them (admission.py: memory on a GPU, cores on a CPU; FINETUNE_CONCURRENT_RUNS
caps it), the others wait; a run that ran out of memory beside another is
queued again once, to train alone. A person may have a few entries waiting (a
sweep counts as one) and the queue as a whole is bounded. Every read and action takes an owner: in public mode a
person sees and controls only their own runs, and someone else's run id gets
the same answer as a missing one. Locally there is one owner and everything is
visible. A stopped or interrupted run resumed (resume()) is queued again like a
start, under the same rules.
"""

from __future__ import annotations

import heapq
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..data.dataset import PreparedData
from ..runs import records, sweep_records
from ..runs import resume as resuming
from ..runs.records import NoSuchRun, RunRecord
from ..runs.resume import CannotResume
from ..runs.run import Identity, TrainingRun, active_runs
from ..sources.models import ModelSource, resolve
from ..train.config import PUBLIC_MAX_NEW_TOKENS, Checked, check
from ..runs.reuse import reuse_for
from ..runs import disk, footprint  # the disk runs leave: room, quota, retention, deleting (issue 26)
from .admission import Admission, Machine, run_estimate_bytes

# Entries (runs, or sweeps counted once) one owner may have waiting or training:
# a few locally, where one person queues their own experiments; one in public,
# so thirty students share the trainer in turn.
PER_OWNER_LOCAL, PER_OWNER_PUBLIC = 3, 1
TOTAL_DEFAULT = 32  # runs waiting in all; FINETUNE_QUEUE_MAX changes it
KEEP_FINISHED = 50  # finished runs whose live snapshot stays in memory (the rest are read from disk)


class QueueFull(RuntimeError):
    """A submission beyond the queue's limits; the message says which limit."""


def queue_limit() -> int:
    try:
        return max(1, int(os.environ.get("FINETUNE_QUEUE_MAX", TOTAL_DEFAULT)))
    except ValueError:
        return TOTAL_DEFAULT


def _precision(run: TrainingRun) -> str:
    """The autocast precision a run will train in on this machine ('auto' resolved)."""
    from ..train import device

    return device.detect(run.config.precision).precision


def new_run_id() -> str:
    # Time first so folders sort by start; the random part keeps two starts in one second apart.
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Submission:
    """A run to queue: its checked settings and what it is made from."""

    settings: Checked
    prepared: PreparedData | None = None
    source: ModelSource | None = None
    token: str | None = None
    data_name: str | None = None
    allowed_model_roots: tuple[Path, ...] | None = None


class Scheduler:
    def __init__(self, root: str | Path, public: bool = False, callbacks: tuple = (),
                 admission: Admission | None = None, disk_policy: disk.DiskPolicy | None = None):
        """`callbacks`: TrainerCallbacks every run started here is given (tests hold runs at a
        known step through them, so a stop or a queue is checked at the same step on any machine).
        `admission`: how many runs may train at once here (default: what this machine allows).
        `disk_policy`: quota and retention (default: FINETUNE_RUN_QUOTA_MB and FINETUNE_KEEP_HOURS in public)."""
        self.root = Path(root)
        self.public = public
        self.callbacks = tuple(callbacks)
        self.admission = admission or Admission.for_machine(Machine.detect())
        self._estimates: dict[str, int | None] = {}  # run id -> estimated peak bytes (for a GPU's admission)
        self._alone: set[str] = set()  # runs queued again to train with nothing beside them
        self._beside: set[str] = set()  # runs started beside others (may be retried alone after running out of memory)
        self.reused = reuse_for(self.root)  # every run's 'before' measurements, computed once
        self.per_owner = PER_OWNER_PUBLIC if public else PER_OWNER_LOCAL
        self.total = queue_limit()
        self._lock = threading.Lock()
        self._queue: list[TrainingRun] = []
        self._live: dict[str, TrainingRun] = {}  # runs submitted in this process, by id
        self._seconds_per_step: float | None = None  # measured on finished runs, for queue estimates
        self.root.mkdir(parents=True, exist_ok=True)
        records.mark_orphans(self.root)  # runs a dead server left behind: interrupted or cancelled
        self.disk = disk_policy or disk.DiskPolicy.from_env(public)
        disk.clean_half_deleted(self.root)  # what a crash left half-deleted

    # --- owners
    def owner(self, key: str | None) -> str:
        """What records store for a caller: one owner locally, a hash of the key in public."""
        if key is not None and not isinstance(key, str):
            raise ValueError(f"owner_key: {type(key).__name__} is not text; give your owner key")
        return records.owner_hash(key) if self.public and key else records.LOCAL_OWNER

    def _filter(self, owner: str) -> str | None:
        return owner if self.public else None

    # --- submitting
    def submit(self, submission: Submission, owner: str) -> TrainingRun:
        return self.submit_many([submission], owner)[0]

    def submit_sweep(self, submissions: list[Submission], labels: list[str], owner: str, setting: str,
                     values: list) -> tuple[str, list[TrainingRun]]:
        """Queue a sweep's runs together, in a sweep folder that records them."""
        sweep_id = f"sweep-{new_run_id()}"
        folder = self.root / sweep_id
        sweep_records.write_sweep(folder, setting=setting, values=list(values), owner=owner, runs=[],
                                  created_at=time.time())
        runs = self.submit_many(submissions, owner, folder, sweep_id, labels)
        sweep_records.write_sweep(folder, runs=[r.run_id for r in runs])
        return sweep_id, runs

    def submit_many(self, submissions: list[Submission], owner: str, parent: Path | None = None,
                    sweep: str | None = None, labels: list[str] | None = None) -> list[TrainingRun]:
        """Queue runs as one entry (all or none), then start the first if the trainer is free."""
        self._check_public_caps(submissions)
        self._check_disk([s.settings.config for s in submissions], owner)
        with self._lock:
            self._check_limits(owner, len(submissions))
            runs = [self._make(s, owner, parent or self.root, sweep, labels[i] if labels else None)
                    for i, s in enumerate(submissions)]
            self._queue.extend(runs)
            self._forget_old_runs()
            self._live.update({r.run_id: r for r in runs})
        self._advance()
        return runs

    def resume(self, run_id: str, owner: str, token: str | None = None,
               allowed_model_roots: tuple[Path, ...] | None = None) -> TrainingRun:
        """Queue a stopped or interrupted run of the owner's again, to go on from its
        last complete checkpoint with the settings it had, in its own folder and
        record; the same queue and limits as a start. CannotResume (one line, nothing
        changed) when it cannot, NoSuchRun when it is not the owner's."""
        record = self.record(run_id, owner)
        live = self._live[record.id].snapshot() if record.id in self._live else None
        if live is not None and not live.finished:
            raise CannotResume(f"run {record.id} is already {live.status}")
        refused = resuming.refusal(record)
        if refused:
            raise CannotResume(refused)
        settings = resuming.settings(record)
        source = resolve(settings.config.model, allowed_model_roots)
        self._check_public_caps([Submission(settings)])
        self._check_disk([settings.config], owner, holding=disk.folder_bytes(record.folder))
        identity = Identity(owner=record.owner or owner, data_name=record.data_name, sweep=record.sweep,
                            label=record.label)
        with self._lock:
            self._check_limits(owner, 1)
            if any(r.run_id == record.id for r in self._waiting_or_training()):  # a second press meanwhile
                raise CannotResume(f"run {record.id} is already queued")
            run = TrainingRun(settings, record.folder, token=token, allowed_model_roots=allowed_model_roots,
                              resume=True, source=source, identity=identity, on_finished=self._finished,
                              callbacks=self.callbacks)
            self._queue.append(run)
            self._forget_old_runs()  # as a start does: a server that resumes often keeps no more finished runs
            self._live.pop(run.run_id, None)  # the latest entry: what the owner's page shows next
            self._live[run.run_id] = run
        self._advance()
        return run

    def _check_public_caps(self, submissions: list[Submission]) -> None:
        """A public run's held-out answers obey the same cap as a question's: the
        trainer is shared, and 500 held-out prompts x 4096 tokens would hold it for hours."""
        if not self.public:
            return
        for s in submissions:
            if s.settings.config.max_new_tokens > PUBLIC_MAX_NEW_TOKENS:
                raise QueueFull(f"max_new_tokens: {s.settings.config.max_new_tokens} is over this public "
                                f"server's limit of {PUBLIC_MAX_NEW_TOKENS} tokens per answer")

    def _check_limits(self, owner: str, count: int) -> None:
        mine = {r.identity.sweep or r.run_id for r in self._waiting_or_training() if r.owner == owner}
        if len(mine) >= self.per_owner:
            raise QueueFull(f"you already have {len(mine)} run{'s' * (len(mine) > 1)} waiting or training "
                            f"(at most {self.per_owner} here); wait for one to finish or cancel one")
        if len(self._queue) + count > self.total:
            raise QueueFull(f"the queue is full ({len(self._queue)} runs waiting, at most {self.total}); "
                            "try again later")

    def _forget_old_runs(self) -> None:
        """Keep the live objects of the last KEEP_FINISHED finished runs: older ones
        are read back from their folders, so memory stays bounded over many runs."""
        finished = [i for i, r in self._live.items() if r.snapshot().finished]
        for run_id in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._live[run_id]

    def _waiting_or_training(self) -> list[TrainingRun]:
        return self._queue + [r for r in active_runs() if r.run_id in self._live]

    def _make(self, submission: Submission, owner: str, parent: Path, sweep: str | None,
              label: str | None) -> TrainingRun:
        identity = Identity(owner=owner, data_name=submission.data_name, sweep=sweep, label=label)
        return TrainingRun(submission.settings, parent / new_run_id(), prepared=submission.prepared,
                           token=submission.token, allowed_model_roots=submission.allowed_model_roots,
                           source=submission.source, identity=identity, on_finished=self._finished,
                           callbacks=self.callbacks, reused=self.reused)

    # --- the trainer
    def _advance(self) -> None:
        """Start queued runs, first in first out, while the machine has room for the next one
        beside those training (a run that must train alone waits for an empty trainer)."""
        while True:
            with self._lock:
                if not self._queue:
                    return
                run, running = self._queue[0], list(active_runs())
                if not self._admits(run, running):
                    return
                self._queue.pop(0)
                if not running:
                    self._split_threads()  # before any run computes: torch's thread count is process-wide
                if running:
                    self._beside.add(run.run_id)
            try:
                run.start(alongside=bool(running))
            except RuntimeError:  # the slot was taken meanwhile (a run started outside the queue)
                with self._lock:
                    self._queue.insert(0, run)
                return

    def _admits(self, run: TrainingRun, running: list[TrainingRun]) -> bool:
        alone = run.run_id in self._alone or any(r.run_id in self._alone for r in running)
        if running and any(_precision(r) != _precision(run) for r in running):
            return False  # accelerate keeps one mixed precision per process
        return self.admission.admits([self._estimate(r) for r in running], self._estimate(run), alone=alone)

    def _estimate(self, run: TrainingRun) -> int | None:
        """A run's estimated peak, read once; only a GPU's admission needs it."""
        if self.admission.machine.device != "cuda":
            return None
        if run.run_id not in self._estimates:
            from ..train import device

            self._estimates[run.run_id] = run_estimate_bytes(run.config, device.detect(run.config.precision))
        return self._estimates[run.run_id]

    def _split_threads(self) -> None:
        """Give each run its share of the CPU's cores, so runs side by side never oversubscribe them."""
        if self.admission.limit > 1 and self.admission.machine.device == "cpu":
            import torch

            torch.set_num_threads(self.admission.threads_per_run)

    def _finished(self, run: TrainingRun) -> None:
        """Called from a run's thread when it ends: learn its pace, close its sweep, queue a run that
        ran out of memory beside another again to train alone, start the next."""
        snap = run.snapshot()
        if snap.status == "completed" and snap.step and snap.plan:
            self._seconds_per_step = snap.elapsed / max(snap.step, 1)
        if snap.status == "failed" and (snap.error or "").startswith("out of memory") and \
                run.run_id in self._beside and run.run_id not in self._alone:
            self._retry_alone(run)
        elif run.identity.sweep:
            self._close_sweep(run.identity.sweep, run.folder.root.parent)
        self._advance()

    def _retry_alone(self, run: TrainingRun) -> None:
        """The same run (settings, folder, record) queued again at the front, to train with nothing beside it."""
        message = "queued again to train alone: it ran out of memory beside another run"
        retry = TrainingRun(check(run.config, allow_out_of_range=True), run.folder.root, token=run.token,
                            allowed_model_roots=run.allowed_model_roots, identity=run.identity,
                            on_finished=self._finished, callbacks=self.callbacks, message=message)
        with self._lock:
            self._alone.add(retry.run_id)
            self._queue.insert(0, retry)
            self._live.pop(retry.run_id, None)
            self._live[retry.run_id] = retry

    def _close_sweep(self, sweep_id: str, folder: Path) -> None:
        from .compare import verdict

        try:
            sweep = sweep_records.read_sweep(self.root, sweep_id)
        except NoSuchRun:
            return
        if sweep.runs and all(r.finished for r in sweep.runs) and len(sweep.runs) == len(sweep.run_ids):
            sweep_records.write_sweep(folder, verdict=verdict(sweep.runs))

    # --- reading and acting, always as an owner
    def live(self, run_id: str, owner: str) -> TrainingRun:
        """A run of this process that the owner may see; NoSuchRun otherwise (an id that is not text too)."""
        run = self._live.get(run_id) if isinstance(run_id, str) else None
        if run is None or (self.public and run.owner != owner):
            raise NoSuchRun(records.NO_SUCH_RUN)
        return run

    def record(self, run_id: str, owner: str) -> RunRecord:
        return records.read_run(self.root, run_id, self._filter(owner))

    def list(self, owner: str) -> list[RunRecord]:
        self.expire()  # now and then: a page listing runs is where removed weights would show
        return records.list_runs(self.root, self._filter(owner))

    def latest(self, owner: str) -> TrainingRun | None:
        """The owner's run to show by default: the first still training or waiting,
        else the last one submitted here."""
        with self._lock:
            mine = [r for r in self._live.values() if not self.public or r.owner == owner]
        waiting = [r for r in mine if not r.snapshot().finished]
        if waiting:
            return waiting[0]
        return mine[-1] if mine else None

    def cancel(self, run_id: str, owner: str) -> TrainingRun:
        """Take a waiting run out of the queue, or ask a training one to stop."""
        run = self.live(run_id, owner)
        with self._lock:
            queued = run in self._queue
            if queued:
                self._queue.remove(run)
        if queued:
            run.cancel("cancelled by its owner before it started")
        elif run.snapshot().finished:
            raise ValueError(f"run {run_id} has already {run.snapshot().status}")
        else:
            run.stop()
        return run

    def shutdown(self, timeout: float = 120.0) -> None:
        """The server is stopping: cancel what waits, stop what trains and wait for its
        thread, so no training thread outlives the server (torch aborts the interpreter
        when one is still running at exit)."""
        with self._lock:
            waiting, self._queue = self._queue, []
        for run in waiting:
            run.cancel("cancelled (server stopped)")
        mine = [r for r in active_runs() if r.run_id in self._live]
        for current in mine:
            current.stop()
        for current in mine:
            current.wait(timeout)

    # --- the disk (runs/disk.py, runs/footprint.py): room for a run's files, each person's quota,
    # retention of weights in public mode, deleting runs
    def _check_disk(self, configs: list, owner: str, holding: int = 0) -> None:
        """Refuse a start in one line when its owner is over their quota, or when the disk cannot
        hold the runs' estimated outputs (less `holding`, what a resumed run's folder already has)
        beside what the runs waiting or training have yet to write."""
        self.expire(force=True)
        estimates = [footprint.estimate_bytes(config) for config in configs]
        needed = None if None in estimates else max(0, sum(estimates) - holding)
        mine = self.list(owner) if self.disk.quota_mb else []
        refused = self.disk.refusal(self.root, needed, mine, self._pending_bytes() if needed is not None else 0)
        if refused:
            raise QueueFull(refused)

    def _pending_bytes(self) -> int:
        """What the runs waiting or training here have yet to write: their estimate less their folder."""
        with self._lock:
            runs = self._waiting_or_training()
        return sum(max(0, (footprint.estimate_bytes(r.config) or 0) - disk.folder_bytes(r.folder.root)) for r in runs)

    def expire(self, force: bool = False) -> list[str]:
        """Remove the weights and checkpoints of runs past retention (public mode): at every start
        (`force`) and at most every disk.EXPIRE_EVERY_S when runs are listed. A timer thread would do
        it on an idle server too, but the disk only fills when runs start, and the listing is where a
        person would see a run's weights gone. Returns the ids whose weights went."""
        if not self.disk.due(force):
            return []
        expired, trash = [], []
        for record in self.disk.past_retention(self.root):  # read outside the lock: many folders
            with self._lock:  # a run queued again meanwhile (resumed) keeps its checkpoints
                if any(r.run_id == record.id for r in self._waiting_or_training()):
                    continue
                trash += self.disk.remove_weights(record)
            expired.append(record.id)
        disk.empty(trash)
        return expired

    def delete(self, run_ids, owner: str) -> dict:
        """Delete runs of the owner's (every run locally) whole, all or none: NoSuchRun for one that is
        not theirs, disk.CannotDelete for one waiting or training. A sweep forgets its deleted runs and
        judges the ones left. Returns {deleted, freed_mb}."""
        with self._lock:
            waiting = self._waiting_or_training()
            busy = {r.run_id: r.snapshot().status for r in waiting}
            used_by = {parent["run_id"]: f"run {r.run_id} ({busy[r.run_id]})" for r in waiting
                       if (parent := records.parent_of(r.config.model))}
            deleting = disk.start_deleting(self.root, run_ids, self._filter(owner), busy, used_by)
            for run_id in deleting.ids:
                self._live.pop(run_id, None)
        for folder in deleting.sweeps:
            if len(sweep_records.read_sweep(self.root, folder.name).run_ids) < 2:
                sweep_records.write_sweep(folder, verdict=None)  # one run left is no comparison
            else:
                self._close_sweep(folder.name, folder)
        return deleting.finish()

    # --- the queue as its owner sees it
    def position(self, run: TrainingRun) -> int:
        """1 for the next run to start; 0 when not waiting."""
        with self._lock:
            return self._queue.index(run) + 1 if run in self._queue else 0

    def wait_estimate(self, run: TrainingRun) -> float | None:
        """Seconds until the run starts: the places the trainer has (admission.limit) free up
        as the training runs finish (what each has left) and then as the runs ahead finish
        (their planned steps at the measured pace), each run ahead taking the first place free;
        this one starts at the first place free after them. None before any run has finished
        here (no pace to go by)."""
        position = self.position(run)
        if not position or self._seconds_per_step is None:
            return None
        with self._lock:
            ahead = self._queue[:position - 1]
        places = sorted(r.snapshot().eta_seconds or 0.0 for r in self.training())
        places += [0.0] * max(0, self.admission.limit - len(places))
        for waiting in ahead:
            heapq.heapify(places)
            free = heapq.heappop(places)
            heapq.heappush(places, free + (waiting.snapshot().max_steps or 0) * self._seconds_per_step)
        return min(places)

    def training(self) -> list[TrainingRun]:
        """The runs training now (started and not ended), this scheduler's or not."""
        return [r for r in active_runs() if not r.snapshot().finished]

    def busy_with_another(self, owner: str) -> bool:
        """The trainer is training someone else's run (only ever said, never shown)."""
        return self.public and any(r.owner != owner for r in self.training())
