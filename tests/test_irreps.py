"""Real irreps and the group Fourier basis against closed forms: the dimension count, Schur
orthogonality, homomorphism, Plancherel, known character tables, and C_n = the Z_p Fourier basis."""

import itertools
import math
import time

import pytest
import torch

from interp.core import fourier, irreps
from interp.core.groups import Group, cyclic, dihedral, group, symmetric

PHI = (1 + math.sqrt(5)) / 2


def quaternion_group():
    """Q8 = {±1, ±i, ±j, ±k}: its 2-dim irrep is quaternionic (ν = −1)."""
    units = {"1": (1, "1"), "i": (1, "i"), "j": (1, "j"), "k": (1, "k")}
    mult = {("1", x): (1, x) for x in units} | {(x, "1"): (1, x) for x in units}
    mult |= {(x, x): (-1, "1") for x in "ijk"}
    mult |= {("i", "j"): (1, "k"), ("j", "k"): (1, "i"), ("k", "i"): (1, "j"),
             ("j", "i"): (-1, "k"), ("k", "j"): (-1, "i"), ("i", "k"): (-1, "j")}
    elements = [(s, u) for s in (1, -1) for u in "1ijk"]
    index = {e: n for n, e in enumerate(elements)}
    table = [[index[(s * t * mult[u, v][0], mult[u, v][1])] for (t, v) in elements] for (s, u) in elements]
    return Group.from_table("Q8", table, tuple(("" if s > 0 else "-") + u for s, u in elements))


def sl23():
    """SL(2, 3), order 24: real, complex and quaternionic irreps at once (degrees 1, 1, 1, 2, 2, 2, 3)."""
    mats = [m for m in itertools.product(range(3), repeat=4) if (m[0] * m[3] - m[1] * m[2]) % 3 == 1]
    index = {m: n for n, m in enumerate(mats)}
    def mul(x, y):
        return ((x[0] * y[0] + x[1] * y[2]) % 3, (x[0] * y[1] + x[1] * y[3]) % 3,
                (x[2] * y[0] + x[3] * y[2]) % 3, (x[2] * y[1] + x[3] * y[3]) % 3)
    return Group.from_table("SL(2,3)", [[index[mul(x, y)] for y in mats] for x in mats])


GROUPS = {name: (lambda name=name: group(name)) for name in
          ["C1", "C2", "C7", "C12", "D4", "D5", "D6", "S3", "S4", "A4", "A5", "S5", "C3xC3", "C2xD3"]}
GROUPS |= {"Q8": quaternion_group, "SL(2,3)": sl23}


@pytest.fixture(params=list(GROUPS))
def g(request):
    return GROUPS[request.param]()


def test_real_dimensions_count_to_the_order(g):
    """Σ_χ χ(1)² = |G| over the complex irreps and Σ_W D²/κ = |G| over the real ones (a
    complex-type pair merged into one real irrep of dimension 2d contributes 2d² = D²/2, a
    quaternionic one d² = D²/4)."""
    table, reps = irreps.character_table(g), irreps.real_irreps(g)
    assert sum(d * d for d in table.degrees) == g.order and len(table.values) == len(table.classes)
    assert sum(r.dim ** 2 // r.kappa for r in reps) == g.order
    assert reps[0].name == "trivial" and torch.equal(reps[0].matrices, torch.ones(g.order, 1, 1, dtype=torch.float64))


def test_each_irrep_is_an_orthogonal_homomorphism(g):
    for r in irreps.real_irreps(g):
        m = r.matrices
        eye = torch.eye(r.dim, dtype=torch.float64)
        torch.testing.assert_close(m[g.identity], eye)
        torch.testing.assert_close(m @ m.transpose(1, 2), eye.expand_as(m))
        product = torch.einsum("gab,hbc->ghac", m, m)  # ρ(g)ρ(h) for every pair
        torch.testing.assert_close(product, m[g.table])  # = ρ(g ∘ h)
        torch.testing.assert_close(r.character, m.diagonal(dim1=1, dim2=2).sum(-1))


def test_schur_orthogonality_of_matrix_coefficients(g):
    """Σ_g ρ_ij(g) σ_kl(g) = 0 for inequivalent ρ, σ; for ρ = σ it is (|G|/D) Σ_q q_ik q_jl
    over the commutant's units, which is (|G|/D) δ_ik δ_jl for real type; ⟨χ_ρ, χ_ρ⟩ = κ."""
    reps = irreps.real_irreps(g)
    for a, b in itertools.combinations_with_replacement(range(len(reps)), 2):
        ra, rb = reps[a], reps[b]
        gram = torch.einsum("gij,gkl->ijkl", ra.matrices, rb.matrices) / g.order
        if a != b:
            torch.testing.assert_close(gram, torch.zeros_like(gram), atol=1e-10, rtol=0)
        elif ra.kind == "real":
            eye = torch.eye(ra.dim, dtype=torch.float64)
            torch.testing.assert_close(gram, torch.einsum("ik,jl->ijkl", eye, eye) / ra.dim)
    for r in reps:
        assert abs(float(r.character @ r.character) / g.order - r.kappa) < 1e-9


def test_fourier_basis_is_orthonormal_and_plancherel_holds(g):
    basis, labels = irreps.group_fourier_basis(g, torch.float64)
    assert basis.shape == (g.order, g.order) and len(set(labels)) == g.order
    torch.testing.assert_close(basis @ basis.T, torch.eye(g.order, dtype=torch.float64))
    x = torch.randn(3, 5, g.order, dtype=torch.float64)
    power = irreps.power_per_irrep(x, g)
    assert power.shape == (3, 5, len(irreps.real_irreps(g)))
    torch.testing.assert_close(power.sum(-1), (x ** 2).sum(-1))  # ‖f‖² = Σ power
    torch.testing.assert_close(irreps.inverse_group_transform(irreps.group_transform(x, g), g), x)
    along = irreps.power_per_irrep(x.transpose(1, 2), g, dim=1)
    torch.testing.assert_close(along, power.transpose(1, 2))


def test_a_translated_matrix_coefficient_stays_in_its_irrep(g):
    """f(h⁻¹ ∘ x) for f = ρ_ij has all its power in ρ: the power per irrep is basis-free."""
    basis, labels = irreps.group_fourier_basis(g, torch.float64)
    for row, (r, _, _) in list(zip(basis, labels))[:: max(1, g.order // 12)]:
        moved = row[g.table[g.inverse()[g.order - 1]]]
        power = irreps.power_per_irrep(moved, g)
        assert abs(float(power[r]) - 1) < 1e-10


@pytest.mark.parametrize("n", [1, 2, 7, 8, 12, 59])
def test_cyclic_basis_is_the_real_fourier_basis(n):
    """Rows in the same order: Const, cos 1, sin 1, …; the sin sign from Im χ_k(1) > 0."""
    ours, _ = irreps.group_fourier_basis(cyclic(n), torch.float64)
    theirs, _ = fourier.fourier_basis(n, torch.float64)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)
    x = torch.randn(4, n, dtype=torch.float64)
    torch.testing.assert_close(irreps.power_per_irrep(x, cyclic(n)), fourier.frequency_power(x))


def characters_on_elements(g):
    return irreps.character_table(g).on_elements(g.order)


def assert_same_characters(g, known):
    """Known characters (as functions on elements) are the computed ones, up to their order."""
    ours = characters_on_elements(g)
    known = torch.as_tensor(known, dtype=ours.dtype)
    assert len(known) == len(ours)
    matched = [int(((ours - k).abs().max(1).values < 1e-9).nonzero()[0]) for k in known]
    assert sorted(matched) == list(range(len(ours)))


def cycle_type(name):
    perm, seen, lengths = tuple(map(int, name)), set(), []
    for start in perm:
        n, x = 0, start
        while x not in seen:
            seen.add(x)
            x, n = perm[x], n + 1
        if n:
            lengths.append(n)
    return tuple(sorted(lengths, reverse=True))


S_TABLES = {  # characters by cycle type (Fulton–Harris §2.3, §3.1)
    3: {(1, 1, 1): [1, 1, 2], (2, 1): [1, -1, 0], (3,): [1, 1, -1]},
    4: {(1, 1, 1, 1): [1, 1, 2, 3, 3], (2, 1, 1): [1, -1, 0, 1, -1], (2, 2): [1, 1, 2, -1, -1],
        (3, 1): [1, 1, -1, 0, 0], (4,): [1, -1, 0, -1, 1]},
    5: {(1, 1, 1, 1, 1): [1, 1, 4, 4, 5, 5, 6], (2, 1, 1, 1): [1, -1, 2, -2, 1, -1, 0],
        (2, 2, 1): [1, 1, 0, 0, 1, 1, -2], (3, 1, 1): [1, 1, 1, 1, -1, -1, 0],
        (3, 2): [1, -1, -1, 1, 1, -1, 0], (4, 1): [1, -1, 0, 0, -1, 1, 0], (5,): [1, 1, -1, -1, 0, 0, 1]},
}
S_SIZES = {3: [1, 3, 2], 4: [1, 6, 3, 8, 6], 5: [1, 10, 15, 20, 20, 30, 24]}


@pytest.mark.parametrize("n", [3, 4, 5])
def test_symmetric_character_tables(n):
    g = symmetric(n)
    table = irreps.character_table(g)
    assert sorted(table.sizes) == sorted(S_SIZES[n]) and set(table.indicators) == {1}
    columns = [S_TABLES[n][cycle_type(name)] for name in g.elements]
    assert_same_characters(g, torch.tensor(columns).T)


def test_a5_character_table_has_the_golden_ratio():
    g = group("A5")
    table = irreps.character_table(g)
    assert sorted(table.sizes) == [1, 12, 12, 15, 20] and set(table.indicators) == {1}
    c = g.elements.index("12340")  # the 5-cycle 0→1→2→3→4→0; its A5-class holds c⁻¹ but not c²
    five_a = set(g.table[g.table[:, c], g.inverse()].tolist())
    columns = {  # trivial, 3, 3', 4, 5 on each class
        (1, 1, 1, 1, 1): [1, 3, 3, 4, 5], (2, 2, 1): [1, -1, -1, 0, 1], (3, 1, 1): [1, 0, 0, 1, -1],
        "5a": [1, PHI, 1 - PHI, -1, 0], "5b": [1, 1 - PHI, PHI, -1, 0],
    }
    def label(x):
        kind = cycle_type(g.elements[x])
        return kind if kind != (5,) else "5a" if x in five_a else "5b"
    assert_same_characters(g, torch.tensor([columns[label(x)] for x in range(g.order)], dtype=torch.float64).T)


def dihedral_characters(n):
    """D_n on r^k and s r^k: 2cos(2πhk/n) and 0 for h = 1 … ⌈n/2⌉−1; the 1-dim ones are ±1 on
    s, and for even n also (−1)^k on r^k."""
    k, flip = torch.arange(2 * n, dtype=torch.float64) % n, torch.arange(2 * n) >= n
    rows = [torch.ones(2 * n, dtype=torch.float64), torch.where(flip, -1.0, 1.0).double()]
    if n % 2 == 0:
        sign = (-1.0) ** k
        rows += [sign, torch.where(flip, -sign, sign)]
    rows += [torch.where(flip, 0.0, 2 * torch.cos(2 * math.pi * h * k / n)) for h in range(1, (n + 1) // 2)]
    return torch.stack(rows)


@pytest.mark.parametrize("n, sizes", [(4, [1, 1, 2, 2, 2]), (5, [1, 2, 2, 5]), (6, [1, 1, 2, 2, 3, 3])])
def test_dihedral_character_tables(n, sizes):
    g = dihedral(n)
    table = irreps.character_table(g)
    assert sorted(table.sizes) == sizes and set(table.indicators) == {1}
    assert_same_characters(g, dihedral_characters(n))


def test_frobenius_schur_types():
    q8, sl = quaternion_group(), sl23()
    assert [r.kind for r in irreps.real_irreps(q8)] == ["real"] * 4 + ["quaternionic"]
    assert [r.dim for r in irreps.real_irreps(q8)] == [1, 1, 1, 1, 4]
    assert sorted(irreps.character_table(sl).indicators) == [-1, 0, 0, 0, 0, 1, 1]
    assert sorted(r.kind for r in irreps.real_irreps(group("C3xC3"))) == ["complex"] * 4 + ["real"]


def test_a_users_table_in_its_own_order_gives_the_same_irreps_relabelled():
    """Same characters on the same elements; their order may differ (ties between, e.g., S4's
    two 3-dim irreps are broken in class order, which follows the element order)."""
    s4 = symmetric(4)
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))  # new index of old element
    old = torch.argsort(perm)
    table = perm[s4.table[old[:, None], old[None, :]]]
    mine = Group.from_table("my S4", table, tuple(s4.elements[i] for i in old.tolist()))
    assert_same_characters(mine, characters_on_elements(s4)[:, old])
    real = torch.stack([r.character for r in irreps.real_irreps(s4)])[:, old]
    assert_same_characters(mine, real)  # S4's irreps are all of real type: ψ = χ


def test_s5_is_computed_once_and_fast():
    g = symmetric(5)
    for cached in (irreps._character_table, irreps._real_irreps, irreps._fourier):
        cached.cache_clear()
    start = time.perf_counter()
    basis, _ = irreps.group_fourier_basis(g)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, f"S5 irreps took {elapsed:.2f} s"  # ≈ 0.4 s on an idle core
    assert irreps.real_irreps(g)[2] is irreps.real_irreps(symmetric(5))[2]
    assert [r.dim for r in irreps.real_irreps(g)] == [1, 1, 4, 4, 5, 5, 6]
