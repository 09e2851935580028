"""TrainingRun: one fine-tuning run in a worker thread, observed through
immutable snapshots. The UI and the command line both drive this seam.

The module-level slot below is the only mutable module state: the runs
training in this process, claimed in start() and released in the worker's
finally. One at a time unless the scheduler admits a run beside the others
(experiments/admission.py: where the machine has room).
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..data.dataset import PreparedData
from ..evaluate.judge import judge_source
from ..evaluate.metrics import comparison_rows
from ..sources.files import looks_like_path
from ..sources.hub_token import redact
from ..sources.models import ModelSource, resolve
from ..train.config import Checked, ConfigError, TrainConfig, check
from ..train import objectives
from ..train.plan import Plan, plan
from . import records
from . import status as run_status
from .job import Job
from .portable import display_name
from .outputs import RunFolder
from .reuse import Reused, reuse_for

_SLOT_LOCK = threading.Lock()
_ACTIVE: list["TrainingRun"] = []  # the slot: the runs training now (one, unless admitted beside others)


class RunBusyError(RuntimeError):
    """Another run holds the slot."""


def active_run() -> "TrainingRun | None":
    """The first run training now, or None."""
    with _SLOT_LOCK:
        return _ACTIVE[0] if _ACTIVE else None


def active_runs() -> tuple["TrainingRun", ...]:
    """Every run training now, first started first."""
    with _SLOT_LOCK:
        return tuple(_ACTIVE)


def ensure_idle() -> None:
    """Raise RunBusyError, saying what holds the slot, when a run is active."""
    run = active_run()
    if run is not None:
        raise RunBusyError(_busy_message(run))


def _busy_message(run: "TrainingRun") -> str:
    other = run.snapshot()
    return (f"a run is already {other.status} (step {other.step}/{other.max_steps}); "
            "wait for it to finish or stop it first")


def refuse_unsupported(config: TrainConfig) -> None:
    """ConfigError, one line per problem, when this machine cannot do what the
    config asks (8-bit AdamW or QLoRA without a CUDA GPU, ...): refused before
    a thread starts, never an import error halfway through a run."""
    from ..train import device, loggers

    logger = loggers.problem(config)  # a report_to whose library is missing, or that would leave the machine
    problems = device.unsupported(config, device.detect(config.precision)) + ([logger] if logger else [])
    if problems:
        raise ConfigError("\n".join(problems))


FINAL = run_status.FINAL  # completed, stopped, failed, cancelled; interrupted for a run read back from disk


@dataclass(frozen=True)
class Snapshot:
    run_id: str
    status: str
    message: str = ""
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    history: tuple[dict, ...] = ()
    comparison: tuple[dict, ...] = ()
    scores: dict = field(default_factory=dict)
    error: str | None = None
    label: str | None = None  # e.g. "lr=5e-05" for a sweep's member
    started_at: float = 0.0
    finished_at: float | None = None
    hardware: str = ""
    model: str = ""
    train_examples: int = 0
    train_tokens: int = 0
    plan: Plan | None = None  # steps, warmup and the learning-rate curve, once the data is prepared
    # Failure-mode findings (diagnose.base.Finding.to_dict()): the live detectors while training,
    # all of them at the end.
    diagnoses: tuple[dict, ...] = ()
    # The memory estimate before the run and the peak measured during it:
    # {"estimate_bytes", "estimate_text", "peak_bytes", "peak_kind"}; keys appear as they become known.
    memory: dict = field(default_factory=dict)
    # The model kept at the lowest validation loss so far (keep_best): {"step", "eval_loss"}, or None.
    best_checkpoint: dict | None = None
    earlier_seconds: float = 0.0  # trained before the latest resume: elapsed counts it
    # summary.json's "changes" once the run has ended: each category's one reading (the held-out
    # prompts, the general probe, ...), which every surface shows as the command line prints it.
    changes: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    @classmethod
    def from_record(cls, record: records.RunRecord) -> "Snapshot":
        """A run read back from its folder, shown the way a live run is."""
        summary = record.summary or {}
        history = tuple(record.history)
        steps = [h["step"] for h in history]
        return cls(run_id=record.id, status=record.status, message=record.message or record.status,
                   step=summary.get("steps") or (max(steps) if steps else 0),
                   max_steps=summary.get("max_steps") or record.config.get("resolved", {}).get("steps", 0),
                   epoch=summary.get("epoch") or 0.0, history=history, comparison=tuple(record.comparison or ()),
                   scores=summary.get("scores") or {}, error=record.error or summary.get("error"),
                   label=record.label, started_at=record.started_at or 0.0, finished_at=record.finished_at,
                   hardware=summary.get("hardware") or "", model=summary.get("model") or "",
                   train_examples=summary.get("train_examples") or 0, train_tokens=summary.get("train_tokens") or 0,
                   diagnoses=tuple(summary.get("diagnoses") or ()), memory=summary.get("memory") or {},
                   best_checkpoint=summary.get("best_checkpoint"), earlier_seconds=record.earlier_seconds,
                   changes=summary.get("changes") if isinstance(summary.get("changes"), dict) else {})

    def logged(self, key: str) -> list:
        """Every logged value of `key` ("loss", "eval_loss", ...), in step order."""
        return [h[key] for h in self.history if key in h]

    @property
    def elapsed(self) -> float:
        session = ((self.finished_at or time.time()) - self.started_at) if self.started_at else 0.0
        return self.earlier_seconds + session

    @property
    def tokens_per_second(self) -> float | None:
        rates = [h["tokens_per_second"] for h in self.history[-20:] if "tokens_per_second" in h]
        return sum(rates) / len(rates) if rates else None

    @property
    def eta_seconds(self) -> float | None:
        # This session's steps only: a resumed run's history holds the earlier ones, before a pause.
        steps = [h for h in self.history if "loss" in h and h.get("time", 0) >= self.started_at]
        if self.status != "training" or len(steps) < 2 or not self.max_steps:
            return None
        first, last = steps[0], steps[-1]
        per_step = (last["time"] - first["time"]) / max(last["step"] - first["step"], 1)
        return per_step * (self.max_steps - self.step)


@dataclass(frozen=True)
class Identity:
    """Who owns a run and how people name it; recorded in run.json."""

    owner: str = records.LOCAL_OWNER  # owner_hash(key), or "local" on a single-user install
    data_name: str | None = None  # the dataset as its owner knows it (an upload's file name, never a server path)
    sweep: str | None = None
    label: str | None = None


class TrainingRun:
    """start() returns at once; stop() asks for a save-and-stop at the next
    step; snapshot() is safe from any thread at any time; result is the
    finished thread's RunResult (None until then, or when it failed)."""

    def __init__(self, settings: Checked | TrainConfig, output_dir: str | Path, prepared: PreparedData | None = None,
                 token: str | None = None, allowed_model_roots: tuple[Path, ...] | None = None,
                 allow_out_of_range: bool = False, resume: bool = False, callbacks: tuple = (),
                 source: ModelSource | None = None, identity: Identity = Identity(), on_finished=None,
                 message: str = "", reused: Reused | None | bool = True):
        """`settings`: a config that build() checked, or a bare one checked here
        (with `allow_out_of_range`). `source`: the model spec already resolved
        by the caller; else a bad model id or folder is refused here, not in the thread.
        The run is a record on disk from here on (run.json, status queued).
        `on_finished(run)` is called from the run's thread once it has ended.
        `resume`: continue the run in `output_dir` (its record and curve) from its last
        complete checkpoint; without one it starts over there. `message`: what its owner is told
        while it waits (default: "queued"). `reused`: where its 'before' measurements are kept and
        found (runs/reuse.py; default: beside the run folder, on disk); None: always computed."""
        checked = settings if isinstance(settings, Checked) else check(settings, allow_out_of_range)
        refuse_unsupported(checked.config)
        config = checked.config
        if prepared is not None:
            objectives.check_data(config, prepared)  # refused before the run is queued, as a bad setting is
        run_plan = plan(config, *objectives.training_units(config, prepared)) if prepared else None
        source = source or resolve(config.model, allowed_model_roots)
        self._job = Job(config=config, folder=RunFolder(Path(output_dir)), source=source, prepared=prepared,
                        resume=resume, callbacks=callbacks,
                        data_name=identity.data_name or display_name(config.data) or config.data,
                        plan=run_plan, judge=judge_source(config.judge, source, allowed_model_roots),
                        others_training=lambda: any(run is not self for run in active_runs()),
                        reused=reuse_for(Path(output_dir).parent) if reused is True else reused or None)
        self.identity = identity
        self.allowed_model_roots = allowed_model_roots
        self._token = token  # used for downloads only; never stored in snapshots, configs or logs
        self._on_finished = on_finished
        self._lock = threading.Lock()
        self._watchers: list = []  # called with every new snapshot (watch())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._result = None
        pending = tuple(comparison_rows(prepared.held_out, None, None)) if prepared else ()
        earlier = _resume_point(self.folder.root) if resume else None
        message = f"queued to resume from step {earlier[0]}" if earlier else (message or "queued")
        self._snapshot = Snapshot(run_id=self.folder.root.name, status="queued", message=message,
                                  label=identity.label, max_steps=run_plan.steps if run_plan else config.max_steps,
                                  plan=run_plan, comparison=pending, earlier_seconds=earlier[1] if earlier else 0.0)
        self.folder.write_json("config.json", self.config.to_dict() | {"data": self.data_name,
                                                                       "model": self.folder.portable(config.model)})
        self._write_record(earlier, message)

    def _write_record(self, earlier: tuple[int, float] | None, message: str) -> None:
        """run.json: a new record, or the same one queued again for a resume (its id,
        owner, sweep and creation time kept; its times and error cleared)."""
        known = dict(status="queued", message=message, data_name=self.data_name, data_path=self._data_path())
        if earlier is None:
            records.write_record(self.folder.root, owner=self.identity.owner, sweep=self.identity.sweep,
                                 label=self.identity.label, **known)
            return
        records.update_record(self.folder.root, **known, error=None, started_at=None, finished_at=None,
                              earlier_seconds=earlier[1], **run_status.this_process())

    def _data_path(self) -> str | None:
        """The data file relative to the run folder, for resuming (None for a hub dataset)."""
        spec = self.config.data
        return self.folder.portable(spec) if spec and looks_like_path(spec) else None

    @property
    def config(self) -> TrainConfig:
        return self._job.config

    @property
    def folder(self) -> RunFolder:
        return self._job.folder

    @property
    def run_id(self) -> str:
        return self.folder.root.name

    @property
    def owner(self) -> str:
        return self.identity.owner

    @property
    def data_name(self) -> str:
        return self._job.data_name

    @property
    def token(self) -> str | None:
        """The hub token the run downloads with (never in a snapshot, config or log)."""
        return self._token

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def result(self):
        """The thread's RunResult (model source, hardware, template, comparison, scores)."""
        with self._lock:
            return self._result

    # --- control
    def start(self, alongside: bool = False) -> "TrainingRun":
        """Start the thread; RunBusyError when another run trains, unless `alongside` (the
        scheduler found room for this one beside the others: experiments/admission.py)."""
        with _SLOT_LOCK:
            if _ACTIVE and not alongside:
                raise RunBusyError(_busy_message(_ACTIVE[0]))
            _ACTIVE.append(self)
        self._publish(status="loading", message="loading the model and data", started_at=time.time())
        thread = threading.Thread(target=self._work, name=f"training-{self._snapshot.run_id}", daemon=True)
        try:
            thread.start()
        except BaseException:
            self._release_slot()
            raise
        # Only a started thread is shown: another thread's wait() joins it, and
        # joining one not yet started raises (seen in a sweep, as a crash).
        self._thread = thread
        return self

    def stop(self) -> None:
        self._stop.set()

    def cancel(self, message: str = "cancelled before it started") -> None:
        """End a run that never started (taken out of the queue)."""
        if self.started:
            raise RuntimeError("a started run is stopped, not cancelled")
        self._publish(status="cancelled", message=message, finished_at=time.time())

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def watch(self, listener) -> None:
        """Call `listener(snapshot)` now and on every change of the run's snapshot, on the
        thread that made the change, in order: a follower sees every status message and
        every logged step, however quick, where a poll would see only the latest."""
        with self._lock:
            self._watchers.append(listener)
            self._tell(self._snapshot)

    def _tell(self, snap: Snapshot) -> None:
        """(Under the lock.) A watcher's failure (a closed stderr) must not end the run."""
        for listener in self._watchers:
            try:
                listener(snap)
            except Exception:  # noqa: BLE001
                pass

    def wait(self, timeout: float | None = None) -> Snapshot:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.snapshot()

    # --- what the thread reports
    def _publish(self, **changes) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, **changes)
            if "status" in changes:  # the record on disk follows every change of status
                self._record_status(self._snapshot)
            self._tell(self._snapshot)

    def _record_status(self, snap: Snapshot) -> None:
        try:
            records.update_record(self.folder.root, status=snap.status, message=snap.message, error=snap.error)
        except OSError:
            pass  # a full disk must not kill the run's thread; the snapshot still tells the truth

    def record(self, entry: dict) -> None:
        """Append a logged dict to the history (append-only, so every viewer sees all of it)."""
        entry = {**entry, "time": round(time.time(), 3)}
        self.folder.append_metrics(entry)
        with self._lock:
            snap = self._snapshot
            self._snapshot = replace(snap, history=snap.history + (entry,), step=max(snap.step, entry["step"]),
                                     epoch=entry.get("epoch", snap.epoch))
            self._tell(self._snapshot)

    def _release_slot(self) -> None:
        with _SLOT_LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)

    def _work(self) -> None:
        from ..train.device import release_memory
        from ..train.ranks import is_main as is_main_process
        from .worker import execute

        unexpected = "the run ended unexpectedly; see the server log"
        final = replace(self.snapshot(), status="failed", error=unexpected, message=unexpected)
        result, failure = None, None
        try:
            try:
                result = execute(self._job, self._token, self._publish, self.record, lambda: self.stop_requested)
                outcome = {"status": result.status, "message": result.message, "comparison": result.comparison,
                           "scores": result.scores}
                with self._lock:
                    self._result = result
            except BaseException as err:  # any failure ends the run visibly; never a silent hang
                outcome, failure = self._failure(err), err
            final = replace(self.snapshot(), **outcome)
            final = replace(final, diagnoses=_final_diagnoses(final, self.config, result, failure))
            try:
                if is_main_process():  # the others of a multi-process launch leave the files to it
                    self.folder.write_summary(final, self.config, self.data_name)
                    final = replace(final, changes=self.folder.read_json("summary.json").get("changes") or {})
            except BaseException as err:  # e.g. the disk filled up
                final = replace(final, **self._failure(err))
        finally:
            self._job = replace(self._job, prepared=None)  # a finished run keeps no dataset in memory
            release_memory()
            self._release_slot()
            # Published last: whoever sees a finished status finds summary.json
            # written, the memory released and the slot free for the next start.
            self._publish(**{**final.__dict__, "finished_at": time.time()})
            if self._on_finished is not None:
                self._on_finished(self)

    def _failure(self, err: BaseException) -> dict:
        from .worker import explain_failure

        message = self._named(explain_failure(err, self.config))
        try:
            self.folder.write_json("error.json", {"error": message,
                                                  "traceback": self._named(_redacted_traceback(err, self._token))})
        except OSError:
            pass  # the message still reaches the snapshot
        return {"status": "failed", "error": message, "message": message}

    def _named(self, text: str) -> str:
        """An error that names a file in the run folder (a checkpoint on a full disk) names
        it from the run's id, not by this machine's path: the error is kept in run.json."""
        for path in sorted({str(self.folder.root.absolute()), str(self.folder.root.resolve())}, key=len, reverse=True):
            text = text.replace(path, self.run_id)
        return text


def _resume_point(folder: Path) -> tuple[int, float] | None:
    """(the step of the last complete checkpoint, the seconds trained so far), or
    None when there is no checkpoint to resume from (the run starts over)."""
    from .resume import checkpoint_step, trained_seconds

    step = checkpoint_step(folder)
    return (step, trained_seconds(folder)) if step is not None else None


def _final_diagnoses(final: Snapshot, config: TrainConfig, result, failure: BaseException | None) -> tuple[dict, ...]:
    """Every detector on the run as it ended; a failed or stopped run has less
    to judge from, and the detectors say so rather than guess."""
    from ..diagnose import findings

    step = getattr(failure, "step", None)  # NonFiniteLossError's: where the loss became NaN or inf
    try:
        return findings.final(final.history, config, final.comparison, getattr(result, "probe", None),
                              getattr(result, "train_responses", ()), final.status, final.error,
                              step if isinstance(step, int) else None, getattr(result, "preference", None))
    except Exception:  # noqa: BLE001 -- the findings of a run must never be what fails it
        return final.diagnoses


def _redacted_traceback(err: BaseException, token: str | None) -> str:
    return redact("".join(traceback.format_exception(err)), token)
