"""Finite groups given by their Cayley tables: the structure a composition task lives on.

A task a ∘ b is composition in a finite group G, its elements numbered 0..|G|−1 (the residues,
for Z_p): the labels are `table[a, b]`. Z_p under addition is the cyclic case (`cyclic(p)`),
and `a + b mod p` / `a − b mod p` read its table (`a ∘ b` and `a ∘ b⁻¹`). Any group comes in
through `Group.from_table` — a researcher's own table in its own element order, checked to be
a group — so models trained elsewhere on other groups line up element by element.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from jaxtyping import Int
from torch import Tensor


class GroupError(ValueError):
    """A table that is not the Cayley table of a group; the message says why."""


@dataclass(frozen=True, eq=False)
class Group:
    """A finite group: `table[x, y]` is the index of x ∘ y; `elements` names each index."""

    name: str
    table: Int[Tensor, "n n"]
    elements: tuple[str, ...]

    @property
    def order(self) -> int:
        return len(self.elements)

    @property
    def identity(self) -> int:
        return int((self.table == torch.arange(self.order)).all(1).nonzero()[0])

    def inverse(self) -> Int[Tensor, " n"]:
        """inverse[x] = x⁻¹: the y with x ∘ y = e."""
        return (self.table == self.identity).int().argmax(1)

    @property
    def abelian(self) -> bool:
        return bool(torch.equal(self.table, self.table.T))

    def compose(self, a: Tensor, b: Tensor) -> Tensor:
        """a ∘ b elementwise (indices)."""
        return self.table[a, b]

    @classmethod
    def from_table(cls, name: str, table, elements: tuple[str, ...] | None = None) -> "Group":
        """The group whose Cayley table is `table` ([n, n] indices), after checking the group
        axioms: closure, a two-sided identity, every row and column a permutation (inverses, for
        a finite table), and associativity (checked on all n³ triples)."""
        table = torch.as_tensor(table)
        if table.dim() != 2 or table.shape[0] != table.shape[1] or table.is_floating_point() or not len(table):
            raise GroupError(f"{name}: a Cayley table is a square integer matrix, got {tuple(table.shape)}")
        table, n = table.long(), table.shape[0]
        if int(table.min()) < 0 or int(table.max()) >= n:
            raise GroupError(f"{name}: entries must index the {n} elements 0..{n - 1}")
        every = torch.arange(n)
        if not (torch.sort(table, 1).values == every).all() or not (torch.sort(table, 0).values == every[:, None]).all():
            raise GroupError(f"{name}: not a Latin square (some element lacks an inverse or repeats in a row or column)")
        if not (table == every).all(1).any() or not (table.T == every).all(1).any():
            raise GroupError(f"{name}: no identity element")
        if not torch.equal(table[table], table[:, table]):  # (x∘y)∘z == x∘(y∘z) for all x, y, z
            raise GroupError(f"{name}: not associative")
        elements = tuple(elements) if elements is not None else tuple(str(i) for i in range(n))
        if len(elements) != n or len(set(elements)) != n:
            raise GroupError(f"{name}: {len(elements)} element names for {n} elements, or names repeat")
        return cls(name, table, elements)


@lru_cache(maxsize=None)
def cyclic(n: int) -> Group:
    """C_n = Z_n under addition, elements the residues 0..n−1 (so `table[a, b] = (a + b) mod n`)."""
    every = torch.arange(n)
    return Group(f"C{n}", (every[:, None] + every[None, :]) % n, tuple(str(i) for i in range(n)))
