"""The two-layer network of Liu & Lu and Doshi et al.: f(a, b) = W·φ(U e_a + V e_b) + μ.

A `HookedRootModule` with hook points `hook_embed_a` (U e_a), `hook_embed_b` (V e_b),
`hook_pre`, `hook_post` (the readout neurons) and `hook_logits`; it takes the (a, b) pairs
themselves. It trains through the hand-written step of `interp.families.stacked`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from ..core.specs import TwoLayerSpec
from .activations import ACT_FNS
from .base import Capability, ModelFamily, register


class TwoLayerNet(HookedRootModule):
    """Parameters: U, V: [width, p], W: [p, width], mu: [p] (only when `spec.bias`); tied nets
    store U alone and use it as V."""

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
        if inputs.dim() != 2 or inputs.shape[1] != 2:
            raise ValueError(f"a TwoLayerNet takes (a, b) pairs of shape [batch, 2], got {tuple(inputs.shape)}")
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


class TwoLayerFamily(ModelFamily):
    name = "two_layer"
    spec_type = TwoLayerSpec
    provides = frozenset({Capability.NEURON_MAPS, Capability.STACKED, Capability.READOUT_MAP})
    stacking_pays = True  # 1.1-3.5x at K = 8 (docs/performance.md)

    def owns(self, model: nn.Module) -> bool:
        return isinstance(model, TwoLayerNet)

    def build(self, spec: TwoLayerSpec, p: int) -> TwoLayerNet:
        return TwoLayerNet(spec, p)

    def spec(self, model: TwoLayerNet) -> TwoLayerSpec:
        return model.spec

    def memory_bytes(self, spec: TwoLayerSpec, p: int) -> int:
        params = 3 * spec.width * p + p
        acts = p * p * spec.width * 4 * 3  # pre-activations, activations and their gradient
        return acts + params * 4 * 4  # weights, gradients, two moments

    def readout_hook(self, model: TwoLayerNet) -> str:
        return "hook_post"

    def unit_to_logit(self, model: TwoLayerNet) -> Float[Tensor, "neuron p"]:
        return model.W.detach().T

    def embedding(self, model: TwoLayerNet) -> Float[Tensor, "p neuron"]:
        return model.U.detach().T  # a's map (b's is V; `neuron_maps` has both)

    def unembedding(self, model: TwoLayerNet) -> Float[Tensor, "neuron p"]:
        return model.W.detach().T

    def with_residue_weights(self, model: TwoLayerNet, embedding: Tensor | None = None,
                             unembedding: Tensor | None = None) -> TwoLayerNet:
        maps = self.neuron_maps(model)
        if embedding is not None:
            maps["u"] = embedding.T
        if unembedding is not None:
            maps["w"] = unembedding
        return with_neuron_vectors(model, maps["u"], maps["v"], maps["w"])

    def probe_hooks(self, model: TwoLayerNet) -> list[str]:
        return ["hook_post", "hook_pre"]

    def neuron_maps(self, model: TwoLayerNet) -> dict[str, Float[Tensor, "neuron p"]]:
        return {"u": model.U.detach(), "v": model.V_in.detach(), "w": model.W.detach().T}

    def neuron_activation(self, model: TwoLayerNet) -> str:
        return model.spec.act

    def with_unit_to_logit(self, model: TwoLayerNet, to_logit: Tensor) -> TwoLayerNet:
        maps = self.neuron_maps(model)
        return with_neuron_vectors(model, maps["u"], maps["v"], to_logit.to(model.W.dtype))

    def with_neuron_maps(self, model: TwoLayerNet, u: Tensor, v: Tensor, w: Tensor, act: str | None = None) -> TwoLayerNet:
        return with_neuron_vectors(model, u, v, w, act)

    def training_batch(self, model: TwoLayerNet, pairs: Tensor, labels: Tensor) -> Any:
        from .stacked import lookup

        return lookup(pairs[None], model.p), labels

    def loss_and_backward(self, model: TwoLayerNet, params: dict[str, nn.Parameter], loss: str, batch: Any) -> float:
        from .stacked import loss_and_grads

        rows, labels = batch
        losses, grads = loss_and_grads({name: p.detach()[None] for name, p in params.items()},
                                       model.spec, model.p, rows, labels[None], loss)
        for name, param in params.items():
            param.grad = grads[name][0]
        return losses.item()


    def stacked_batch(self, spec: TwoLayerSpec, p: int, pairs: Tensor, labels: Tensor) -> Any:
        from .stacked import lookup

        return lookup(pairs, p), labels

    def stacked_loss_and_grads(self, params: dict[str, Tensor], spec: TwoLayerSpec, p: int, batch: Any, loss: str):
        from .stacked import loss_and_grads  # the hand-written forward and backward

        rows, labels = batch
        return loss_and_grads(params, spec, p, rows, labels, loss)


def with_neuron_vectors(model: TwoLayerNet, u: Tensor, v: Tensor, w: Tensor, act: str | None = None) -> TwoLayerNet:
    """A copy of `model` with neuron vectors u, v, w ([width, p] each) and optionally another
    activation; a tied model becomes untied when u ≠ v."""
    spec = replace(model.spec, tied=model.spec.tied and torch.equal(u, v), act=act or model.spec.act)
    net = TwoLayerNet(spec, model.p)
    with torch.no_grad():
        net.U.copy_(u)
        if not net.spec.tied:
            net.V.copy_(v)
        net.W.copy_(w.T)
        if net.spec.bias:
            net.mu.copy_(model.mu)
    return net.eval()


FAMILY = register(TwoLayerFamily())
