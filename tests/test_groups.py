"""Finite groups by Cayley table: Z_p is the cyclic case, and a table that is not a group is refused."""

import itertools

import pytest
import torch

from interp.core.groups import Group, GroupError, cyclic
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
