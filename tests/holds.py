"""Holding a run at a known point, so a test that stops, resumes, queues or
cancels does it at the same step on any machine, however fast or loaded.

`Holds` is a TrainerCallback given to runs (TrainingRun's `callbacks`, or an
app's `run_callbacks` so every run it starts gets it). A test arms a hold:

    with holds.at_step(2) as hold:
        start the run ...
        hold.wait()        # the run is held at the end of step 2 (returns once it is)
        stop it, queue another, look at its status ...
    # leaving the block releases it

A hold fires once, for the first run that reaches its point, and blocks that
run's thread until released. Held at the end of step N, the run has logged
steps 1 to N-1 (step N is logged after the hold) and a stop asked meanwhile
lands on step N itself: the job's callbacks come before the one that reads
stop requests (runs/worker.py). Nothing here sleeps: waiting is on events,
with timeouts that only a broken run reaches.
"""

from __future__ import annotations

import threading
from pathlib import Path

from transformers import TrainerCallback

WAIT_S = 300  # how long a test waits for a run to reach a hold: only a broken run takes this long
HELD_S = 600  # how long a hold keeps a run before giving up on its test and failing the run


class Hold:
    """One point a run is held at: `point` is "step" (the end of optimizer step
    `step`), "train_begin" (training about to start, the model loaded and the
    base model's answers given), "save" (a checkpoint just written, at `step`
    or any) or "train_end" (training over, before the final answers)."""

    def __init__(self, point: str, step: int | None = None):
        self.point, self.step = point, step
        self.run_id: str | None = None  # the run held (its folder's name)
        self.at_step: int | None = None  # the step it was held at
        self._reached, self._released = threading.Event(), threading.Event()

    def matches(self, point: str, step: int) -> bool:
        return point == self.point and (self.step is None or step == self.step) and not self._released.is_set()

    def hold(self, run_id: str, step: int) -> None:
        """Called on the run's thread: note who is held, then block until released."""
        self.run_id, self.at_step = run_id, step
        self._reached.set()
        if not self._released.wait(HELD_S):
            raise RuntimeError(f"held at {self.point} {step} for {HELD_S} s: the test never released it")

    def wait(self, timeout: float = WAIT_S) -> "Hold":
        if not self._reached.wait(timeout):
            raise AssertionError(f"no run reached {self.point} {self.step or ''} in {timeout} s")
        return self

    @property
    def reached(self) -> bool:
        return self._reached.is_set()

    def release(self) -> None:
        self._released.set()

    def __enter__(self) -> "Hold":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Holds(TrainerCallback):
    """The callback runs are given; holds armed on it fire once each."""

    def __init__(self):
        self._armed: list[Hold] = []
        self._lock = threading.Lock()

    def at_step(self, step: int) -> Hold:
        return self._arm(Hold("step", step))

    def at(self, point: str, step: int | None = None) -> Hold:
        return self._arm(Hold(point, step))

    def _arm(self, hold: Hold) -> Hold:
        with self._lock:
            self._armed.append(hold)
        return hold

    def _maybe_hold(self, point: str, args, state) -> None:
        with self._lock:
            hold = next((h for h in self._armed if h.matches(point, state.global_step)), None)
            if hold is not None:
                self._armed.remove(hold)
        if hold is not None:
            hold.hold(Path(args.output_dir).parent.name, state.global_step)  # output_dir: <run>/checkpoints

    def on_train_begin(self, args, state, control, **kwargs):
        self._maybe_hold("train_begin", args, state)

    def on_step_end(self, args, state, control, **kwargs):
        self._maybe_hold("step", args, state)

    def on_save(self, args, state, control, **kwargs):
        self._maybe_hold("save", args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self._maybe_hold("train_end", args, state)
