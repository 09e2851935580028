"""What a run's thread is given to work from: the run (run.py) builds a Job
before the thread starts, the worker (worker.py) executes it. Both import it
from here, so the run depends on the worker and never the other way round."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..data.dataset import PreparedData
from ..sources.models import ModelSource
from ..train.config import TrainConfig
from ..train.plan import Plan
from .outputs import RunFolder
from .reuse import Reused


@dataclass(frozen=True)
class Job:
    """Everything a run's thread works from, fixed before it starts."""

    config: TrainConfig
    folder: RunFolder
    source: ModelSource
    prepared: PreparedData | None = None  # None: the thread reads and prepares the data itself
    resume: bool = False
    callbacks: tuple = ()  # extra TrainerCallbacks (tests inject faults through them)
    data_name: str = ""  # what the run's files call the dataset (never an upload's server path)
    plan: Plan | None = None  # known before the thread starts when the data is prepared already
    judge: ModelSource | None = None  # the model judging the answers (evaluate.judge.judge_source); None: no judge
    # Whether other runs train in this process now (the run's slot, runs/run.py), asked when the Trainer is built.
    others_training: Callable[[], bool] | None = None
    reused: Reused | None = None  # the 'before' measurements computed once (runs/reuse.py); None: always computed
