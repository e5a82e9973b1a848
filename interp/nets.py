"""Model families, all hooked with TransformerLens hook points.

- `TwoLayerNet`: f(a, b) = W·φ(U e_a + V e_b) + μ, a `HookedRootModule` with hook points
  `hook_embed_a` (U e_a), `hook_embed_b` (V e_b), `hook_pre`, `hook_post` and `hook_logits`.
- The transformer of Nanda et al., a `TransformerBridge` built through `tl_adapter`.

Both take inputs as (a, b) pairs through `logits(model, inputs)`, which returns the mod-p logits
(the last position's, for the transformer).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from . import tl_adapter
from .specs import ModelSpec, TransformerSpec, TwoLayerSpec

ACT_FNS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "quadratic": torch.square,
    "gelu": F.gelu,
    "abs": torch.abs,
    "reverse_relu": lambda x: F.relu(-x),
}


class TwoLayerNet(HookedRootModule):
    """The two-layer network of Liu & Lu and Doshi et al. Parameters: U, V: [width, p],
    W: [p, width], mu: [p] (only when `spec.bias`); tied nets store U alone and use it as V."""

    def __init__(self, spec: TwoLayerSpec, p: int):
        super().__init__()
        self.spec, self.p = spec, p
        gen = torch.Generator().manual_seed(spec.seed)
        shapes = {"U": (spec.width, p), "W": (p, spec.width)}
        if not spec.tied:
            shapes["V"] = (spec.width, p)
        if spec.bias:
            shapes["mu"] = (p,)
        for name in ("U", "V", "W", "mu"):
            if name in shapes:
                scale = self._init_scale(name)
                if spec.init == "doshi":
                    value = torch.randn(shapes[name], generator=gen) * scale
                else:
                    value = (torch.rand(shapes[name], generator=gen) * 2 - 1) * scale
                self.register_parameter(name, nn.Parameter(value))
        self.act_fn = ACT_FNS[spec.act]
        self.hook_embed_a = HookPoint()
        self.hook_embed_b = HookPoint()
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()
        self.hook_logits = HookPoint()
        self.setup()

    def _init_scale(self, name: str) -> float:
        if self.spec.init == "doshi":
            return 0.5 / (2 * self.spec.width) ** (1 / 3)
        fan_in = 2 * self.p if name in ("U", "V") else self.spec.width
        return 1 / math.sqrt(fan_in)

    @property
    def V_in(self) -> Tensor:
        """The input map of b (U itself when tied)."""
        return self.U if self.spec.tied else self.V

    def forward(self, inputs: Int[Tensor, "batch 2"]) -> Float[Tensor, "batch p"]:
        # Embedding lookups, not one-hot products: a gather is exact and avoids skinny matmuls.
        # The tables are made contiguous first: gathering rows of the transposed view reads
        # strided memory (benchmarks/kernels.py: 1.7 ms per lookup, 0.35 ms with the copy).
        embed_a = self.hook_embed_a(F.embedding(inputs[:, 0], self.U.T.contiguous()))
        embed_b = self.hook_embed_b(F.embedding(inputs[:, 1], self.V_in.T.contiguous()))
        pre = self.hook_pre(embed_a + embed_b)
        post = self.hook_post(self.act_fn(pre))
        out = post @ self.W.T
        if self.spec.bias:
            out = out + self.mu
        return self.hook_logits(out)


def build_model(spec: ModelSpec, p: int) -> nn.Module:
    """A freshly initialised model for `spec` over Z_p (seeded by `spec.seed`)."""
    if isinstance(spec, TwoLayerSpec):
        return TwoLayerNet(spec, p)
    if isinstance(spec, TransformerSpec):
        return tl_adapter.boot(tl_adapter.bridge_config(spec, p))
    raise TypeError(f"no model family for spec {spec!r}")


def to_tokens(model: nn.Module, inputs: Int[Tensor, "batch 2"]) -> Int[Tensor, "batch 3"]:
    """Transformer tokens `a b =` for each pair."""
    eq = torch.full_like(inputs[:, :1], tl_adapter.equals_token(model))
    return torch.cat([inputs, eq], dim=1)


def logits(model: nn.Module, inputs: Int[Tensor, "batch 2"]) -> Float[Tensor, "batch p"]:
    """Mod-p logits for each pair (a, b), for either model family."""
    if tl_adapter.is_transformer(model):
        return model(to_tokens(model, inputs))[:, -1]
    return model(inputs)


def training_logits(model: nn.Module, inputs: Int[Tensor, "batch 2"]) -> Float[Tensor, "batch p"]:
    """The values of `logits`, computed by the cheapest path and without hook points (the
    transformer computes only the last position). For training; analyses use `logits`."""
    if tl_adapter.is_transformer(model):
        return tl_adapter.last_position_logits(model, to_tokens(model, inputs))
    return model(inputs)


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
