"""Throughput of K one-layer transformers trained as one stacked computation (`train_many`)
against the same K trained one after another (`train`), measured side by side in one run.

    python benchmarks/batched_transformers.py [--k 8] [--steps 20]

The K networks are `nanda-noisy-59` (p=59, d_model 128, 4 heads, d_mlp 512, 80% of pairs for
training) with K seeds, noise rates and weight decays, as in a sweep. Each side trains `steps`
and `2·steps` steps and the difference is kept, so building, the dataset and the evaluations at
the start and end cancel; the two sides are timed in turn, fastest of three. The last line is
`ratio: X`, sequential time over batched time for the same network-steps.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

import interp
from interp.training.batched import train_many


def specs(k: int, steps: int) -> list[interp.RunSpec]:
    base = interp.get_preset("nanda-noisy-59").spec
    return [base.with_overrides({"steps": str(steps), "eval_every": str(steps), "model.seed": str(i),
                                 "noise.seed": str(i), "noise.rate": str([0.1, 0.2, 0.3][i % 3]),
                                 "weight_decay": str([0.5, 1.0, 2.0, 5.0][i % 4])}) for i in range(k)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}")

    def batched(n: int) -> float:
        start = time.perf_counter()
        train_many(specs(args.k, n), progress=False)
        return time.perf_counter() - start

    def sequential(n: int) -> float:
        start = time.perf_counter()
        for spec in specs(args.k, n):
            interp.train(spec, None, progress=False)
        return time.perf_counter() - start

    best = {"batched": float("inf"), "sequential": float("inf")}
    for _ in range(3):
        for name, fn in (("batched", batched), ("sequential", sequential)):
            best[name] = min(best[name], fn(2 * args.steps) - fn(args.steps))
    per = {name: t / (args.k * args.steps) * 1e3 for name, t in best.items()}
    print(f"K = {args.k}, {args.steps} steps: batched {per['batched']:.1f} ms, sequential {per['sequential']:.1f} ms "
          "per network-step")
    print(f"ratio: {best['sequential'] / best['batched']:.2f}")


if __name__ == "__main__":
    from interp.core.runtime import fast_cpu_process

    fast_cpu_process()  # what the `interp` console script does: benchmarks time its settings
    main()
