"""Activation patching: which component, at which position, carries the rule and which the memory.

`rule_memory_patching(model, dataset)` (the registered `patching` analysis) patches one head
or one neuron cluster at a time between pairs chosen so that the rule and the memory come apart,
and scores each patch in the two margins of `readout.margins` (logits; the localisation's unit):
- memory: into each noisy training pair, the activation of a clean pair with the *same true
  label* (a test pair where one exists, else a clean training pair; `label_sources`). The rule
  gives both pairs the same answer, so what the patch takes from the memorised margin (mean
  observed − true margin of the noisy pairs) is what the component held of that pair's memory.
- rule: into each test pair, the activation of a clean pair with *another true label*. What the
  patch takes from the test margin (mean true-label margin) is what the component carries of
  the rule for that pair.
Components, each patched alone: `head output` (a head's output at the predicting position,
`hook_z`), `head input` (what a head reads from one position: its values there, the attention
pattern kept), `neuron cluster` (a frequency cluster of readout neurons, `spectra.neuron_clusters`,
full-grid add/sub tasks), and `path` (path patching head → neuron cluster → logits: the head's
output patched, and only the change it causes in that cluster's activations passed on to the
logits — the readout is linear, so this is exact).

`patch_sweep(target, dataset, source_model=None, source_pairs=None)` runs `target` on the
dataset's pairs with one activation replaced at a time — at every hook of `hooks` (default: the
family's `patch_hooks`, in the order information flows) and every position — by the activation the source computes: the same model on other inputs (across
inputs: by default each pair with its b replaced by another residue, drawn with `seed`), or
another model of the same shapes on the same pairs (across models, e.g. a grokked clean model's
activations patched into a noisy one). Each patched forward is scored on the four subsets.
Corrupting b changes the rule's answer and the memory's at once, so this sweep says where
information flows, not which of the two it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..core.metrics import DEFAULT_LOSS, subset_metrics
from ..core.runtime import progress_bar
from ..core.tasks import SUBSET_TABLE, SUBSETS, Dataset
from ..families.base import Capability, family_of
from .plots import SUBSET_COLORS, SUBSET_LABELS, _save, _subplots
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure, Table
    from ..training.rundir import Run

@dataclass(repr=False)
class PatchSweep(Result):
    source: str
    positions: list[int]
    baseline: dict[str, float | None]  # subset accuracy of the unpatched target
    metrics: dict[str, dict[int, dict[str, float | None]]]  # hook -> position -> subset metrics

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "positions": self.positions, "baseline": self.baseline,
                "metrics": {h: {str(p): m for p, m in rows.items()} for h, rows in self.metrics.items()}}

    def summary(self) -> str:
        drops = {(h, p): self.baseline["test_acc"] - m["test_acc"] for h, rows in self.metrics.items()
                 for p, m in rows.items()}
        (hook, pos), drop = max(drops.items(), key=lambda x: x[1])
        return (f"Patched from {self.source}: the largest fall of test accuracy, {drop:.1%}, comes from "
                f"`{hook}` at position {pos} (unpatched test accuracy {self.baseline['test_acc']:.1%}).")

    def tables(self) -> list[Table]:
        from ..core.document import Table, pct

        subsets = ["clean_acc", "noisy_observed_acc", "noisy_true_acc", "test_acc"]
        rows = [[hook, str(pos), *(pct(m[s]) for s in subsets)] for hook, by_pos in self.metrics.items()
                for pos, m in by_pos.items()]
        rows.insert(0, ["(unpatched)", "—", *(pct(self.baseline[s]) for s in subsets)])
        return [Table(["hook", "position", "clean", "noisy vs observed", "noisy vs true", "test"], rows,
                      caption=f"accuracy with one activation patched from {self.source}")]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        return [Figure(plot_patching(self, Path(out_dir) / f"{stem}.png"),
                       f"accuracy per subset with one activation patched from {self.source}")]


def corrupted_pairs(pairs: Tensor, p: int, seed: int = 0) -> Tensor:
    """Each pair with its b replaced by a different residue drawn with `seed`."""
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, p, (len(pairs),), generator=gen)
    return torch.stack([pairs[:, 0], (pairs[:, 1] + shift) % p], 1)


@torch.no_grad()
def patch_sweep(target: nn.Module, dataset: Dataset, source_model: nn.Module | None = None,
                source_pairs: Tensor | None = None, hooks: tuple[str, ...] | None = None,
                loss: str = DEFAULT_LOSS, seed: int = 0) -> PatchSweep:
    """Patch every (hook, position) of `target` from the source (see module docstring)."""
    family = family_of(target)
    hooks = tuple(hooks or family.patch_hooks(target))
    pairs = dataset.inputs
    if source_model is None:
        source_model = target
        source_pairs = corrupted_pairs(pairs, dataset.p, seed) if source_pairs is None else source_pairs
        source = "the same model with each pair's b replaced by another residue"
    else:
        source_pairs = pairs if source_pairs is None else source_pairs
        source = "another model on the same pairs"
    cache = family_of(source_model).all_positions(source_model, source_pairs, hooks)
    positions = list(range(family.n_positions(target)))
    metrics: dict[str, dict[int, dict[str, float | None]]] = {}
    for hook in progress_bar([h for h in hooks if h in cache], "patching"):
        for pos in positions:
            def patch(acts: Tensor, hook=None, name=hook, pos=pos) -> Tensor:
                acts = acts.clone()
                acts[:, pos] = cache[name][:, pos].to(acts.device)
                return acts

            out = family.forward(target, pairs, fwd_hooks=[(hook, patch)])
            metrics.setdefault(hook, {})[pos] = subset_metrics(out, dataset, loss)
    baseline = subset_metrics(family.forward(target, pairs), dataset, loss)
    return PatchSweep(source, positions, baseline, metrics)


def label_sources(dataset: Dataset, targets: Tensor, same: bool, seed: int = 0, chunk: int = 1024) -> Tensor:
    """For each target pair (indices into the dataset), a clean pair — not noisy, not itself —
    whose true label is the same as the target's (`same`) or differs from it: a test pair where
    one exists, else a clean training pair, drawn with `seed`; −1 where there is none."""
    gen = torch.Generator().manual_seed(seed)
    n = len(dataset.true_labels)
    prefer = dataset.test_mask.double().cpu() * 2  # a test pair beats any training pair
    allowed = ~dataset.noisy_mask.cpu()
    true = dataset.true_labels.cpu()
    out = []
    for block in targets.cpu().split(chunk):
        score = torch.rand(len(block), n, generator=gen, dtype=torch.float64).add_(prefer)  # in place: 100 MB a block
        match = true[None, :] == true[block][:, None]
        ok = allowed[None, :] & (match if same else ~match) & (torch.arange(n)[None, :] != block[:, None])
        best = score.masked_fill_(~ok, -1.0).max(1)
        out.append(torch.where(best.values >= 0, best.indices, torch.full_like(best.indices, -1)))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


@dataclass(repr=False)
class RuleMemoryPatching(Result):
    """Each component patched alone (see module docstring). `rows`: kind, index (head or
    cluster name, `L0H1 → k=3` for a path), position (patched position, None for a cluster),
    `memory` (memorised margin lost, logits; None on a clean run), `rule` (test margin lost),
    and the accuracies left (`memorised_acc` on the noisy pairs' observed labels, `test_acc`).
    `baseline`: the unpatched margins and accuracies; `pairs`: how many pairs each side patched."""

    baseline: dict[str, float | None]
    rows: list[dict]
    pairs: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "rows": self.rows, "pairs": self.pairs}

    def top(self, kind: str, score: str) -> dict | None:
        """The row of `kind` whose patch takes most from `score` (`rule` or `memory`)."""
        rows = [r for r in self.rows if r["kind"] == kind and r[score] is not None]
        return max(rows, key=lambda r: r[score]) if rows else None

    def summary(self) -> str:
        def at(row: dict) -> str:
            where = "" if row["position"] is None or row["kind"] != "head input" else f" at position {row['position']}"
            return f"{row['index']}{where}"

        b = self.baseline
        parts = []
        for score, margin, what in (("memory", "memorised_margin", "memorised margin"), ("rule", "test_margin", "test margin")):
            if b[margin] is None:
                continue
            named = [f"{kind} {at(row)} ({row[score]:.3g})" for kind in ("head output", "head input", "neuron cluster", "path")
                     if (row := self.top(kind, score)) is not None and row[score] > 0]
            parts.append(f"the {what} ({b[margin]:.3g}) loses most by patching " + ", ".join(named) if named else
                         f"no patch lowers the {what} ({b[margin]:.3g})")
        if not parts:
            return "No pair could be patched (the run has neither test pairs nor noisy pairs with a clean partner)."
        line = ("Patching one component at a time, into each noisy training pair from a clean pair with the same true "
                f"label ({self.pairs['memory']} pairs: the memory) and into each test pair from a pair with another "
                f"true label ({self.pairs['rule']} pairs: the rule), in logits of margin: " + "; ".join(parts) + ".")
        return line

    def tables(self) -> list[Table]:
        from ..core.document import Table, pct

        def cell(value: float | None) -> str:
            return "—" if value is None else f"{value:.3g}"

        b = self.baseline
        rows = [["(unpatched)", "—", "—", cell(b["memorised_margin"]), cell(b["test_margin"]), pct(b["memorised_acc"]),
                 pct(b["test_acc"])]]
        rows += [[r["kind"], r["index"], "—" if r["position"] is None else str(r["position"]), cell(r["memory"]),
                  cell(r["rule"]), pct(r["memorised_acc"]), pct(r["test_acc"])] for r in self.rows]
        return [Table(["kind", "component", "position", "memorised margin lost", "test margin lost", "memorised",
                       "test"], rows,
                      caption="each component patched alone: into the noisy pairs from clean pairs with the same true "
                              "label (memory), into the test pairs from pairs with another true label (rule); margins "
                              "in logits (the unpatched row gives the margins themselves)")]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        return [Figure(plot_rule_memory_patching(self, Path(out_dir) / f"{stem}.png"),
                       "what patching each component takes from the memorised margin and from the test margin")]


@torch.no_grad()
def rule_memory_patching(model: nn.Module, dataset: Dataset, seed: int = 0) -> RuleMemoryPatching:
    """Patch every head (output; input at every position), neuron cluster and head → cluster path
    between rule-preserving and rule-changing pairs (see module docstring)."""
    import einops

    from ..core.metrics import margin
    from ..families.base import heads
    from .readout import linear_readout
    from .spectra import cluster_order, neuron_clusters

    family = family_of(model)
    noisy = dataset.noisy_mask.nonzero().squeeze(1)
    test = dataset.test_mask.nonzero().squeeze(1)
    mem_src = label_sources(dataset, noisy, same=True, seed=seed)
    rule_src = label_sources(dataset, test, same=False, seed=seed + 1)
    noisy, mem_src = noisy[mem_src >= 0], mem_src[mem_src >= 0]
    test, rule_src = test[rule_src >= 0], rule_src[rule_src >= 0]
    targets, sources = torch.cat([noisy, test]), torch.cat([mem_src, rule_src])
    n_mem = len(noisy)
    pairs = dataset.inputs
    observed, true = dataset.labels[targets], dataset.true_labels[targets]

    def scored(out: Tensor) -> dict[str, float | None]:
        out = out.double()
        mem, rule = out[:n_mem], out[n_mem:]
        return {"memorised_margin": float((margin(mem, observed[:n_mem]) - margin(mem, true[:n_mem])).mean()) if n_mem else None,
                "test_margin": float(margin(rule, true[n_mem:]).mean()) if len(rule) else None,
                "memorised_acc": float((mem.argmax(-1) == observed[:n_mem]).double().mean()) if n_mem else None,
                "test_acc": float((rule.argmax(-1) == true[n_mem:]).double().mean()) if len(rule) else None}

    readout, acts, to_logit, full = linear_readout(model, pairs)
    baseline = scored(full[targets])

    def row(kind: str, index: str, position: int | None, out: Tensor) -> dict:
        s = scored(out)
        lost = {name: None if baseline[m] is None else baseline[m] - s[m]
                for name, m in (("memory", "memorised_margin"), ("rule", "test_margin"))}
        return {"kind": kind, "index": index, "position": position, **lost,
                "memorised_acc": s["memorised_acc"], "test_acc": s["test_acc"]}

    value_hooks = family.head_value_hooks(model)
    hooks = set(value_hooks) | set(value_hooks.values())
    source = family.all_positions(model, pairs[sources], hooks)
    last = family.n_positions(model) - 1
    clusters: dict[str, Tensor] = {}
    if dataset.sum_grid:
        names = neuron_clusters(einops.rearrange(acts, "(a b) unit -> a b unit", a=dataset.p))
        for c in sorted(set(names), key=cluster_order):
            clusters[c] = torch.tensor([n == c for n in names]).nonzero().squeeze(1)
    target_acts, target_full = acts[targets].double(), full[targets].double()
    to_logit = to_logit.double()

    def through(members: Tensor, new_acts: Tensor) -> Tensor:
        """The targets' logits with only `members`' activations changed to `new_acts`'."""
        return target_full + (new_acts[:, members] - target_acts[:, members]) @ to_logit[members]

    rows = []
    for hook, head, name in heads(model):
        def patch(acts: Tensor, hook=None, at=hook, head=head, pos=last) -> Tensor:
            acts = acts.clone()
            acts[:, pos, head] = source[at][:, pos, head].to(acts.device)
            return acts

        captured: dict[str, Tensor] = {}

        def keep(acts: Tensor, hook=None) -> Tensor:
            captured["acts"] = family.predicting(acts)
            return acts

        out = family.forward(model, pairs[targets], fwd_hooks=[(hook, patch), (readout, keep)])
        rows.append(row("head output", name, last, out))
        new_acts = captured["acts"].to(target_acts.device).double()
        for c, members in clusters.items():
            rows.append(row("path", f"{name} → {c}", last, through(members, new_acts)))
        value = value_hooks[hook]
        for pos in range(last + 1):
            def patch_value(acts: Tensor, hook=None, at=value, head=head, pos=pos) -> Tensor:
                acts = acts.clone()
                acts[:, pos, head] = source[at][:, pos, head].to(acts.device)
                return acts

            rows.append(row("head input", name, pos, family.forward(model, pairs[targets], fwd_hooks=[(value, patch_value)])))
    source_acts = acts[sources].double()
    for c, members in clusters.items():
        rows.append(row("neuron cluster", c, None, through(members, source_acts)))
    return RuleMemoryPatching(baseline, rows, {"memory": n_mem, "rule": len(test)})


@dataclass(repr=False)
class PatchingOverTraining(Result):
    """The final model with one hook's activation patched from each earlier checkpoint of
    its run (same pairs): `metrics[hook][subset accuracy name]` is a list over `steps`. A hook
    whose patched accuracy is back at the unpatched `baseline` from step s on holds, from s, what
    the final model reads there."""

    steps: list[int]
    baseline: dict[str, float | None]
    metrics: dict[str, dict[str, list[float | None]]]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "baseline": self.baseline, "metrics": self.metrics,
                "settled": {h: {s: self.settled(h, s) for s in ("test", "noisy_observed")} for h in self.metrics}}

    def settled(self, hook: str, subset: str, within: float = 0.05) -> int | None:
        """The first step from which patching `hook` keeps `subset` accuracy within `within` of
        the unpatched model at every later checkpoint (None if never)."""
        values, target = self.metrics[hook][f"{subset}_acc"], self.baseline[f"{subset}_acc"]
        if target is None:
            return None
        first = None
        for step, value in zip(self.steps, values):
            first = (first if first is not None else step) if value >= target - within else None
        return first

    def summary(self) -> str:
        subsets = [s for s in ("test", "noisy_observed") if self.baseline.get(f"{s}_acc") is not None]
        name = {"test": "test", "noisy_observed": "memorised"}
        parts = []
        for hook in self.metrics:
            when = [f"{name[s]} from step {self.settled(hook, s)}" if self.settled(hook, s) is not None
                    else f"{name[s]} never" for s in subsets]
            parts.append(f"`{hook}`: {', '.join(when)}")
        return ("Patching each hook's activation from an earlier checkpoint into the final model "
                "keeps accuracy within 5 points of the unpatched model — " + "; ".join(parts) + ".")

    def tables(self) -> list[Table]:
        from ..core.document import Table, pct

        subsets = [s for s in SUBSETS if self.baseline.get(f"{s}_acc") is not None]
        rows = [[hook, str(step), *(pct(self.metrics[hook][f"{s}_acc"][i]) for s in subsets)]
                for hook in self.metrics for i, step in enumerate(self.steps)]
        return [Table(["hook", "source step", *(SUBSET_TABLE[s].short for s in subsets)], rows,
                      caption="the final model's accuracy with one hook's activation from a checkpoint")]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        return [Figure(plot_patching_over_training(self, Path(out_dir) / f"{stem}.png"),
                       "the final model's accuracy per subset with one activation patched from each checkpoint")]


@torch.no_grad()
def patching_over_training(run: Run, hooks: tuple[str, ...] | None = None) -> PatchingOverTraining:
    """Replace the final model's whole activation at each hook (default: the family's
    `patch_hooks`; every position at once) by each trajectory checkpoint's on the same pairs,
    scored per subset."""
    from ..training.rundir import load_run, trajectory_steps

    steps = trajectory_steps(run.path) if run.path is not None else []
    if not steps:
        raise ValueError("patching over training needs a run with checkpoints (a trajectory)")
    family, pairs, loss = family_of(run.model), run.dataset.inputs, run.spec.train.loss
    hooks = tuple(hooks or family.patch_hooks(run.model))
    baseline = subset_metrics(family.forward(run.model, pairs), run.dataset, loss)
    metrics: dict[str, dict[str, list[float | None]]] = {h: {} for h in hooks}
    for step in progress_bar(steps, "patching: checkpoints"):
        source = load_run(run.path, step).model
        cache = family.all_positions(source, pairs, hooks)
        for hook in hooks:
            out = family.forward(run.model, pairs, fwd_hooks=[(hook, lambda acts, hook=None, name=hook: cache[name])])
            for name, value in subset_metrics(out, run.dataset, loss).items():
                if name.endswith("_acc"):
                    metrics[hook].setdefault(name, []).append(value)
    return PatchingOverTraining(steps, {k: v for k, v in baseline.items() if k.endswith("_acc")}, metrics)


def _needs_trajectory(run: Run) -> str | None:
    from ..training.rundir import trajectory_steps

    if run.path is None or len(trajectory_steps(run.path)) < 2:
        return "patching over training needs a run with at least two checkpoints"
    return None


PATCHING_OVER_TRAINING: Analysis[PatchingOverTraining] = register_analysis("patching_over_training", "Patching from checkpoints", patching_over_training,
                  needs=(Capability.POSITIONS,), skip_reason=_needs_trajectory, order=51, groups=True)


PATCHING: Analysis[RuleMemoryPatching] = register_analysis(
    "patching", "Activation patching: the rule and the memory", lambda run: rule_memory_patching(run.model, run.dataset),
    needs=(Capability.HEADS, Capability.POSITIONS), order=50, groups=True)


# --- figures ------------------------------------------------------------------------------


def plot_patching(sweep, path: Path) -> Path:
    """Accuracy per subset after patching each (hook, position), one heat map per subset."""
    subsets = [s for s in SUBSET_COLORS if sweep.baseline.get(f"{s}_acc") is not None]
    hooks = list(sweep.metrics)
    fig, axes = _subplots(1, len(subsets), figsize=(4.2 * len(subsets), 0.5 * len(hooks) + 2.2), squeeze=False)
    for ax, subset in zip(axes[0], subsets):
        grid = torch.tensor([[sweep.metrics[h][p][f"{subset}_acc"] for p in sweep.positions] for h in hooks])
        im = ax.imshow(grid.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        fig.colorbar(im, ax=ax, label="accuracy")
        ax.set(xticks=range(len(sweep.positions)), xticklabels=["a", "b", "="][: len(sweep.positions)],
               yticks=range(len(hooks)), xlabel="position patched",
               title=f"{SUBSET_LABELS[subset]}\n(unpatched {sweep.baseline[f'{subset}_acc']:.0%})")
        ax.set_yticklabels(hooks, fontsize=7)
    return _save(fig, path)


def plot_rule_memory_patching(result, path: Path) -> Path:
    """Per kind of component, what patching each one takes from the memorised margin (memory)
    and from the test margin (rule), in logits."""
    kinds = [k for k in ("head output", "head input", "neuron cluster", "path") if any(r["kind"] == k for r in result.rows)]
    fig, axes = _subplots(1, max(1, len(kinds)), figsize=(4.5 * max(1, len(kinds)), 4.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        rows = [r for r in result.rows if r["kind"] == kind]
        names = [r["index"] + ("" if kind != "head input" else f" @{r['position']}") for r in rows]
        x = range(len(rows))
        for offset, score, color, label in ((-0.2, "memory", SUBSET_COLORS["noisy_observed"], "memorised margin lost"),
                                            (0.2, "rule", SUBSET_COLORS["test"], "test margin lost")):
            if any(r[score] is not None for r in rows):
                ax.bar([i + offset for i in x], [r[score] or 0.0 for r in rows], 0.4, color=color, label=label)
        ax.set_xticks(list(x), names, rotation=60, ha="right", fontsize=6)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set(ylabel="logits", title=kind)
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_patching_over_training(result, path: Path) -> Path:
    """Per subset, the final model's accuracy against the checkpoint each hook was patched from,
    one line per hook, the unpatched accuracy dashed."""
    subsets = [s for s in SUBSET_COLORS if result.baseline.get(f"{s}_acc") is not None]
    fig, axes = _subplots(1, len(subsets), figsize=(4.2 * len(subsets), 3.4), squeeze=False)
    for ax, subset in zip(axes[0], subsets):
        for hook, by_name in result.metrics.items():
            ax.plot(result.steps, by_name[f"{subset}_acc"], marker="o", markersize=3, label=hook)
        ax.axhline(result.baseline[f"{subset}_acc"], color="grey", linestyle="--", linewidth=1)
        ax.set(xlabel="checkpoint patched from (step)", ylabel="accuracy", ylim=(-0.02, 1.02),
               title=SUBSET_LABELS[subset])
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)
