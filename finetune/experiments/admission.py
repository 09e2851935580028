"""Which waiting run may start beside the ones already training.

A 135M model uses neither a GPU nor a many-core CPU fully, so a class's runs
can train side by side where the machine has room: on a GPU while the memory
estimates of every admitted run, with a margin, fit the device's memory; on a
CPU while each run keeps MIN_CORES_PER_RUN cores of its own (and the estimates
fit the RAM). Thread counts are process-global in torch: the threads per run
are fixed when the scheduler is made, never changed under a running run.
FINETUNE_CONCURRENT_RUNS overrides how many may train at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# The estimate reads low (on the CPU the measured peak ran 10-30% over it: tests/memory),
# and two runs that both peak at once must still fit.
SAFETY_MARGIN = 1.3
# A training step of a small model on one core is still a fair share. On the 2-core VM a quick-demo
# run of the default model took 680 s on one thread and 410 s on two (bench.workshop --preset): two
# threads gain 1.7x, so two runs side by side gain 1.18x on compute, and the class more with reuse
# (1.26x for 4 students); on more cores a 135M model scales worse and side by side gains more.
# Fewer than this per run and they fight for cores.
MIN_CORES_PER_RUN = 1
# The share of the machine's memory runs may take: the app, Gradio and the OS keep the rest.
USABLE_MEMORY = 0.85
MAX_DEFAULT = 8  # beyond this many at once a single process's Python threads contend more than they gain


@dataclass(frozen=True)
class Machine:
    device: str  # "cpu", "cuda" or "mps"
    cores: int
    memory_bytes: int | None  # what the device has (cuda: the GPU's total; cpu: the RAM); None when unknown

    @classmethod
    def detect(cls) -> "Machine":
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if torch.cuda.is_available():
            return cls("cuda", cores, torch.cuda.get_device_properties(0).total_memory)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return cls("mps", cores, None)
        return cls("cpu", cores, _total_ram())


def _total_ram() -> int | None:
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def configured_limit() -> int | None:
    """FINETUNE_CONCURRENT_RUNS, when set to a whole number of at least 1."""
    try:
        value = int(os.environ.get("FINETUNE_CONCURRENT_RUNS", ""))
    except ValueError:
        return None
    return value if value >= 1 else None


@dataclass(frozen=True)
class Admission:
    machine: Machine
    limit: int  # runs training at once, at most

    @classmethod
    def for_machine(cls, machine: Machine, limit: int | None = None) -> "Admission":
        return cls(machine, limit or configured_limit() or default_limit(machine))

    @property
    def threads_per_run(self) -> int:
        """CPU threads each run computes with: the cores split between the runs that may train at once."""
        return max(1, self.machine.cores // self.limit)

    def admits(self, running: list[int | None], candidate: int | None, alone: bool = False) -> bool:
        """Whether a run whose memory estimate is `candidate` (bytes, None when unknown) may start
        beside runs whose estimates are `running`. `alone`: it must train with nothing beside it
        (it ran out of memory beside another)."""
        if not running:
            return True
        if alone or len(running) >= self.limit:
            return False
        budget = self.machine.memory_bytes
        if budget is None:
            return self.machine.device == "cpu"  # a GPU's room unknown: one at a time
        estimates = [*running, candidate]
        if any(e is None for e in estimates):
            return self.machine.device == "cpu"  # cores suffice on a CPU; a GPU needs every estimate
        return sum(estimates) * SAFETY_MARGIN <= budget * USABLE_MEMORY

    def describe(self) -> str:
        return (f"up to {self.limit} run{'s' * (self.limit > 1)} at once here ({self.machine.device}, "
                f"{self.machine.cores} cores" + (f", {self.threads_per_run} threads each" if self.limit > 1
                                                 and self.machine.device == "cpu" else "") + ")")


def default_limit(machine: Machine) -> int:
    """What the machine allows: each CPU run keeps its cores; a GPU's memory decides case by case;
    one where nothing would gain (Apple's MPS shares one device queue)."""
    if machine.device == "mps":
        return 1
    if machine.device == "cuda":
        return MAX_DEFAULT
    return max(1, min(MAX_DEFAULT, machine.cores // MIN_CORES_PER_RUN))


def run_estimate_bytes(config, hardware) -> int | None:
    """A queued run's estimated peak before its model loads: the estimator on the model's
    shape (its config.json), for the settings' longest micro-batch. None when unreadable."""
    from ..memory import estimate as memory
    from ..memory import model_shape

    try:
        shape = model_shape.shape_from_spec(config.model)
        found = memory.estimate(
            shape, method=config.method, weights=config.weights, autocast=hardware.precision,
            optimizer=config.optimizer, batch_size=config.batch_size, seq_len=config.max_length,
            gradient_checkpointing=config.gradient_checkpointing == "on", lora_r=config.lora_r,
            lora_dropout=config.lora_dropout, grad_accum=config.grad_accum)
    except (model_shape.EstimateError, OSError, ValueError):
        return None
    return int(found.peak_bytes)
