"""Phases of a noisy group-composition MLP (A5): weight decay × noise rate × seed.

    python analyses/group_phases.py [--out runs/group-phases] [--backend local|ray]

Trains the grid of `analyses/group_phases.toml` (the `a5-noisy` setting: composition in A5, 60
elements, 80% of the 3,600 pairs for training, width-256 quadratic net, full-batch AdamW lr 0.01,
2000 steps) through `interp sweep`'s machinery, so an interrupted run resumes and finished runs
are skipped; the runs differ only in seeds, noise and weight decay, so they train in stacks
(`train_many`). Labels each run's phase with `interp.core.metrics.phase` — the rule
`analyses/doshi_phases.py` and `analyses/transformer_phases.py` use, through the latter's tables
and diagram — and beside it whether the rule is inside: the label-free extraction's test
accuracy and the noise-detection AUROC of the filtration analysis. Writes `phases.md` and
`phases.png` under --out; prints every number it writes and the wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import interp
from interp.core.metrics import phase
from interp.sweep import Grid, run_sweep
from interp.training.rundir import load_run
from transformer_phases import write_phases

GRID = Path(__file__).with_suffix(".toml")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/group-phases")
    parser.add_argument("--backend", default="local", choices=["local", "ray"])
    args = parser.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    grid = Grid.from_toml(GRID)
    summary = run_sweep(grid, out, backend=args.backend, progress=True)
    trained = time.perf_counter() - start

    lines = ["The rule inside each run: the label-free extraction (its method and test accuracy) and the "
             "filtration's noise detection (AUROC of flagging the wrong labels).", "",
             "| seed | noise | weight decay | memorised | test | phase | extracted (label-free), test | noise AUROC |",
             "|---|---|---|---|---|---|---|---|"]
    for row, (name, point, _) in zip(summary.rows, grid.runs()):
        assert row["name"] == name
        run = load_run(out / name)
        detection = interp.analyze(run, "filtration").to_dict()["noise_detection"]
        m = run.final_metrics
        lines.append(f"| {point['model.seed']} | {point['noise.rate']:.0%} | {point['weight_decay']:g} | "
                     f"{m['noisy_observed_acc']:.1%} | {m['test_acc']:.1%} | {phase(m)} | "
                     f"{row['extracted_method']} {row['extracted_test_acc']:.1%} | {detection['auroc']:.4f} |")
    inside = "\n".join(lines)
    seconds = time.perf_counter() - start
    table = write_phases(grid, out, f"Phases on a group ({grid.runs()[0][2].task.group})", seconds, inside + "\n\n")
    print(table + "\n\n" + inside)
    print(f"\n{seconds:.0f} s ({trained:.0f} s to train and summarise); wrote {out / 'phases.md'}, {out / 'phases.png'}")


if __name__ == "__main__":
    main()
