"""Structured noise that a network generalises (issue 30, item 5): `a5-noisy`'s net and optimiser
on A5, 80% of the pairs for training, where the wrong labels are a rule — for a < 12 the training
label is (a∘b)∘g — and the `errors` analysis on the trained model.

    python analyses/structured_noise.py [--g 7] [--rows 12] [--out DIR]

Prints the analysis's summary and headline sentence; with `--out`, writes the run directory.
"""

from __future__ import annotations

import argparse
import time

import torch

import interp
from interp.analysis.errors import ERRORS
from interp.core.tasks import Dataset
from interp.training.presets import get_preset


def structured_dataset(task, g: int, rows: int, seed: int = 0) -> Dataset:
    """Every pair of the group, a random 80% for training; training pairs with a < `rows` carry
    the label (a∘b)∘g."""
    group = task.structure
    n = group.order
    inputs = torch.cartesian_prod(torch.arange(n), torch.arange(n))
    truth = group.table[inputs[:, 0], inputs[:, 1]]
    train = torch.rand(len(inputs), generator=torch.Generator().manual_seed(seed)) < task.train_fraction
    observed = torch.where(train & (inputs[:, 0] < rows), group.table[truth, g], truth)
    return Dataset.from_tensors(task, inputs, observed, train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--g", type=int, default=7, help="the element index g of the noise map (a∘b)∘g")
    parser.add_argument("--rows", type=int, default=12, help="the noise applies to training pairs with a < ROWS")
    parser.add_argument("--out", help="write the run directory here")
    args = parser.parse_args()
    spec = get_preset("a5-noisy").spec
    dataset = structured_dataset(spec.task, args.g, args.rows)
    start = time.perf_counter()
    run = interp.train(spec, args.out, dataset=dataset, progress=False)
    print(f"trained in {time.perf_counter() - start:.0f} s")
    result = ERRORS(run)
    print(result.summary())
    print(result.headline())


if __name__ == "__main__":
    main()
