"""Ablations through hook names: zero, mean and resample; batched single-unit scans; pruning.

A *unit* is an index along a hook's unit axis (`ModelFamily.unit_axis`): the last axis for
neuron hooks (`hook_post`, `blocks.0.mlp.hook_post`, `hook_embed`…), the head axis at every head
hook (`attn.hook_q`, `hook_k`, `hook_v`, `hook_z` [batch, pos, head, d_head]; `hook_pattern`
[batch, head, query, key]), so a unit there is one whole head. `ablated_logits` runs the hooked
forward with units replaced; `scan_units` and `pruning_curve` compute the same numbers for every
unit or every prefix of a ranking in batched form where the model makes that exact (units whose
contribution to the logits is linear: the two-layer net's hidden neurons, the last MLP layer's
neurons of a transformer).

Every scan scores each ablation on the four subsets and in the two margins of
`readout.margins` — the mean true-label margin on the test pairs and the mean observed − true
margin on the noisy pairs, in logits — so a unit's *cost* (`UnitScan.margin_costs`) is in the
unit the localisation labels in (`interp.analysis.localize`, whose head rows are these costs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..core.metrics import DEFAULT_LOSS, aggregate_subsets, collect_rows, score_labels, subset_metrics
from ..core.runtime import EXP_FLOOR
from ..core.tasks import Dataset
from ..families.base import Capability, family_of, heads, logits
from .plots import SUBSET_COLORS, SUBSET_LABELS, _save, _subplots
from .readout import linear_readout, margins, push_scores
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
    (e.g. `test_acc`) with unit i ablated; `baseline[name]` is the unablated value.
    `margins["test"][i]`, `margins["memorised"][i]`: the two `readout.margins` with unit i
    ablated (memorised None on a clean run), `margin_baseline` the unablated ones."""

    hook_name: str
    mode: str
    baseline: dict[str, float | None]
    metrics: dict[str, list[float | None]]
    margin_baseline: dict[str, float | None] = field(default_factory=dict)
    margins: dict[str, list[float] | None] = field(default_factory=dict)

    def effect(self, name: str) -> Tensor:
        """Change of metric `name` caused by ablating each unit (ablated − baseline)."""
        return torch.tensor(self.metrics[name], dtype=torch.float64) - self.baseline[name]

    def margin_costs(self) -> tuple[Tensor, Tensor | None]:
        """(gen, mem) [unit]: what ablating each unit costs the test margin and the memorised
        margin, in logits (baseline − ablated; None on a clean run)."""
        def cost(name: str) -> Tensor | None:
            values = self.margins.get(name)
            return None if values is None else self.margin_baseline[name] - torch.tensor(values, dtype=torch.float64)

        return cost("test"), cost("memorised")

    def to_dict(self) -> dict:
        return asdict(self)


def _margin_rows(full: Tensor, ablated: list[Tensor], dataset: Dataset
                 ) -> tuple[dict[str, float | None], dict[str, list[float] | None]]:
    """(`margin_baseline`, `margins`) of a `UnitScan` from the unablated and ablated logits."""
    gen, mem = margins(full, dataset)
    rows = [margins(out, dataset) for out in ablated]
    return ({"test": gen, "memorised": mem},
            {"test": [g for g, _ in rows], "memorised": None if mem is None else [m for _, m in rows]})


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
    # the margins are linear in the logits: ablating unit m moves them by its push of delta_m
    gen, mem = margins(full, dataset)
    moved_gen, moved_mem = push_scores(delta.T, to_logit, dataset)
    return UnitScan(name, mode, subset_metrics(full, dataset, loss), metrics, {"test": gen, "memorised": mem},
                    {"test": (gen + moved_gen).tolist(), "memorised": None if mem is None else (mem + moved_mem).tolist()})


@torch.no_grad()
def scan_units_hooked(model: nn.Module, dataset: Dataset, hook_name: str, n_units: int,
                      mode: str = "zero", loss: str = DEFAULT_LOSS, seed: int = 0) -> UnitScan:
    """The same scan, one hooked forward pass per unit: any hook (e.g. attention heads)."""
    full = logits(model, dataset.inputs)
    ablated = [ablated_logits(model, dataset.inputs, hook_name, [u], mode, seed) for u in range(n_units)]
    rows = [subset_metrics(out, dataset, loss) for out in ablated]
    return UnitScan(hook_name, mode, subset_metrics(full, dataset, loss), collect_rows(rows),
                    *_margin_rows(full, ablated, dataset))


@torch.no_grad()
def scan_heads(model: nn.Module, dataset: Dataset, mode: str = "zero", loss: str = DEFAULT_LOSS,
               seed: int = 0) -> dict[str, UnitScan]:
    """`scan_units_hooked` at each attention layer's head hook (`head_hooks`): one scan per
    layer, unit h being head h (named by `families.base.heads`)."""
    family = family_of(model)
    return {hook: scan_units_hooked(model, dataset, hook, n, mode, loss, seed)
            for hook, n in family.head_hooks(model).items()}


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
        # from scratch for each fraction: adding only the newly removed units accumulates float32
        # rounding, which decides ties where the remaining logits cancel (a planted net at f ≥ 0.93)
        out = full + delta[:, :removed] @ to_logit[:removed]
        rows.append(subset_metrics(out, dataset, loss))
    return PruningCurve(label, mode, list(fractions), collect_rows(rows), order.tolist())


@dataclass(repr=False)
class AblationReport(Result):
    """Single-unit scans (readout neurons; heads where the family has them) and pruning curves
    in several orders, with random orders over several seeds as the control. `heads` names each
    head scan's units (hook → head names, `families.base.heads`)."""

    scans: dict[str, UnitScan]
    curves: list[PruningCurve]
    heads: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"scans": {k: v.to_dict() for k, v in self.scans.items()},
                "curves": [c.to_dict() for c in self.curves], "heads": self.heads}

    def head_costs(self) -> list[dict]:
        """One row per head: its name, what zero-ablating it alone costs the test margin (`gen`)
        and the memorised margin (`mem`, None on a clean run) in logits, and the test and
        memorised accuracies with it ablated."""
        rows = []
        for hook, names in self.heads.items():
            scan = self.scans[hook]
            gen, mem = scan.margin_costs()
            for h, name in enumerate(names):
                rows.append({"head": name, "gen": float(gen[h]), "mem": None if mem is None else float(mem[h]),
                             "test_acc": scan.metrics["test_acc"][h],
                             "noisy_observed_acc": scan.metrics["noisy_observed_acc"][h]})
        return rows

    def summary(self) -> str:
        from ..core.document import pct

        neurons = self.scans.get("neurons")
        scan = neurons or next(iter(self.scans.values()))
        base, margin0 = scan.baseline, scan.margin_baseline
        noisy = margin0.get("memorised") is not None
        line = (f"Each unit zero-ablated alone, its cost in logits of margin (the localisation's unit: the model's test "
                f"margin is {margin0['test']:.3g}" + (f", its memorised (observed − true) margin {margin0['memorised']:.3g}"
                                                     if noisy else "") + ").")
        if neurons is not None:
            gen, mem = neurons.margin_costs()
            g = int(gen.argmax())
            line += (f" The readout neuron the test margin needs most is {g} (cost {float(gen[g]):.3g}; test accuracy "
                     f"{pct(base['test_acc'])} → {pct(neurons.metrics['test_acc'][g])})")
            if mem is not None:
                m = int(mem.argmax())
                line += (f"; the memorised margin, {m} (cost {float(mem[m]):.3g}; memorised "
                         f"{pct(base['noisy_observed_acc'])} → {pct(neurons.metrics['noisy_observed_acc'][m])})"
                         if mem[m] > 0 else "; no neuron's ablation lowers the memorised margin")
            line += "."
        rows = self.head_costs()
        if rows:
            most, least = max(rows, key=lambda r: r["gen"]), min(rows, key=lambda r: r["gen"])
            line += (f" Of the {len(rows)} heads, the test margin needs {most['head']} most (cost {most['gen']:.3g}; test "
                     f"accuracy → {pct(most['test_acc'])}) and {least['head']} least ({least['gen']:.3g})")
            if noisy:
                mem_most = max(rows, key=lambda r: r["mem"])
                line += (f"; the memorised margin needs {mem_most['head']} most (cost {mem_most['mem']:.3g}; memorised "
                         f"→ {pct(mem_most['noisy_observed_acc'])})" if mem_most["mem"] > 0 else
                         f"; ablating any head raises the memorised margin (least: {mem_most['head']}, "
                         f"{-mem_most['mem']:.3g})")
            line += "."
        at = [c for c in self.curves if 0.3 in c.fractions]
        ordered = [c for c in at if not c.label.startswith("random")]
        randoms = [c for c in at if c.label.startswith("random")]
        if ordered and randoms:
            def value(c: PruningCurve, name: str) -> float | None:
                return c.metrics[name][c.fractions.index(0.3)]

            best = max(ordered, key=lambda c: value(c, "test_acc"))
            mean = {name: (None if any(value(c, name) is None for c in randoms)
                           else sum(value(c, name) for c in randoms) / len(randoms))
                    for name in ("test_acc", "noisy_observed_acc")}
            line += (f" With 30% of the readout neurons removed, of the score orders the one that keeps test accuracy best "
                     f"({best.label}) "
                     f"leaves test {pct(value(best, 'test_acc'))}" +
                     (f", memorised {pct(value(best, 'noisy_observed_acc'))}" if noisy else "") +
                     f"; random orders (mean of {len(randoms)}) test {pct(mean['test_acc'])}" +
                     (f", memorised {pct(mean['noisy_observed_acc'])}" if noisy else "") + ".")
        return line

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
        out = [Table(["order", "30% removed: test", "30%: memorised", "60% removed: test", "60%: memorised"], rows,
                     caption="readout neurons removed in each order (zero ablation)")]
        heads = self.head_costs()
        if heads:
            base = self.scans[next(iter(self.heads))]
            out.append(Table(
                ["head", "test margin cost", "memorised margin cost", "test accuracy", "memorised accuracy"],
                [["(none ablated)", "—", "—", pct(base.baseline["test_acc"]), pct(base.baseline["noisy_observed_acc"])]] +
                [[r["head"], f"{r['gen']:.3g}", "—" if r["mem"] is None else f"{r['mem']:.3g}", pct(r["test_acc"]),
                  pct(r["noisy_observed_acc"])] for r in heads],
                caption="each head zero-ablated alone: what it costs the test margin and the memorised (observed − true) "
                        "margin, in logits — the localisation's head scores — and the accuracies left"))
        return out

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        out = [Figure(plot_pruning(self.curves, Path(out_dir) / f"{stem}.png"),
                      "accuracy per subset as units are removed in each order")]
        if self.heads:
            out.append(Figure(plot_head_scan(self.head_costs(), Path(out_dir) / f"{stem}_heads.png"),
                              "what zero-ablating each head alone costs the test and the memorised margin"))
        return out


def ablation_report(run: Run, seeds: tuple[int, ...] = (0, 1, 2)) -> AblationReport:
    from .neurons import neuron_scores

    model, ds = run.model, run.dataset
    loss = run.spec.train.loss
    scans = {"neurons": scan_units(model, ds, loss=loss)}
    names: dict[str, list[str]] = {}
    if family_of(model).has(model, Capability.HEADS):
        scans.update(scan_heads(model, ds, loss=loss))
        for hook, _, name in heads(model):
            names.setdefault(hook, []).append(name)
    scores = neuron_scores(model, ds, loss=loss)
    n = len(next(iter(scores.values())))
    orders = {}
    for score, values in scores.items():
        orders[f"{score} ascending"] = torch.argsort(values)
        orders[f"{score} descending"] = torch.argsort(values, descending=True)
    for seed in seeds:
        orders[f"random (seed {seed})"] = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    curves = [pruning_curve(model, ds, order, label, loss=loss) for label, order in orders.items()]
    return AblationReport(scans, curves, names)


ABLATION: Analysis[AblationReport] = register_analysis("ablation", "Pruning", ablation_report, order=60, groups=True)


# --- figures ------------------------------------------------------------------------------


def plot_pruning(curves, path: Path) -> Path:
    """Test and memorised accuracy as units are removed, one line per order."""
    fig, axes = _subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, (key, title) in zip(axes, [("test_acc", "test"), ("noisy_observed_acc", SUBSET_LABELS["noisy_observed"])]):
        for i, curve in enumerate(curves):
            random = curve.label.startswith("random")
            ax.plot(curve.fractions, [v if v is not None else float("nan") for v in curve.metrics[key]],
                    color="#999999" if random else f"C{i}", lw=1 if random else 2,
                    label=None if random and not curve.label.endswith("0)") else
                    ("random order (each seed)" if random else curve.label))
        ax.set(xlabel="fraction of neurons removed", title=title, ylim=(-0.02, 1.02))
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=7)
    return _save(fig, path)


def plot_head_scan(rows: list[dict], path: Path) -> Path:
    """Per head, what ablating it alone costs the test margin and the memorised margin (rows of
    `AblationReport.head_costs`)."""
    fig, ax = _subplots(figsize=(max(5, 1.2 * len(rows) + 2), 4))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["gen"] for r in rows], 0.4, color=SUBSET_COLORS["test"], label="test margin")
    if any(r["mem"] is not None for r in rows):
        ax.bar([i + 0.2 for i in x], [r["mem"] or 0.0 for r in rows], 0.4, color=SUBSET_COLORS["noisy_observed"],
               label="memorised (observed − true) margin")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xticks(list(x), [r["head"] for r in rows])
    ax.set(xlabel="head ablated (zero)", ylabel="margin lost (logits)", title="head scan")
    ax.legend(fontsize=7)
    return _save(fig, path)
