"""Real irreducible representations of a finite group given by its Cayley table, and the group
Fourier analysis they define (the Z_p Fourier basis is the cyclic case).

Conventions (docs/concepts.md, "Groups and irreps"):
- Functions on G are vectors indexed by element index; the left regular representation is
  L(g) e_y = e_{g∘y}, the right one R(h) e_y = e_{y∘h⁻¹} (they commute).
- Complex characters come from Dixon's method: the class sums C_j span the centre of C[G], with
  C_j C_k = Σ_l a_jkl C_l, and each irreducible χ gives the central character
  ω(C_l) = |C_l| χ(g_l) / χ(1), a common eigenvector of the matrices (M_j)_{kl} = a_jkl
  (M_j ω = ω(C_j) ω). One random combination Σ_j r_j M_j has distinct eigenvalues, so its
  eigenvectors are the ω's; χ(1) follows from Σ_l |C_l| |χ(g_l)|² = |G|.
- Frobenius–Schur: ν(χ) = (1/|G|) Σ_g χ(g²) is 1 (real type: a real d×d irrep), 0 (complex
  type: χ and χ̄ merge into one real irrep of dimension D = 2d) or −1 (quaternionic: one real
  irrep of dimension D = 2d from χ alone). κ = dim_R End_G(W) = 1, 2, 4 respectively.
- Counting (Σ d² = |G| over the reals): the matrix coefficients of a real irrep W of dimension
  D span a space of functions of dimension D²/κ — d² (real), 2d² (complex: χ's d² plus χ̄'s d²),
  d² (quaternionic) — and Σ_W D²/κ = Σ_χ χ(1)² = |G|.
- Each real irrep's basis is adapted to its commutant's imaginary units q (J for complex type,
  I, J, K for quaternionic): columns e_1…e_m, then q e_1…q e_m for each unit, m = D/κ. So
  ρ = [[A, −B], [B, A]] for complex type, with A + iB the unitary irrep of character χ, the
  member of {χ, χ̄} whose first non-real value (in class order) has Im χ > 0.
- Group Fourier basis: rows √(D/|G|) ρ(g)_ij for the irreps in order, i < D, j < m (row-major).
  By Schur, Σ_g ρ_ij ρ_kl = (|G|/D) Σ_{q ∈ {1, units}} q_ik q_jl, which is (|G|/D) δ_ik δ_jl for
  j, l < m, so the rows are orthonormal, |G| of them: a basis (Plancherel: ‖f‖² = Σ power).
- For C_n this is exactly `fourier.fourier_basis(n)`, rows in the same order: irreps sorted by
  (degree, then −Re χ(g)/χ(1) over classes, then −Im), so frequency k comes k-th; the trivial
  irrep is Const; frequency k is χ_k(x) = e^{2πikx/n}, whose rows are cos k (A) then sin k (B) —
  the sin sign is fixed by Im χ_k(1) > 0; k = n/2 is the 1-dim (−1)^x, "cos n/2".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Complex, Float, Int
from torch import Tensor

from .groups import Group, GroupError

TOL = 1e-8  # agreement asked of the character relations and of orthogonality
SEEDS = range(8)  # random combinations tried in turn; a bad draw (near-equal eigenvalues) is retried


@dataclass(frozen=True, eq=False)
class CharacterTable:
    """Complex characters: `values[χ, c]` is χ on class c; classes[c] lists its elements
    (identity class first, then by smallest element index); `indicators[χ]` = ν(χ)."""

    classes: tuple[tuple[int, ...], ...]
    values: Complex[Tensor, "chi cls"]
    indicators: tuple[int, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.classes)

    @property
    def degrees(self) -> tuple[int, ...]:
        return tuple(int(round(v)) for v in self.values[:, 0].real.tolist())

    def on_elements(self, order: int) -> Complex[Tensor, "chi n"]:
        """χ(g) for every element index g."""
        cls = torch.empty(order, dtype=torch.long)
        for c, members in enumerate(self.classes):
            cls[list(members)] = c
        return self.values[:, cls]


@dataclass(frozen=True, eq=False)
class Irrep:
    """A real irreducible representation: `matrices[g]` is the orthogonal D×D matrix ρ(g),
    `character[g]` = tr ρ(g); `kind` is "real", "complex" or "quaternionic" (κ = 1, 2, 4)."""

    name: str
    dim: int
    matrices: Float[Tensor, "n d d"]
    character: Float[Tensor, " n"]
    kind: str

    @property
    def kappa(self) -> int:
        """dim_R of the commutant End_G(W)."""
        return {"real": 1, "complex": 2, "quaternionic": 4}[self.kind]

    @property
    def columns(self) -> int:
        """m = D/κ: the columns of ρ whose coefficients form the Fourier basis."""
        return self.dim // self.kappa


def _eigh(x: Float[Tensor, "k k"]) -> tuple[Float[Tensor, " k"], Float[Tensor, "k k"]]:
    """Symmetric eigensolve in numpy: LAPACK without torch's thread pool, which on a few shared
    cores is ~100× slower for these small matrices."""
    values, vectors = np.linalg.eigh(x.numpy())
    return torch.from_numpy(values), torch.from_numpy(vectors)


# --- group structure -------------------------------------------------------------------------


def _key(group: Group) -> tuple[str, int, bytes]:
    """Hashable identity of a group: its name and its table (so a user's table is its own)."""
    return group.name, group.order, group.table.contiguous().numpy().astype(np.int64).tobytes()


def _from_key(key: tuple[str, int, bytes]) -> Group:
    name, n, raw = key
    table = torch.from_numpy(np.frombuffer(raw, dtype=np.int64).reshape(n, n).copy())
    return Group(name, table, tuple(str(i) for i in range(n)))


@dataclass(frozen=True)
class _Division:
    """Tables computed once per group: `left[x, y]` = x⁻¹ ∘ y, `right[x, y]` = x ∘ y⁻¹."""

    n: int
    identity: int
    inverse: Int[Tensor, " n"]
    left: Int[Tensor, "n n"]
    right: Int[Tensor, "n n"]


def _division(group: Group) -> _Division:
    inv = group.inverse()
    return _Division(group.order, group.identity, inv, group.table[inv], group.table[:, inv])


def conjugacy_classes(group: Group) -> tuple[tuple[int, ...], ...]:
    """The classes {x g x⁻¹}: identity's first, the rest by their smallest element."""
    t, inv = group.table, group.inverse()
    conj = t[t, inv[:, None].expand_as(t)]  # conj[x, g] = (x ∘ g) ∘ x⁻¹
    classes = {tuple(sorted(set(conj[:, g].tolist()))) for g in range(group.order)}
    e = group.identity
    return tuple(sorted(classes, key=lambda c: (e not in c, c[0])))


def _class_index(classes: tuple[tuple[int, ...], ...], n: int) -> Int[Tensor, " n"]:
    cls = torch.empty(n, dtype=torch.long)
    for c, members in enumerate(classes):
        cls[list(members)] = c
    return cls


def _class_coefficients(group: Group, classes) -> Float[Tensor, "j k l"]:
    """a[j, k, l] = #{(x, y) ∈ C_j × C_k : x ∘ y = g_l}, g_l the first element of C_l:
    = #{x ∈ C_j : x⁻¹ ∘ g_l ∈ C_k}."""
    n, k = group.order, len(classes)
    onehot = torch.nn.functional.one_hot(_class_index(classes, n), k).double()  # [x, j]
    reps = torch.tensor([c[0] for c in classes])
    partner = group.table[group.inverse()][:, reps]  # [x, l] = x⁻¹ ∘ g_l
    return torch.einsum("xj,xlk->jkl", onehot, onehot[partner])


# --- complex characters (Dixon) -----------------------------------------------------------------


def _central_characters(a: Float[Tensor, "j k l"], sizes: Tensor, seed: int) -> Complex[Tensor, "chi l"] | None:
    """The ω's: eigenvectors of a random Σ_j r_j M_j, scaled so ω(C_e) = 1; None when two
    eigenvalues nearly coincide. Conjugating by diag(√|C|) makes the matrix normal (the centre
    with the trace inner product is a commutative *-algebra), so its eigenvectors are well
    conditioned."""
    r = torch.from_numpy(np.random.default_rng(seed).standard_normal(len(sizes)))
    m = torch.einsum("j,jkl->kl", r, a)
    s = sizes.double().sqrt()
    values, vectors = (torch.from_numpy(v).to(torch.complex128)  # eig returns reals when all are real
                       for v in np.linalg.eig((m / s[:, None] * s[None, :]).numpy()))
    gaps = (values[:, None] - values[None, :]).abs() + torch.eye(len(values)) * 1e300
    if len(values) > 1 and gaps.min() < 1e-6 * max(1.0, float(values.abs().max())):
        return None
    omega = (vectors * s.to(vectors.dtype)[:, None]).T  # undo the conjugation: ω ∝ S v
    return omega / omega[:, :1]


def _characters_from(omega: Complex[Tensor, "chi l"], sizes: Tensor, order: int) -> Complex[Tensor, "chi l"]:
    """χ(g_l) = χ(1) ω_l / |C_l|, with χ(1)² Σ_l |ω_l|² / |C_l| = |G|."""
    ratio = omega / sizes.to(omega.dtype)
    degree = (order / (ratio.abs() ** 2 * sizes).sum(1)).sqrt().round()
    return ratio * degree[:, None]


def _orthonormal(values: Complex[Tensor, "chi l"], sizes: Tensor, order: int) -> bool:
    """Row orthogonality: Σ_l |C_l| χ(g_l) ψ̄(g_l) = |G| δ_χψ."""
    gram = (values * sizes) @ values.conj().T / order
    return bool(torch.allclose(gram, torch.eye(len(values), dtype=gram.dtype), atol=TOL))


def _compare(x: list[float], y: list[float]) -> int:
    """−1, 0, 1 comparing vectors entry by entry, equal within 1e-6 (so conjugates tie on Re)."""
    for u, v in zip(x, y):
        if abs(u - v) > 1e-6:
            return -1 if u < v else 1
    return 0


def _sorted(values: Complex[Tensor, "chi l"]) -> Complex[Tensor, "chi l"]:
    """Order: degree, then −Re χ/χ(1) over the classes, then −Im χ/χ(1) (trivial first; for C_n
    frequency k = 0, 1, …, and χ_k before χ̄_k)."""
    scaled = values / values[:, :1].real
    keys = [([d], (-z.real).tolist(), (-z.imag).tolist()) for d, z in zip(values[:, 0].real.tolist(), scaled)]

    def compare(i: int, j: int) -> int:
        return next((c for a, b in zip(keys[i], keys[j]) if (c := _compare(a, b))), 0)

    return values[sorted(range(len(values)), key=functools.cmp_to_key(compare))]


def _indicators(values: Complex[Tensor, "chi l"], group: Group, classes) -> tuple[int, ...]:
    """ν(χ) = (1/|G|) Σ_g χ(g²), rounded (it is exactly 1, 0 or −1)."""
    cls = _class_index(classes, group.order)
    squares = cls[group.table.diagonal()]
    nu = values[:, squares].sum(1).real / group.order
    if (nu - nu.round()).abs().max() > 1e-6:
        raise GroupError(f"{group.name}: Frobenius–Schur indicators {nu.tolist()} are not integers")
    return tuple(int(v) for v in nu.round().tolist())


@functools.lru_cache(maxsize=32)
def _character_table(key) -> CharacterTable:
    group = _from_key(key)
    classes = conjugacy_classes(group)
    sizes = torch.tensor([len(c) for c in classes], dtype=torch.float64)
    a = _class_coefficients(group, classes)
    for seed in SEEDS:
        omega = _central_characters(a, sizes, seed)
        if omega is None:
            continue
        values = _characters_from(omega, sizes, group.order)
        if _orthonormal(values, sizes, group.order):
            values = _sorted(values)
            return CharacterTable(classes, values, _indicators(values, group, classes))
    raise GroupError(f"{group.name}: Dixon's method did not separate the characters")


def character_table(group: Group) -> CharacterTable:
    """The complex character table of `group` (cached per name and table)."""
    return _character_table(_key(group))


# --- real irreps -----------------------------------------------------------------------------------


def _real_orbits(table: CharacterTable) -> list[tuple[int, str, tuple[int, ...]]]:
    """One entry per real irrep: (representative χ, kind, the χ's it contains). A complex-type χ
    is paired with χ̄ (the representative is the earlier, Im > 0 at its first non-real class)."""
    values, taken, orbits = table.values, set(), []
    for i, nu in enumerate(table.indicators):
        if i in taken:
            continue
        if nu == 0:
            j = next(j for j in range(len(values)) if j not in taken and j != i
                     and torch.allclose(values[j], values[i].conj(), atol=1e-6))
            orbits.append((i, "complex", (i, j)))
            taken |= {i, j}
        else:
            orbits.append((i, "real" if nu == 1 else "quaternionic", (i,)))
            taken.add(i)
    return orbits


def _isotypic_subspace(div: _Division, chi: Complex[Tensor, "chi n"], members, seed: int) -> Float[Tensor, "n r"]:
    """Orthonormal basis of the image of the real central idempotent
    e = Σ_{χ ∈ members} (χ(1)/|G|) Σ_g χ(g⁻¹) g in the left regular representation
    (entries L(e)_{xy} = e(x ∘ y⁻¹)): the functions whose left translates carry only those χ.
    L(e) is an orthogonal projection of rank r = tr L(e), so the QR of L(e) Ω, Ω a random n×r
    matrix, spans its image (no n×n eigensolve)."""
    e = sum(chi[c, div.identity].real * chi[c, div.inverse] for c in members).real / div.n
    projector = e[div.right]
    rank = int(round(float(projector.trace())))
    omega = torch.from_numpy(np.random.default_rng(3000 + seed).standard_normal((div.n, rank)))
    q, _ = np.linalg.qr((projector @ omega).numpy())
    return projector @ torch.from_numpy(q)  # one more projection cleans the rounding off the range


def _one_copy(div: _Division, block: Float[Tensor, "n r"], dim: int, seed: int) -> Float[Tensor, "n d"] | None:
    """One irreducible copy inside an isotypic block: an eigenspace of a random symmetric element
    H = Σ_h c_h (R(h) + R(h)ᵀ) of the commutant (right translations), restricted to the block.
    On W^m ≅ W ⊗ K^m (K = R, C, H) it is a random K-Hermitian m×m matrix, so its m eigenvalues
    are distinct and each eigenspace is one copy of W (real dimension D). None on a near-tie."""
    c = torch.from_numpy(np.random.default_rng(1000 + seed).standard_normal(div.n))
    right = c[div.left]  # [x, y] = c(x⁻¹ ∘ y): Σ_h c_h R(h)
    values, vectors = _eigh(block.T @ (right + right.T) @ block)
    groups = values.reshape(-1, dim)
    spread = (groups[:, -1] - groups[:, 0]).max()
    gap = (groups[1:, 0] - groups[:-1, -1]).min() if len(groups) > 1 else torch.tensor(math.inf)
    if gap < 1e-6 or spread > 1e-3 * gap:
        return None
    copy = block @ vectors[:, :dim]
    # LAPACK returns some orthonormal basis of the degenerate eigenspace, which one set by its
    # summation order (OpenBLAS's kernels differ from CPU to CPU): the basis is fixed by the
    # space alone instead — the projections of fixed vectors onto it, orthonormalised in order
    fixed = torch.from_numpy(np.random.default_rng(4000 + seed).standard_normal((div.n, dim)))
    q, r = torch.linalg.qr(copy @ (copy.T @ fixed))
    return q * r.diagonal().sign()


def _matrices(div: _Division, copy: Float[Tensor, "n d"]) -> Float[Tensor, "n d d"]:
    """ρ(g) = Qᵀ L(g) Q, where (L(g) Q)[x] = Q[g⁻¹ ∘ x]."""
    return torch.einsum("xa,gxb->gab", copy, copy[div.left])


def _average(rho: Float[Tensor, "n d d"], x: Float[Tensor, "d d"]) -> Float[Tensor, "d d"]:
    """(1/|G|) Σ_g ρ(g) X ρ(g)ᵀ: the orthogonal projection of X onto the commutant."""
    return torch.einsum("gab,bc,gdc->ad", rho, x, rho) / len(rho)


def _unit(q: Float[Tensor, "d d"]) -> Float[Tensor, "d d"]:
    """Scale an antisymmetric commutant element (q² = −λ I) to an imaginary unit (q² = −I)."""
    return q / (-(q @ q).diagonal().mean()).sqrt()


def _complex_unit(rho: Float[Tensor, "n d d"], chi: Complex[Tensor, " n"], degree: int) -> Float[Tensor, "d d"]:
    """J = i(P − P̄) = −2 Im P, P = (χ(1)/|G|) Σ_g χ̄(g) ρ(g) the projection of W ⊗ C onto its χ
    part: J acts as +i on the χ part, so (W, J) has character χ (not χ̄)."""
    p = torch.einsum("g,gab->ab", chi.conj(), rho.to(chi.dtype)) * degree / len(rho)
    return -2 * p.imag


def _quaternion_units(rho: Float[Tensor, "n d d"], seed: int) -> list[Float[Tensor, "d d"]]:
    """I, J, K = IJ: antisymmetric commutant elements (pure imaginary quaternions), J made
    Frobenius-orthogonal to I so that they anticommute."""
    rng, d = np.random.default_rng(2000 + seed), rho.shape[-1]

    def antisymmetric() -> Tensor:
        q = _average(rho, torch.from_numpy(rng.standard_normal((d, d))))
        return q - q.T

    i, q = _unit(antisymmetric()), antisymmetric()
    j = _unit(q - (q * i).sum() / (i * i).sum() * i)
    return [i, j, i @ j]


def _adapted_frame(units: list[Float[Tensor, "d d"]], dim: int) -> Float[Tensor, "d d"]:
    """An orthogonal basis [e_1…e_m, q e_1…q e_m for each unit q]: Gram–Schmidt over the
    division algebra, each new e orthogonal to every q e_j before it."""
    ops = [torch.eye(dim, dtype=torch.float64), *units]
    m, frame = dim // len(ops), []
    for v in torch.eye(dim, dtype=torch.float64):
        for e in frame:
            for q in ops:
                v = v - (q @ e) @ v * (q @ e)
        if v.norm() > 1e-6:
            frame.append(v / v.norm())
        if len(frame) == m:
            break
    return torch.stack([q @ e for q in ops for e in frame], 1)


def _letters(j: int) -> str:
    """a, b, …, z, aa, ab, … (bijective base 26)."""
    out = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        out = chr(97 + r) + out
    return out


def _build(div: _Division, table: CharacterTable, chi: Complex[Tensor, "chi n"], orbit, seed: int) -> Irrep | None:
    """The real irrep of one orbit (representative χ, kind, members), or None when a random
    draw was degenerate (checked: the character and orthogonality of every ρ(g), which hold
    only on an invariant subspace)."""
    rep, kind, members = orbit
    dim = table.degrees[rep] * (1 if kind == "real" else 2)
    copy = _one_copy(div, _isotypic_subspace(div, chi, members, seed), dim, seed)
    if copy is None:
        return None
    rho = _matrices(div, copy)
    units = ([] if kind == "real" else [_complex_unit(rho, chi[rep], table.degrees[rep])] if kind == "complex"
             else _quaternion_units(rho, seed))
    frame = _adapted_frame(units, dim)
    rho = frame.T @ rho @ frame
    if dim == 1:
        rho = rho.round()  # a real 1-dim irrep takes the values ±1 exactly
    character = rho.diagonal(dim1=1, dim2=2).sum(-1)
    expected = sum(chi[c].real for c in members) * (2 if kind == "quaternionic" else 1)
    eye = torch.eye(dim, dtype=torch.float64)
    if not (torch.allclose(character, expected, atol=1e-6) and torch.allclose(rho @ rho.transpose(1, 2), eye, atol=1e-6)):
        return None
    return Irrep("", dim, rho, character, kind)


@functools.lru_cache(maxsize=32)
def _real_irreps(key) -> tuple[Irrep, ...]:
    group, table = _from_key(key), _character_table(key)
    div, chi = _division(group), table.on_elements(group.order)
    irreps, count = [], {}
    for orbit in _real_orbits(table):
        built = next((b for s in SEEDS if (b := _build(div, table, chi, orbit, s))), None)
        if built is None:
            raise GroupError(f"{group.name}: could not split the isotypic block of character {orbit[0]}")
        j = count[built.dim] = count.get(built.dim, -1) + 1
        name = "trivial" if not irreps else f"{built.dim}{_letters(j)}"
        irreps.append(Irrep(name, built.dim, built.matrices, built.character, orbit[1]))
    return tuple(irreps)


def real_irreps(group: Group) -> list[Irrep]:
    """The real irreducible representations of `group`, in character-table order (computed once
    per name and table). Σ_W D_W² / κ_W = |G|."""
    return list(_real_irreps(_key(group)))


# --- Fourier analysis on G ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _fourier(key) -> tuple[Tensor, tuple[tuple[int, int, int], ...]]:
    rows, labels = [], []
    for r, irrep in enumerate(_real_irreps(key)):
        scale = math.sqrt(irrep.dim / key[1])
        for i in range(irrep.dim):
            for j in range(irrep.columns):
                rows.append(scale * irrep.matrices[:, i, j])
                labels.append((r, i, j))
    return torch.stack(rows), tuple(labels)


def group_fourier_basis(group: Group, dtype: torch.dtype = torch.float32) -> tuple[Float[Tensor, "component n"], list[tuple[int, int, int]]]:
    """Orthonormal basis of functions on G (rows over element indices) and each row's label
    (irrep index, i, j): row √(D/|G|) ρ(·)_ij, j < D/κ. For C_n it is `fourier.fourier_basis(n)`."""
    basis, labels = _fourier(_key(group))
    return basis.to(dtype), list(labels)


def row_irreps(group: Group) -> Int[Tensor, " component"]:
    """The irrep index of each basis row."""
    _, labels = _fourier(_key(group))
    return torch.tensor([r for r, _, _ in labels])


def group_transform(x: Tensor, group: Group, dim: int = -1) -> Tensor:
    """Coefficients of `x` in the group Fourier basis along `dim` (length |G|)."""
    basis, _ = group_fourier_basis(group, x.dtype)
    return torch.movedim(torch.movedim(x, dim, -1) @ basis.to(x.device).T, -1, dim)


def inverse_group_transform(coeffs: Tensor, group: Group, dim: int = -1) -> Tensor:
    basis, _ = group_fourier_basis(group, coeffs.dtype)
    return torch.movedim(torch.movedim(coeffs, dim, -1) @ basis.to(coeffs.device), -1, dim)


def power_per_irrep(x: Tensor, group: Group, dim: int = -1) -> Tensor:
    """‖·‖² of `x`'s component in each irrep's coefficient space along `dim` (Plancherel: sums
    to ‖x‖²); `dim` becomes the irrep axis. For C_n it is `fourier.frequency_power`."""
    coeffs = torch.movedim(group_transform(x, group, dim), dim, -1) ** 2
    which = row_irreps(group).to(x.device)
    power = torch.zeros(*coeffs.shape[:-1], int(which.max()) + 1, dtype=x.dtype, device=x.device)
    power.index_add_(-1, which, coeffs)
    return torch.movedim(power, -1, dim)
