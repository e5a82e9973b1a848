"""Every speed figure of docs/performance.md, measured side by side in one run.

    python benchmarks/run_all.py [--steps N]

Prints, as ratios: training steps of `liu-lu-80` and `nanda-grokking` against a plain loop (a
one-hot two-layer net in plain PyTorch; the TransformerBridge forward) and against the
arithmetic floor (the step's matmul FLOPs at the measured dense matmul peak); K = 8 batched
networks against 8 sequential runs; the batched ablation scan against one hooked pass per
neuron; and the analyses and full report on the released `liu-lu-80`. Step times are the best
of five repeats, like the matmul peak; the K = 8 rows, the batched scan and the extraction table
of three, the hooked scan of two; probes and the report are timed once (the VM's speed drifts
by ±20%). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from train_step import REPEATS, best_block, best_interleaved, time_bridge_loop, time_train

import interp
from interp.analysis.ablation import scan_units, scan_units_hooked
from interp.training.batched import train_many
from interp.analysis.filtration import compare_extractions
from interp.reporting.report import analyze, write_report
from interp.core.runtime import flush_denormals
from interp.training.train import make_optimizer


def matmul_peak(n: int = 2048, repeats: int = REPEATS) -> float:
    """Dense float32 matmul throughput in FLOP/s (best of `repeats`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 / _best(lambda: a @ b, repeats)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _best(fn, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls (every timing here is best-of, like the peak)."""
    return min(_seconds(fn) for _ in range(repeats))


def two_layer_flops(spec: interp.RunSpec, n: int) -> float:
    """Matmul FLOPs of one step: logits, and the gradients of W and of the hidden layer."""
    return 3 * 2 * n * spec.model.width * spec.task.p


def transformer_flops(spec: interp.RunSpec, n: int) -> float:
    """Matmul FLOPs of one step of the last-position path: keys and values at the 3 positions,
    query, output, MLP and unembedding at the last; backward counted as twice the forward."""
    m = spec.model
    d, inner = m.d_model, m.n_heads * m.d_head
    forward = 3 * 2 * 2 * d * inner + 2 * 2 * d * inner + 2 * 2 * d * m.d_mlp + 2 * d * spec.task.p
    return 3 * forward * n


def time_plain_two_layer(spec: interp.RunSpec, steps: int) -> float:
    """Seconds per step of the straightforward loop: one-hot inputs through dense products."""
    ds = interp.make_dataset(spec.task, spec.noise)
    model = interp.build_model(spec.model, spec.task.p)
    opt = make_optimizer(spec.train, model.parameters())
    x = ds.inputs[ds.train_mask]
    one_hot_a, one_hot_b = F.one_hot(x[:, 0], spec.task.p).float(), F.one_hot(x[:, 1], spec.task.p).float()
    y = ds.labels[ds.train_mask]

    def step():
        pre = one_hot_a @ model.U.T + one_hot_b @ model.V.T
        loss = F.cross_entropy(F.relu(pre) @ model.W.T + model.mu, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    with flush_denormals():
        step()
        return best_block(step, steps)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    # the peak is timed before, between and after the step timings, and the fastest kept: a
    # slow spell of the VM during a single peak timing would lower the floor and flatter the steps
    peaks, steps_timed = [matmul_peak()], []
    for name in ("liu-lu-80", "nanda-grokking"):
        spec = interp.get_preset(name).spec
        n = int(interp.make_dataset(spec.task, spec.noise).train_mask.sum())
        steps = args.steps if spec.model.arch == "two_layer" else max(20, args.steps // 4)
        ours = time_train(spec, steps)
        if spec.model.arch == "two_layer":
            plain, flops, label = time_plain_two_layer(spec, steps), two_layer_flops(spec, n), "one-hot loop"
        else:
            plain, flops, label = time_bridge_loop(spec, max(10, steps // 4)), transformer_flops(spec, n), "bridge loop"
        peaks.append(matmul_peak())
        steps_timed.append((name, spec, n, ours, plain, flops, label))
    peak = max(peaks)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
          f"dense float32 matmul peak {peak / 1e9:.0f} GFLOP/s (2048^3; timed {len(peaks)} times, "
          f"{min(peaks) / 1e9:.0f} at the slowest)\n")

    print("training step (full batch)          ms/step   plain loop   ratio   floor    ratio to floor")
    for name, spec, n, ours, plain, flops, label in steps_timed:
        floor = flops / peak
        print(f"{name:<18}{n:>6} examples  {ours * 1e3:8.1f}   {plain * 1e3:7.1f} ({label})  {plain / ours:4.1f}x"
              f"  {floor * 1e3:6.1f}   {ours / floor:4.1f}x")
        if name == "liu-lu-80":
            full_run = ours * spec.train.steps
    print()

    print("K = 8 networks (seeds), same shapes         batched (s)   8 sequential (s)   throughput ratio")
    # liu-lu-80's size, then the widths of analyses/width_noise.toml at its p = 31
    for p, width in ((59, 513), (31, 33), (31, 65), (31, 129), (31, 257), (31, 513)):
        base = interp.get_preset("liu-lu-80").spec.with_overrides([f"p={p}", f"width={width}", f"steps={args.steps}",
                                                                   f"eval_every={args.steps}"])
        specs = [replace(base, model=replace(base.model, seed=k)) for k in range(8)]
        batched, sequential = best_interleaved(
            [lambda: train_many(specs, progress=False), lambda: [interp.train(s, None, progress=False) for s in specs]], 3)
        print(f"liu-lu-80, p={p}, width {width:<4} ({args.steps} steps)   {batched:8.2f}        {sequential:8.2f}"
              f"            {sequential / batched:5.2f}x")
    print()

    run = interp.load("liu-lu-80")
    units = 64
    scan_units(run.model, run.dataset)  # warm-up, as the hooked passes are warm after the first
    batched = _best(lambda: scan_units(run.model, run.dataset), 3)
    hooked = _best(lambda: scan_units_hooked(run.model, run.dataset, "hook_post", units), 2) / units * run.model.spec.width
    print(f"single-neuron scan, liu-lu-80 (513 units): batched {batched:.2f} s, one hooked pass per unit "
          f"{hooked:.2f} s (from {units} units): {hooked / batched:.1f}x")
    extraction = _best(lambda: compare_extractions(run.model, run.dataset), 3)
    probes = _seconds(lambda: analyze(run, "probes"))
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        report = _seconds(lambda: write_report(run, out, progress=False))
    print(f"extraction table {extraction:.2f} s, probes {probes:.1f} s, full report {report:.1f} s")
    print(f"full liu-lu-80 run ({interp.get_preset('liu-lu-80').spec.train.steps} steps at the step time above) "
          f"+ report: {full_run + report:.0f} s")


if __name__ == "__main__":
    from interp.core.runtime import fast_cpu_process

    fast_cpu_process()  # what the `interp` console script does: benchmarks time its settings
    main()
