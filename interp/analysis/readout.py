"""The readout units: the hook whose units act on the logits linearly, and what they push.

Shared by the analyses that score units (ablation, localisation, circuit views, partition):
`linear_readout` reads the units and their unit-to-logit map, `margin_push` is a unit's mean
direct push on a label's margin, `margins` the two margins every component score is measured in.
"""

from __future__ import annotations

from torch import Tensor, nn

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
    """Each unit's mean direct push on the margin of `labels` (the label's logit minus the mean
    logit): activation [example, unit] × its unit-to-logit row [unit, class], less the row's mean."""
    push = to_logit.double() - to_logit.double().mean(1, keepdim=True)
    return (acts.double() * push[:, labels].T).mean(0)


def margins(out: Tensor, dataset: Dataset) -> tuple[float, float | None]:
    """(mean true-label margin on the test pairs, mean observed − true logit difference on the
    noisy pairs; None on a clean run): the two quantities the component scores push or lose."""
    out = out.double()
    test, noisy = dataset.test_mask, dataset.noisy_mask
    centred = out[test] - out[test].mean(1, keepdim=True)
    gen = float(centred.gather(1, dataset.true_labels[test, None]).mean())
    if not noisy.any():
        return gen, None
    diff = out[noisy].gather(1, dataset.labels[noisy, None]) - out[noisy].gather(1, dataset.true_labels[noisy, None])
    return gen, float(diff.mean())
