"""The spectral units a task's element axis is read in: the frequencies of Z_p, or the real
irreducible representations of a finite group. One object, so that spectra, the key-unit rule,
the per-neuron filters and the restricted/excluded losses are each written once for both.

A unit is a set of orthonormal basis rows over the elements: for Z_p, frequency k (rows cos k,
sin k; `fourier`), read in `residue_order` (the discrete-log order for mul/div); for a group,
irrep ρ (rows √(D/|G|) ρ(·)_ij; `irreps.group_fourier_basis`), read in element order. Unit 0 is
the constant (trivial irrep) either way. For C_p the two agree (same rows, same order), and the
Z_p path calls `fourier` itself so every Z_p number is bit-for-bit what it was.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from . import fourier, irreps
from .fourier import residue_order
from .groups import Group
from .specs import TaskSpec
from .unit_labels import frequency_label, irrep_labels


@dataclass(frozen=True, eq=False)
class Harmonics:
    """`order`: the element indices in the order the basis reads them (length n); `names[u]`:
    unit u's stored id ("k=3" or "4a", what files and JSON hold); `labels[u]`: the name a reader
    knows ("k = 3", "standard (4)"; `unit_labels`), what summaries, tables and figures print;
    `group`: the group for irreps, None for Z_p frequencies."""

    order: Tensor
    names: tuple[str, ...]
    group: Group | None = None
    labels: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """"frequency" or "irrep": what the summaries call a unit."""
        return "frequency" if self.group is None else "irrep"

    @property
    def n_units(self) -> int:
        return len(self.names)

    def basis(self, dtype: torch.dtype = torch.float64) -> tuple[Float[Tensor, "component n"], Tensor]:
        """The orthonormal rows over the read order, and each row's unit."""
        n = len(self.order)
        if self.group is None:
            return fourier.fourier_basis(n, dtype)[0], fourier.component_frequencies(n)
        return irreps.group_fourier_basis(self.group, dtype)[0], irreps.row_irreps(self.group)

    def ipr(self, x: Tensor) -> Tensor:
        """Inverse participation ratio of each row of `x` (read order) over the units: how few
        units hold its power. For Z_p, `fourier.ipr` (|rfft|, as Doshi et al.); for a group,
        Σ_ρ P_ρ² / (Σ_ρ P_ρ)² of the power per irrep."""
        if self.group is None:
            return fourier.ipr(x)
        power = self.power(x.double())
        return (power.square().sum(-1) / power.sum(-1).square().clamp_min(1e-30)).to(x.dtype)

    def sizes(self) -> Tensor:
        """The number of basis rows of each unit (D²/κ for an irrep; 2 for a frequency k < n/2)."""
        return torch.bincount(self.basis()[1], minlength=self.n_units)

    def power(self, x: Tensor, dim: int = -1) -> Tensor:
        """‖·‖² of `x` (read order along `dim`) in each unit; `dim` becomes the unit axis."""
        if self.group is None:
            return fourier.frequency_power(x, dim)
        return irreps.power_per_irrep(x, self.group, dim)

    def project(self, x: Tensor, keep: Tensor, dim: int = -1) -> Tensor:
        """Keep only the components of `x` (read order along `dim`) in the units where `keep` is
        True: one mask over units for all of `x`, or one per vector (`dim` replaced by units)."""
        if self.group is None:
            return fourier.project_frequencies(x, keep, dim)
        basis, unit = self.basis()
        basis = basis.to(x.dtype)
        coeffs = torch.movedim(x, dim, -1) @ basis.T
        mask = torch.movedim(keep, dim, -1)[..., unit] if keep.dim() > 1 else keep[unit]
        return torch.movedim((coeffs * mask) @ basis, -1, dim)


@functools.lru_cache(maxsize=32)
def _frequencies(op: str, p: int) -> Harmonics:
    order = residue_order(op, p)
    ks = range(fourier.n_frequencies(len(order)) + 1)
    return Harmonics(order, tuple(f"k={k}" for k in ks), labels=("constant", *(frequency_label(k) for k in ks[1:])))


def group_harmonics(group: Group) -> Harmonics:
    """The irreps of `group` as units, elements in index order."""
    names = tuple(r.name for r in irreps.real_irreps(group))
    key = (irreps._key(group), group.elements)  # the labels read the elements' names too
    if key not in _LABELS:
        _LABELS[key] = irrep_labels(group, [r.character for r in irreps.real_irreps(group)], list(names))
    return Harmonics(torch.arange(group.order), names, group, _LABELS[key])


_LABELS: dict = {}  # `unit_labels.irrep_labels` once per group (name, table and element names)


def harmonics_of(task: str | TaskSpec, p: int | None = None) -> Harmonics:
    """The units of a task: a Z_p op's name with `p` (the residue axis's length) gives its
    frequencies; a `TaskSpec` gives its group's irreps when it has a `group`, else its op's
    frequencies."""
    if isinstance(task, TaskSpec):
        if task.group:
            return group_harmonics(task.structure)
        task, p = task.op, task.p if p is None else p
    if p is None:
        raise ValueError("a Z_p op's harmonics need the length p of its residue axis")
    return _frequencies(task, p)


def op_of(task: str | TaskSpec) -> str:
    """The operation's name (add, sub, mul, …) of a task given by name or spec."""
    return task.op if isinstance(task, TaskSpec) else task
