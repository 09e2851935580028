"""The measured side of memory: how much a piece of work took at its worst, on
CUDA, a Mac or the CPU. The estimate beside it lives in estimate.py."""

from __future__ import annotations

import sys
from pathlib import Path


class PeakMemory:
    """How much memory a piece of work took at its worst: the peak growth
    since start(), in bytes, or None where it cannot be measured.

    cuda: tensors the caching allocator handed out (max_memory_allocated; the
    CUDA context is not included). cpu: the process's resident memory
    high-water mark (VmHWM, reset at start) minus its resident memory at start
    (VmRSS); without /proc, getrusage's lifetime peak, which only shows growth
    above the process's earlier peak. mps: there is no peak counter; the
    driver's memory now, a lower bound of the peak."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.kind = device.split(":")[0]
        self.method = "not started"
        self._base: int | None = None
        self._reset = False
        self._old_peak = 0

    def start(self) -> "PeakMemory":
        starter = {"cuda": self._start_cuda, "mps": self._start_mps}.get(self.kind, self._start_cpu)
        starter()
        return self

    def peak_bytes(self) -> int | None:
        if self._base is None:
            return None
        reader = {"cuda": self._peak_cuda, "mps": self._peak_mps}.get(self.kind, self._peak_cpu)
        peak = reader()
        return None if peak is None else max(0, peak)

    # cuda
    def _start_cuda(self) -> None:
        import torch

        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._base = torch.cuda.memory_allocated(self.device)
        self.method = "torch.cuda.max_memory_allocated"

    def _peak_cuda(self) -> int:
        import torch

        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) - self._base

    # mps
    def _start_mps(self) -> None:
        import torch

        reader = (getattr(torch.mps, "driver_allocated_memory", None)
                  or getattr(torch.mps, "current_allocated_memory", None))
        if reader is None:
            self.method = "unavailable: this torch has no MPS memory counters"
            return
        self._mps_reader = reader
        self._base = reader()
        self.method = "MPS memory at the call (no peak counter: a lower bound)"

    def _peak_mps(self) -> int:
        return self._mps_reader() - self._base

    # cpu
    def _start_cpu(self) -> None:
        if _proc_status() is not None:
            self._reset = _reset_high_water_mark()
            status = _proc_status()
            self._base, self._old_peak = status["VmRSS"], status["VmHWM"]
            self.method = "/proc/self/status: VmHWM - VmRSS at start" + ("" if self._reset else " (no reset)")
            return
        maxrss = _rusage_peak()
        if maxrss is None:
            self.method = "unavailable: no /proc and no resource module"
            return
        self._base = self._old_peak = maxrss
        self.method = "getrusage ru_maxrss growth (a lower bound)"

    def _peak_cpu(self) -> int | None:
        status = _proc_status()
        peak = status["VmHWM"] if status is not None else _rusage_peak()
        if peak is None:
            return None
        if not self._reset and peak <= self._old_peak:
            return None  # an earlier, higher peak hides whatever happened since start
        return peak - self._base


def _proc_status() -> dict[str, int] | None:
    """VmRSS and VmHWM of this process in bytes, or None without /proc."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024  # reported in kB
    return values if len(values) == 2 else None


def _reset_high_water_mark() -> bool:
    # Linux: writing 5 to clear_refs resets VmHWM to the current VmRSS.
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rusage_peak() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB elsewhere
