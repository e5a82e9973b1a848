"""CPU runtime settings and pitfalls for speed: flush-to-zero for denormal floats, reuse of freed
memory, and an exp that stays off the slow path for underflowing inputs.

Importing `interp` turns flush-to-zero on (set INTERP_KEEP_DENORMALS=1 to opt out). It has to
happen before torch starts its intra-op worker threads, which copy the setting when they are
created: `torch.set_flush_denormal` later reaches only the calling thread, and denormal
products inside multithreaded matmuls made the step of a network decayed to ~1e-8 weights 20×
slower (a 1000² matmul of 1e-20 values: 2.2 s without, 12 ms with). Values below 1.2e-38 are
far under anything these models compute with.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from typing import Iterator

import torch
from torch import Tensor

#: Whether denormals are flushed outside `flush_denormals` (the setting made at import).
FLUSH_BY_DEFAULT = not os.environ.get("INTERP_KEEP_DENORMALS")
if FLUSH_BY_DEFAULT:
    torch.set_flush_denormal(True)


def keep_freed_memory() -> None:
    """Let glibc keep freed blocks for reuse instead of returning each large temporary to the
    OS: otherwise every step page-faults its activations in afresh, which made elementwise ops on
    tens of MB 3-4x slower here. Process-wide, idempotent; a no-op where glibc is absent."""
    global _KEPT
    if _KEPT:
        return
    _KEPT = True
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: allocate blocks below 1 GiB from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap


_KEPT = False


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    # Saturated softmax gradients underflow to denormals, which slow CPU matmuls several-fold.
    keep_freed_memory()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        # torch cannot report the mode it replaced (set_flush_denormal returns whether the CPU
        # supports it), so this goes back to the import-time default, not to "off"
        torch.set_flush_denormal(FLUSH_BY_DEFAULT)


#: Below this, exp(x) falls under float32's normal range (1.2e-38).
EXP_FLOOR = -87.0


def exp_floored_(t: Tensor) -> Tensor:
    """`t.exp_()` with `t` first raised to at least EXP_FLOOR, in place. torch's elementwise exp
    takes a slow path for inputs whose exp underflows, flush-to-zero or not: 197k values at -100
    took 8.9 ms against 0.07 ms floored, at -inf 1.2 ms (benchmarks/kernels.py). The floor
    changes results only below 1.6e-38, which vanish next to the 1 that every softmax
    normaliser holds."""
    return t.clamp_min_(EXP_FLOOR).exp_()
