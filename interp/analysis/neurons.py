"""Per-neuron maps over the residues and their surgery: each neuron's u, v, w vectors, Liu & Lu's
dominant-frequency split, per-neuron projections, and neuron scores (strength, IPR, attribution).

For models whose family gives neuron maps (`ModelFamily.neuron_maps`).
"""

from __future__ import annotations

from ..core.metrics import DEFAULT_LOSS

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.harmonics import Harmonics, harmonics_of, op_of
from ..core.specs import TaskSpec
from ..core.tasks import Dataset
from ..families.activations import ACT_FNS
from ..families.base import Capability, family_of
from .readout import linear_readout
from .spectra import neuron_spectra, neuron_vectors


def strength(model: nn.Module) -> Tensor:
    """Each neuron's largest possible push: max |w| · φ(max |u| + max |v|)."""
    u, v, w = neuron_uvw(model)
    inner = u.abs().amax(1) + v.abs().amax(1)
    return w.abs().amax(1) * ACT_FNS[family_of(model).neuron_activation(model)](inner)


def neuron_ipr(model: nn.Module, task: str | TaskSpec = "add") -> Tensor:
    """Each neuron's inverse participation ratio over frequencies (irreps, on a group), averaged
    over u, v and w, each read in element index order (`Harmonics.ipr`)."""
    maps = neuron_vectors(model)
    units = harmonics_of(task, maps["u"].shape[1])
    return sum(units.ipr(x) for x in maps.values()) / 3


@torch.no_grad()
def attribution(model: nn.Module, dataset: Dataset, loss: str = DEFAULT_LOSS) -> Tensor:
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


def neuron_scores(model: nn.Module, dataset: Dataset, loss: str = DEFAULT_LOSS) -> dict[str, Tensor]:
    """Every score that applies to the model's family (`loss`: the run's training loss)."""
    scores = {"attribution": attribution(model, dataset, loss)}
    if family_of(model).has(model, Capability.NEURON_MAPS):
        scores = {"strength": strength(model), "ipr": neuron_ipr(model, dataset.task), **scores}
    return scores


SCORES = ("strength", "ipr", "attribution")


def subnetwork(model: nn.Module, keep: Tensor) -> nn.Module:
    """The network with only the neurons where `keep` is True (the others' maps zeroed)."""
    maps = neuron_uvw(model)
    mask = keep.to(maps[0].dtype)[:, None]
    return family_of(model).with_neuron_maps(model, *(x * mask for x in maps))


def project_per_neuron(x: Tensor, keep: Tensor, units: Harmonics) -> Tensor:
    """Project each row of x ([width, p]) onto the units (frequencies or irreps) in keep
    ([width, n_units]) along the residue axis read in `units.order`; entries outside the order
    are left unchanged."""
    out = x.detach().clone().double()
    out[:, units.order] = units.project(out[:, units.order], keep)
    return out.to(x.dtype)


def neuron_uvw(model: nn.Module) -> tuple[Tensor, Tensor, Tensor]:
    """(u, v, w), each [neuron, p]: the family's neuron maps (`ModelFamily.neuron_maps`)."""
    maps = neuron_vectors(model)
    return maps["u"], maps["v"], maps["w"]


def dominant_split(model: nn.Module, task: str | TaskSpec) -> tuple[nn.Module, nn.Module]:
    """(f^G, f^R): each neuron's dominant-frequency part (dominant irrep, on a group) and the
    remainder, same activation; `task` is a Z_p op's name or the run's `TaskSpec`."""
    p = neuron_uvw(model)[0].shape[1]
    units = harmonics_of(task, p)
    spectra = neuron_spectra(model, task)
    n_freq = spectra.power.shape[1]
    keep = torch.zeros(len(spectra.freq), n_freq, dtype=torch.bool)
    keep[torch.arange(len(spectra.freq)), spectra.freq] = True
    vecs = neuron_uvw(model)
    g = [project_per_neuron(x, keep, units) for x in vecs]
    r = [x - xg for x, xg in zip(vecs, g)]
    if op_of(task) in ("mul", "div"):  # residue 0 stays with f^G
        zero = torch.ones(p, dtype=torch.bool)
        zero[units.order] = False
        for x in r:
            x[:, zero] = 0
    return family_of(model).with_neuron_maps(model, *g), family_of(model).with_neuron_maps(model, *r)
