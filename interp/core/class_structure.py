"""Class structure of a task over features, estimated from the observed labels alone: the
feature-task case of a task's structure basis (Fourier on Z_p, irreps on a group).

Per class c, the top `k` right singular vectors of the activations of the training examples
*observed* as c (no mean removed: directions, as angles are read): the class's subspace. A
point's affinity to class c is the cosine of its angle to that subspace, ‖B_c x‖ / ‖x‖; the
class-subspace readout assigns it the class of largest affinity. With noisy labels each class's
examples hold the wrong ones too, but as long as the true members dominate, its top directions
are theirs, so the readout recovers the rule without reading a true label. The SVD runs in
float64 (the same directions on every CPU and thread count); ties go to the smallest class.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

#: directions kept per class (the issue's and FINDINGS' readout)
DEFAULT_DIRECTIONS = 10

#: the raw inputs' name among a model's layers: where every readout of class structure has its
#: control (a layer that reads out no better than its inputs holds nothing training put there)
INPUT = "input"


def class_subspaces(acts: Float[Tensor, "example d"], labels: Int[Tensor, " example"], classes: int,
                    k: int = DEFAULT_DIRECTIONS) -> Float[Tensor, "class k d"]:
    """Orthonormal bases (rows) of each class's top-`k` directions; a class with fewer than `k`
    examples (or of lower rank) has zero rows in the rest."""
    acts = acts.double()
    bases = torch.zeros(classes, k, acts.shape[1], dtype=torch.float64)
    for c in range(classes):
        members = acts[labels == c]
        if len(members) == 0:
            continue
        _, s, vh = torch.linalg.svd(members, full_matrices=False)
        keep = min(k, int((s > s[0] * 1e-10).sum())) if s.numel() and s[0] > 0 else 0
        bases[c, :keep] = vh[:keep]
    return bases


def affinities(acts: Float[Tensor, "example d"], bases: Float[Tensor, "class k d"]) -> Float[Tensor, "example class"]:
    """cos of each point's angle to each class's subspace, ‖B_c x‖ / ‖x‖ (0 for x = 0)."""
    acts = acts.double()
    projected = torch.einsum("ckd,nd->nck", bases, acts).norm(dim=-1)
    return projected / acts.norm(dim=-1, keepdim=True).clamp_min(1e-300)


def readout(acts: Float[Tensor, "example d"], bases: Float[Tensor, "class k d"]) -> Int[Tensor, " example"]:
    """The class whose subspace each point is closest to in angle."""
    return affinities(acts, bases).argmax(-1)


def label_doubt(acts: Float[Tensor, "example d"], labels: Int[Tensor, " example"],
                bases: Float[Tensor, "class k d"]) -> Float[Tensor, " example"]:
    """How much closer each point lies to another class's subspace than to its label's: the best
    other class's affinity minus the label's (> 0: the structure disagrees with the label). A
    noise score that reads only the observed labels."""
    aff = affinities(acts, bases)
    own = aff.gather(1, labels[:, None]).squeeze(1)
    other = aff.scatter(1, labels[:, None], float("-inf")).amax(1)
    return other - own
