"""Names a reader knows for a task's spectral units: "k = 44" for a frequency of Z_p, and for the
irreps of a group "trivial", "sign", "standard (4)", "standard ⊗ sign (4)", "2-dim, k = 7".

The stored ids (`Harmonics.names`: "k=44", "4b", "2ar": dimension, then letters a, b, … in
character-table order) stay what files and JSON hold; these labels are what summaries, tables
and figures print. Each label is read from the irrep's character, so it does not depend on the
order the irreps were computed in (docs/concepts.md, "Names of irreps"):

- C_n: the real irrep of frequency k has χ(g) = 2cos(2πk/n) at the generator g (the element
  named "1", else the first element of order n): "k = K" (k = n/2 is 1-dim, χ(g) = −1).
- D_n (order 2n, a rotation r of order n, every other element a reflection): a 2-dim irrep has
  χ(r) = 2cos(2πk/n): "2-dim, k = K", with r the element named "r" (or "r^1"), else the first of
  order n. The 1-dim irrep that is 1 on rotations and −1 on reflections is "sign"; for even n
  the other two are "1-dim, r ↦ −1, s ↦ ±1".
- S_n (elements named in one-line notation, "01234"): "sign"; "standard (n−1)" (χ of a
  transposition n − 3) and "standard ⊗ sign (n−1)" (−(n − 3)); for n ≤ 5 the rest by partition:
  "2-dim (2,2)" (S4), "5-dim (3,2)", "5-dim (2,2,1)", "6-dim ∧² standard" (S5).
- A_n (even permutations): "standard (n−1)" (χ of a 3-cycle n − 4); A5's two 3-dim irreps,
  "3-dim (+)" and "3-dim (−)", by the sign of √5 in χ((0 1 2 3 4)) = (1 ± √5)/2; A5's 5-dim
  "5-dim"; A4's complex pair "2-dim (ω, ω̄)".
- anything else: "D-dim (ID)", the dimension and the stored id.
"""

from __future__ import annotations

import math

import torch

from .groups import Group

#: S_n, n ≤ 5: (dimension, χ of a transposition) → the irrep's partition, for those without a
#: name of their own
_SYMMETRIC = {(2, 0): "2-dim (2,2)", (5, 1): "5-dim (3,2)", (5, -1): "5-dim (2,2,1)", (6, 0): "6-dim ∧² standard"}


def frequency_label(k: int) -> str:
    """A Z_p frequency (or C_n's irrep of frequency k)."""
    return f"k = {k}"


def _orders(group: Group) -> list[int]:
    """The order of every element."""
    e, out = group.identity, []
    for g in range(group.order):
        x, n = g, 1
        while x != e:
            x, n = int(group.table[x, g]), n + 1
        out.append(n)
    return out


def _permutations(group: Group) -> list[tuple[int, ...]] | None:
    """The elements as permutations of 0..n−1, when every name is one-line notation."""
    names = group.elements
    n = len(names[0])
    if n > 10 or any(len(x) != n or sorted(x) != [str(i) for i in range(n)] for x in names):
        return None
    return [tuple(int(c) for c in x) for x in names]


def _frequency(value: float, n: int) -> int:
    """k from χ(generator) = 2cos(2πk/n)."""
    return round(math.acos(max(-1.0, min(1.0, value / 2))) * n / (2 * math.pi))


def _pick(group: Group, order: int, names: tuple[str, ...]) -> int | None:
    """The element named one of `names`, else the first of that order."""
    orders = _orders(group)
    named = next((i for i, x in enumerate(group.elements) if x in names and orders[i] == order), None)
    return named if named is not None else next((i for i, o in enumerate(orders) if o == order), None)


def irrep_labels(group: Group, characters: list[torch.Tensor], ids: list[str]) -> tuple[str, ...]:
    """One label per real irrep (trivial first), from its real character over the elements
    (`Irrep.character`) and its stored id; unique (a clash falls back to "D-dim (ID)")."""
    dims = [round(float(chi[group.identity])) for chi in characters]
    labels = [_label(group, chi, d) for chi, d in zip(characters, dims)]
    labels[0] = "trivial"
    fallback = [f"{d}-dim ({i})" for d, i in zip(dims, ids)]
    return tuple(label if label is not None and labels.count(label) == 1 else fallback[u]
                 for u, label in enumerate(labels))


def _label(group: Group, chi: torch.Tensor, dim: int) -> str | None:
    n = group.order
    if group.abelian:
        g = _pick(group, n, ("1",))
        return None if g is None else frequency_label(_frequency(float(chi[g]) * (2 / dim), n))
    perms = _permutations(group)
    if perms is not None:
        return _permutation_label(perms, chi, dim)
    half = n // 2
    r = _pick(group, half, ("r", "r^1")) if n % 2 == 0 and half >= 3 else None
    if r is not None:
        rotations, x = set(), group.identity
        for _ in range(half):
            rotations.add(x)
            x = int(group.table[x, r])
        orders = _orders(group)
        if all(orders[g] == 2 for g in range(n) if g not in rotations):  # dihedral
            s = min(g for g in range(n) if g not in rotations)
            if dim == 2:
                return f"2-dim, k = {_frequency(float(chi[r]), half)}"
            if dim == 1:
                rot, ref = round(float(chi[r])), round(float(chi[s]))
                signed = {1: "+1", -1: "−1"}
                return "sign" if rot == 1 and ref == -1 else f"1-dim, r ↦ {signed[rot]}, s ↦ {signed[ref]}"
    return None


def _permutation_label(perms: list[tuple[int, ...]], chi: torch.Tensor, dim: int) -> str | None:
    m = len(perms[0])
    fixed = [sum(q[i] == i for i in range(m)) for q in perms]
    if len(perms) == math.factorial(m):  # S_m
        if dim == 1:
            return "sign"
        t = round(float(chi[fixed.index(m - 2)]))  # a transposition
        if dim == m - 1 and t == m - 3:
            return f"standard ({dim})"
        if dim == m - 1 and t == -(m - 3):
            return f"standard ⊗ sign ({dim})"
        return _SYMMETRIC.get((dim, t)) if m <= 5 else f"{dim}-dim, χ(transposition) = {t}"
    if 2 * len(perms) == math.factorial(m) and m >= 4:  # A_m
        three = fixed.index(m - 3)  # a 3-cycle
        if dim == m - 1 and round(float(chi[three])) == m - 4:
            return f"standard ({dim})"
        if m == 5 and dim == 3:
            cycle = perms.index(tuple((i + 1) % 5 for i in range(5)))
            return "3-dim (+)" if float(chi[cycle]) > 0 else "3-dim (−)"
        if m == 5 and dim == 5:
            return "5-dim"
        if m == 4 and dim == 2:
            return "2-dim (ω, ω̄)"
    return None
