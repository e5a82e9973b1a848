"""CPU speed settings, none of them made by importing `interp` or calling its analyses.

- `flush_denormals()`: flush-to-zero on the calling thread for a block (training), restored to
  what it was afterwards. Saturated softmax gradients underflow to denormals, which slow CPU
  matmuls several-fold.
- `fast_cpu_process()`: opt-in, process-wide, for programs that own their process (the `interp`
  console script, `benchmarks/`): flush-to-zero before torch starts its intra-op worker threads,
  which copy the setting when they are created (`torch.set_flush_denormal` later reaches only the
  calling thread; denormal products inside multithreaded matmuls made the step of a network
  decayed to ~1e-8 weights 20× slower: a 1000² matmul of 1e-20 values, 2.2 s without, 12 ms
  with), and glibc's reuse of freed memory (elementwise ops on tens of MB were 3-4× slower when
  every step page-faulted its activations in afresh; `reuse_freed_memory()` is that part alone).
  A library imported into someone's notebook must not do either: they change what the caller's
  own code computes and allocates.
- `exp_floored_`: an exp that stays off torch's slow path for underflowing inputs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from typing import Iterator

import torch
from torch import Tensor


def denormals_flushed() -> bool:
    """Whether the calling thread flushes denormal floats to zero (1e-30·1e-10 → 0)."""
    return (torch.tensor(1e-30, dtype=torch.float32) * 1e-10).item() == 0.0


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormals on the calling thread inside the block; the previous mode afterwards."""
    before = denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def fast_cpu_process() -> None:
    """Process-wide speed settings for a program that owns its process; call it first thing,
    before torch runs any parallel op. Idempotent; the glibc part is a no-op without glibc."""
    torch.set_flush_denormal(True)
    reuse_freed_memory()


def reuse_freed_memory() -> None:
    """The glibc part of `fast_cpu_process` alone: freed memory is kept and served again
    instead of being returned to the kernel and page-faulted in afresh. It changes no value
    computed, only where memory comes from (the test suite's processes use it). Process-wide
    and opt-in; idempotent; a no-op without glibc."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: allocate blocks below 1 GiB from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap


#: Below this, exp(x) falls under float32's normal range (1.2e-38).
EXP_FLOOR = -87.0


def exp_floored_(t: Tensor) -> Tensor:
    """`t.exp_()` with `t` first raised to at least EXP_FLOOR, in place. torch's elementwise exp
    takes a slow path for inputs whose exp underflows, flush-to-zero or not: 197k values at -100
    took 8.9 ms against 0.07 ms floored, at -inf 1.2 ms (benchmarks/kernels.py). The floor
    changes results only below 1.6e-38, which vanish next to the 1 that every softmax
    normaliser holds."""
    return t.clamp_min_(EXP_FLOOR).exp_()


def progress_bar(items, desc: str):
    """`items` with a progress bar on an interactive terminal or notebook (tqdm's own test), and
    silently elsewhere (logs, CI): long analyses show progress when called from Python too."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=None, leave=False)
