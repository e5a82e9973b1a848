"""Wall time per full-batch training step of each preset, through `interp.train` itself.

    python benchmarks/train_step.py [PRESET ...] [--steps N]

For transformers it also times the same step through the TransformerBridge's hooked forward
(all positions), the path the training loop avoids. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

import interp
from interp.core.metrics import loss_fn
from interp.families.base import tokens as to_tokens
from interp.training.train import make_optimizer


#: Repeats of every step timing, as many as of the matmul peak that the floor divides by: the
#: fastest of them is the machine's speed, and the VM's slow spells last seconds.
REPEATS = 5


def time_train(spec: interp.RunSpec, steps: int, repeats: int = REPEATS) -> float:
    """Seconds per step of interp.train: the time of `2·steps` steps minus that of `steps`, so
    building the model and the evaluations at the start and end cancel out. Each run length
    is timed `repeats` times, the two in turn, and the fastest kept, as for the matmul peak:
    the VM's speed drifts by ±20%, and the best time is the machine's, not its neighbours'."""
    def run(n: int) -> float:
        start = time.perf_counter()
        interp.train(spec.with_overrides({"steps": str(n), "eval_every": str(n)}), None, progress=False)
        return time.perf_counter() - start

    short, long = best_interleaved([lambda: run(steps), lambda: run(2 * steps)], repeats)
    return (long - short) / steps


def best_interleaved(fns, repeats: int) -> list[float]:
    """Seconds of the fastest call of each of `fns`, called in turn `repeats` times: a slow
    spell of the VM then falls on all of them alike, not on whichever ran during it."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def time_bridge_loop(spec: interp.RunSpec, steps: int, repeats: int = REPEATS) -> float:
    """Seconds per step of a plain loop on the TransformerBridge forward (fastest of `repeats`
    blocks of `steps` steps)."""
    ds = interp.make_dataset(spec.task, spec.noise)
    model = interp.build_model(spec.model, spec.task.p)
    opt = make_optimizer(spec.train, model.parameters())
    tokens, labels = to_tokens(model, ds.inputs[ds.train_mask]), ds.labels[ds.train_mask]

    def step() -> None:
        loss = loss_fn("ce", model(tokens)[:, -1], labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    return best_block(step, steps, repeats)


def best_block(step, steps: int, repeats: int = REPEATS) -> float:
    """Seconds per call of `step`: the fastest of `repeats` blocks of `steps` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("presets", nargs="*", default=["liu-lu-80", "doshi-coexistence", "nanda-grokking"])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'preset':<22}{'train examples':>15}{'ms/step':>10}{'full run (s)':>14}")
    for name in args.presets:
        spec = interp.get_preset(name).spec
        n = int(interp.make_dataset(spec.task, spec.noise).train_mask.sum())
        per_step = time_train(spec, args.steps)
        print(f"{name:<22}{n:>15}{per_step * 1e3:>10.1f}{per_step * spec.train.steps:>14.0f}")
        if spec.model.arch == "transformer":
            bridge = time_bridge_loop(spec, max(10, args.steps // 10))
            print(f"{'  TransformerBridge loop':<22}{n:>15}{bridge * 1e3:>10.1f}"
                  f"   ({bridge / per_step:.1f}x slower than interp.train)")


if __name__ == "__main__":
    from interp.core.runtime import fast_cpu_process

    fast_cpu_process()  # what the `interp` console script does: benchmarks time its settings
    main()
