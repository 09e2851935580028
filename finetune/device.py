"""Which device trains and in what precision. Weights stay fp32 (the master
copy); `precision` is the autocast dtype of the forward and backward."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Hardware:
    device: str  # "cuda" | "cpu"
    name: str
    precision: str  # "bf16" | "fp16" | "fp32"
    note: str = ""

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def describe(self) -> str:
        return f"{self.name}, {self.precision} autocast" + (" with fp32 weights" if self.precision != "fp32" else "")


def cpu_supports_bf16() -> bool:
    """bf16 autocast pays off on CPUs with AVX512-BF16 or AMX; elsewhere it is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def detect(precision: str = "auto") -> Hardware:
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        bf16_ok = torch.cuda.is_bf16_supported()
        if precision == "auto":
            precision = "bf16" if bf16_ok else "fp16"
        if precision == "bf16" and not bf16_ok:
            return Hardware("cuda", name, "fp16", "this GPU has no bf16; using fp16 with loss scaling")
        return Hardware("cuda", name, precision)
    cores = torch.get_num_threads()
    name = f"CPU ({cores} threads)"
    if precision == "auto":
        return Hardware("cpu", name, "bf16" if cpu_supports_bf16() else "fp32")
    if precision == "fp16":
        return Hardware("cpu", name, "fp32", "fp16 autocast is for GPUs; using fp32 on the CPU")
    return Hardware("cpu", name, precision)
