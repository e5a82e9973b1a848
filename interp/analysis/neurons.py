"""Per-neuron maps over the residues and their surgery: each neuron's u, v, w vectors, Liu & Lu's
dominant-frequency split, per-neuron projections, and neuron scores (strength, IPR, attribution).

For models whose family gives neuron maps (`ModelFamily.neuron_maps`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import fourier
from ..core.fourier import residue_order
from ..core.tasks import Dataset
from ..families.activations import ACT_FNS
from ..families.base import family_of
from ..families.two_layer import TwoLayerNet, with_neuron_vectors
from .readout import linear_readout
from .spectra import neuron_spectra, neuron_vectors


def strength(model: TwoLayerNet) -> Tensor:
    u, v, w = neuron_vectors(model).values()
    inner = u.abs().amax(1) + v.abs().amax(1)
    return w.abs().amax(1) * ACT_FNS[model.spec.act](inner)


def neuron_ipr(model: TwoLayerNet) -> Tensor:
    return sum(fourier.ipr(x) for x in neuron_vectors(model).values()) / 3


@torch.no_grad()
def attribution(model: nn.Module, dataset: Dataset, loss: str = "ce") -> Tensor:
    """Estimated rise of the clean loss minus rise of the memorised-label loss (`loss`: the
    run's own, ce or mse) when each neuron of the readout layer is zero-ablated (activation ×
    gradient, exact in the logits' linear part)."""
    _, acts, to_logit, full = linear_readout(model, dataset.inputs)

    def rise(mask: Tensor) -> Tensor:
        if not mask.any():
            return torch.zeros(acts.shape[1], dtype=torch.float64)
        target = F.one_hot(dataset.labels[mask], full.shape[-1]).double()
        out = full[mask].double()
        # dL/dlogits per example: softmax − one-hot (ce), 2·(logits − one-hot) (mse, summed over classes)
        grad_logits = F.softmax(out, -1) - target if loss == "ce" else 2 * (out - target)
        grad_acts = grad_logits @ to_logit.double().T / int(mask.sum())
        return -(acts[mask].double() * grad_acts).sum(0)  # Δloss ≈ −a·∂L/∂a when a → 0

    return rise(dataset.clean_mask) - rise(dataset.noisy_mask)


def neuron_scores(model: nn.Module, dataset: Dataset, loss: str = "ce") -> dict[str, Tensor]:
    """Every score that applies to the model's family (`loss`: the run's training loss)."""
    scores = {"attribution": attribution(model, dataset, loss)}
    if family_of(model).neuron_maps(model) is not None:
        scores = {"strength": strength(model), "ipr": neuron_ipr(model), **scores}
    return scores


SCORES = ("strength", "ipr", "attribution")


def subnetwork(model: TwoLayerNet, keep: Tensor) -> TwoLayerNet:
    """The network with only the neurons where `keep` is True (the others' weights zeroed)."""
    mask = keep.to(model.U.dtype)[:, None]
    return with_neuron_vectors(model, *(x * mask for x in neuron_vectors(model).values()))


def project_per_neuron(x: Tensor, keep: Tensor, order: Tensor) -> Tensor:
    """Project each row of x ([width, p]) onto the frequencies in keep ([width, n_freq+1])
    along the residue axis read in `order`; entries outside `order` are left unchanged."""
    out = x.detach().clone().double()
    out[:, order] = fourier.project_frequencies(out[:, order], keep)
    return out.to(x.dtype)


def neuron_uvw(model: TwoLayerNet) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(neuron_vectors(model).values())


def dominant_split(model: TwoLayerNet, op: str) -> tuple[TwoLayerNet, TwoLayerNet]:
    """(f^G, f^R): each neuron's dominant-frequency part and the remainder, same activation."""
    order = residue_order(op, model.p)
    spectra = neuron_spectra(model, op)
    n_freq = spectra.power.shape[1]
    keep = torch.zeros(len(spectra.freq), n_freq, dtype=torch.bool)
    keep[torch.arange(len(spectra.freq)), spectra.freq] = True
    vecs = neuron_uvw(model)
    g = [project_per_neuron(x, keep, order) for x in vecs]
    r = [x - xg for x, xg in zip(vecs, g)]
    if op in ("mul", "div"):  # residue 0 stays with f^G
        zero = torch.ones(model.p, dtype=torch.bool)
        zero[order] = False
        for x in r:
            x[:, zero] = 0
    return with_neuron_vectors(model, *g), with_neuron_vectors(model, *r)
