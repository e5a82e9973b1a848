"""Finite groups given by their Cayley tables: the structure a composition task lives on.

A task a ∘ b is composition in a finite group G, its elements numbered 0..|G|−1 (the residues,
for Z_p): the labels are `table[a, b]`. Z_p under addition is the cyclic case (`cyclic(p)`),
and `a + b mod p` / `a − b mod p` read its table (`a ∘ b` and `a ∘ b⁻¹`). Any group comes in
through `Group.from_table` — a researcher's own table in its own element order, checked to be
a group — so models trained elsewhere on other groups line up element by element.

Built-ins (`group(name)` parses their names): `cyclic(n)` "Cn", `dihedral(n)` "Dn" (order 2n),
`symmetric(n)` "Sn" and `alternating(n)` "An" (n ≤ 5), and `direct_product(g, h)` "GxH". They are
built from closed forms (a table from them passes `Group.from_table`; the tests check each).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache, reduce

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
        """The group whose Cayley table is `table` ([n, n] integer indices), after checking the
        group axioms: closure, every row and column a permutation (inverses, for a finite table),
        a two-sided identity, and associativity. Every check takes O(n²) memory and at most
        O(n² log n) time (associativity by Light's test on a generating set of at most log₂ n
        elements), so a large table costs what it holds, never n³."""
        table = _as_table(name, table)
        n = table.shape[0]
        if int(table.min()) < 0 or int(table.max()) >= n:
            raise GroupError(f"{name}: entries must index the {n} elements 0..{n - 1}")
        if not (_permutations(table, 1) and _permutations(table, 0)):
            raise GroupError(f"{name}: not a Latin square (some element lacks an inverse or repeats in a row or column)")
        every = torch.arange(n)
        left, right = (table == every).all(1), (table.T == every).all(1)  # e ∘ y = y, x ∘ e = x
        if not (left & right).any():
            raise GroupError(f"{name}: no identity element")
        if not _associative(table, int((left & right).nonzero()[0])):
            raise GroupError(f"{name}: not associative")
        elements = tuple(elements) if elements is not None else tuple(str(i) for i in range(n))
        if len(elements) != n or len(set(elements)) != n:
            raise GroupError(f"{name}: {len(elements)} element names for {n} elements, or names repeat")
        return cls(name, table, elements)


SQUARE = "a Cayley table is a square matrix of element indices (rows of integers)"


def _as_table(name: str, table) -> Int[Tensor, "n n"]:
    """`table` as an [n, n] int64 tensor, its form checked before torch reads it (a dict, ragged
    or deeply nested rows, true/false or fractional entries are refused in one line)."""
    if not torch.is_tensor(table):
        if not isinstance(table, (list, tuple)) or not all(isinstance(row, (list, tuple)) for row in table):
            got = type(table).__name__ if not isinstance(table, (list, tuple)) else "rows that are not lists"
            raise GroupError(f"{name}: {SQUARE}, got {got}")
        if any(len(row) != len(table) for row in table):
            raise GroupError(f"{name}: {SQUARE}, got rows of lengths other than {len(table)}")
        try:
            table = torch.as_tensor(table)
        except (TypeError, ValueError, RuntimeError, OverflowError) as error:  # torch's words name neither
            raise GroupError(f"{name}: {SQUARE} ({' '.join(str(error).split())})") from None
    if table.dim() != 2 or table.shape[0] != table.shape[1] or not len(table):
        raise GroupError(f"{name}: {SQUARE}, got shape {tuple(table.shape)}")
    if table.dtype == torch.bool:
        raise GroupError(f"{name}: {SQUARE}, got true/false entries")
    if table.is_floating_point() or table.is_complex():
        raise GroupError(f"{name}: {SQUARE}, got {table.dtype} entries")
    return table.long()


def _permutations(table: Tensor, dim: int) -> bool:
    """Whether every row (dim 1) or column (dim 0) of `table` holds each index once: O(n²)."""
    seen = torch.zeros_like(table, dtype=torch.bool)
    return bool(seen.scatter_(dim, table, True).all())


def _associative(table: Tensor, identity: int) -> bool:
    """(x∘y)∘z = x∘(y∘z) for all x, y, z, by Light's test: with S a generating set, it is
    enough that (x∘s)∘z = x∘(s∘z) for every s in S (the s for which it holds are closed under
    ∘, so they are everything). A group of order n has a generating set of at most ⌊log₂ n⌋
    elements (each new generator at least doubles the subgroup), so a table that needs more is
    not a group: O(n² log n) time, O(n²) memory."""
    generators = _generating_set(table, identity, limit=len(table).bit_length() - 1)
    if generators is None:
        return False
    return all(torch.equal(table[table[:, s]], table[:, table[s]]) for s in generators)


def _generating_set(table: Tensor, identity: int, limit: int) -> list[int] | None:
    """A set of elements whose products (any bracketing) give every element, picked greedily
    (the first element not yet reached); None when more than `limit` are needed. Each element
    is multiplied once by those reached before it: O(n²)."""
    reached = torch.zeros(len(table), dtype=torch.bool)
    reached[identity] = True
    generators: list[int] = []
    while not reached.all():
        if len(generators) == limit:
            return None
        generators.append(int((~reached).nonzero()[0]))
        waiting = [generators[-1]]
        reached[generators[-1]] = True
        while waiting:
            x = waiting.pop()
            members = reached.nonzero()[:, 0]
            products = torch.cat([table[x, members], table[members, x]])
            new = products[~reached[products]].unique()
            reached[new] = True
            waiting.extend(new.tolist())
    return generators


@lru_cache(maxsize=None)
def cyclic(n: int) -> Group:
    """C_n = Z_n under addition, elements the residues 0..n−1 (so `table[a, b] = (a + b) mod n`)."""
    every = torch.arange(n)
    return Group(f"C{n}", (every[:, None] + every[None, :]) % n, tuple(str(i) for i in range(n)))


@lru_cache(maxsize=None)
def dihedral(n: int) -> Group:
    """D_n, the symmetries of the n-gon (order 2n): index i is r^i and n + i is s r^i (i < n),
    with r^n = s² = e and r s = s r⁻¹, so (s^a r^i)(s^b r^j) = s^(a+b) r^(j + (−1)^b i)."""
    if n < 1:
        raise GroupError(f"D{n}: the dihedral group needs n ≥ 1")
    flip, rot = torch.arange(2 * n) // n, torch.arange(2 * n) % n
    a, i, b, j = flip[:, None], rot[:, None], flip[None, :], rot[None, :]
    table = ((a + b) % 2) * n + (j + torch.where(b == 1, -i, i)) % n
    power = ["e", "r"] + [f"r^{k}" for k in range(2, n)]
    names = power[:n] + ["s" + ("" if k == 0 else p) for k, p in enumerate(power[:n])]
    return Group(f"D{n}", table, tuple(names))


def _permutation_group(name: str, perms: list[tuple[int, ...]]) -> Group:
    """The group of `perms` (closed under composition) with (x ∘ y)(i) = x(y(i)); element names
    are one-line notation, "01234" for the identity of S5."""
    index = {q: k for k, q in enumerate(perms)}
    table = [[index[tuple(x[i] for i in y)] for y in perms] for x in perms]
    return Group(name, torch.tensor(table), tuple("".join(map(str, q)) for q in perms))


def _check_degree(kind: str, n: int) -> None:
    if not 1 <= n <= 5:
        raise GroupError(f"{kind}{n}: permutation groups are built in for 1 ≤ n ≤ 5")


@lru_cache(maxsize=None)
def symmetric(n: int) -> Group:
    """S_n (n ≤ 5): the permutations of 0..n−1 in lexicographic order (itertools.permutations),
    composed right to left, (x ∘ y)(i) = x(y(i))."""
    _check_degree("S", n)
    return _permutation_group(f"S{n}", list(itertools.permutations(range(n))))


def _even(q: tuple[int, ...]) -> bool:
    """Parity by inversions."""
    return sum(q[i] > q[j] for i in range(len(q)) for j in range(i + 1, len(q))) % 2 == 0


@lru_cache(maxsize=None)
def alternating(n: int) -> Group:
    """A_n (n ≤ 5): the even permutations, in S_n's lexicographic order, composed as in S_n."""
    _check_degree("A", n)
    return _permutation_group(f"A{n}", [q for q in itertools.permutations(range(n)) if _even(q)])


def direct_product(g: Group, h: Group) -> Group:
    """G × H: index a·|H| + b is (a, b), named "(x,y)", composed componentwise."""
    m = h.order
    a, b = torch.arange(g.order * m) // m, torch.arange(g.order * m) % m
    table = g.table[a[:, None], a[None, :]] * m + h.table[b[:, None], b[None, :]]
    names = tuple(f"({x},{y})" for x in g.elements for y in h.elements)
    return Group(f"{g.name}x{h.name}", table, names)


_BUILT_IN = {"C": cyclic, "D": dihedral, "S": symmetric, "A": alternating}


@lru_cache(maxsize=None)
def group(name: str) -> Group:
    """A built-in group by name: "C7", "D5" (order 10), "S5", "A5", or products "C3xC3"."""
    factors = [re.fullmatch(r"([CDSA])(\d+)", f.strip()) for f in re.split(r"[x×]", name)]
    if None in factors or any(int(f[2]) < 1 for f in factors):
        hint = f" (did you mean {name.upper()!r}?)" if name != name.upper() and re.fullmatch(r"[cdsa]\d+", name) else ""
        raise GroupError(f"unknown group {name!r}{hint}: expected Cn, Dn, Sn, An (n ≤ 5 for S, A), products like "
                         "C3xC3, or a JSON file with a Cayley table")
    parts = [_BUILT_IN[f[1]](int(f[2])) for f in factors]
    return reduce(direct_product, parts)


def read_table(path: str) -> Group:
    """A user's group from a JSON file `{"name": ..., "table": [[...], ...], "elements": [...]}`
    (`elements` optional; `name` defaults to the file's stem), checked by `Group.from_table`."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise GroupError(f"{path} is not JSON: {err}") from None
    except RecursionError:  # lists nested thousands deep: the parser's stack, not ours
        raise GroupError(f"{path}: lists nested too deep for a Cayley table (rows of integers)") from None
    if not isinstance(data, dict) or "table" not in data:
        raise GroupError(f'{path}: expected {{"name": ..., "table": [[...]], "elements": [...]}}')
    return Group.from_table(str(data.get("name", Path(path).stem)), data["table"], data.get("elements"))
