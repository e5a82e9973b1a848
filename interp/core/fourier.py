"""The Fourier basis of Z_p and spectra of everything indexed by a residue.

Conventions (docs/concepts.md):
- Real orthonormal basis, rows `Const, cos 1, sin 1, …, cos ⌊p/2⌋, sin ⌊p/2⌋`, each of unit norm;
  for even p the row `sin p/2` is identically zero and left out, so there are always p rows.
- Frequency k means the functions cos(2πkx/p), sin(2πkx/p); k = 0 is the constant.
- A vector u(x) = A cos(2πkx/p + φ) has amplitude A and phase φ at frequency k; both are read
  from the complex DFT û(k) = Σ_x u(x) e^{−2πikx/p} = (A p / 2) e^{iφ}.
- IPR (Doshi et al.): with D the |rfft| of a vector (k = 0 … ⌊p/2⌋),
  IPR = Σ_k D_k⁴ / (Σ_k D_k²)²  (r = 2); 1 for a single frequency, 1/(⌊p/2⌋+1) for a flat
  spectrum. A neuron's IPR is the mean over its vectors (u, v, w).
"""

from __future__ import annotations

import math
from functools import lru_cache

import einops
import torch
from jaxtyping import Float
from torch import Tensor

from .tasks import Dataset


@lru_cache(maxsize=16)
def _basis(p: int) -> tuple[Tensor, tuple[str, ...]]:
    x = torch.arange(p, dtype=torch.float64)
    rows, names = [torch.ones(p, dtype=torch.float64)], ["Const"]
    for k in range(1, p // 2 + 1):
        rows.append(torch.cos(2 * math.pi * k * x / p))
        names.append(f"cos {k}")
        if 2 * k != p:
            rows.append(torch.sin(2 * math.pi * k * x / p))
            names.append(f"sin {k}")
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True), tuple(names)


def fourier_basis(p: int, dtype: torch.dtype = torch.float32) -> tuple[Float[Tensor, "component p"], list[str]]:
    """The orthonormal Fourier basis of Z_p (rows) and the name of each row."""
    basis, names = _basis(p)
    return basis.to(dtype), list(names)


def component_frequencies(p: int) -> Tensor:
    """The frequency k of each basis row (0 for Const)."""
    _, names = _basis(p)
    return torch.tensor([0 if n == "Const" else int(n.split()[1]) for n in names])


def n_frequencies(p: int) -> int:
    """Number of non-constant frequencies, 1 … ⌊p/2⌋."""
    return p // 2


def transform(x: Tensor, dim: int = -1) -> Tensor:
    """Coefficients of `x` in the Fourier basis along `dim` (which must have length p)."""
    p = x.shape[dim]
    basis, _ = fourier_basis(p, x.dtype)
    return torch.movedim(torch.movedim(x, dim, -1) @ basis.to(x.device).T, -1, dim)


def inverse_transform(coeffs: Tensor, dim: int = -1) -> Tensor:
    p = coeffs.shape[dim]
    basis, _ = fourier_basis(p, coeffs.dtype)
    return torch.movedim(torch.movedim(coeffs, dim, -1) @ basis.to(coeffs.device), -1, dim)


def transform_2d(x: Float[Tensor, "... p p"]) -> Float[Tensor, "... p p"]:
    """Coefficients over both input axes (a along dim −2, b along dim −1), as in Nanda et al."""
    return transform(transform(x, -1), -2)


def project_grid(x: Float[Tensor, "pair n"], p: int, keep: Tensor) -> Float[Tensor, "pair n"]:
    """Each column of `x`, a function over the (a, b) grid (rows in a·p + b order), keeping the
    2-D Fourier components where `keep` ([p, p] bool over basis rows × basis rows) is True."""
    grid = einops.rearrange(x.double(), "(a b) unit -> unit a b", a=p)
    kept = inverse_transform(inverse_transform(transform_2d(grid) * keep.to(x.device), -1), -2)
    return einops.rearrange(kept, "unit a b -> (a b) unit")


def grid_blocks(p: int, freqs: list[int], cross: bool = True) -> Tensor:
    """A [p, p] mask of 2-D components: the constant and, for each k in `freqs`, the (k, k)
    block (cos/sin θk·a × cos/sin θk·b) — where every function of a + b or a − b lives — and,
    with `cross`, the (k, Const) and (Const, k) blocks (functions of a alone or b alone)."""
    freq = component_frequencies(p)
    on = torch.isin(freq, torch.tensor([0, *freqs]))
    keep = on[:, None] & on[None, :]
    return keep if cross else keep & (freq[:, None] == freq[None, :])


def frequency_power(x: Tensor, dim: int = -1) -> Tensor:
    """Energy ‖·‖² per frequency k = 0 … ⌊p/2⌋ along `dim` (Parseval: sums to ‖x‖²)."""
    p = x.shape[dim]
    coeffs = torch.movedim(transform(x, dim), dim, -1) ** 2
    freqs = component_frequencies(p).to(x.device)
    power = torch.zeros(*coeffs.shape[:-1], n_frequencies(p) + 1, dtype=x.dtype, device=x.device)
    power.index_add_(-1, freqs, coeffs)
    return torch.movedim(power, -1, dim)


def frequency_power_2d(x: Float[Tensor, "... p p"]) -> Float[Tensor, "... k k"]:
    """Energy per pair of frequencies (k_a, k_b), each 0 … ⌊p/2⌋, of functions over the (a, b)
    grid: the squared 2-D coefficients (`transform_2d`) summed over the cos and sin rows of each
    frequency, so every frequency up to ⌊p/2⌋ has one cell (Parseval: sums to ‖x‖²)."""
    p = x.shape[-1]
    coeffs = transform_2d(x) ** 2
    freqs = component_frequencies(p).to(x.device)
    rows = torch.zeros(*coeffs.shape[:-2], n_frequencies(p) + 1, p, dtype=x.dtype, device=x.device)
    rows.index_add_(-2, freqs, coeffs)
    power = torch.zeros(*coeffs.shape[:-2], n_frequencies(p) + 1, n_frequencies(p) + 1, dtype=x.dtype, device=x.device)
    return power.index_add_(-1, freqs, rows)


def project_frequencies(x: Tensor, keep: Tensor, dim: int = -1) -> Tensor:
    """Keep only the components of `x` at the frequencies where `keep` is True.

    `keep` is a bool tensor over frequencies 0 … ⌊p/2⌋, either one mask for all of `x` or one
    per vector (shape `x.shape` with `dim` replaced by ⌊p/2⌋+1)."""
    p = x.shape[dim]
    freqs = component_frequencies(p).to(x.device)
    coeffs = torch.movedim(transform(x, dim), dim, -1)
    mask = torch.movedim(keep, dim, -1)[..., freqs] if keep.dim() > 1 else keep[freqs]
    return inverse_transform(torch.movedim(coeffs * mask, -1, dim), dim)


def dft(x: Tensor, dim: int = -1) -> Tensor:
    """Complex DFT û(k) for k = 0 … ⌊p/2⌋ (the rfft)."""
    return torch.fft.rfft(x.double(), dim=dim)


def amplitude_phase(x: Tensor, k: Tensor, dim: int = -1) -> tuple[Tensor, Tensor]:
    """Amplitude A and phase φ of each vector at its frequency k, for x ≈ A cos(2πk·/p + φ).
    `x` is [n, p] along `dim` = −1 and `k` is [n]."""
    p = x.shape[dim]
    coeff = dft(x, dim).gather(-1, k[:, None].long()).squeeze(-1)
    scale = torch.where((k == 0) | (2 * k == p), float(p), p / 2)
    return coeff.abs() / scale, coeff.angle()


def ipr(x: Tensor, dim: int = -1, r: int = 2) -> Tensor:
    """Inverse participation ratio of |rfft(x)| along `dim`: Σ D^{2r} / (Σ D²)^r."""
    d = dft(x, dim).abs()
    return (d ** (2 * r)).sum(dim) / (d**2).sum(dim).clamp_min(1e-30) ** r


def wrap_phase(phi: Tensor) -> Tensor:
    """Angles wrapped into (−π, π]."""
    return phi - 2 * math.pi * torch.ceil((phi - math.pi) / (2 * math.pi))


def grid_fourier_projection(acts: Tensor, dataset: Dataset, freqs: list[int]) -> Tensor:
    """Project each unit's activation over the (a, b) grid onto the 2-D Fourier terms
    (Const or k) × (Const or k) for k in `freqs`; rows stay in dataset order."""
    p = dataset.p
    if len(dataset.inputs) != p * p:
        raise ValueError("fourier features need the full p×p grid (not available for div)")
    return project_grid(acts, p, grid_blocks(p, freqs)).float()


def residue_order(op: str, p: int) -> Tensor:
    """Residues in the order the analysis reads them: 0…p−1, or gⁱ for mul/div (no 0)."""
    if op in ("mul", "div"):
        g = primitive_root(p)
        return torch.tensor([pow(g, i, p) for i in range(p - 1)])
    return torch.arange(p)


def primitive_root(p: int) -> int:
    """The smallest generator of Z_p^× (p prime)."""
    phi = p - 1
    factors = {q for q in range(2, phi + 1) if phi % q == 0 and all(q % r for r in range(2, q))}
    for g in range(2, p):
        if all(pow(g, phi // q, p) != 1 for q in factors):
            return g
    return 1  # p = 2
