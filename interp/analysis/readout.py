"""The readout units: the hook whose units act on the logits linearly, and what they push.

Shared by the analyses that score units (ablation, localisation, circuit views, partition):
`linear_readout` reads the units and their unit-to-logit map, `margin_push` is a unit's mean
direct push on a label's margin, `push_scores` every unit's two scores from those pushes,
`margins` the two margins every component score is measured in.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

from ..core.metrics import centred, margin
from ..core.tasks import Dataset
from ..families.base import family_of


def linear_readout(model: nn.Module, inputs: Tensor) -> tuple[str, Tensor, Tensor, Tensor]:
    """(hook name, activations [batch, unit], unit-to-logit map [unit, p], full logits) for the
    family's readout units, whose effect on the logits is linear, so ablating any set of them is
    exact in closed form (the two-layer net's hidden neurons; the last-position neurons of a
    transformer's last MLP layer)."""
    family = family_of(model)
    name = family.readout_hook(model)
    out, cache = family.run_with_cache(model, inputs, names_filter=name)
    return name, cache[name], family.unit_to_logit(model), out


def margin_push(acts: Tensor, to_logit: Tensor, labels: Tensor) -> Tensor:
    """Each unit's mean direct push on the `margin` of `labels`: a unit's contribution to the
    logits is its activation [example, unit] times its unit-to-logit row [unit, class], and the
    margin is linear, so the push is the activation times the row's own margin."""
    row_margins = centred(to_logit.double())  # [unit, class]: margin of each row at every class
    return (acts.double() * row_margins[:, labels].T).mean(0)


def contribution_push(contributions: Float[Tensor, "example unit class"], labels: Tensor) -> Tensor:
    """Mean `margin` push [unit] of per-example logit contributions (e.g. each head's output
    through W_O·W_U)."""
    return margin(contributions.double(), labels[:, None].expand(-1, contributions.shape[1])).mean(0)


def push_scores(acts: Float[Tensor, "example unit"], to_logit: Float[Tensor, "unit class"], dataset: Dataset
                ) -> tuple[Tensor, Tensor | None]:
    """(gen, mem) [unit]: each unit's mean `margin_push` towards the true label on the test pairs,
    and towards the observed label minus towards the true one on the noisy pairs (None on a
    clean run) — the same two quantities `margins` measures on the whole model's logits, so a
    unit's scores are what removing its contribution costs in them."""
    gen = margin_push(acts[dataset.test_mask], to_logit, dataset.true_labels[dataset.test_mask])
    noisy = dataset.noisy_mask
    if not noisy.any():
        return gen, None
    return gen, (margin_push(acts[noisy], to_logit, dataset.labels[noisy])
                 - margin_push(acts[noisy], to_logit, dataset.true_labels[noisy]))


def margins(out: Tensor, dataset: Dataset) -> tuple[float, float | None]:
    """(mean true-label `margin` on the test pairs, mean observed − true margin on the noisy
    pairs; None on a clean run): the two quantities the component scores push or lose."""
    out = out.detach().double()
    test, noisy = dataset.test_mask, dataset.noisy_mask
    gen = float(margin(out[test], dataset.true_labels[test]).mean())
    if not noisy.any():
        return gen, None
    return gen, float((margin(out[noisy], dataset.labels[noisy]) - margin(out[noisy], dataset.true_labels[noisy])).mean())
