"""Ablations through hook names: zero, mean and resample; batched single-unit scans; pruning.

A *unit* is an index along a hook's unit axis: the last axis for neuron hooks
(`hook_post`, `blocks.0.mlp.hook_post`, `hook_embed`…), the head axis for `attn.hook_z`
([batch, pos, head, d_head]). `ablated_logits` runs the hooked forward with units replaced;
`scan_units` and `pruning_curve` compute the same numbers for every unit or every prefix of a
ranking in batched form where the model makes that exact (units whose contribution to the logits
is linear: the two-layer net's hidden neurons, the last MLP layer's neurons of a transformer).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..core.metrics import DEFAULT_LOSS, aggregate_subsets, collect_rows, score_labels, subset_metrics
from ..core.runtime import EXP_FLOOR
from ..core.tasks import Dataset
from ..families.base import Capability, family_of, logits
from .readout import linear_readout
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure, Table
    from ..training.rundir import Run

MODES = ("zero", "mean", "resample")


def _replacement(acts: Tensor, units: Tensor, axis: int, mode: str, seed: int) -> Tensor:
    """Values that replace `acts` on `units`: 0, the mean over the batch, or the activations of
    randomly drawn other examples (resample)."""
    picked = acts.index_select(axis, units)
    if mode == "zero":
        return torch.zeros_like(picked)
    if mode == "mean":
        return picked.mean(0, keepdim=True).expand_as(picked)
    if mode == "resample":
        perm = torch.randperm(acts.shape[0], generator=torch.Generator().manual_seed(seed)).to(acts.device)
        return picked[perm]
    raise ValueError(f"unknown ablation mode {mode!r}; valid: {', '.join(MODES)}")


def ablation_hook(model: nn.Module, hook_name: str, units: list[int] | Tensor, mode: str = "zero", seed: int = 0):
    """(hook name, hook function) that replaces `units` of `hook_name` (see `_replacement`)."""
    units = torch.as_tensor(units, dtype=torch.long)
    axis = family_of(model).unit_axis(model, hook_name)

    def hook(acts: Tensor, hook) -> Tensor:
        acts = acts.clone()
        acts.index_copy_(axis, units.to(acts.device), _replacement(acts, units.to(acts.device), axis, mode, seed))
        return acts

    return hook_name, hook


@torch.no_grad()
def ablated_logits(
    model: nn.Module,
    inputs: Int[Tensor, "batch 2"],
    hook_name: str,
    units: list[int] | Tensor,
    mode: str = "zero",
    seed: int = 0,
) -> Float[Tensor, "batch p"]:
    """Mod-p logits with `units` of `hook_name` ablated (mean and resample draw from `inputs`)."""
    return ablated_logits_at(model, inputs, {hook_name: units}, mode, seed)


@torch.no_grad()
def ablated_logits_at(model: nn.Module, inputs: Int[Tensor, "batch 2"], units: dict[str, list[int] | Tensor],
                      mode: str = "zero", seed: int = 0) -> Float[Tensor, "batch p"]:
    """Mod-p logits with the units of several hooks ablated in one forward (e.g. heads of
    several layers): `units` maps each hook name to its units."""
    hooks = [ablation_hook(model, name, u, mode, seed) for name, u in units.items() if len(u)]
    return family_of(model).forward(model, inputs, fwd_hooks=hooks)


# --- batched scans -----------------------------------------------------------------------




@dataclass
class UnitScan:
    """Metrics after ablating each unit alone. `metrics[name][i]` is subset metric `name`
    (e.g. `test_acc`) with unit i ablated; `baseline[name]` is the unablated value."""

    hook_name: str
    mode: str
    baseline: dict[str, float | None]
    metrics: dict[str, list[float | None]]

    def effect(self, name: str) -> Tensor:
        """Change of metric `name` caused by ablating each unit (ablated − baseline)."""
        return torch.tensor(self.metrics[name], dtype=torch.float64) - self.baseline[name]

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def scan_units(model: nn.Module, dataset: Dataset, mode: str = "zero", loss: str = DEFAULT_LOSS,
               seed: int = 0, chunk: int = 8) -> UnitScan:
    """Ablate every neuron of the model's linear-readout layer alone, all in batched form:
    the logits with unit m replaced are logits + (replacement_m − act_m) ⊗ to_logit_m."""
    name, acts, to_logit, full = linear_readout(model, dataset.inputs)
    all_units = torch.arange(acts.shape[1], device=acts.device)
    delta = (_replacement(acts, all_units, -1, mode, seed) - acts).T.contiguous()  # [unit, batch]
    # Shifting each pair's logits by a constant changes no score. Shifted by the unablated
    # maximum, ablated logits stay within ±bound of [-spread, 0]; if that is inside exp's
    # normal range, scoring can exp them as they are (metrics._per_example's exp_ready).
    bound = (full.amax(-1) - full.amin(-1)).max() + (to_logit.abs().amax(1) * delta.abs().amax(1)).max()
    exp_ready = loss == "ce" and bool(bound < -EXP_FLOOR)
    # classes before pairs: every reduction over the classes then runs along contiguous memory
    full_t = (full - full.amax(-1, keepdim=True) if exp_ready else full).T.contiguous()
    parts = []
    for start in range(0, acts.shape[1], chunk):
        units = all_units[start : start + chunk]
        # full + to_logit_m ⊗ delta_m for each unit m, as a broadcast multiply-add
        batched = torch.addcmul(full_t, to_logit[units][:, :, None], delta[units][:, None, :])
        parts.append(score_labels(batched, dataset, loss, class_dim=-2, exp_ready=exp_ready))
    scored = {label: tuple(torch.cat([part[label][i] for part in parts]) for i in range(2)) for label in parts[0]}
    metrics = {k: [None] * acts.shape[1] if v is None else v.tolist()
               for k, v in aggregate_subsets(scored, dataset).items()}
    return UnitScan(name, mode, subset_metrics(full, dataset, loss), metrics)


@torch.no_grad()
def scan_units_hooked(model: nn.Module, dataset: Dataset, hook_name: str, n_units: int,
                      mode: str = "zero", loss: str = DEFAULT_LOSS, seed: int = 0) -> UnitScan:
    """The same scan, one hooked forward pass per unit: any hook (e.g. attention heads)."""
    rows = [subset_metrics(ablated_logits(model, dataset.inputs, hook_name, [u], mode, seed), dataset, loss)
            for u in range(n_units)]
    return UnitScan(hook_name, mode, subset_metrics(logits(model, dataset.inputs), dataset, loss), collect_rows(rows))


@dataclass
class PruningCurve:
    """Metrics as units are removed in `order` (first = removed first). `fractions[j]` of the
    units removed gives `metrics[name][j]`."""

    label: str
    mode: str
    fractions: list[float]
    metrics: dict[str, list[float | None]]
    order: list[int]

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def pruning_curve(model: nn.Module, dataset: Dataset, order: Tensor | list[int], label: str = "",
                  fractions: list[float] | None = None, mode: str = "zero", loss: str = DEFAULT_LOSS,
                  seed: int = 0) -> PruningCurve:
    """Ablate the first ⌈f·n⌉ units of `order` for each fraction f (exact, batched)."""
    _, acts, to_logit, full = linear_readout(model, dataset.inputs)
    order = torch.as_tensor(order, dtype=torch.long)
    n = acts.shape[1]
    fractions = fractions if fractions is not None else [i / 20 for i in range(21)]
    # units in removal order, gathered once: each fraction then reads a prefix of columns
    delta = (_replacement(acts, torch.arange(n), -1, mode, seed) - acts)[:, order]
    to_logit = to_logit[order]
    rows = []
    for f in fractions:
        removed = round(f * n)
        out = full + delta[:, :removed] @ to_logit[:removed]
        rows.append(subset_metrics(out, dataset, loss))
    return PruningCurve(label, mode, list(fractions), collect_rows(rows), order.tolist())


@dataclass(repr=False)
class AblationReport(Result):
    """Single-unit scans (readout neurons; heads where the family has them) and pruning curves
    in several orders, with random orders over several seeds as the control."""

    scans: dict[str, UnitScan]
    curves: list[PruningCurve]

    def to_dict(self) -> dict:
        return {"scans": {k: v.to_dict() for k, v in self.scans.items()},
                "curves": [c.to_dict() for c in self.curves]}

    def tables(self) -> list[Table]:
        from ..core.document import Table, pct

        rows = []
        for curve in self.curves:
            at = {f: i for i, f in enumerate(curve.fractions)}
            cells = [curve.label]
            for f in (0.3, 0.6):
                i = at.get(f)
                cells += ["—", "—"] if i is None else [pct(curve.metrics["test_acc"][i]),
                                                       pct(curve.metrics["noisy_observed_acc"][i])]
            rows.append(cells)
        return [Table(["order", "30% removed: test", "30%: memorised", "60% removed: test", "60%: memorised"], rows)]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure
        from .plots import plot_pruning

        return [Figure(plot_pruning(self.curves, Path(out_dir) / f"{stem}.png"),
                       "accuracy per subset as units are removed in each order")]


def ablation_report(run: Run, seeds: tuple[int, ...] = (0, 1, 2)) -> AblationReport:
    from .neurons import neuron_scores

    model, ds = run.model, run.dataset
    loss = run.spec.train.loss
    scans = {"neurons": scan_units(model, ds, loss=loss)}
    family = family_of(model)
    for name, n_heads in (family.head_hooks(model).items() if family.has(model, Capability.HEADS) else ()):
        scans[name] = scan_units_hooked(model, ds, name, n_heads, loss=loss)
    scores = neuron_scores(model, ds, loss=loss)
    n = len(next(iter(scores.values())))
    orders = {}
    for score, values in scores.items():
        orders[f"{score} ascending"] = torch.argsort(values)
        orders[f"{score} descending"] = torch.argsort(values, descending=True)
    for seed in seeds:
        orders[f"random (seed {seed})"] = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    curves = [pruning_curve(model, ds, order, label, loss=loss) for label, order in orders.items()]
    return AblationReport(scans, curves)


ABLATION: Analysis[AblationReport] = register_analysis("ablation", "Pruning", ablation_report, order=60)
