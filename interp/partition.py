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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import fourier
from .ablation import linear_readout
from .filtration import with_neuron_vectors, dominant_split
from .metrics import collect_rows, subset_metrics
from .families import family_of
from .families.two_layer import ACT_FNS, TwoLayerNet
from .nets import logits
from .spectra import neuron_vectors
from .tasks import Dataset

SCORES = ("strength", "ipr", "attribution")


def strength(model: TwoLayerNet) -> Tensor:
    u, v, w = neuron_vectors(model).values()
    inner = u.abs().amax(1) + v.abs().amax(1)
    return w.abs().amax(1) * ACT_FNS[model.spec.act](inner)


def neuron_ipr(model: TwoLayerNet) -> Tensor:
    return sum(fourier.ipr(x) for x in neuron_vectors(model).values()) / 3


@torch.no_grad()
def attribution(model: nn.Module, dataset: Dataset) -> Tensor:
    """Estimated rise of clean CE loss minus rise of memorised-label CE loss when each neuron of
    the readout layer is zero-ablated (activation × gradient, exact in the logits' linear part)."""
    _, acts, to_logit, full = linear_readout(model, dataset.inputs)

    def rise(mask: Tensor) -> Tensor:
        if not mask.any():
            return torch.zeros(acts.shape[1], dtype=torch.float64)
        grad_logits = F.softmax(full[mask].double(), -1)
        grad_logits[torch.arange(int(mask.sum())), dataset.labels[mask]] -= 1  # dCE/dlogits
        grad_acts = grad_logits @ to_logit.double().T / int(mask.sum())
        return -(acts[mask].double() * grad_acts).sum(0)  # Δloss ≈ −a·∂L/∂a when a → 0

    return rise(dataset.clean_mask) - rise(dataset.noisy_mask)


def neuron_scores(model: nn.Module, dataset: Dataset) -> dict[str, Tensor]:
    """Every score that applies to the model's family."""
    scores = {"attribution": attribution(model, dataset)}
    if family_of(model).neuron_maps(model) is not None:
        scores = {"strength": strength(model), "ipr": neuron_ipr(model), **scores}
    return scores


def subnetwork(model: TwoLayerNet, keep: Tensor) -> TwoLayerNet:
    """The network with only the neurons where `keep` is True (the others' weights zeroed)."""
    mask = keep.to(model.U.dtype)[:, None]
    return with_neuron_vectors(model, *(x * mask for x in neuron_vectors(model).values()))


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
def partition_sweep(model: TwoLayerNet, dataset: Dataset, score: str = "strength",
                    fractions: list[float] | None = None) -> PartitionSweep:
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; valid: {', '.join(SCORES)}")
    if family_of(model).neuron_maps(model) is None:
        raise TypeError("partition_sweep builds subnetworks of per-neuron residue maps (two-layer nets); "
                        "for other families use ablation.pruning_curve")
    op = dataset.task.op
    values = neuron_scores(model, dataset)[score]
    order = torch.argsort(values, descending=True)
    fractions = fractions or [0.05, 0.1, 0.2, 0.3, 0.5, 0.7]
    parts: dict[str, list[dict]] = {"g": [], "r": [], "gf": []}
    for f in fractions:
        keep = torch.zeros(model.spec.width, dtype=torch.bool)
        keep[order[: max(1, round(f * model.spec.width))]] = True
        g = subnetwork(model, keep)
        parts["g"].append(subset_metrics(logits(g, dataset.inputs), dataset))
        parts["r"].append(subset_metrics(logits(subnetwork(model, ~keep), dataset.inputs), dataset))
        parts["gf"].append(subset_metrics(logits(dominant_split(g, op)[0], dataset.inputs), dataset))

    whole = subset_metrics(logits(dominant_split(model, op)[0], dataset.inputs), dataset)
    return PartitionSweep(score, list(fractions), collect_rows(parts["g"]), collect_rows(parts["r"]),
                          collect_rows(parts["gf"]), whole)
