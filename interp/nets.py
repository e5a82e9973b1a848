"""Models as the rest of the library and its users call them: built from a spec, run on (a, b)
pairs, whatever their family (`interp.families`).

- `TwoLayerNet` (`interp.families.two_layer`): f(a, b) = W·φ(U e_a + V e_b) + μ, hook points
  `hook_embed_a`, `hook_embed_b`, `hook_pre`, `hook_post`, `hook_logits`; it takes the pairs.
- Nanda et al.'s transformer (`interp.families.transformer`), a `TransformerBridge` on tokens
  `a b =`: `tokens(model, pairs)` makes them; its own forward refuses bare pairs.

`logits(model, pairs)` returns the mod-p logits of either (the last position's, for the
transformer); `gromov_solution` builds the analytic network that Fourier analyses must read back.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from .families import build_model, family_of
from .families.two_layer import TwoLayerNet
from .specs import TwoLayerSpec

__all__ = ["TwoLayerNet", "build_model", "gromov_solution", "logits", "tokens", "training_logits"]


def tokens(model: nn.Module, pairs: Int[Tensor, "batch 2"]) -> Tensor:
    """What `model`'s own forward takes for each (a, b) pair: the pairs themselves for the
    two-layer net, the token rows `a b =` for the transformer."""
    return family_of(model).tokens(model, pairs)


def logits(model: nn.Module, pairs: Int[Tensor, "batch 2"]) -> Float[Tensor, "batch p"]:
    """Mod-p logits for each pair (a, b), for any model family (hooked forward)."""
    return family_of(model).forward(model, pairs)


def training_logits(model: nn.Module, pairs: Int[Tensor, "batch 2"]) -> Float[Tensor, "batch p"]:
    """The values of `logits`, computed by the cheapest path and without hook points (the
    transformer computes only the last position). For training; analyses use `logits`."""
    return family_of(model).training_logits(model, pairs)


def gromov_solution(
    p: int, width: int, n_freqs: int = 0, seed: int = 0, op: str = "add"
) -> tuple[TwoLayerNet, dict[str, Tensor]]:
    """Gromov's analytic solution of a ± b mod p: a quadratic two-layer net, neuron m with
    u(x) = cos(2πk x/p + φ_u), v(x) = cos(2πk x/p + φ_v), w(c) = cos(2πk c/p + φ_u ± φ_v),
    random phases, frequencies assigned round-robin from a random set of `n_freqs` (default
    all). It classifies every pair without training. Returns the net and its true frequency
    and phases per neuron, which a Fourier analysis must read back exactly."""
    gen = torch.Generator().manual_seed(seed)
    n = n_freqs or p // 2
    freqs = (torch.randperm(p // 2, generator=gen)[:n] + 1)[torch.arange(width) % n]
    phase_u, phase_v = (torch.rand(2, width, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    phase_w = phase_u + (-phase_v if op == "sub" else phase_v)
    x = torch.arange(p, dtype=torch.float64)
    theta = 2 * math.pi * freqs[:, None].double() * x / p
    net = TwoLayerNet(TwoLayerSpec(width=width, act="quadratic", bias=False, init="doshi"), p)
    with torch.no_grad():
        net.U.copy_(torch.cos(theta + phase_u[:, None]))
        net.V.copy_(torch.cos(theta + phase_v[:, None]))
        net.W.copy_(torch.cos(theta + phase_w[:, None]).T * (2 / width))
    return net, {"freq": freqs, "phase_u": phase_u, "phase_v": phase_v, "phase_w": phase_w}
