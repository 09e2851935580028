"""The run's metrics also sent where people already look (`report_to`):
TensorBoard event files in the run folder's logs/, or a run in Trackio's local
store. transformers' own integrations do the logging; these subclasses only
decide where, and keep the machine's paths and the network out of it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path

from transformers.integrations import TensorBoardCallback, TrackioCallback

from .config import TrainConfig

LOGS_DIR = "logs"  # TensorBoard's event files, inside the run folder
TRACKIO_PROJECT = "finetune-lab"  # one Trackio project; each run is a run in it, named by its folder
LIBRARIES = {"tensorboard": "tensorboard", "trackio": "trackio"}
# Set, these send Trackio's metrics to a Space or a server: this lab logs locally only.
TRACKIO_REMOTE = ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL")


def problem(config: TrainConfig) -> str | None:
    """Why the logger asked for cannot be used here, in one line; checked before the run starts."""
    library = LIBRARIES.get(config.report_to)
    if library is None:
        return None
    if importlib.util.find_spec(library) is None:
        return f"report_to {config.report_to}: the {library} package is not installed (pip install {library})"
    remote = [name for name in TRACKIO_REMOTE if os.environ.get(name)] if library == "trackio" else []
    if remote:
        return (f"report_to trackio logs to Trackio's local store only; {', '.join(remote)} would send the metrics "
                "elsewhere: unset it, or log with trackio yourself")
    return None


def callbacks(config: TrainConfig, run_folder: Path) -> list:
    """The logging callback `report_to` asks for (none for "none")."""
    if config.report_to == "tensorboard":
        return [TensorBoardLogs(Path(run_folder) / LOGS_DIR)]
    if config.report_to == "trackio":
        return [TrackioRun(Path(run_folder).name, config)]
    return []


class TensorBoardLogs(TensorBoardCallback):
    """Event files in `folder`. The Trainer's arguments are not written (they hold
    this machine's paths). A resumed run's writer hides what the earlier session
    logged after its checkpoint, so TensorBoard shows one curve, as the app does."""

    def __init__(self, folder: Path):
        super().__init__()
        self.logging_dir = str(folder)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.tb_writer is None:
            self.tb_writer = self._SummaryWriter(log_dir=self.logging_dir,
                                                 purge_step=state.global_step + 1 if state.global_step else None)


class TrackioRun(TrackioCallback):
    """A run named after the lab's (its folder name) in the project `finetune-lab`
    of Trackio's local store (TRACKIO_DIR, by default ~/.cache/huggingface/trackio);
    a resumed run continues it. Never a Space. Trackio prints its notices to
    stdout: they go to stderr here (the command line's stdout is its JSON result)."""

    def __init__(self, name: str, config: TrainConfig):
        super().__init__()
        self.name = name
        # The lab's settings, without the data and model paths (Trackio keeps its own store).
        self.settings = {k: v for k, v in config.to_dict().items() if k not in ("data", "model")}

    def setup(self, args, state, model, **kwargs):
        if state.is_world_process_zero:
            with contextlib.redirect_stdout(sys.stderr):
                self._trackio.init(project=TRACKIO_PROJECT, name=self.name, resume="allow", config=self.settings,
                                   auto_log_cpu=False, auto_log_gpu=False)
        self._initialized = True

    def on_train_end(self, args, state, control, **kwargs):
        with contextlib.redirect_stdout(sys.stderr):
            super().on_train_end(args, state, control, **kwargs)
