"""Memorisation speed: when clean and noisy training examples are fitted.

`fit_speed(run)` reads the run's metric history (every `eval_every` steps) for the fraction of
clean examples and of noisy examples (against their observed labels) fitted at each step, and —
when the run has a trajectory — the first checkpoint step at which each training example is
fitted. Liu & Lu report noisy labels fitted before clean ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..core.runtime import progress_bar
from ..families.base import logits
from ..training.rundir import Run, load_run, trajectory_steps
from .plots import SUBSET_COLORS, SUBSET_LABELS, _save, _subplots
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure


@dataclass(repr=False)
class FitSpeed(Result):
    steps: list[int]
    clean_acc: list[float | None]
    noisy_acc: list[float | None]  # noisy examples against their observed labels
    half_fitted: dict[str, int | None]  # first step with ≥ 50% of the subset fitted
    checkpoint_steps: list[int]
    first_fit_clean: list[int]  # per clean example: first checkpoint step fitted (−1: never)
    first_fit_noisy: list[int]

    def to_dict(self) -> dict:
        return asdict(self)

    def median_first_fit(self) -> dict[str, float | None]:
        """Per subset, the median over *all* its examples of the first checkpoint step at which one
        is fitted, a never-fitted example counting as later than any step: None ("never") when
        more than half are never fitted, so the few that are fitted cannot stand for the subset."""
        def median(values: list[int]) -> float | None:
            if not values:
                return None
            steps = torch.tensor([v if v >= 0 else float("inf") for v in values], dtype=torch.float64)
            middle = float(steps.sort().values[(len(steps) - 1) // 2])  # the lower median, as torch's
            return None if middle == float("inf") else middle

        return {"clean": median(self.first_fit_clean), "noisy": median(self.first_fit_noisy)}

    def never_fitted(self) -> dict[str, tuple[int, int]]:
        """Per subset, (examples never fitted at any checkpoint, examples)."""
        return {name: (sum(v < 0 for v in values), len(values))
                for name, values in (("clean", self.first_fit_clean), ("noisy", self.first_fit_noisy))}

    def summary(self) -> str:
        def at(x) -> str:
            return "never" if x is None else f"at step {x:g}"

        def step(x) -> str:  # a median at the first checkpoint may be any step before it
            if x is None:
                return "never"
            return f"step {x:g}" + (" (the first checkpoint: or earlier)" if x == self.checkpoint_steps[0] else "")

        half, median = self.half_fitted, self.median_first_fit()
        line = (f"Half of the subset fitted: clean {at(half['clean'])}, noisy (observed labels) "
                f"{at(half['noisy'])}." if len(set(self.steps)) > 1 else
                "The history holds one evaluation: when half of each subset was fitted is not known.")
        if self.checkpoint_steps:
            never = self.never_fitted()
            line += (f" Median first checkpoint at which an example is fitted (never-fitted examples counted as "
                     f"later than any): clean {step(median['clean'])}, noisy {step(median['noisy'])}; never fitted: "
                     + ", ".join(f"{name} {n} of {total}" for name, (n, total) in never.items()) + ".")
        else:
            line += " Per-example first-fit steps need a checkpoint trajectory, which this run does not have."
        return line

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        return [Figure(plot_fit_speed(self, Path(out_dir) / f"{stem}.png"),
                       "fraction of clean and noisy training examples fitted over training")]


def _first_reaching(steps: list[int], values: list[float | None], level: float) -> int | None:
    return next((s for s, v in zip(steps, values) if v is not None and v >= level), None)


@torch.no_grad()
def fit_speed(run: Run) -> FitSpeed:
    steps = [row["step"] for row in run.history]
    clean = [row["clean_acc"] for row in run.history]
    noisy = [row["noisy_observed_acc"] for row in run.history]
    half = {"clean": _first_reaching(steps, clean, 0.5), "noisy": _first_reaching(steps, noisy, 0.5)}
    ds = run.dataset
    first = torch.full((len(ds.inputs),), -1, dtype=torch.long)
    ckpts = trajectory_steps(run.path) if run.path is not None else []
    for step in progress_bar(ckpts, "dynamics: checkpoints"):
        fitted = logits(load_run(run.path, step).model, ds.inputs).argmax(-1) == ds.labels
        first[(first < 0) & fitted] = step
    return FitSpeed(steps, clean, noisy, half, ckpts,
                    first[ds.clean_mask].tolist() if ckpts else [], first[ds.noisy_mask].tolist() if ckpts else [])


def _no_timeline(run: Run) -> str | None:
    """Why the run holds no course of training to read (an imported model: one evaluation, no
    checkpoints), or None."""
    evaluated = {row["step"] for row in run.history}
    if len(evaluated) < 2 and not (run.path is not None and trajectory_steps(run.path)):
        return (f"it reads when each subset was fitted during training, and this run's history holds "
                f"{len(evaluated) or 'no'} evaluation{'' if len(evaluated) == 1 else 's'} and no checkpoint "
                "trajectory (an imported model's, say)")
    return None


DYNAMICS: Analysis[FitSpeed] = register_analysis("dynamics", "Which labels are fitted first", fit_speed,
                                              skip_reason=_no_timeline, order=90, groups=True, features=True)


# --- figures ------------------------------------------------------------------------------


def plot_fit_speed(speed, path: Path) -> Path:
    """Fraction of clean and of noisy examples fitted (against the labels trained on) per step."""
    fig, ax = _subplots(figsize=(7, 4))
    ax.plot(speed.steps, speed.clean_acc, color=SUBSET_COLORS["clean"], label=SUBSET_LABELS["clean"])
    if any(v is not None for v in speed.noisy_acc):
        ax.plot(speed.steps, [v if v is not None else float("nan") for v in speed.noisy_acc],
                color=SUBSET_COLORS["noisy_observed"], label=SUBSET_LABELS["noisy_observed"])
    ax.set(xscale="symlog", xlabel="step", ylabel="fraction fitted", ylim=(-0.02, 1.02), title="which labels are fitted first")
    ax.legend(fontsize=8)
    return _save(fig, path)
