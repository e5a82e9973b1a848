"""Where a report's time goes on a run over features, and what a cheaper fine-tune would change.

    OMP_NUM_THREADS=1 python benchmarks/feature_edit_readout.py RUN_DIR [--analyses] [--readout]

`--analyses`: every analysis the report runs on RUN_DIR, one after another as `interp report`
runs them, with its wall and CPU seconds (`time.process_time`, one torch thread: the CPU time
moves less than the wall time when other jobs share the cores); then whether the training
examples' logits forwarded alone are the bits of the same rows of the forward over every
example (if so, analyses could share one forward without changing a number).

`--readout` (a token transformer): the feature edit twice, as shipped — its four float64
fine-tunes through `readout_logits`, every block in full but the last, whose query, attention
output, MLP and unembedding run at the readout token alone — and through `training_logits`,
every token in full. The same function: the script prints both runs' CPU seconds and every
score of the edit's table that differs between them (none is expected in float64; in float32
the two paths' roundings moved up to 8 of 28 scores by up to 0.64 points, docs/performance.md).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import torch

import interp
from interp.analysis.feature_edit import forget_noise
from interp.analysis.registry import ANALYSES, analyze, in_report_order
from interp.families.token_transformer import TokenTransformer, TokenTransformerFamily


def time_analyses(run: interp.Run) -> None:
    total_wall = total_cpu = 0.0
    for name in in_report_order():
        if ANALYSES[name].skip_reason(run):
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        analyze(run, name)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        print(f"{name:18s} {wall:7.1f} s wall {cpu:7.1f} s CPU", flush=True)
    print(f"{'total':18s} {total_wall:7.1f} s wall {total_cpu:7.1f} s CPU")
    inputs, train = run.dataset.inputs, run.dataset.train_mask
    with torch.no_grad():
        gap = float((interp.logits(run.model, inputs[train]) - interp.logits(run.model, inputs)[train]).abs().max())
    print("the training rows forwarded alone and in the forward over every example: "
          + ("the same bits" if gap == 0 else f"differ by up to {gap:.2g}"))


def compare_readout(run: interp.Run) -> None:
    if not isinstance(run.model, TokenTransformer):
        raise SystemExit("--readout: the run's model is not a token transformer")
    family = TokenTransformerFamily()
    with torch.no_grad():  # the same function, to float32's rounding (a memorising net's logits are large)
        torch.testing.assert_close(family.readout_logits(run.model, run.dataset.inputs),
                                   interp.logits(run.model, run.dataset.inputs), rtol=1e-4, atol=1e-4)
    cpu = time.process_time()
    shipped, _ = forget_noise(run)
    shipped_cpu = time.process_time() - cpu
    original = TokenTransformerFamily.readout_logits
    TokenTransformerFamily.readout_logits = TokenTransformerFamily.training_logits
    try:
        cpu = time.process_time()
        candidate, _ = forget_noise(run)
        candidate_cpu = time.process_time() - cpu
    finally:
        TokenTransformerFamily.readout_logits = original
    print(f"feature edit as shipped (readout token) {shipped_cpu:.1f} s CPU; every token {candidate_cpu:.1f} s CPU")
    print(f"steps taken: {shipped.steps} and {candidate.steps}")
    differ = 0
    for old, new in zip(shipped.rows, candidate.rows):
        for key, value in asdict(old).items():
            if asdict(new)[key] != value:
                differ += 1
                print(f"  {old.name}: {key} {value} -> {asdict(new)[key]}")
    print(f"{differ} of the table's scores differ" + ("" if differ else " (every one the same)"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--analyses", action="store_true")
    parser.add_argument("--readout", action="store_true")
    args = parser.parse_args()
    run = interp.load_run(args.run_dir)
    if args.analyses:
        time_analyses(run)
    if args.readout:
        compare_readout(run)


if __name__ == "__main__":
    main()
