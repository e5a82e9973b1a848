"""Where the memory lives, neuron by neuron: in each layer, the units most tied to label doubt,
ablated beside random units of the layer (Maini et al. 2023 ask whether a handful of neurons
hold the memory).

Label doubt (`core.class_structure.label_doubt`, at the first hidden layer, from the observed
labels alone) ranks training examples by how strongly the class structure disagrees with their
label. A unit's suspicion is the mean doubt of the training examples it fires on, weighted by
its (positive) activation: a unit that fires on doubted examples alone scores their doubt, one
that fires on a whole class scores the class's mostly clean examples (ties to the smaller index).
For each layer and each size (a share of its units), the most suspect units are zero-ablated
and the model scored — memorised and test accuracy — beside as many random units of the same
layer (`CONTROL_SEEDS`, averaged), under the one verdict rule (`core.metrics.accuracy_verdict`). No true label picks a unit; the truth only scores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..core.class_structure import DEFAULT_DIRECTIONS, class_subspaces, label_doubt
from ..core.metrics import VERDICT_BAND, accuracy_verdict, subset_metrics
from ..families.base import Capability, family_of
from ..training.rundir import Run
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Table

CONTROL_SEEDS = (0, 1, 2)

#: the shares of a layer's units ablated
SHARES = (1 / 64, 1 / 16, 1 / 4)


@dataclass
class SuspectAblation:
    layer: str
    units: int  # ablated, of the layer's `width`
    width: int
    memorised: float
    test: float
    random_memorised: float
    random_test: float

    @property
    def verdict(self) -> str:
        return accuracy_verdict(self.memorised, self.test, self.random_memorised, self.random_test)


@dataclass(repr=False)
class SuspectNeurons(Result):
    final_memorised: float
    final_test: float
    rows: list[SuspectAblation]

    def to_dict(self) -> dict:
        return {**asdict(self), "rows": [{**asdict(r), "verdict": r.verdict} for r in self.rows]}

    def summary(self) -> str:
        parts = [f"{r.layer}, {r.units} of {r.width}: memorised {r.memorised:.1%} (random {r.random_memorised:.1%}), "
                 f"test {r.test:.1%} (random {r.random_test:.1%}) — {r.verdict}" for r in self.rows]
        return (f"Zero-ablating the units most correlated with label doubt (final model: memorised "
                f"{self.final_memorised:.1%}, test {self.final_test:.1%}): " + "; ".join(parts) + ".")

    def tables(self) -> list[Table]:
        from ..core.document import Table

        rows = [[r.layer, f"{r.units} / {r.width}", f"{r.memorised:.1%}", f"{r.random_memorised:.1%}", f"{r.test:.1%}",
                 f"{r.random_test:.1%}", r.verdict] for r in self.rows]
        return [Table(["layer", "units ablated", "memorised", "random", "test", "random", "verdict"], rows,
                      f"the most suspect units zero-ablated; random: as many units of the layer, mean of "
                      f"{len(CONTROL_SEEDS)} draws; a verdict needs a lead over random above {VERDICT_BAND:.0%}")]


def suspicion(acts: Tensor, doubt: Tensor) -> Tensor:
    """Per unit, the mean doubt of the examples weighted by the unit's positive activation on
    them (−inf for a unit that never fires: never suspect)."""
    mass = acts.double().clamp_min(0)
    total = mass.sum(0)
    weighted = (mass * doubt.double()[:, None]).sum(0) / total.clamp_min(1e-300)
    return torch.where(total > 0, weighted, torch.full_like(total, float("-inf")))


def most_suspect(score: Tensor, n: int) -> list[int]:
    """The `n` highest scores, ties to the smaller index."""
    order = torch.sort(-score, stable=True).indices
    return order[:n].tolist()


@torch.no_grad()
def suspect_neurons(run: Run, shares: tuple[float, ...] = SHARES, directions: int = DEFAULT_DIRECTIONS
                    ) -> SuspectNeurons:
    model, ds, loss = run.model, run.dataset, run.spec.train.loss
    family = family_of(model)
    hooks = family.layer_hooks(model)
    _, cache = family.run_with_cache(model, ds.inputs, names_filter=lambda name: name in hooks)
    train, labels = ds.train_mask, ds.labels[ds.train_mask]
    first = cache[hooks[0]][train]
    doubt = label_doubt(first, labels, class_subspaces(first, labels, ds.p, directions))

    def scored(hook: str, units: list[int]) -> tuple[float, float]:
        def ablate(value: Tensor, hook=None) -> Tensor:
            value[..., units] = 0
            return value

        m = subset_metrics(family.forward(model, ds.inputs, [(hook_name, ablate) for hook_name in (hook,)]), ds, loss)
        return m["noisy_observed_acc"], m["test_acc"]

    final = subset_metrics(family.forward(model, ds.inputs), ds, loss)
    rows = []
    for hook in hooks:
        width = cache[hook].shape[-1]
        score = suspicion(cache[hook][train], doubt)
        for n in sorted({max(1, round(share * width)) for share in shares}):
            memorised, test = scored(hook, most_suspect(score, n))
            controls = [scored(hook, torch.randperm(width, generator=torch.Generator().manual_seed(seed))[:n].tolist())
                        for seed in CONTROL_SEEDS]
            random_mem, random_test = (sum(c[i] for c in controls) / len(controls) for i in (0, 1))
            rows.append(SuspectAblation(hook, n, width, memorised, test, random_mem, random_test))
    return SuspectNeurons(final["noisy_observed_acc"], final["test_acc"], rows)


def _nothing_to_memorise(run: Run) -> str | None:
    return None if run.dataset.noisy_mask.any() else "the run has no noisy labels: nothing to memorise"


SUSPECT_NEURONS: Analysis[SuspectNeurons] = register_analysis(
    "suspect_neurons", "Suspect neurons per layer", suspect_neurons, needs=(Capability.LAYERS,),
    skip_reason=_nothing_to_memorise, order=56, groups=True, features=True)
