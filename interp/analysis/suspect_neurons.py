"""Where the memory lives, unit by unit: in each layer, the neurons (and, on a model with
heads, the attention heads) most tied to label doubt, ablated beside random units of the same
kind and layer (Maini et al. 2023 ask whether a handful of neurons hold the memory).

Label doubt (`core.class_structure.label_doubt`, at the first hidden layer, from the observed
labels alone) ranks training examples by how strongly the class structure disagrees with their
label. A unit's suspicion is the mean doubt of the training examples it fires on, weighted by
its (positive) activation: a unit that fires on doubted examples alone scores their doubt, one
that fires on a whole class scores the class's mostly clean examples (ties to the smaller index).
For each layer and each size (a share of its units), the most suspect units are zero-ablated
and the model scored — memorised and test accuracy — beside as many random units of the same
layer (`CONTROL_SEEDS`, averaged), under the one verdict rule (`core.metrics.accuracy_verdict`). No true label picks a unit; the truth only scores.

Heads (`Capability.HEADS`): a head's weight on an example is the norm of its output (`hook_z`
of the family's `head_hooks`, at the predicting position), so its suspicion is the mean doubt of
the examples weighted by how much the head writes on them; each head alone (most suspect
first), then the most suspect half of the layer's heads, are zero-ablated beside as many random
heads of the layer. Each layer's whole attention
(all its heads zero-ablated) is scored beside as many random heads drawn from the whole model:
a control only where the model has more heads than the layer (else no verdict). On a
TransformerLens-style stack (`Capability.POSITIONS`) each block's MLP neurons (`mlp.hook_post`)
are ranked and ablated like a layer's neurons, and each whole MLP zero-ablated beside as many
neurons drawn from every MLP of the model (again a control only with more than one MLP).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from ..core.class_structure import DEFAULT_DIRECTIONS, class_subspaces, label_doubt
from ..core.metrics import NO_KNOWN_WRONG, VERDICT_BAND, accuracy_verdict, subset_metrics
from ..families.base import Capability, family_of, heads, mlp_hooks
from .ablation import ablated_logits_at
from .plots import _save, _subplots
from ..training.rundir import Run
from .noise_scores import narrow_first_layer
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure, Table

CONTROL_SEEDS = (0, 1, 2)

#: a random set of heads with at most this many possible draws (1 of 4, 2 of 4) is every one of
#: them, averaged: 3 draws of 1 head in 4 would often include the ranked head itself
EXHAUSTIVE = 10

#: the shares of a layer's units ablated
SHARES = (1 / 64, 1 / 16, 1 / 4)

#: what a row ablates: the most suspect neurons or heads of a layer, or a layer's whole attention
UnitKind = Literal["neurons", "heads", "attention", "MLP"]


@dataclass
class SuspectAblation:
    layer: str
    units: int  # ablated, of the layer's `width`
    width: int
    memorised: float
    test: float
    random_memorised: float | None  # None: no random set of the same size and kind exists
    random_test: float | None
    kind: UnitKind = "neurons"
    names: list[str] | None = None  # the heads ablated (`families.base.head_name`)

    @property
    def verdict(self) -> str:
        if self.random_memorised is None or self.random_test is None:
            return "no control"
        return accuracy_verdict(self.memorised, self.test, self.random_memorised, self.random_test)


@dataclass(repr=False)
class SuspectNeurons(Result):
    final_memorised: float
    final_test: float
    rows: list[SuspectAblation]

    def to_dict(self) -> dict:
        return {**asdict(self), "rows": [{**asdict(r), "verdict": r.verdict} for r in self.rows]}

    def summary(self) -> str:
        parts = [f"{r.layer}, {_units(r)}: memorised {r.memorised:.1%} (random {_pct(r.random_memorised)}), "
                 f"test {r.test:.1%} (random {_pct(r.random_test)}) — {r.verdict}" for r in self.rows]
        return (f"Zero-ablating the units most correlated with label doubt (final model: memorised "
                f"{self.final_memorised:.1%}, test {self.final_test:.1%}): " + "; ".join(parts) + ".")

    def tables(self) -> list[Table]:
        from ..core.document import Table

        rows = [[r.layer, _units(r), f"{r.memorised:.1%}", _pct(r.random_memorised), f"{r.test:.1%}",
                 _pct(r.random_test), r.verdict] for r in self.rows]
        return [Table(["layer", "units ablated", "memorised", "random", "test", "random", "verdict"], rows,
                      f"the most suspect units zero-ablated; random: as many units of the same kind and layer (a "
                      f"whole attention layer or MLP: as many heads or MLP neurons of the whole model), mean of {len(CONTROL_SEEDS)} draws "
                      f"(of every set of heads where there are at most {EXHAUSTIVE}); a "
                      f"verdict needs a lead over random above {VERDICT_BAND * 100:g} points; 'inert': it lowers neither memorised nor test more than random does "
                      "(it may still lower both as much)")]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        return [Figure(plot_suspects(self, Path(out_dir) / f"{stem}.png"),
                       "each ablation (filled) joined to its random control (hollow): up and to the left of its "
                       "control is memorising")]


def plot_suspects(result: SuspectNeurons, path: Path) -> Path:
    fig, ax = _subplots(figsize=(7, 5))
    colors = {"neurons": "#1f77b4", "MLP": "#17becf", "heads": "#d62728", "attention": "#ff7f0e"}
    for kind, color in colors.items():
        rows = [r for r in result.rows if r.kind == kind]
        for r in rows:
            if r.random_memorised is not None and r.random_test is not None:
                ax.plot([r.random_memorised, r.memorised], [r.random_test, r.test], color=color, linewidth=0.8)
                ax.scatter([r.random_memorised], [r.random_test], facecolors="none", edgecolors=color, s=25)
            ax.annotate(f"{r.layer.rsplit('.', 1)[0]} {_units(r)}", (r.memorised, r.test), fontsize=5)
        if rows:
            ax.scatter([r.memorised for r in rows], [r.test for r in rows], color=color, s=25, label=kind)
    ax.scatter([result.final_memorised], [result.final_test], marker="*", color="black", s=80, label="no ablation")
    ax.set(xlabel="memorised (noisy training examples, observed labels)", ylabel="test accuracy", xlim=(-0.02, 1.02),
           ylim=(-0.02, 1.02), title="the most suspect units ablated, beside random units")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _units(row: SuspectAblation) -> str:
    if row.kind in ("attention", "MLP"):
        return f"all {row.width} {'heads' if row.kind == 'attention' else 'neurons'}"
    named = f" ({', '.join(row.names)})" if row.names else ""
    return f"{row.units} / {row.width} {row.kind}{named}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def suspicion(acts: Tensor, doubt: Tensor) -> Tensor:
    """Per unit, the mean doubt of the examples weighted by the unit's positive activation on
    them (−inf for a unit that never fires: never suspect)."""
    mass = acts.double().clamp_min(0)
    total = mass.sum(0)
    weighted = (mass * doubt.double()[:, None]).sum(0) / total.clamp_min(1e-300)
    return torch.where(total > 0, weighted, torch.full_like(total, float("-inf")))


#: scores closer than this are a tie (the smaller index first): the activations they weigh are
#: float32, whose sums move in the 7th digit with the CPU's vector width and thread count
SCORE_TIE = 1e-6


def most_suspect(score: Tensor, n: int) -> list[int]:
    """The `n` highest scores, ties (to SCORE_TIE) to the smaller index."""
    order = torch.sort(-torch.round(score / SCORE_TIE), stable=True).indices
    return order[:n].tolist()


@torch.no_grad()
def suspect_neurons(run: Run, shares: tuple[float, ...] = SHARES, directions: int = DEFAULT_DIRECTIONS
                    ) -> SuspectNeurons:
    model, ds, loss = run.model, run.dataset, run.spec.train.loss
    family = family_of(model)
    hooks, mlps = family.layer_hooks(model), mlp_hooks(model)
    _, cache = family.run_with_cache(model, ds.inputs, names_filter=lambda name: name in hooks or name in mlps)
    train, labels = ds.train_mask, ds.labels[ds.train_mask]
    first = cache[hooks[0]][train]
    doubt = label_doubt(first, labels, class_subspaces(first, labels, ds.p, directions))

    def scored(units: dict[str, list[int]]) -> tuple[float, float]:
        def ablate(value: Tensor, hook) -> Tensor:
            value[..., units[hook.name]] = 0
            return value

        m = subset_metrics(family.forward(model, ds.inputs, [(name, ablate) for name in units]), ds, loss)
        return m["noisy_observed_acc"], m["test_acc"]

    final = subset_metrics(family.forward(model, ds.inputs), ds, loss)
    rows = []
    for hook in hooks + mlps:
        width = cache[hook].shape[-1]
        score = suspicion(cache[hook][train], doubt)
        for n in sorted({max(1, round(share * width)) for share in shares}):
            memorised, test = scored({hook: most_suspect(score, n)})
            controls = [scored({hook: torch.randperm(width, generator=torch.Generator().manual_seed(seed))[:n].tolist()})
                        for seed in CONTROL_SEEDS]
            random_mem, random_test = (sum(c[i] for c in controls) / len(controls) for i in (0, 1))
            rows.append(SuspectAblation(hook, n, width, memorised, test, random_mem, random_test))
    # each whole MLP beside as many neurons drawn from every MLP (a control only with more than one)
    pool = [(hook, unit) for hook in mlps for unit in range(cache[hook].shape[-1])]
    for hook in mlps:
        width = cache[hook].shape[-1]
        memorised, test = scored({hook: list(range(width))})
        controls = []
        for seed in CONTROL_SEEDS if len(pool) > width else ():
            drawn: dict[str, list[int]] = {}
            for i in torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:width].tolist():
                drawn.setdefault(pool[i][0], []).append(pool[i][1])
            controls.append(scored(drawn))
        random_mem, random_test = ((sum(c[i] for c in controls) / len(controls) if controls else None) for i in (0, 1))
        rows.append(SuspectAblation(hook, width, width, memorised, test, random_mem, random_test, kind="MLP"))
    if family.has(model, Capability.HEADS):
        rows += _head_rows(run, doubt)
    return SuspectNeurons(final["noisy_observed_acc"], final["test_acc"], rows)


def _head_rows(run: Run, doubt: Tensor) -> list[SuspectAblation]:
    """Per attention layer, its most suspect heads and then all of them, zero-ablated at the
    head hook, beside random heads (see the module docstring)."""
    model, ds, loss = run.model, run.dataset, run.spec.train.loss
    family = family_of(model)
    hooks = family.head_hooks(model)
    _, cache = family.run_with_cache(model, ds.inputs, names_filter=lambda name: name in hooks)
    every = heads(model)  # (hook, head, name), layer by layer

    def scored(picked: list[int]) -> tuple[float, float]:
        units: dict[str, list[int]] = {}
        for place in picked:
            hook, head, _ = every[place]
            units.setdefault(hook, []).append(head)
        m = subset_metrics(ablated_logits_at(model, ds.inputs, units), ds, loss)
        return m["noisy_observed_acc"], m["test_acc"]

    def controls(pool: list[int], n: int) -> tuple[float | None, float | None]:
        if n >= len(pool):
            return None, None  # every head of the pool: no other set of the same size
        if math.comb(len(pool), n) <= EXHAUSTIVE:  # few sets: the random control's exact expectation
            drawn = [scored(list(chosen)) for chosen in itertools.combinations(pool, n)]
        else:
            drawn = [scored([pool[i] for i in torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:n]])
                     for seed in CONTROL_SEEDS]
        return sum(d[0] for d in drawn) / len(drawn), sum(d[1] for d in drawn) / len(drawn)

    rows = []
    for hook, width in hooks.items():
        layer = [place for place, (h, _, _) in enumerate(every) if h == hook]
        norms = cache[hook][ds.train_mask].double().norm(dim=-1)  # [example, head]: what each head writes
        score = suspicion(norms, doubt)
        order = most_suspect(score, width)
        single = controls(layer, 1)  # one draw set for every single head: the same control
        picks = [[i] for i in order] + ([order[:width // 2]] if width // 2 > 1 else [])
        for chosen in picks:
            picked = [layer[i] for i in chosen]
            memorised, test = scored(picked)
            rows.append(SuspectAblation(hook, len(picked), width, memorised, test,
                                        *(single if len(picked) == 1 else controls(layer, len(picked))), kind="heads",
                                        names=[every[p][2] for p in picked]))
        memorised, test = scored(layer)
        rows.append(SuspectAblation(hook, width, width, memorised, test, *controls(list(range(len(every))), width),
                                    kind="attention"))
    return rows


def _nothing_to_memorise(run: Run) -> str | None:
    if not run.dataset.noisy_mask.any():
        return f"{NO_KNOWN_WRONG}: no memory to locate"
    narrow = narrow_first_layer(run)  # units are ranked by the first layer's class-subspace doubt
    return f"the ranking reads class subspaces: {narrow}" if narrow else None


SUSPECT_NEURONS: Analysis[SuspectNeurons] = register_analysis(
    "suspect_neurons", "Suspect neurons per layer", suspect_neurons, needs=(Capability.LAYERS,),
    skip_reason=_nothing_to_memorise, order=56, groups=True, features=True)
