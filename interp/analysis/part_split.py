"""Inside each neuron: its dominant-frequency part against its residual, checked by acting on
them beside a control of the same size (Liu & Lu's f^G and f^R, for nets with neuron maps).

Two interventions, each on every neuron at once, on the input (u, v) and output (w) sides:
- `residuals removed`: each neuron keeps only its dominant frequency (irrep, on a group): f^G.
  Its control keeps, in each neuron, one other harmonic drawn at random (not the constant, not
  the dominant one), scaled in each of u, v and w to the dominant part's norm — the same
  operation on a part of the same size that is not the one the spectrum picked.
- `dominant parts removed`: each neuron loses its dominant part: f^R. Its control removes, in
  each neuron, a random other harmonic scaled to the dominant part's norm (x − x_j ‖x_D‖/‖x_j‖),
  a change to the weights of the same norm.
The split holds inside the neurons when removing the residuals is `memorising` and removing the
dominant parts is `generalising` under the one verdict rule (`core.metrics.accuracy_verdict`,
against the controls' mean over SEEDS): the memory is in the residuals, the rule in the
dominant parts, whatever the neurons are as wholes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..core.harmonics import harmonics_of
from ..core.metrics import accuracy_verdict
from ..core.tasks import Dataset
from ..families.base import family_of, logits
from .interventions import scored
from .neurons import dominant_split, neuron_uvw
from .spectra import neuron_spectra

if TYPE_CHECKING:
    from ..core.document import Table

SEEDS = (0, 1, 2)
#: each intervention and the outcome it must have for the split to hold inside the neurons
EXPECTED = {"residuals removed": "memorising", "dominant parts removed": "generalising"}


@dataclass
class PartIntervention:
    name: str  # a key of EXPECTED
    extraction: str  # Liu & Lu's name for what is left: f^G or f^R
    metrics: dict[str, float | None]  # `interventions.scored`
    control: dict[str, float | None]  # the controls' mean over SEEDS
    outcome: str  # the one verdict rule against the control

    @property
    def holds(self) -> bool:
        return self.outcome == EXPECTED[self.name]


@dataclass
class PartCheck:
    baseline: dict[str, float | None]
    unit: str  # "frequency", or "irrep" on a group
    rows: list[PartIntervention] = field(default_factory=list)

    @property
    def separates(self) -> bool:
        """Whether the split holds inside the neurons: one intervention has its expected outcome
        and neither has the opposite one. (Where the model's test accuracy is already at chance,
        removing the dominant parts cannot lower it, and its verdict rests on the margins.)"""
        opposite = {"memorising": "generalising", "generalising": "memorising"}
        return any(r.holds for r in self.rows) and not any(r.outcome == opposite[EXPECTED[r.name]] for r in self.rows)

    def summary(self) -> str:
        from ..core.document import pct

        if not self.rows:
            return ""
        words = "; ".join(
            f"{r.name} ({r.extraction}): memorised {pct(r.metrics['noisy_observed_acc'])}, test "
            f"{pct(r.metrics['test_acc'])} (a random other {self.unit} of each neuron at the same norm: "
            f"{pct(r.control['noisy_observed_acc'])}, {pct(r.control['test_acc'])}) — {r.outcome}" for r in self.rows)
        return (f"Inside each neuron, its dominant {self.unit} against the rest: {words}. The split "
                f"{'holds' if self.separates else 'does not hold'} inside the neurons.")

    def row(self, name: str) -> PartIntervention:
        return next(r for r in self.rows if r.name == name)

    def table(self) -> Table:
        from ..core.document import Table, pct

        rows = [["model", "—", pct(self.baseline["noisy_observed_acc"]), "", pct(self.baseline["test_acc"]), "", ""]]
        rows += [[r.name, r.extraction, pct(r.metrics["noisy_observed_acc"]), pct(r.control["noisy_observed_acc"]),
                  pct(r.metrics["test_acc"]), pct(r.control["test_acc"]),
                  f"{r.outcome} ({'as expected' if r.holds else f'expected {EXPECTED[r.name]}'})"] for r in self.rows]
        return Table(["in every neuron", "leaves", "memorised", "control: memorised", "test", "control: test", "verdict"],
                     rows, caption=f"each neuron's dominant {self.unit} against its residual, beside a random other "
                                   f"{self.unit} of each neuron at the same norm (mean of {len(SEEDS)} seeds)")

    def to_dict(self) -> dict:
        return {**asdict(self), "separates": self.separates, "expected": EXPECTED}


def _harmonic_parts(x: Tensor, units) -> Tensor:
    """[unit, neuron, p]: each row of x split into its parts by unit (along the read order)."""
    parts = torch.zeros(units.n_units, *x.shape, dtype=torch.float64)
    basis, component = units.basis(torch.float64)
    rows = x.double()[:, units.order]
    for k in range(units.n_units):
        b = basis[component == k]
        parts[k][:, units.order] = rows @ b.T @ b
    return parts


def _controls(model: nn.Module, dataset: Dataset, seed: int) -> tuple[nn.Module, nn.Module]:
    """(keep a random other harmonic, remove a random other harmonic), each scaled per neuron and
    vector to the dominant part's norm."""
    task = dataset.task
    maps = neuron_uvw(model)
    units = harmonics_of(task, maps[0].shape[1])
    dominant = neuron_spectra(model, task).freq
    width = len(dominant)
    # a random unit per neuron among 1..n_units-1 other than its dominant one
    draw = torch.randint(1, units.n_units - 1, (width,), generator=torch.Generator().manual_seed(seed))
    other = torch.where(draw >= dominant, draw + 1, draw)
    rows = torch.arange(width)
    kept, removed = [], []
    for x in maps:
        parts = _harmonic_parts(x, units)
        d, o = parts[dominant, rows], parts[other, rows]
        scaled = o * (d.norm(dim=1) / o.norm(dim=1).clamp_min(1e-12))[:, None]
        kept.append(scaled.to(x.dtype))
        removed.append((x.double() - scaled).to(x.dtype))
    family = family_of(model)
    return family.with_neuron_maps(model, *kept), family.with_neuron_maps(model, *removed)


@torch.no_grad()
def part_check(model: nn.Module, dataset: Dataset, seeds: tuple[int, ...] = SEEDS) -> PartCheck:
    """f^G and f^R scored beside their matched-norm random-harmonic controls (module docstring)."""
    task = dataset.task
    units = harmonics_of(task, neuron_uvw(model)[0].shape[1])
    check = PartCheck(scored(logits(model, dataset.inputs), dataset), units.kind)
    if units.n_units < 3:  # no other harmonic to draw
        return check
    g, r = dominant_split(model, task)
    controls = [[scored(logits(m, dataset.inputs), dataset) for m in _controls(model, dataset, seed)] for seed in seeds]
    for i, (name, extraction, edited) in enumerate((("residuals removed", "f^G", g), ("dominant parts removed", "f^R", r))):
        own = scored(logits(edited, dataset.inputs), dataset)
        ref = {k: None if controls[0][i][k] is None else sum(c[i][k] for c in controls) / len(controls)
               for k in controls[0][i]}
        outcome = accuracy_verdict(own["noisy_observed_acc"], own["test_acc"], ref["noisy_observed_acc"], ref["test_acc"],
                                   margins=(own["mem_margin"], own["gen_margin"], ref["mem_margin"], ref["gen_margin"]))
        check.rows.append(PartIntervention(name, extraction, own, ref, outcome))
    return check
