"""Activation patching: which hook point, at which position, carries what a model computes.

`patch_sweep(target, dataset, source_model=None, source_pairs=None)` runs `target` on the
dataset's pairs with one activation replaced at a time — at every hook of `hooks` (default: the
family's `patch_hooks`, in the order information flows) and every position — by the activation the source computes: the same model on other inputs (across
inputs: by default each pair with its b replaced by another residue, drawn with `seed`), or
another model of the same shapes on the same pairs (across models, e.g. a grokked clean model's
activations patched into a noisy one). Each patched forward is scored on the four subsets, so a
row says where the information that decides clean, memorised and test predictions flows.
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
        from .plots import plot_patching

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
        from .plots import plot_patching_over_training

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
                  needs=(Capability.POSITIONS,), skip_reason=_needs_trajectory, order=51)


PATCHING: Analysis[PatchSweep] = register_analysis("patching", "Activation patching",
                  lambda run: patch_sweep(run.model, run.dataset, loss=run.spec.train.loss),
                  needs=(Capability.POSITIONS,), order=50)
