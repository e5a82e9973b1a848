"""How fast one `nanda-noisy-59` training step could be on this machine: the step's matmul
FLOPs at the machine's measured matmul rate, against the measured step.

    python benchmarks/transformer_step_floor.py

Stacking K networks (`train_many`) shares no arithmetic between them, so the sequential step
over this floor bounds the ratio that `benchmarks/batched_transformers.py` can reach. Prints the
measured step, the profile's matmul share, the floor and `bound: X`.
"""

from __future__ import annotations

import time

import torch

import interp
from interp.families.base import build_model, family_of
from interp.core.metrics import loss_fn
from interp.core.tasks import make_dataset


def step_matmul_flops(n: int, spec) -> float:
    """Forward and backward FLOPs of the products that scale with the batch (the embedding
    tables' projections are p-sized): attention output, MLP in and out, unembedding; the
    backward costs two products per forward one."""
    d, d_mlp, p = spec.model.d_model, spec.model.d_mlp, spec.task.p
    forward = 2 * n * (d * spec.model.n_heads * spec.model.d_head + d * d_mlp + d_mlp * d + d * p)
    return 3 * forward


def matmul_rate(n: int, d: int, d_mlp: int) -> float:
    """The best FLOP rate of this step's largest product shape, fastest of 50."""
    a, b = torch.randn(n, d), torch.randn(d, d_mlp)
    best = float("inf")
    for _ in range(50):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n * d * d_mlp / best


def main() -> None:
    spec = interp.get_preset("nanda-noisy-59").spec
    ds = make_dataset(spec.task, spec.noise)
    model = build_model(spec.model, ds.p)
    family = family_of(model)
    pairs, labels = ds.inputs[ds.train_mask], ds.labels[ds.train_mask]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, fused=True)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn("ce", family.training_logits(model, pairs), labels).backward()
        opt.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(30):
        step()
    measured = (time.perf_counter() - start) / 30
    with torch.profiler.profile() as prof:
        for _ in range(10):
            step()
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    matmul = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
    flops = step_matmul_flops(len(pairs), spec)
    rate = matmul_rate(len(pairs), spec.model.d_model, spec.model.d_mlp)
    floor = flops / rate
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"step: {measured * 1e3:.1f} ms measured; matmuls {matmul / total:.0%} of its profiled time")
    print(f"matmul FLOPs per step {flops / 1e9:.2f} G at {rate / 1e9:.0f} GFLOP/s: floor {floor * 1e3:.1f} ms")
    print(f"bound: {measured / floor:.2f}")


if __name__ == "__main__":
    from interp.core.runtime import fast_cpu_process

    fast_cpu_process()
    main()
