"""Which process this is, when a run is launched as several (torchrun,
`accelerate launch`): the one seam over accelerate's PartialState that the
engine asks.

Every process trains its share of each batch (the Trainer wraps the model in
DDP or FSDP); only the main process answers the held-out prompts, writes the
run's files and saves the model, while the others wait at a barrier. A plain
`python -m finetune` or the app is one process: main, rank 0, nothing to wait for.
"""

from __future__ import annotations

import os
import threading

import torch

# accelerate builds its shared state attribute by attribute: a second thread that asks
# half-way (the CLI's main thread while the run's thread starts training) finds it
# "initialised" without is_main_process. One thread at a time builds or reads it.
_STATE_LOCK = threading.Lock()


def _state():
    from accelerate import PartialState

    # Without cpu=True on a machine with no GPU, accelerate would treat a
    # torchrun launch as one process (and the Trainer, which finds this state
    # already made, would train without DDP). gloo is then the backend.
    with _STATE_LOCK:
        return PartialState(cpu=not torch.cuda.is_available())


def configure() -> None:
    """Make accelerate's process state now (a Trainer built beside a running one reuses it)."""
    _state()


def launched() -> bool:
    """True when a launcher started several processes (its environment says so)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def num_processes() -> int:
    return _state().num_processes if launched() else 1


def is_main() -> bool:
    return _state().is_main_process if launched() else True


def local_rank() -> int:
    """This process's GPU on its machine (0 when there is one process)."""
    return _state().local_process_index if launched() else int(os.environ.get("LOCAL_RANK", "0"))


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in one process)."""
    if launched():
        _state().wait_for_everyone()


def sum_across(value: int | float) -> int | float:
    """The sum of `value` over all processes; every process must call it at the same point."""
    if not launched():
        return value
    from accelerate.utils import reduce

    state = _state()
    total = reduce(torch.tensor([value], dtype=torch.float64, device=state.device), reduction="sum")
    return type(value)(total.item())
