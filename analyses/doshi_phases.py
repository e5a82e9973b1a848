"""Doshi et al. 2024: the phases of a noisy modular-addition MLP, and IPR pruning.

    python analyses/doshi_phases.py [--out runs/doshi-phases]

Trains the `doshi-coexistence` network (p=97, M=500, quadratic, MSE, 35% uniform label noise)
at several weight decays in one batched computation, plus one run with fewer training pairs,
labels each run's phase (`interp.core.metrics.phase`), then prunes the weight-decay-0 network's
neurons by IPR (lowest first, highest first, random) as Doshi et al. do. Writes each run
directory and `report.md` under --out; prints every number it writes.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

import interp
from interp.analysis.ablation import pruning_curve
from interp.training.batched import train_many
from interp.core.metrics import phase
from interp.analysis.neurons import neuron_ipr

WEIGHT_DECAYS = (0.0, 2.0, 5.0, 15.0, 40.0)
SMALL_SPLIT = 0.2  # fewer training pairs: too few for the rule, enough to memorise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/doshi-phases")
    args = parser.parse_args()
    out = Path(args.out)
    base = interp.get_preset("doshi-coexistence").spec
    start = time.perf_counter()
    specs = {f"wd={wd:g}": replace(base, train=replace(base.train, weight_decay=wd)) for wd in WEIGHT_DECAYS}
    runs = dict(zip(specs, train_many(list(specs.values()), [out / n for n in specs], progress=True)))
    small = replace(base, task=replace(base.task, train_fraction=SMALL_SPLIT))
    runs[f"train_fraction={SMALL_SPLIT}"] = interp.train(small, out / f"train_fraction={SMALL_SPLIT}")
    lines = ["| run | clean | memorised (noisy vs observed) | noisy vs true | test | phase |", "|---|---|---|---|---|---|"]
    for name, run in runs.items():
        m = run.final_metrics
        lines.append(f"| {name} | {m['clean_acc']:.1%} | {m['noisy_observed_acc']:.1%} | {m['noisy_true_acc']:.1%} "
                     f"| {m['test_acc']:.1%} | {phase(m)} |")
    table = "\n".join(lines)
    print(table)

    run = runs["wd=0"]
    ipr = neuron_ipr(run.model)
    orders = {"lowest IPR first": torch.argsort(ipr), "highest IPR first": torch.argsort(ipr, descending=True)}
    for seed in range(3):
        orders[f"random (seed {seed})"] = torch.randperm(len(ipr), generator=torch.Generator().manual_seed(seed))
    curves = [pruning_curve(run.model, run.dataset, order, label, loss="mse") for label, order in orders.items()]
    prune = ["| order | removed | memorised | test |", "|---|---|---|---|"]
    for curve in curves:
        for fraction in (0.3, 0.6):
            i = curve.fractions.index(fraction)
            prune.append(f"| {curve.label} | {fraction:.0%} | {curve.metrics['noisy_observed_acc'][i]:.1%} "
                         f"| {curve.metrics['test_acc'][i]:.1%} |")
    print("\n" + "\n".join(prune))
    seconds = time.perf_counter() - start
    print(f"\n{seconds:.0f} s")
    (out / "report.md").write_text(f"# Doshi et al. phases and IPR pruning\n\n{table}\n\n## Pruning the wd=0 network"
                                   f"\n\n" + "\n".join(prune) + f"\n\n{seconds:.0f} s on this machine\n")


if __name__ == "__main__":
    main()
