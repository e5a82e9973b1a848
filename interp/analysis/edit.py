"""The edit that forgets the noise: the smallest change to a model's weights that takes its
memorisation down and keeps its rule, found without reading a label.

**What the search reads.** The model's weights, its own logits over every pair of the dataset,
and a label-free target made from them, the *teacher* (`teacher`): for transformers on a sum
grid, the logits' diagonal filter over every frequency; otherwise the model's label-free
extraction (`filtration.label_free_logits`, the re-synthesized net for two-layer nets). Never the observed or true labels, the split or the noise mask: those are read
afterwards, only to score each edit on the four subsets. The one method that reads labels,
`localisation ranking`, is there for comparison and says so. On a grid of more than
SEARCH_LOGITS logits (S5's 14,400 pairs × 120 classes) the search's steps read random batches of
pairs (`search_batch`), so one step costs about what it does on Z_64; every edit is still scored
on every pair.

**The edit space.** The readout units (a two-layer net's hidden neurons; the last MLP layer's
neurons of a transformer) act on the logits linearly: unit u pushes act_u · T[u], T the
unit-to-logit map. Each push splits exactly into class-frequency parts T[u] = Σ_k T[u] P_k (P_k
projects onto frequency k along the class axis; k = 0, the constant, which softmax ignores, is
always kept). An edit removes a set of parts (u, k): it projects unit u's output weights onto a
Fourier subspace of the classes, and removing all of a unit's parts removes the neuron. It is a
weight edit of the same architecture (`ModelFamily.with_unit_to_logit`) whose logits are exact in
closed form, so every candidate is scored without a forward. Its **size** is the share of the
readout map's squared norm removed, ‖ΔT‖²/‖T‖² (the parts are orthogonal, so shares add).
Heads and embedding frequencies are not in the space: they reach the logits through the MLP's
nonlinearity, so no edit of them is exact in closed form.

**Methods**, each a curve of edits of growing size:
- `learned mask` (continuous sparsification, one of the methods Sakarvadia et al. 2025 compare):
  a sigmoid gate per part, trained so that the edited logits predict the teacher's argmax on
  every pair (on a large grid, a fresh batch of pairs per step: `search_batch`; `teacher_loss`, a hinge on the lead in units of the model's own median lead) at a
  penalty of `strength` × the removed share; one edit per strength, each warm-started from the
  last. With `comparisons=True`, also the same with one gate per neuron (`learned neuron mask`).
- `greedy` (with `comparisons=True`): each round scores exactly the removal of the CANDIDATES parts with the largest
  first-order drop of that same loss and removes the best, up to STEP_SHARE (or a tenth of the
  share removed so far, when larger); it stops when no removal lowers the loss.
- `flip count` (Maini et al. 2023): for each pair whose prediction the teacher disputes, the
  fewest readout neurons that flip it when removed (taken by their push towards the prediction
  over the teacher's class); neurons ranked by how many of those pairs need them, removed whole.
- `localisation ranking` (reads labels): whole neurons in order of the localisation's
  memorisation share minus its generalisation share.
- `random`: random parts, the control at each size (RANDOM_SEEDS seeds).
- `toward the teacher's weights` (nets with neuron maps, whose teacher is a net of the same
  architecture: the re-synthesis on Z_p, f^G on a group): every neuron's u, v and w moved a share
  t of the way to the teacher net's — the input side too, for where the memory is not in the
  readout (liu-lu-80: each neuron's residual, on both sides). Its size is t² ‖teacher − model‖² /
  ‖model‖² over u, v, w; t is the smallest share (to BISECT halvings) that agrees. Its control,
  where it is the chosen edit: `random move of the same size`, each neuron's u, v and w moved as
  far as the chosen move moves them, in random directions (RANDOM_SEEDS draws).

The chosen edit, which `interp edit` writes, is fixed in advance and reads no label (`choose`):
the smallest learned readout mask whose argmax agrees with the teacher's on at least AGREEMENT
(99.5%) of the grid; where none does, the smallest agreeing move toward the teacher's weights;
where nothing agrees, the most agreeing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn

from ..core.harmonics import harmonics_of
from ..core.runtime import progress_bar
from ..core.tasks import Dataset
from ..families.base import Capability, family_of, in_float64, logits
from .filtration import diagonal_filter_logits, label_free_logits, label_free_model
from .interventions import ACCURACIES, scored
from .neurons import dominant_split, neuron_uvw
from .readout import linear_readout
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure, Table

#: the learned mask's penalties on the removed share, strongest first (each a point of its curve)
STRENGTHS = (3.0, 1.0, 0.5, 0.25, 0.1, 0.05)
MASK_STEPS = (150, 100, 100, 100, 100, 100)  # optimiser steps per strength (warm-started after the first)
MASK_LR = 0.1
GATE = 3.0  # the gates' logits start at and stay within ±GATE (keep 0.95 at the start)
POLISH_ROUNDS = 32  # at most this many single removals polish each learned mask (bounded cost)
BAND = 1e-3  # a gate's logit must end below −BAND to remove its part (float64 noise is ~1e-12)
#: the sizes (removed share of the readout map's squared norm) at which the ranked methods are scored
SIZES = (0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12, 0.16, 0.25, 0.35, 0.5)
CANDIDATES = 128  # greedy scores this many parts exactly per round
STEP_SHARE = 0.0025  # greedy re-ranks after removing this much, or a tenth of what it has removed
RANDOM_SEEDS = (0, 1, 2)
#: the search reads at most this many logits (pairs × classes) per step, about Z_64's grid
#: (64² pairs, 64 classes): on a larger grid the learned mask's steps each read a fresh random
#: batch of pairs and greedy scores its removals on one random sample (`search_batch`)
SEARCH_LOGITS = 64**3
LEAD = 0.5  # the teacher's class must win by this share of the model's median lead
READS = "the weights and the model's own logits over every input pair of the dataset; no label, split or noise mask"
#: the chosen edit agrees with the teacher's argmax on at least this share of the grid
AGREEMENT = 0.995
#: the method the chosen edit is taken from (`choose`), reading no label
LEARNED = ("learned mask",)
#: methods scored only for comparison, on request (`edit_search(comparisons=True)`:
#: docs/results.md's table), never chosen: the learned mask with one gate per whole neuron
#: (on no release did it win; a third of the search's time) and greedy removal
WHOLE_NEURONS = "learned neuron mask"
COMPARISONS = (WHOLE_NEURONS, "greedy")
#: the edit of both sides (nets with neuron maps): every neuron's u, v and w moved a share t of
#: the way to the teacher net's; t is scored at SHIFTS, then bisected BISECT times below the
#: first share that agrees
SHIFTED = "toward the teacher's weights"
#: the control of a move toward the teacher: each neuron's u, v and w moved as far as the chosen
#: move moves them, in random directions (RANDOM_SEEDS draws; `random_move`)
RANDOM_MOVE = "random move of the same size"
SHIFTS = tuple(i / 10 for i in range(1, 11))
#: each neuron's residual removed on both sides (f^G, `part_split`): the split's unit as an edit,
#: scored beside the others and never chosen (it aims at no teacher)
DOMINANT = "each neuron's dominant part (f^G)"
BISECT = 12


@dataclass
class EditSpace:
    """The model's logits split into what an edit can remove and what it cannot."""

    rest: Float[Tensor, "pair p"]  # the logits without the readout units' pushes
    acts: Float[Tensor, "pair unit"]
    parts: Float[Tensor, "unit freq p"]  # each unit's push per unit activation, by class frequency
    share: Float[Tensor, "unit freq"]  # each part's share of the readout map's squared norm
    editable: Bool[Tensor, "unit freq"]  # every part but the constant (k = 0)
    margin: float  # the unedited model's median lead of its top class over the next, in logits

    def logits(self, keep: Float[Tensor, "unit freq"], rows: Tensor | None = None) -> Float[Tensor, "pair p"]:
        """The edited model's logits with parts weighted by `keep` (1 kept, 0 removed), on the
        pairs `rows` (every pair when None)."""
        if rows is None:
            return self.rest + self.acts @ self.to_logit(keep)
        return self.rest[rows] + self.acts[rows] @ self.to_logit(keep)

    def to_logit(self, keep: Float[Tensor, "unit freq"]) -> Float[Tensor, "unit p"]:
        """The edited unit-to-logit map: each unit's kept parts summed."""
        return torch.einsum("uk,ukc->uc", keep.to(self.parts.dtype), self.parts)

    def removed_share(self, keep: Tensor) -> float:
        return float(((1 - keep) * self.share).sum())


@torch.no_grad()
def edit_space(model: nn.Module, dataset: Dataset) -> EditSpace:
    """The readout of `model` over the dataset's pairs, split by class frequency (irrep, on a group)."""
    _, acts, to_logit, full = linear_readout(model, dataset.inputs)
    # float64 from here on: the search's gates, sizes and agreements are then the same, to far
    # inside BAND, whatever order a CPU sums in (AVX2 or AVX-512, any thread count)
    acts, to_logit, full = acts.double(), to_logit.double(), full.double()
    p = to_logit.shape[1]
    units = harmonics_of(dataset.task, p)  # mul/div: frequencies of the discrete-log index
    order = units.order
    basis, component = units.basis(torch.float64)
    projections = torch.zeros(units.n_units, p, p, dtype=torch.float64)
    for k in range(units.n_units):
        rows = basis[component == k]
        projections[k][order[:, None], order[None, :]] = rows.T @ rows
    outside = torch.ones(p, dtype=torch.bool)
    outside[order] = False
    projections[0][outside, outside] = 1.0  # a class outside the index (0 for mul) stays as it is
    parts = torch.einsum("uc,kcd->ukd", to_logit, projections)
    norm = parts.square().sum(-1)
    editable = torch.ones_like(norm, dtype=torch.bool)
    editable[:, 0] = False
    top2 = full.topk(2, dim=1).values
    margin = max(float((top2[:, 0] - top2[:, 1]).median()), 1e-6)
    return EditSpace(full - acts @ to_logit, acts, parts, norm / norm.sum(), editable, margin)


def teacher(model: nn.Module, dataset: Dataset) -> tuple[str, Float[Tensor, "pair p"]]:
    """(name, logits) of the label-free target. On a sum grid without per-neuron maps, the
    diagonal filter over *every* frequency: it keeps each function of a + b or a − b and drops
    only the cross terms where a memorised spike spreads, so it leaves out no frequency the
    rule might use (a key set can: k = 9 on nanda-noisy-59). Otherwise the model's label-free
    extraction (`filtration.label_free_logits`)."""
    if dataset.sum_grid and not family_of(model).has(model, Capability.NEURON_MAPS):
        every = list(range(1, dataset.p // 2 + 1))
        return "diagonal filter over every frequency", diagonal_filter_logits(model, dataset, every)
    return label_free_logits(model, dataset)


def teacher_loss(space: EditSpace, keep: Tensor, target: Tensor, rows: Tensor | None = None) -> Tensor:
    """How far the edited logits are from predicting the teacher's class `target` on the
    pairs `rows` (every pair when None; `hinge`)."""
    return loss_of(space, space.logits(keep, rows), target, rows)


def loss_of(space: EditSpace, out: Tensor, target: Tensor, rows: Tensor | None = None) -> Tensor:
    """`teacher_loss` from the edited logits `out` on the pairs `rows`, for callers that keep them."""
    return hinge(out, target if rows is None else target[rows], space.margin)


def search_batch(space: EditSpace) -> int | None:
    """How many pairs one step of the search reads: None (all of them) when the grid has at
    most SEARCH_LOGITS logits, else as many pairs as SEARCH_LOGITS holds. The batches are
    drawn by a fixed seed from the pairs alone, so they read no label either."""
    n, p = space.rest.shape
    return None if n * p <= SEARCH_LOGITS else SEARCH_LOGITS // p


def hinge(out: Float[Tensor, "... pair p"], target: Tensor, margin: float) -> Float[Tensor, "..."]:
    """The mean over pairs of max(0, LEAD − lead / δ): lead the target's logit minus the best
    other's (`leads`), δ = `margin`, the model's own median lead of its top class (so the loss is
    in no unit of logits and asks nothing of a pair whose target already wins by LEAD · δ)."""
    return F.relu(LEAD - leads(out, target) / margin).mean(-1)


def leads(out: Float[Tensor, "... pair p"], target: Tensor) -> Float[Tensor, "... pair"]:
    """Each pair's target logit minus its best other logit."""
    chosen = F.one_hot(target, out.shape[-1]).bool().expand_as(out)
    wanted = out.masked_select(chosen).view(out.shape[:-1])
    return wanted - out.masked_fill(chosen, -torch.inf).amax(-1)


# --- the methods --------------------------------------------------------------------------


def learned_masks(space: EditSpace, target: Tensor, whole_units: bool = False) -> list[tuple[float, Tensor]]:
    """(strength, keep) per strength of STRENGTHS: continuous sparsification towards the teacher,
    one gate per part (per unit, gating all its editable parts together, with `whole_units`).
    A part is removed where its gate ends below −BAND: a gate that ends inside the band is
    undecided and keeps its part, so no rounding of the gates' last digits decides an edit."""
    gate = torch.full((space.share.shape[0], 1) if whole_units else space.share.shape, GATE,
                      dtype=space.share.dtype, requires_grad=True)
    optimiser = torch.optim.Adam([gate], lr=MASK_LR)
    fixed = (~space.editable).to(space.share.dtype)
    batch, draw = search_batch(space), torch.Generator().manual_seed(0)
    out = []
    label = f"edit: {WHOLE_NEURONS if whole_units else LEARNED[0]}"
    for strength, steps in progress_bar(list(zip(STRENGTHS, MASK_STEPS)), label):
        for _ in range(steps):
            keep = torch.where(space.editable, torch.sigmoid(gate), fixed)
            rows = None if batch is None else torch.randperm(len(target), generator=draw)[:batch]
            loss = teacher_loss(space, keep, target, rows) + strength * ((1 - keep) * space.share).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():  # a gate never saturates, so the next strength can move it
                gate.clamp_(-GATE, GATE)
        keep = torch.where(space.editable & (gate < -BAND), 0.0, 1.0).to(fixed.dtype).detach()
        out.append((strength, polished(space, keep, target, strength, whole_units)))
    return out


def polished(space: EditSpace, keep: Tensor, target: Tensor, strength: float, whole_units: bool = False) -> Tensor:
    """`keep` after single removals that lower the objective the gates relax — the teacher loss
    plus `strength` × the removed share — scored exactly, the best first, until none does. The
    sigmoid's relaxation can stall where one whole removal pays but a partial one does not (a
    lookup neuron still kept at 5% of its push wins its pair)."""
    batch = search_batch(space)
    rows = None if batch is None else torch.randperm(len(target), generator=torch.Generator().manual_seed(0))[:batch]
    share = (space.share * space.editable).sum(1) if whole_units else space.share.flatten()
    for _ in range(POLISH_ROUNDS):
        removable = (keep * space.editable).sum(1) > 0 if whole_units else (space.editable & (keep > 0)).flatten()
        if not removable.any():
            return keep
        trial = keep.clone().requires_grad_(True)
        out = space.logits(trial, rows)
        (grad,) = torch.autograd.grad(loss_of(space, out, target, rows), trial)
        first_order = (grad * space.editable).sum(1) if whole_units else grad.flatten()
        gain = torch.where(removable, first_order - strength * share, -torch.inf)
        candidates = torch.topk(gain, min(CANDIDATES, int(removable.sum()))).indices
        change = (_removal_changes(space, keep, target, candidates, rows, whole_units, out.detach())
                  + strength * share[candidates])
        best = int(torch.argmin(change))  # the first of a tie: topk's order, the same on every CPU
        if not float(change[best]) < -1e-9:  # a real gain, not rounding
            return keep
        if whole_units:
            keep[candidates[best]] = (~space.editable[candidates[best]]).to(keep.dtype)
        else:
            keep.view(-1)[candidates[best]] = 0.0
    return keep


def greedy_masks(space: EditSpace, target: Tensor) -> list[tuple[float, Tensor]]:
    """(size, keep) at each of SIZES reached: each round takes the CANDIDATES parts with the
    largest first-order gain, scores each one's removal exactly, and removes the best (gain > 0)
    up to STEP_SHARE (or a tenth of what is removed, when larger). Stops when no candidate
    lowers the loss. On a grid larger than `search_batch`, the loss is over one random sample
    of that many pairs."""
    keep = torch.ones_like(space.share)
    batch = search_batch(space)
    rows = None if batch is None else torch.randperm(len(target), generator=torch.Generator().manual_seed(0))[:batch]
    out, removed = [], 0.0
    for size in progress_bar(list(SIZES), "edit: greedy"):
        while removed < size:
            trial = keep.clone().requires_grad_(True)
            base = space.logits(trial, rows)
            (grad,) = torch.autograd.grad(loss_of(space, base, target, rows), trial)
            # removing part j changes the loss by about grad_j · (0 − 1): the largest first
            gain = torch.where(space.editable & (keep > 0), grad, -torch.inf).flatten()
            candidates = torch.topk(gain, min(CANDIDATES, int(torch.isfinite(gain).sum()))).indices
            exact = -_removal_changes(space, keep, target, candidates, rows, base=base.detach())
            best = torch.argsort(exact, descending=True)
            chosen = candidates[best][exact[best] > 0]
            if not len(chosen):
                return out
            step = min(max(STEP_SHARE, removed / 10), size - removed)
            count = int((torch.cumsum(space.share.flatten()[chosen], 0) < step).sum()) + 1
            keep.view(-1)[chosen[:count]] = 0.0
            removed = space.removed_share(keep)
        out.append((size, keep.clone()))
    return out


@torch.no_grad()
def _removal_changes(space: EditSpace, keep: Tensor, target: Tensor, parts: Tensor,
                     rows: Tensor | None = None, whole_units: bool = False, base: Tensor | None = None) -> Tensor:
    """The exact change of the teacher loss (on the pairs `rows`; all when None) from removing
    each of `parts` (flat indices into [unit, freq]; unit indices, each unit's kept editable
    parts together, with `whole_units`) alone. Only pairs whose hinge can move are recomputed:
    a removal shifts a pair's lead by at most |activation| × the spread of the removed push, so
    a pair the unit does not fire on, or whose lead stays above LEAD · δ after that shift, keeps
    its hinge (zero or unchanged) and adds nothing to the change. `base`: `space.logits(keep,
    rows)` when the caller has it already."""
    acts, target = (space.acts, target) if rows is None else (space.acts[rows], target[rows])
    base = space.logits(keep, rows) if base is None else base
    lead = leads(base, target)
    before = F.relu(LEAD - lead / space.margin)
    wanted = base.gather(1, target[:, None]).squeeze(1)
    others = base.scatter(1, target[:, None], -torch.inf)  # once per call; each removal subtracts from it
    changes = torch.zeros(len(parts), dtype=base.dtype)
    # each candidate's push, its spread and its unit's activations (a row each), gathered at once
    if whole_units:
        units, pushes = parts, torch.stack([keep[u] * space.editable[u] @ space.parts[u] for u in parts.tolist()])
    else:
        units, pushes = parts // space.share.shape[1], space.parts.flatten(0, 1)[parts]
    spreads, fires = pushes.amax(1) - pushes.amin(1), acts[:, units].T.contiguous()
    for i, (push, fire) in enumerate(zip(pushes, fires)):
        moved = ((fire != 0) & (lead - fire.abs() * spreads[i] < LEAD * space.margin)).nonzero().flatten()
        fired = fire[moved]
        new = (wanted[moved] - fired * push[target[moved]]) - (others[moved] - fired[:, None] * push).amax(1)
        changes[i] = (F.relu(LEAD - new / space.margin) - before[moved]).sum() / len(base)
    return changes


def neuron_masks(space: EditSpace, ranking: list[int]) -> list[tuple[float, Tensor]]:
    """(size, keep) at each of SIZES: whole neurons removed in `ranking`'s order."""
    neuron_share = (space.share * space.editable).sum(1)
    cumulative = torch.cumsum(neuron_share[ranking], 0)
    out = []
    for size in SIZES:
        keep = torch.ones_like(space.share)
        count = min(int((cumulative < size).sum()) + 1, len(ranking))
        keep[ranking[:count]] = (~space.editable[ranking[:count]]).to(keep.dtype)
        out.append((size, keep))
    return out


def random_masks(space: EditSpace, seed: int) -> list[tuple[float, Tensor]]:
    """(size, keep) at each of SIZES: random parts removed."""
    editable = space.editable.flatten().nonzero().flatten()
    drawn = editable[torch.randperm(len(editable), generator=torch.Generator().manual_seed(seed))]
    cumulative = torch.cumsum(space.share.flatten()[drawn], 0)
    out = []
    for size in SIZES:
        keep = torch.ones_like(space.share)
        keep.view(-1)[drawn[: int((cumulative < size).sum()) + 1]] = 0.0
        out.append((size, keep))
    return out


def toward(model: nn.Module, target: nn.Module, t: float) -> nn.Module:
    """`model` with every neuron's u, v and w moved a share `t` of the way to `target`'s (same
    architecture): t = 1 is the target net, t = 0 the model."""
    maps, aims = neuron_uvw(model), neuron_uvw(target)
    return family_of(model).with_neuron_maps(model, *(x + t * (y - x) for x, y in zip(maps, aims)))


def shift_share(model: nn.Module, target: nn.Module) -> float:
    """‖target − model‖² / ‖model‖² over the neuron maps (u, v, w): the size of the whole move,
    so a move by t has size t² times this."""
    maps, aims = neuron_uvw(model), neuron_uvw(target)
    return float(sum((y.double() - x.double()).square().sum() for x, y in zip(maps, aims))
                 / sum(x.double().square().sum() for x in maps))


def random_move(model: nn.Module, target: nn.Module, t: float, seed: int) -> nn.Module:
    """`model` with each neuron's u, v and w moved as far as `toward(model, target, t)` moves
    them, each in a random direction (Gaussian, drawn with `seed`): the move's size and its spread
    over neurons and maps kept, its aim removed."""
    draw = torch.Generator().manual_seed(seed)
    moved = []
    for x, y in zip(neuron_uvw(model), neuron_uvw(target)):  # each [neuron, p]
        step = t * (y.double() - x.double())
        noise = torch.randn(x.shape, generator=draw, dtype=torch.float64)
        moved.append(x + (noise * step.norm(dim=1, keepdim=True) / noise.norm(dim=1, keepdim=True)).to(x.dtype))
    return family_of(model).with_neuron_maps(model, *moved)


@torch.no_grad()
def shifted_edits(model: nn.Module, target: nn.Module, dataset: Dataset, wanted: Tensor
                  ) -> list[tuple[float, Tensor]]:
    """(t, logits in float64) at each share of SHIFTS, then at the bisection of the step below
    the first share whose argmax agrees with `wanted` on AGREEMENT of the grid: the smallest
    such move to BISECT halvings. Scored in float64, so no CPU's summation order moves t."""
    def scored_at(t: float) -> Tensor:
        return logits(toward(model, target, t).double(), dataset.inputs.to(torch.long))

    def agrees(out: Tensor) -> bool:
        return int((out.argmax(1) == wanted).sum()) >= AGREEMENT * len(wanted)

    out = [(t, scored_at(t)) for t in progress_bar(list(SHIFTS), "edit: toward the teacher")]
    first = next((i for i, (_, o) in enumerate(out) if agrees(o)), None)
    if first is None:
        return out
    low, high = (0.0 if first == 0 else out[first - 1][0]), out[first][0]
    best = out[first]
    for _ in range(BISECT):
        mid = (low + high) / 2
        trial = scored_at(mid)
        if agrees(trial):
            high, best = mid, (mid, trial)
        else:
            low = mid
    return out + ([best] if best[0] != out[first][0] else [])


@torch.no_grad()
def flip_counts(space: EditSpace, teacher: Tensor) -> tuple[Tensor, Tensor, list[int]]:
    """Maini et al.'s count for every pair: the fewest readout neurons whose removal lets another
    class beat the model's prediction, taken by their push towards the prediction over it (−1
    when no number of them does); the other class is the teacher's where the teacher disputes
    the prediction, else the model's runner-up. Returns (disputed mask, counts, the neurons
    ranked by how many disputed pairs need them)."""
    out = space.logits(torch.ones_like(space.share))
    top2 = out.topk(2, dim=1).indices
    predicted, wanted = top2[:, 0], teacher.argmax(1)
    disputed = predicted != wanted
    rival = torch.where(disputed, wanted, top2[:, 1])
    to_logit = space.to_logit(torch.ones_like(space.share))
    rows = torch.arange(len(out))
    counts, needed = torch.empty(len(out), dtype=torch.long), torch.zeros(space.acts.shape[1])
    for chunk in torch.split(rows, 1024):  # [chunk, unit] at a time
        push = space.acts[chunk] * (to_logit[:, predicted[chunk]] - to_logit[:, rival[chunk]]).T
        lead = out[chunk, predicted[chunk]] - out[chunk, rival[chunk]]
        ranked, order = torch.sort(push, dim=1, descending=True)
        flipped = torch.cumsum(ranked, 1) > lead[:, None]
        counts[chunk] = torch.where(flipped.any(1), flipped.int().argmax(1) + 1, -1)
        for row, count, mine in zip(order, counts[chunk].tolist(), disputed[chunk].tolist()):
            if mine and count > 0:
                needed[row[:count]] += 1
    ranking = [int(u) for u in torch.argsort(needed, descending=True, stable=True)]
    return disputed, counts, ranking


# --- the result ---------------------------------------------------------------------------


@dataclass
class EditPoint:
    """One edit: its method, its parameter (a size, or the learned mask's strength), its size
    (removed share), how many parts and whole neurons it removes, its agreement with the
    teacher's argmax over the grid (label-free), and its scores (`interventions.scored`)."""

    method: str
    parameter: float
    size: float
    parts: int
    neurons: int
    agreement: float
    metrics: dict[str, float | None]


@dataclass(repr=False)
class EditSearch(Result):
    teacher: str  # the label-free extraction the search aims at
    baseline: dict[str, float | None]
    teacher_metrics: dict[str, float | None]
    points: list[EditPoint] = field(default_factory=list)
    chosen: int = -1  # index into points of the edit `interp edit` writes
    flips: dict[str, float | int | None] = field(default_factory=dict)
    exactness: float | None = None  # max |logits of the written model − closed form|
    keep: Tensor | None = None  # the chosen edit's mask [unit, freq] (None for a SHIFTED edit)
    unit: str = "frequency"  # what the class axis is split by: "frequency", or "irrep" on a group
    teacher_size: float | None = None  # the teacher net as an edit: its change's share of the neuron maps' squared norm

    @property
    def edit(self) -> EditPoint:
        return self.points[self.chosen]

    def curve(self, method: str) -> list[EditPoint]:
        return [pt for pt in self.points if pt.method == method]

    def random_near(self, size: float) -> tuple[float, dict[str, float | None]]:
        """(the control's size nearest `size`, the mean of its random edits' scores over seeds);
        an empty dict when there is no control. For a move toward the teacher, its random moves
        of the same size."""
        if self.edit.method == SHIFTED:
            return self.edit.size, _mean_metrics(self.curve(RANDOM_MOVE))
        at = nearest_size(size)
        return at, _mean_metrics([pt for pt in self.curve("random") if pt.parameter == at])

    def summary(self) -> str:
        from ..core.document import pct

        e, b = self.edit, self.baseline
        if e.method == SHIFTED:
            best = max((pt for pt in self.points if pt.method in LEARNED), key=lambda pt: pt.agreement)
            return (f"Moving every neuron's input and output weights {e.parameter:.1%} of the way to the {self.teacher} "
                    f"(a change of {e.size:.1%} of the neuron maps' squared norm; the {self.teacher} itself is "
                    f"{self.teacher_size:.1%}), chosen without labels as the smallest such move that agrees with it on "
                    f"{pct(e.agreement)} of the grid, since no edit of the readout alone does (the best agrees on "
                    f"{pct(best.agreement)}): memorised {pct(b['noisy_observed_acc'])} → "
                    f"{pct(e.metrics['noisy_observed_acc'])}, test {pct(b['test_acc'])} → {pct(e.metrics['test_acc'])}, "
                    f"clean {pct(b['clean_acc'])} → {pct(e.metrics['clean_acc'])}." + self._random_move_words())
        line = (f"Removing {e.size:.1%} of the readout's weight ({e.parts} class-{self.unit} parts of the output "
                f"weights, {e.neurons} neurons whole), chosen without labels as the smallest learned mask that "
                f"agrees with the {self.teacher} on {pct(e.agreement)} of the grid: memorised "
                f"{pct(b['noisy_observed_acc'])} → {pct(e.metrics['noisy_observed_acc'])}, test "
                f"{pct(b['test_acc'])} → {pct(e.metrics['test_acc'])}, clean {pct(b['clean_acc'])} → "
                f"{pct(e.metrics['clean_acc'])} (the {self.teacher} itself: memorised "
                f"{pct(self.teacher_metrics['noisy_observed_acc'])}, test {pct(self.teacher_metrics['test_acc'])}).")
        size, random = self.random_near(e.size)
        if random:
            line += (f" Random parts of about its size ({size:.1%}): memorised {pct(random['noisy_observed_acc'])}, "
                     f"test {pct(random['test_acc'])}.")
        f = self.flips
        if f.get("median_noisy") is not None:
            line += (f" Flip counts (Maini et al.): removing a median {f['median_noisy']} neurons flips a noisy "
                     f"training pair's prediction, {f['median_clean']} a clean one's.")
        return line

    def _random_move_words(self) -> str:
        from ..core.document import pct

        _, random = self.random_near(self.edit.size)
        if not random:
            return ""
        return (f" Random moves of the same size ({len(self.curve(RANDOM_MOVE))} directions): memorised "
                f"{pct(random['noisy_observed_acc'])}, test {pct(random['test_acc'])}.")

    def tables(self) -> list[Table]:
        from ..core.document import Table, pct

        header = ["method", "parameter", "size", "parts", "neurons", "agrees with teacher",
                  "clean", "memorised", "recovered", "test"]
        rows = [["model", "—", "0", "0", "0", "—", *(pct(self.baseline[k]) for k in ACCURACIES)],
                [self.teacher, "—", "—", "—", "—", "100%", *(pct(self.teacher_metrics[k]) for k in ACCURACIES)]]
        for i, pt in enumerate(self.points):
            rows.append([pt.method + (" (chosen)" if i == self.chosen else ""), f"{pt.parameter:g}", f"{pt.size:.1%}",
                         str(pt.parts), str(pt.neurons), pct(pt.agreement), *(pct(pt.metrics[k]) for k in ACCURACIES)])
        return [Table(header, rows)]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure
        from .plots import plot_edit_pareto

        return [Figure(plot_edit_pareto(self, Path(out_dir) / f"{stem}.png"),
                       "memorised and test accuracy against the size of the edit, for every method (random: "
                       "mean and range over seeds)")]

    def to_dict(self) -> dict:
        # a Z_p result serialises as it did before groups
        out = {k: v for k, v in asdict(self).items() if k != "keep" and (k != "unit" or v != "frequency")}
        return out


def _mean_metrics(points: list[EditPoint]) -> dict[str, float | None]:
    if not points:
        return {}
    return {k: None if points[0].metrics[k] is None else sum(pt.metrics[k] for pt in points) / len(points)
            for k in points[0].metrics}


def nearest_size(size: float) -> float:
    """The one of SIZES (where the random control is scored) closest to `size`."""
    return min(SIZES, key=lambda s: abs(s - size))


def _point(space: EditSpace, method: str, parameter: float, keep: Tensor, wanted: Tensor, dataset: Dataset) -> EditPoint:
    with torch.no_grad():
        out = space.logits(keep)
    removed = keep.eq(0) & space.editable
    whole = removed.sum(1) == space.editable.sum(1)
    return EditPoint(method, float(parameter), space.removed_share(keep), int(removed.sum()), int(whole.sum()),
                     int((out.argmax(1) == wanted).sum()) / len(wanted), scored(out, dataset))


def edited_model(model: nn.Module, space: EditSpace, keep: Tensor) -> nn.Module:
    """The model of the same architecture whose readout keeps the parts `keep` marks."""
    return family_of(model).with_unit_to_logit(model, space.to_logit(keep))


def edit_search(model: nn.Module, dataset: Dataset, with_labels: bool = True, comparisons: bool = False) -> EditSearch:
    """Every method's curve, the chosen edit, and the check that the written model computes it.
    `with_labels=False` leaves out the one method that reads labels (`localisation ranking`);
    `comparisons=True` adds the methods of COMPARISONS, which never change the chosen edit."""
    # read from a float64 forward: from float32 activations, another CPU's matrix kernels moved the
    # learned masks by a few parts and so the chosen edit (docs/results.md, "The same answer on every CPU")
    wide = in_float64(model)
    space = edit_space(wide, dataset)
    name, target = teacher(wide, dataset)
    wanted = target.argmax(1)
    full = space.logits(torch.ones_like(space.share))
    result = EditSearch(name, scored(full, dataset), scored(target, dataset),
                        unit=harmonics_of(dataset.task, full.shape[1]).kind)
    masks = {"learned mask": learned_masks(space, wanted)}
    if comparisons:
        masks[WHOLE_NEURONS] = learned_masks(space, wanted, whole_units=True)
        masks["greedy"] = greedy_masks(space, wanted)
    disputed, counts, ranking = flip_counts(space, target)
    masks["flip count"] = neuron_masks(space, ranking)
    if with_labels:
        from .localize import readout_scores, reference_margins

        gen, mem = readout_scores(model, dataset)
        if mem is not None:
            g, m = reference_margins(full, dataset)
            masks["localisation ranking"] = neuron_masks(space, torch.argsort(mem / m - gen / g, descending=True).tolist())
    for seed in RANDOM_SEEDS:
        masks.setdefault("random", []).extend(random_masks(space, seed))
    for method, curve in masks.items():
        result.points += [_point(space, method, parameter, keep, wanted, dataset) for parameter, keep in curve]
    extracted = label_free_model(model, dataset.task)
    if extracted is not None:  # both sides: the neurons moved toward the teacher net
        result.teacher_size = shift_share(model, extracted[1])
        result.points += [EditPoint(SHIFTED, t, t * t * result.teacher_size, 0, 0,
                                    int((out.argmax(1) == wanted).sum()) / len(wanted), scored(out, dataset))
                          for t, out in shifted_edits(model, extracted[1], dataset, wanted)]
        # the unit where the split sits inside neurons, as an edit beside the chosen one: f^G
        dominant = dominant_split(model, dataset.task)[0]
        with torch.no_grad():
            out = logits(dominant.double(), dataset.inputs)
        result.points.append(EditPoint(DOMINANT, 1.0, shift_share(model, dominant), 0, 0,
                                       int((out.argmax(1) == wanted).sum()) / len(wanted), scored(out, dataset)))
    result.chosen = choose(result.points)
    chosen = result.points[result.chosen]
    if chosen.method == SHIFTED:  # its control, after the choice (which it cannot change)
        for seed in RANDOM_SEEDS:  # parameter: the seed
            with torch.no_grad():
                out = logits(random_move(model, extracted[1], chosen.parameter, seed).double(), dataset.inputs)
            result.points.append(EditPoint(RANDOM_MOVE, float(seed), chosen.size, 0, 0,
                                           int((out.argmax(1) == wanted).sum()) / len(wanted), scored(out, dataset)))
    result.keep = None if chosen.method == SHIFTED else dict(masks[chosen.method])[chosen.parameter]
    flippable = counts > 0
    result.flips = {"disputed": int(disputed.sum()), "unflippable": int((~flippable).sum()),
                    "median_disputed": _median(counts[disputed & flippable])}
    if with_labels and dataset.noisy_mask.any():  # scoring the counts, afterwards, by the truth
        result.flips["median_noisy"] = _median(counts[dataset.noisy_mask & flippable])
        result.flips["median_clean"] = _median(counts[dataset.clean_mask & flippable])
    with torch.no_grad():
        written = logits(chosen_model(model, dataset, result, space), dataset.inputs).double()
        exact = (logits(toward(model, extracted[1], chosen.parameter).double(), dataset.inputs)
                 if chosen.method == SHIFTED else space.logits(result.keep))
        result.exactness = float((written - exact).abs().max())
    return result


def chosen_model(model: nn.Module, dataset: Dataset, search: EditSearch, space: EditSpace | None = None) -> nn.Module:
    """The model of the same architecture that computes `search`'s chosen edit (`space`: the
    model's `edit_space`, when the caller has it)."""
    if search.edit.method == SHIFTED:
        return toward(model, label_free_model(model, dataset.task)[1], search.edit.parameter)
    return edited_model(model, edit_space(model, dataset) if space is None else space, search.keep)


def choose(points: list[EditPoint]) -> int:
    """The index of the edit `interp edit` writes, by a rule that reads no label and no float's
    last digits: among the learned masks of the readout's parts, the smallest
    that agrees with the teacher on at least AGREEMENT of the grid; when none does, the smallest
    agreeing move of both sides toward the teacher's weights short of the teacher itself (SHIFTED,
    t < 1: an edit of the input side too, taken only where the output side alone cannot forget);
    when none agrees, the most agreeing of them all. Ties go to fewer parts removed, then to the first in `points`
    (strongest penalty first). Sizes are compared to 1e-9, so two edits of the
    same size are a tie, not a coin toss of summation order."""
    learned = [i for i, pt in enumerate(points) if pt.method in LEARNED]
    if not learned:
        raise ValueError("no learned mask to choose from")
    # the whole move (t = 1) is the teacher net itself, the extraction, not an edit smaller than it
    shifted = [i for i, pt in enumerate(points) if pt.method == SHIFTED and pt.parameter < 1]
    for pool in (learned, shifted):
        agreeing = [i for i in pool if points[i].agreement >= AGREEMENT]
        if agreeing:
            return min(agreeing, key=lambda i: (round(points[i].size, 9), points[i].parts, i))
    return min(learned + shifted, key=lambda i: (-points[i].agreement, round(points[i].size, 9), points[i].parts, i))


def provenance(search: EditSearch) -> dict:
    """What an edited run's config records of the edit (`training.derived.save_derived_run`)."""
    return {"teacher": search.teacher, "reads": READS, "edit": asdict(search.edit), "exactness": search.exactness}


def _median(values: Tensor) -> int | None:
    return int(values.median()) if len(values) else None


def _nothing_to_forget(run) -> str | None:
    return None if run.dataset.noisy_mask.any() else "no training label is wrong, so there is no memory to forget"


EDIT: Analysis[EditSearch] = register_analysis("edit", "The edit that forgets the noise", lambda run: edit_search(run.model, run.dataset),
                                              needs=(Capability.READOUT_MAP,), skip_reason=_nothing_to_forget, order=35,
                                              groups=True)
