"""The analyses by name. An analysis is one module plus one `register_analysis(...)` call in it;
the report, the CLI's `interp analyze` and `interp.analyze(run, name)` find it here, and no
other file changes when one is added.

Every analysis returns a typed `Result`: a dataclass that serialises itself (`to_dict`), says
what it found in a few lines (`summary`), and lays out its own tables and figures (`tables`,
`figures`), which the report places under the analysis's title as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar, overload

import torch

from ..families.base import Capability, family_of

if TYPE_CHECKING:
    from ..core.document import Figure, Table
    from ..training.rundir import Run


class Result:
    """Base of every analysis result (a dataclass declared with `repr=False`)."""

    def to_dict(self) -> dict[str, Any]:
        raise TypeError(f"{type(self).__name__} must define to_dict")

    def summary(self) -> str:
        """A few lines of prose: what the analysis found."""
        return ""

    def tables(self) -> list[Table]:
        return []

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        """Draw the result's figures into `out_dir` as `<stem>*.png`."""
        return []

    def __repr__(self) -> str:
        # short: shapes and lengths, not the thousands of numbers a result holds
        def short(value: Any) -> str:
            if torch.is_tensor(value):
                return f"Tensor{list(value.shape)}"
            if isinstance(value, (list, tuple, dict)) and len(value) > 6:
                return f"{type(value).__name__}[{len(value)}]"
            text = repr(value)
            return text if len(text) <= 60 else text[:57] + "..."

        parts = ", ".join(f"{f.name}={short(getattr(self, f.name))}" for f in fields(self))
        return f"{type(self).__name__}({parts})"


R = TypeVar("R", bound=Result)


@dataclass(frozen=True)
class Analysis(Generic[R]):
    name: str
    title: str
    compute: Callable[[Run], R]
    #: The model capabilities it needs (`interp.families.Capability`); a model lacking one skips it.
    needs: tuple[Capability, ...] = ()
    #: Why it does not apply to a run for another reason (e.g. no checkpoint trajectory), or None.
    extra_reason: Callable[[Run], str | None] | None = None
    #: Where its section goes in the report (smaller first): from what the weights hold to what
    #: ablations and probes find, then how training got there.
    order: int = 100
    #: Whether it reads tasks over any finite group (irreps as its units); one written for Z_p's
    #: frequencies alone is skipped, with the reason said, on a group task.
    groups: bool = False

    def skip_reason(self, run: Run) -> str | None:
        """Why the analysis does not apply to `run`, in words, or None."""
        if run.spec.task.group and not self.groups:
            return (f"it is written for Z_p tasks and not yet generalised to a task over a group "
                    f"({run.spec.task.describe()})")
        reason = family_of(run.model).lacks(run.model, self.needs)
        if reason is None and self.extra_reason is not None:
            reason = self.extra_reason(run)
        return reason

    def __call__(self, run: Run) -> R:
        """The result on `run` (typed: `interp.analysis.filtration.EXTRACTION(run)` is an Extraction)."""
        return analyze(run, self)


ANALYSES: dict[str, Analysis] = {}


def register_analysis(name: str, title: str, compute: Callable[[Run], R], needs: tuple[Capability, ...] = (),
                      skip_reason: Callable[[Run], str | None] | None = None, order: int = 100,
                      groups: bool = False, features: bool = False) -> Analysis[R]:
    """Make `compute` the analysis `name`: `interp.analyze`, `interp analyze --analysis NAME` and the
    report find it from here (no other file lists analyses). `groups`: it handles tasks over any
    finite group (else it is skipped on them). `features`: it handles models that read feature
    vectors (else it needs `Capability.PAIRS`, and models over features skip it). Returns the
    typed handle."""
    needs = tuple(needs) if features else (Capability.PAIRS, *needs)
    return add_analysis(Analysis(name, title, compute, needs, skip_reason, order, groups))


def add_analysis(analysis: Analysis[R]) -> Analysis[R]:
    """Register an `Analysis` made beforehand (e.g. one an installed package's entry point names)."""
    ANALYSES[analysis.name] = analysis
    return analysis


def in_report_order() -> list[str]:
    return sorted(ANALYSES, key=lambda name: ANALYSES[name].order)


@overload
def analyze(run: Run, name: Analysis[R]) -> R: ...
@overload
def analyze(run: Run, name: str) -> Result: ...
def analyze(run: Run, name: str | Analysis[R]) -> Result:
    """The result of analysis `name` (a key of ANALYSES) on a loaded run."""
    if isinstance(name, Analysis):
        analysis = name
    elif name in ANALYSES:
        analysis = ANALYSES[name]
    else:
        raise ValueError(f"unknown analysis {name!r}; available: {', '.join(ANALYSES)}")
    name = analysis.name
    reason = analysis.skip_reason(run)
    if reason:
        raise ValueError(f"the {name} analysis does not apply to this run: {reason}")
    return analysis.compute(run)
