"""Readable names of irreps and frequencies (`core.unit_labels`), checked against characters
computed here from the elements themselves, not against the naming code."""

import math

import pytest
import torch

from interp.core.groups import Group, alternating, cyclic, dihedral, symmetric
from interp.core.harmonics import group_harmonics, harmonics_of
from interp.core.irreps import real_irreps


def labelled(group: Group) -> dict[str, torch.Tensor]:
    """Each irrep's readable label → its real character."""
    units = group_harmonics(group)
    assert len(set(units.labels)) == len(units.labels), "labels are unique"
    return dict(zip(units.labels, (r.character.double() for r in real_irreps(group))))


def parity_and_fixed(group: Group) -> tuple[torch.Tensor, torch.Tensor]:
    perms = [tuple(int(c) for c in x) for x in group.elements]
    n = len(perms[0])
    parity = torch.tensor([(-1.0) ** sum(q[i] > q[j] for i in range(n) for j in range(i + 1, n)) for q in perms])
    fixed = torch.tensor([float(sum(q[i] == i for i in range(n))) for q in perms])
    return parity.double(), fixed.double()


def test_s5_irreps_are_named_by_their_characters_in_any_element_order():
    group = symmetric(5)
    parity, fixed = parity_and_fixed(group)
    shuffle = torch.randperm(group.order, generator=torch.Generator().manual_seed(0))
    inverse = torch.argsort(shuffle)  # new index of each old element
    renamed = Group.from_table("S5_shuffled", inverse[group.table[shuffle][:, shuffle]],
                               tuple(group.elements[i] for i in shuffle.tolist()))
    for g, order in ((group, torch.arange(group.order)), (renamed, shuffle)):
        chars = labelled(g)
        p, f = parity[order], fixed[order]
        assert set(chars) == {"trivial", "sign", "standard (4)", "standard ⊗ sign (4)", "5-dim (3,2)", "5-dim (2,2,1)",
                              "6-dim ∧² standard"}
        torch.testing.assert_close(chars["sign"], p)
        torch.testing.assert_close(chars["standard (4)"], f - 1)
        torch.testing.assert_close(chars["standard ⊗ sign (4)"], (f - 1) * p)
        # χ of (3,2) on a transposition is 1 (fixed points 3), of (2,2,1) −1
        transposition = int((f == 3).nonzero()[0])
        assert round(float(chars["5-dim (3,2)"][transposition])) == 1
        # ∧² standard: χ(g) = (χ_std(g)² − χ_std(g²)) / 2
        square = g.table[torch.arange(g.order), torch.arange(g.order)]
        std = f - 1
        torch.testing.assert_close(chars["6-dim ∧² standard"], (std.square() - std[square]) / 2)


def test_a5_dihedral_and_cyclic_names():
    a5 = alternating(5)
    chars = labelled(a5)
    cycle = a5.elements.index("12340")  # 0 ↦ 1 ↦ 2 ↦ 3 ↦ 4 ↦ 0
    golden = (1 + math.sqrt(5)) / 2
    assert float(chars["3-dim (+)"][cycle]) == pytest.approx(golden)
    assert float(chars["3-dim (−)"][cycle]) == pytest.approx(1 - golden)
    _, fixed = parity_and_fixed(a5)
    torch.testing.assert_close(chars["standard (4)"], fixed - 1)
    for n in (7, 8):
        group = dihedral(n)
        chars = labelled(group)
        r, s = group.elements.index("r"), group.elements.index("s")
        for k in range(1, (n - 1) // 2 + 1):
            assert float(chars[f"2-dim, k = {k}"][r]) == pytest.approx(2 * math.cos(2 * math.pi * k / n))
        assert (float(chars["sign"][r]), float(chars["sign"][s])) == (1.0, -1.0)
    assert set(labelled(dihedral(8))) >= {"1-dim, r ↦ −1, s ↦ +1", "1-dim, r ↦ −1, s ↦ −1"}
    chars = labelled(cyclic(8))
    one = cyclic(8).elements.index("1")
    for k in range(1, 4):
        assert float(chars[f"k = {k}"][one]) == pytest.approx(2 * math.cos(2 * math.pi * k / 8))
    assert float(chars["k = 4"][one]) == -1.0
    z = harmonics_of("add", 13)
    assert z.labels[0] == "constant" and z.labels[5] == "k = 5" and z.names[5] == "k=5", "ids stay as stored"
