"""Phases of Nanda et al.'s transformer under label noise: weight decay × noise rate × seed.

    python analyses/transformer_phases.py [--out runs/transformer-phases] [--backend local|ray]

Trains the grid of `analyses/transformer_phases.toml` (the `nanda-noisy-59` setting: p=59, 80% of
pairs for training, AdamW lr 3e-3, 3000 full-batch steps) through `interp sweep`'s machinery, so
an interrupted run resumes and finished runs are skipped; runs that differ only in seeds, noise
and weight decay train together (`train_many`). Labels each run's phase with
`interp.core.metrics.phase` and writes `phases.md` (a table per seed, and every run's numbers) and
`phases.png` (the diagram) under --out; prints every number it writes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from matplotlib.figure import Figure

from interp.training.rundir import load_run
from interp.core.metrics import PHASE_HIGH, PHASE_LOW, phase
from interp.sweep import Grid, run_sweep

GRID = Path(__file__).with_suffix(".toml")
PHASES = ["full inversion", "partial inversion", "coexistence", "memorisation", "forgetting"]
COLORS = ["#2ca02c", "#98df8a", "#1f77b4", "#d62728", "#7f7f7f"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/transformer-phases")
    parser.add_argument("--backend", default="local", choices=["local", "ray"])
    args = parser.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    grid = Grid.from_toml(GRID)
    run_sweep(grid, out, backend=args.backend, progress=True)
    seconds = time.perf_counter() - start

    table = write_phases(grid, out, "Transformer phases under label noise", seconds)
    print(table)
    print(f"\n{seconds:.0f} s; wrote {out / 'phases.md'}, {out / 'phases.png'}")


def write_phases(grid: Grid, out: Path, title: str, seconds: float, extra: str = "") -> str:
    """The phase of each run of `grid` under `out` (`interp.core.metrics.phase`): a table per
    seed and every run's numbers, written with the diagram to `out/phases.md` and `phases.png`
    (`extra`, markdown, goes below the tables). Returns the tables."""
    rows = []
    for name, point, _ in grid.runs():
        m = load_run(out / name).final_metrics
        rows.append({**point, "metrics": m, "phase": phase(m)})
    seeds, noises, decays = (grid.axes[k] for k in ("model.seed", "noise.rate", "weight_decay"))
    cell = {(r["model.seed"], r["noise.rate"], r["weight_decay"]): r for r in rows}

    lines = [f"Phase rule: test ≥ {PHASE_HIGH:.0%} with memorised ≥ {PHASE_HIGH:.0%} coexistence, with memorised "
             f"≤ {PHASE_LOW:.0%} full inversion, otherwise partial inversion; test < {PHASE_HIGH:.0%}: memorisation "
             f"(memorised ≥ {PHASE_HIGH:.0%}) or forgetting.", ""]
    for seed in seeds:
        lines += [f"### seed {seed}", "", "| noise \\ weight decay | " + " | ".join(f"{d:g}" for d in decays) + " |",
                  "|---|" + "---|" * len(decays)]
        for noise in noises:
            lines.append(f"| {noise:.0%} | " + " | ".join(cell[seed, noise, d]["phase"] for d in decays) + " |")
        lines.append("")
    lines += ["| seed | noise | weight decay | clean | memorised | noisy vs true | test | phase |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["metrics"]
        lines.append(f"| {r['model.seed']} | {r['noise.rate']:.0%} | {r['weight_decay']:g} | {m['clean_acc']:.1%} | "
                     f"{m['noisy_observed_acc']:.1%} | {m['noisy_true_acc']:.1%} | {m['test_acc']:.1%} | {r['phase']} |")
    table = "\n".join(lines)

    fig = Figure(figsize=(4.5 * len(seeds), 3.6))
    for i, seed in enumerate(seeds):
        ax = fig.add_subplot(1, len(seeds), i + 1)
        for y, noise in enumerate(noises):
            for x, decay in enumerate(decays):
                r = cell[seed, noise, decay]
                ax.add_patch(matplotlib_rect(x, y, COLORS[PHASES.index(r["phase"])]))
                ax.text(x, y, f"{r['metrics']['test_acc']:.0%}\n{r['metrics']['noisy_observed_acc']:.0%}",
                        ha="center", va="center", fontsize=7)
        ax.set(xlim=(-0.5, len(decays) - 0.5), ylim=(-0.5, len(noises) - 0.5), xticks=range(len(decays)),
               xticklabels=[f"{d:g}" for d in decays], yticks=range(len(noises)),
               yticklabels=[f"{n:.0%}" for n in noises], xlabel="weight decay", ylabel="wrong labels",
               title=f"seed {seed} (cell: test / memorised)")
    handles = [matplotlib_rect(0, 0, c) for c in COLORS]
    fig.legend(handles, PHASES, loc="lower center", ncol=len(PHASES), fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(out / "phases.png", dpi=120)
    (out / "phases.md").write_text(f"# {title}\n\n{table}\n\n{extra}![phases](phases.png)\n\n"
                                   f"{seconds:.0f} s on this machine (training skipped for finished runs)\n")
    return table


def matplotlib_rect(x: float, y: float, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=color, edgecolor="white")


if __name__ == "__main__":
    main()
