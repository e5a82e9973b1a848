"""How many units hold one memorised example (Maini et al. 2023): per hidden layer (and, on a
TransformerLens-style stack, per block's MLP neurons), the fewest of its units whose
zero-ablation flips a training example's prediction away from its label.

Maini et al. find that a memorised example flips after a handful of neurons are zeroed, far
fewer than a clean one needs, and that those neurons differ from example to example and sit
across layers. This measures their count on a model over features, example by example:
- the examples: up to SAMPLE noisy training examples the model predicts as their (wrong)
  observed label — memorised — and up to SAMPLE clean ones it predicts right, drawn at random
  (seed SAMPLE_SEED); the truth only says which is which;
- the order: each example's units by their first-order push toward its prediction over its
  runner-up class (activation × the gradient of that logit margin, summed over positions), the
  largest first; the control, the same units in a random order (seed SAMPLE_SEED + 1);
- the count: the smallest size on `grid` (1, 2, 3, 4, 5, 6, 7, 9, 12, ..., about ×1.25 a step,
  then the layer's width) whose first units in that order, zeroed at every position, change the
  prediction; None where zeroing the whole layer does not (a flip in another layer's units only).
  Flipping need not grow with the units zeroed, so an example counted None may flip at some size
  off the grid.
Which examples are memorised is read from the truth, so the comparison is a localisation, not a
label-free method. Maini et al.'s contrast (memorised examples flip with fewer units than clean
ones) is read against the random order, which can show the same gap: memorised predictions sit
closer to their runner-up, so any units move them sooner. Forwards in float64 and pushes rounded
to 1e-9 before they are ranked (ties to the smaller unit): on the runs measured the logits' gaps
at every flip and the pushes' gaps are far above float64's rounding, so the counts are the same on
every CPU.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..core.document import pct
from ..core.metrics import NO_KNOWN_WRONG
from ..families.base import Capability, family_of, in_float64, mlp_hooks
from ..training.rundir import Run
from .plots import _save, _subplots
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure, Table

#: examples of each kind counted (memorised, clean), and the seed that draws them
SAMPLE = 100
SAMPLE_SEED = 0
KINDS = ("memorised", "clean")


def grid(width: int) -> list[int]:
    """The sizes tried, about ×1.25 apart, ending at `width`."""
    sizes, size = [], 1.0
    while round(size) < width:
        if not sizes or round(size) > sizes[-1]:
            sizes.append(round(size))
        size *= 1.25
    return sizes + [width]


@dataclass
class LayerFlips:
    layer: str
    width: int
    #: per kind ("memorised", "clean") and order ("ranked", "random"), each counted example's
    #: count (None: zeroing the whole layer does not flip it)
    counts: dict[str, dict[str, list[int | None]]]

    def share_flipped(self, kind: str, order: str = "ranked") -> float | None:
        counts = self.counts[kind][order]
        return sum(c is not None for c in counts) / len(counts) if counts else None

    def median(self, kind: str, order: str = "ranked") -> int | None:
        """The (lower) median count, an example that never flips counted above every size: None
        where more than half never flip, or no example was counted — never an average of a count
        and "never"."""
        counts = self.counts[kind][order]
        if not counts:
            return None
        value = statistics.median_low([self.width + 1 if c is None else c for c in counts])
        return None if value > self.width else value


@dataclass(repr=False)
class ExampleFlips(Result):
    examples: dict[str, int]  # how many of each kind were counted
    layers: list[LayerFlips]

    def to_dict(self) -> dict:
        return {"examples": self.examples, "sample": SAMPLE,
                "layers": [{**asdict(r), **{f"median_{k}_{o}": r.median(k, o) for k in KINDS
                                             for o in ("ranked", "random")}} for r in self.layers]}

    def fewest(self) -> LayerFlips | None:
        """The layer whose memorised examples flip after the fewest units (by the median)."""
        counted = [r for r in self.layers if r.median("memorised") is not None]
        return min(counted, key=lambda r: r.median("memorised")) if counted else None

    def summary(self) -> str:
        if not self.examples["memorised"]:
            return "No training example is memorised (no noisy example predicted as its observed label): nothing to count."
        parts = []
        for r in self.layers:
            parts.append(f"{r.layer}: a memorised example flips after a median {_count(r.median('memorised'))} of "
                         f"{r.width} units ({pct(r.share_flipped('memorised'))} flip within the layer; in random "
                         f"order {_count(r.median('memorised', 'random'))}), a clean one after "
                         f"{_count(r.median('clean'))} (random {_count(r.median('clean', 'random'))})")
        line = (f"Units zeroed until a training example's prediction flips (Maini et al. 2023), units taken by their "
                f"push toward the prediction, over {self.examples['memorised']} memorised and {self.examples['clean']} "
                f"clean examples: " + "; ".join(parts) + ".")
        best = self.fewest()
        if best is not None:
            line += (f" Fewest in {best.layer}: a memorised example flips after {_units(best.median('memorised'))} "
                     f"({best.median('memorised') / best.width:.1%} of the layer), a clean one after "
                     f"{_units(best.median('clean'))}: {contrast(best)}.")
        return line

    def tables(self) -> list[Table]:
        from ..core.document import Table

        def median(r: LayerFlips, kind: str, order: str = "ranked") -> str:
            return _count(r.median(kind, order)) if r.counts[kind][order] else "—"

        rows = [[r.layer, str(r.width), kind, str(len(r.counts[kind]["ranked"])), median(r, kind),
                 pct(r.share_flipped(kind)), median(r, kind, "random"), pct(r.share_flipped(kind, "random"))]
                for r in self.layers for kind in KINDS]
        return [Table(["layer", "units", "examples", "counted", "median units to flip", "flip within the layer",
                       "random order: median", "flip"], rows,
                      "units zeroed in order of their push toward the prediction (random order: the control) until "
                      f"the prediction changes; counts on the sizes {', '.join(map(str, grid(64)[:8]))}, … (×1.25); "
                      "'never': more than half do not flip on the grid; flipping need not grow with the units "
                      "zeroed, so each share flipped is a lower bound")]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        if not self.examples["memorised"]:
            return []
        return [Figure(plot_flips(self, Path(out_dir) / f"{stem}.png"),
                       "share of examples flipped against the units zeroed, per layer: memorised (red) and clean "
                       "(blue) examples, units by their push (solid) or in random order (dashed)")]


def plot_flips(result: ExampleFlips, path: Path) -> Path:
    fig, axes = _subplots(1, len(result.layers), figsize=(4 * len(result.layers), 3.5), squeeze=False)
    for ax, r in zip(axes[0], result.layers):
        sizes = grid(r.width)
        for kind, color in (("memorised", "#d62728"), ("clean", "#1f77b4")):
            for order, style in (("ranked", "-"), ("random", "--")):
                counts = r.counts[kind][order]
                if counts:
                    ax.plot(sizes, [sum(c is not None and c <= s for c in counts) / len(counts) for s in sizes],
                            style, color=color, label=f"{kind}, {'by push' if order == 'ranked' else 'random'}")
        ax.set(xscale="log", xlabel="units zeroed", ylabel="share flipped", ylim=(-0.02, 1.02), title=r.layer)
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def _count(value: float | None) -> str:
    return "never" if value is None else f"{value:g}"


def _units(value: float | None) -> str:
    return "never" if value is None else f"{value:g} unit{'' if value == 1 else 's'}"


def contrast(layer: LayerFlips) -> str:
    """Maini et al.'s contrast on one layer, read against the random order: whether memorised
    examples flip after fewer units than clean ones by push, and whether the random order shows
    the same (then memorised predictions move more easily, not only by a few units of their own).
    A median of the whole layer, or "never", is the same intervention in either order."""
    width = layer.width

    def top(value: int | None) -> int:  # "never" above every size
        return width + 1 if value is None else value

    memorised, clean = layer.median("memorised"), layer.median("clean")
    if memorised is None or memorised >= width or not layer.counts["clean"]["ranked"]:
        return "no comparison (no clean example counted, or most memorised ones need the whole layer or never flip)"
    if top(clean) <= memorised:
        return "no fewer for the memorised, unlike Maini et al.'s networks"
    random_memorised, random_clean = layer.median("memorised", "random"), layer.median("clean", "random")
    if top(random_memorised) < top(random_clean):
        return (f"fewer for the memorised, but so in random order ({_count(random_memorised)} against "
                f"{_count(random_clean)}): memorised predictions move more easily, not only by a few units of their own")
    if top(random_memorised) >= width:  # both need the whole layer in random order: it cannot tell them apart
        return (f"fewer for the memorised by push; in random order both need the whole layer ({_count(random_memorised)} "
                f"and {_count(random_clean)} of {width}), which cannot tell them apart")
    return "fewer for the memorised, and not in random order, as Maini et al. found"


def counted_examples(run: Run) -> dict[str, Tensor]:
    """The indices (into the dataset) of the examples counted, per kind: noisy training examples
    predicted as their observed label, clean ones predicted right, up to SAMPLE of each."""
    ds = run.dataset
    with torch.no_grad():
        predicted = family_of(run.model).forward(in_float64(run.model), ds.inputs).argmax(-1)
    right = predicted == ds.labels
    pools = {"memorised": ds.train_mask & ds.noisy_mask & right, "clean": ds.train_mask & ~ds.noisy_mask & right}
    generator = torch.Generator().manual_seed(SAMPLE_SEED)
    return {kind: pool.nonzero().squeeze(1)[torch.randperm(int(pool.sum()), generator=generator)[:SAMPLE]].sort().values
            for kind, pool in pools.items()}


def flip_counts(model, inputs: Tensor, hook: str, order: Tensor) -> list[int | None]:
    """Per example, the smallest size on `grid` whose first units in `order` (per example: units
    of `hook`, first to zero first), zeroed at every position, change the model's prediction
    (None: not even the whole layer)."""
    family = family_of(model)
    with torch.no_grad():
        predicted = family.forward(model, inputs).argmax(-1)
    width = order.shape[1]
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(width).expand_as(order).contiguous())
    counts: list[int | None] = [None] * len(inputs)
    pending = torch.ones(len(inputs), dtype=torch.bool)
    for size in grid(width):
        keep = rank >= size

        def zeroed(value: Tensor, hook, keep=keep[pending]) -> Tensor:
            return value * keep.to(value.dtype).view(len(keep), *([1] * (value.ndim - 2)), keep.shape[1])

        with torch.no_grad():
            flipped = family.forward(model, inputs[pending], [(hook, zeroed)]).argmax(-1) != predicted[pending]
        for i in pending.nonzero().squeeze(1)[flipped].tolist():
            counts[i] = size
        pending[pending.clone()] = ~flipped
        if not pending.any():
            break
    return counts


def pushes(model, inputs: Tensor, hook: str) -> Tensor:
    """[example, unit]: each unit's first-order push toward the example's prediction over its
    runner-up class (activation × the margin's gradient, summed over positions), rounded to 1e-9."""
    family = family_of(model)
    held = {}

    def grab(value: Tensor, hook) -> Tensor:
        held["acts"] = value.detach().requires_grad_(True)
        return held["acts"]

    with torch.enable_grad():
        logits = family.forward(model, inputs, [(hook, grab)])
        top2 = logits.detach().topk(2, dim=-1).indices
        margin = logits.gather(1, top2[:, :1]) - logits.gather(1, top2[:, 1:])
        (grad,) = torch.autograd.grad(margin.sum(), held["acts"])
    push = (held["acts"] * grad).detach()
    push = push.reshape(len(inputs), -1, push.shape[-1]).sum(1)
    return torch.round(push, decimals=9)


def example_flips(run: Run) -> ExampleFlips:
    ds = run.dataset
    model = in_float64(run.model)
    family = family_of(model)
    hooks = family.layer_hooks(model) + mlp_hooks(model)  # a transformer's neurons are its MLPs'
    with torch.no_grad():
        _, cache = family.run_with_cache(model, ds.inputs[:1], names_filter=lambda name: name in hooks)
    chosen = counted_examples(run)
    generator = torch.Generator().manual_seed(SAMPLE_SEED + 1)  # the random orders: one draw per example, layer, kind
    layers = []
    for hook in hooks:
        width = cache[hook].shape[-1]
        counts: dict[str, dict[str, list[int | None]]] = {}
        for kind, index in chosen.items():
            counts[kind] = {"ranked": [], "random": []}
            if len(index):
                inputs = ds.inputs[index]
                ranked = torch.sort(-pushes(model, inputs, hook), dim=1, stable=True).indices
                shuffled = torch.stack([torch.randperm(width, generator=generator) for _ in range(len(index))])
                counts[kind] = {"ranked": flip_counts(model, inputs, hook, ranked),
                                "random": flip_counts(model, inputs, hook, shuffled)}
        layers.append(LayerFlips(hook, width, counts))
    return ExampleFlips({kind: len(index) for kind, index in chosen.items()}, layers)


def _nothing_to_memorise(run: Run) -> str | None:
    return None if run.dataset.noisy_mask.any() else f"{NO_KNOWN_WRONG}: no memory to locate"


EXAMPLE_FLIPS: Analysis[ExampleFlips] = register_analysis(
    "example_flips", "Units that flip one example (Maini et al.)", example_flips, needs=(Capability.LAYERS,),
    skip_reason=_nothing_to_memorise, order=57, groups=True, features=True)
