"""Per-neuron scores and the split of a network into generalisation and memorisation parts.

Scores (higher = more generalising), for the neurons of the linear-readout layer:
- `strength` (Liu & Lu, two-layer only): Str_m = ‖w_m‖_∞ · φ(‖u_m‖_∞ + ‖v_m‖_∞) — task-agnostic.
- `ipr` (Doshi et al., two-layer only): mean IPR of u_m, v_m, w_m — uses the Fourier basis.
- `attribution`: first-order estimate (activation × gradient) of how much zero-ablating the
  neuron raises the loss on clean training examples, minus how much it raises the loss on noisy
  examples against their observed labels. It uses the noise mask: a diagnostic, not a
  label-free method.

`partition_sweep` keeps the top fraction of neurons by a score as f^G_part and the rest as the
memorisation part, and also applies frequency filtration (filtration.dominant_split) to the whole
network and to f^G_part, so the two kinds of extraction can be compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..core.metrics import DEFAULT_LOSS, collect_rows, subset_metrics
from ..core.tasks import Dataset
from ..families.base import Capability, family_of, logits
from .neurons import SCORES, dominant_split, neuron_scores, subnetwork
from .plots import SUBSET_COLORS, _save, _subplots
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure, Table
    from ..training.rundir import Run













@dataclass
class PartitionSweep:
    """For each fraction γ_G of neurons kept (top by `score`): metrics of f^G_part (the kept
    neurons), of the memorisation part (the other 1 − γ_G), and of frequency filtration applied
    to f^G_part; plus filtration of the whole network for reference."""

    score: str
    fractions: list[float]
    generalisation: dict[str, list[float | None]]
    memorisation: dict[str, list[float | None]]
    filtered_generalisation: dict[str, list[float | None]]
    filtered_whole: dict[str, float | None]

    def to_dict(self) -> dict:
        return asdict(self)

    def best_filtered(self) -> int:
        """Index of the fraction at which filtration of f^G_part scores best on test."""
        return max(range(len(self.fractions)), key=lambda i: self.filtered_generalisation["test_acc"][i])


@torch.no_grad()
def partition_sweep(model: nn.Module, dataset: Dataset, score: str = "strength",
                    fractions: list[float] | None = None, loss: str = DEFAULT_LOSS) -> PartitionSweep:
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; valid: {', '.join(SCORES)}")
    if not family_of(model).has(model, Capability.NEURON_MAPS):
        raise TypeError("partition_sweep builds subnetworks of per-neuron residue maps (two-layer nets); "
                        "for other families use ablation.pruning_curve")
    values = neuron_scores(model, dataset, loss)[score]
    order = torch.argsort(values, descending=True)
    fractions = fractions or [0.05, 0.1, 0.2, 0.3, 0.5, 0.7]
    parts: dict[str, list[dict]] = {"g": [], "r": [], "gf": []}
    for f in fractions:
        keep = torch.zeros(len(values), dtype=torch.bool)
        keep[order[: max(1, round(f * len(values)))]] = True
        g = subnetwork(model, keep)
        parts["g"].append(subset_metrics(logits(g, dataset.inputs), dataset, loss))
        parts["r"].append(subset_metrics(logits(subnetwork(model, ~keep), dataset.inputs), dataset, loss))
        parts["gf"].append(subset_metrics(logits(dominant_split(g, dataset.task)[0], dataset.inputs), dataset, loss))

    whole = subset_metrics(logits(dominant_split(model, dataset.task)[0], dataset.inputs), dataset, loss)
    return PartitionSweep(score, list(fractions), collect_rows(parts["g"]), collect_rows(parts["r"]),
                          collect_rows(parts["gf"]), whole)


@dataclass(repr=False)
class PartitionReport(Result):
    """One partition sweep per score."""

    sweeps: dict[str, PartitionSweep]

    def to_dict(self) -> dict:
        return {score: sweep.to_dict() for score, sweep in self.sweeps.items()}

    def summary(self) -> str:
        return ("f^G_part keeps the top γ_G of neurons by a score; it is compared with frequency filtration "
                "(each neuron's dominant frequency, or irrep on a group) of f^G_part and of the whole network.")

    def tables(self) -> list[Table]:
        from ..core.document import Table, pct

        rows = []
        for score, sweep in self.sweeps.items():
            best = sweep.best_filtered()
            rows.append([score, pct(max(sweep.generalisation["test_acc"])),
                         f"{pct(sweep.filtered_generalisation['test_acc'][best])} (γ_G = {sweep.fractions[best]})",
                         pct(sweep.filtered_whole["test_acc"])])
        return [Table(["score", "f^G_part alone: best test", "f^G_part filtered: best test",
                       "whole net filtered: test"], rows)]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        return [Figure(plot_partition(list(self.sweeps.values()), Path(out_dir) / f"{stem}.png"), "partition sweeps")]


def partition_report(run: Run) -> PartitionReport:
    loss = run.spec.train.loss
    return PartitionReport({score: partition_sweep(run.model, run.dataset, score, loss=loss) for score in SCORES})


PARTITION: Analysis[PartitionReport] = register_analysis("partition", "Task-agnostic partition", partition_report, needs=(Capability.NEURON_MAPS,), order=70,
                                                           groups=True)


# --- figures ------------------------------------------------------------------------------


def plot_partition(sweeps, path: Path) -> Path:
    """Per score: test accuracy of f^G_part, of its frequency filtration, and the memorised
    accuracy of the memorisation part, against the fraction of neurons kept."""
    fig, axes = _subplots(1, len(sweeps), figsize=(5 * len(sweeps), 4), sharey=True, squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        ax.plot(sweep.fractions, sweep.generalisation["test_acc"], color=SUBSET_COLORS["test"], label="f^G_part: test")
        ax.plot(sweep.fractions, sweep.filtered_generalisation["test_acc"], color=SUBSET_COLORS["test"], ls="--",
                label="f^G_part filtered: test")
        ax.plot(sweep.fractions, sweep.memorisation["noisy_observed_acc"], color=SUBSET_COLORS["noisy_observed"],
                label="rest: memorised")
        ax.axhline(sweep.filtered_whole["test_acc"], color="#555555", lw=1, ls=":", label="whole net filtered: test")
        ax.set(xlabel="γ_G (fraction of neurons kept, top by score)", title=f"score: {sweep.score}", ylim=(-0.02, 1.02))
    axes[0][0].set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)
