"""Finite groups by Cayley table: Z_p is the cyclic case, and a table that is not a group is refused."""

import itertools

import pytest
import torch

from interp.core.groups import Group, GroupError, alternating, cyclic, dihedral, direct_product, group, symmetric
from interp.core.tasks import apply_op


@pytest.mark.parametrize("n", [1, 2, 7, 12])
def test_cyclic_is_addition_mod_n(n):
    g = cyclic(n)
    a, b = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    assert torch.equal(g.table, (a + b) % n) and g.identity == 0 and g.abelian
    assert torch.equal(g.inverse(), (-torch.arange(n)) % n)
    assert Group.from_table("again", g.table).order == n  # passes its own checks


def test_add_and_sub_labels_are_the_cyclic_group_s():
    a, b = torch.meshgrid(torch.arange(13), torch.arange(13), indexing="ij")
    assert torch.equal(apply_op("add", a, b, 13), (a + b) % 13)
    assert torch.equal(apply_op("sub", a, b, 13), (a - b) % 13)


def symmetric_3():
    """S3 as permutations of (0, 1, 2), composed as (x ∘ y)(i) = x(y(i))."""
    perms = list(itertools.permutations(range(3)))
    index = {q: i for i, q in enumerate(perms)}
    table = [[index[tuple(x[y[i]] for i in range(3))] for y in perms] for x in perms]
    return Group.from_table("S3", table, tuple("".join(map(str, q)) for q in perms))


def test_a_non_abelian_table_comes_in_with_its_own_element_names():
    s3 = symmetric_3()
    assert s3.order == 6 and not s3.abelian and s3.elements[s3.identity] == "012"
    x = torch.arange(6)
    assert torch.equal(s3.compose(x, s3.inverse()), torch.full((6,), s3.identity))


@pytest.mark.parametrize("table, message", [
    ([[0, 1], [1, 1]], "Latin square"),
    ([[0, 2, 1], [2, 1, 0], [1, 0, 2]], "identity"),  # x ∘ y = −x − y mod 3: a Latin square without identity
    ([[0, 1, 2], [1, 0, 2], [2, 2, 0]], "Latin square"),
    ([[0.0, 1.0], [1.0, 0.0]], "integer"),
    ([[0, 1], [1, 2]], "index"),
])
def test_tables_that_are_not_groups_are_refused(table, message):
    with pytest.raises(GroupError, match=message):
        Group.from_table("bad", table)


def test_associativity_is_checked():
    # a Latin square with identity 0 that is not associative (the smallest such loop has 5 elements)
    loop = [[0, 1, 2, 3, 4], [1, 0, 3, 4, 2], [2, 4, 0, 1, 3], [3, 2, 4, 0, 1], [4, 3, 1, 2, 0]]
    with pytest.raises(GroupError, match="associative"):
        Group.from_table("loop", loop)


def passes_the_axioms(g):
    return Group.from_table(g.name, g.table, g.elements).order == g.order


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6])
def test_dihedral_relations(n):
    g = dihedral(n)
    r, s, e = (1 % n), n, 0
    power = lambda x, k: e if k == 0 else g.compose(power(x, k - 1), x)  # noqa: E731
    assert g.order == 2 * n and g.identity == 0 and g.elements[0] == "e" and passes_the_axioms(g)
    assert int(power(r, n)) == e and int(g.compose(s, s)) == e
    assert int(g.compose(g.compose(s, r), s)) == int(g.inverse()[r])  # s r s = r⁻¹
    assert all(g.elements[n + i] == ("s" + g.elements[i] if i else "s") for i in range(n))
    assert all(int(g.compose(s, i)) == n + i for i in range(n))  # index n + i is s ∘ r^i
    assert g.abelian == (n <= 2)


@pytest.mark.parametrize("n, order", [(1, 1), (3, 6), (4, 24), (5, 120)])
def test_symmetric_composes_right_to_left(n, order):
    g = symmetric(n)
    perms = [tuple(map(int, name)) for name in g.elements]
    assert g.order == order and perms == sorted(perms) and passes_the_axioms(g)
    x, y = 1 % order, order - 1
    assert perms[int(g.compose(x, y))] == tuple(perms[x][i] for i in perms[y])
    assert torch.equal(g.table, symmetric_3().table) if n == 3 else True


@pytest.mark.parametrize("n, order", [(3, 3), (4, 12), (5, 60)])
def test_alternating_is_the_even_half(n, order):
    g, s = alternating(n), symmetric(n)
    assert g.order == order and passes_the_axioms(g) and set(g.elements) < set(s.elements)
    index = {name: i for i, name in enumerate(s.elements)}
    sub = torch.tensor([index[name] for name in g.elements])
    assert torch.equal(sub[g.table], s.table[sub[:, None], sub[None, :]])  # a subgroup, same product


def test_direct_product_is_componentwise():
    g = direct_product(cyclic(3), dihedral(3))
    assert g.name == "C3xD3" and g.order == 18 and passes_the_axioms(g) and not g.abelian
    a, b = 1, 11  # (0,r) and (1,sr^2)
    assert g.elements[a] == "(0,r)" and g.elements[b] == "(1,sr^2)"
    assert g.elements[int(g.compose(a, b))] == "(1,sr)"  # r ∘ s r^2 = s r⁻¹ r² = s r


@pytest.mark.parametrize("name, order", [("C7", 7), ("D5", 10), ("S5", 120), ("A5", 60), ("C3xC3", 9), ("C2xC2xC2", 8)])
def test_group_parses_names(name, order):
    g = group(name)
    assert g.name == name and g.order == order and passes_the_axioms(g)


@pytest.mark.parametrize("name", ["Q8", "S6", "C0", "", "c7", "C3x", "D"])
def test_unknown_group_names_are_refused(name):
    with pytest.raises(GroupError) as info:
        group(name)
    assert "\n" not in str(info.value)
