"""Models whose memorising and generalising parts are known by construction: the test bed of
every analysis that labels components (`interp.localize`).

`planted_two_layer(dataset)` builds a two-layer network that fits every observed label of the
dataset, noisy ones included, and computes a ∘ b on every other pair, from three kinds of
neurons, each labelled by construction:
- generalising: the rule in closed form. ReLU: for each frequency k and each pair of phases
  (φ_u, φ_v) on a grid, u(a) = cos(θ_k a + φ_u), v(b) = cos(θ_k b + φ_v), w(c) = cos(θ_k c + φ_u + φ_v)
  (the form Liu & Lu find in trained nets; summed over the phase grid, the ReLU's cos(θ_k(a+b))
  term survives). Quadratic: Gromov's solution (`interp.nets.gromov_solution`).
- memorising: one lookup neuron per noisy training pair (a₀, b₀) with observed label c₀. ReLU:
  u = (−s/2 everywhere, +s/2 at a₀), v likewise at b₀, so the pre-activation is s at (a₀, b₀) and
  ≤ 0 elsewhere: it fires on its pair alone, and its output w = 2·(the rule's largest logit
  gap)·e_{c₀} outvotes the rule there; quadratic: u = 0.7·e_{a₀}, v = 0.7·e_{b₀}, w = e_{c₀} (1.96
  on its pair, 0.49 on its row and column, which Gromov's rule outvotes at low noise).
- inert: neurons with random input maps and a zero output map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from .families.two_layer import TwoLayerNet
from .nets import gromov_solution, logits
from .specs import TwoLayerSpec
from .tasks import Dataset


@dataclass
class Planted:
    """A planted model and the label of each of its readout neurons by construction."""

    model: TwoLayerNet
    labels: list[str]  # "generalising", "memorising" or "inert", per neuron

    def mask(self, label: str) -> Tensor:
        return torch.tensor([x == label for x in self.labels])


def relu_rule_neurons(p: int, freqs: list[int], n_phase: int = 6) -> tuple[Tensor, Tensor, Tensor]:
    """(u, v, w), each [neuron, p]: the closed-form ReLU solution of a + b mod p (see module docstring)."""
    grid = torch.arange(n_phase, dtype=torch.float64) * 2 * math.pi / n_phase
    k, phase_u, phase_v = (t.flatten() for t in torch.meshgrid(torch.tensor(freqs, dtype=torch.float64), grid, grid,
                                                                indexing="ij"))
    theta = 2 * math.pi * k[:, None] * torch.arange(p, dtype=torch.float64) / p
    u, v = torch.cos(theta + phase_u[:, None]), torch.cos(theta + phase_v[:, None])
    w = torch.cos(theta + (phase_u + phase_v)[:, None]) * (4 / len(k))
    return u.float(), v.float(), w.float()


def planted_two_layer(dataset: Dataset, act: str = "relu", freqs: tuple[int, ...] = (2, 5, 9), n_inert: int = 20,
                      seed: int = 0) -> Planted:
    """A network for `dataset` (op `add`) that memorises its noisy labels with one lookup neuron
    each, computes the rule with closed-form neurons, and carries `n_inert` inert neurons."""
    if dataset.task.op != "add":
        raise ValueError("planted_two_layer builds a + b mod p")
    if act not in ("relu", "quadratic"):
        raise ValueError(f"planted networks are built for relu or quadratic activations, not {act!r}")
    p = dataset.p
    if act == "relu":
        gu, gv, gw = relu_rule_neurons(p, list(freqs))
    else:
        gromov, _ = gromov_solution(p, 50 * len(freqs), seed=seed)
        gu, gv, gw = gromov.U.detach(), gromov.V.detach(), gromov.W.detach().T
    noisy = dataset.noisy_mask.nonzero().squeeze(1)
    n_gen, n_mem = len(gu), len(noisy)
    width = n_gen + n_mem + n_inert
    net = TwoLayerNet(TwoLayerSpec(width=width, act=act, bias=False), p)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.U.zero_(), net.V.zero_(), net.W.zero_()
        net.U[:n_gen], net.V[:n_gen], net.W[:, :n_gen] = gu, gv, gw.T
        # the rule's largest logit gap decides how loudly a lookup neuron must speak
        rule = logits(net, dataset.inputs)
        gap = float((rule.max(-1).values - rule.min(-1).values).max())
        for j, i in enumerate(noisy.tolist()):
            a, b = dataset.inputs[i].tolist()
            m = n_gen + j
            if act == "relu":
                net.U[m], net.V[m] = -0.5, -0.5
                net.U[m, a] = net.V[m, b] = 0.5  # pre-activation 1 on (a, b), ≤ 0 elsewhere
                net.W[dataset.labels[i], m] = 2 * gap
            else:  # 4s² = 1.96 on (a, b), s² = 0.49 on its row and column, which the rule outvotes
                net.U[m, a] = net.V[m, b] = 0.7
                net.W[dataset.labels[i], m] = 1.0
        inert = slice(n_gen + n_mem, width)
        net.U[inert] = torch.randn(n_inert, p, generator=gen)
        net.V[inert] = torch.randn(n_inert, p, generator=gen)
    labels = ["generalising"] * n_gen + ["memorising"] * n_mem + ["inert"] * n_inert
    return Planted(net.eval(), labels)


# --- transformers -----------------------------------------------------------------------------


@dataclass
class PlantedTransformer:
    """A block-diagonal union of a generalising transformer and a memorising one, with the label
    of each readout neuron and each head by construction."""

    model: Any
    neuron_labels: list[str]
    head_labels: list[str]  # in the order of blocks.0.attn.hook_z's head axis


def lookup_transformer(dataset: Dataset, d_head: int, sharpness: float = 60.0, tolerance: float = 0.5
                       ) -> tuple[Any, Tensor]:
    """A one-layer transformer that stores each noisy training pair's observed label and gives
    zero logits on every other pair. Residual stream: a token slot T = (cos θt, sin θt) with
    θ = 2π/p (`=` embeds as 0), copy slots A and B of the same form, two position flags, and an
    output slot O of p dims that the unembedding reads. Head A's query (a constant) meets
    position 0's flag with a score of `sharpness`, so the last position attends to position 0
    alone (up to e^−sharpness) and copies its slot T into slot A; head B likewise from position 1
    into slot B. Lookup neuron j for the noisy pair (a₀, b₀) computes
    relu(κ·(x_A·code(a₀) + x_B·code(b₀) − 2 + δ)) with δ = `tolerance`·(1 − cos θ): positive
    on its own pair alone (a neighbour's codes fall short by 1 − cos θ), scaled to 1 there, and
    writes e_{c₀} into slot O. Returns the model and the indices of the noisy pairs."""
    from .families.transformer import FAMILY
    from .specs import TransformerSpec

    p = dataset.p
    noisy = dataset.noisy_mask.nonzero().squeeze(1)
    T, A, B, F0, F1, O = 0, 2, 4, 6, 7, 8  # slot offsets
    spec = TransformerSpec(d_model=O + p, n_heads=2, d_head=d_head, d_mlp=max(1, len(noisy)))
    model = FAMILY.build(spec, p)
    w = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    theta = 2 * math.pi * torch.arange(p, dtype=torch.float64) / p
    code = torch.stack([torch.cos(theta), torch.sin(theta)], 1)  # [p, 2]
    w["embed.weight"][:p, T:T + 2] = code.float()
    w["pos_embed.weight"][0, F0] = w["pos_embed.weight"][1, F1] = 1.0
    root = math.sqrt(sharpness * math.sqrt(d_head))  # q·k / √d_head = sharpness on the flagged position
    for head, flag, slot in ((0, F0, A), (1, F1, B)):
        first = head * d_head
        w["blocks.0.attn.q.bias"][first] = root  # every query is root·e_0 in the head's space
        w["blocks.0.attn.k.weight"][first, flag] = root
        w["blocks.0.attn.v.weight"][first:first + 2, T:T + 2] = torch.eye(2)
        w["blocks.0.attn.o.weight"][slot:slot + 2, first:first + 2] = torch.eye(2)
    delta = tolerance * (1 - math.cos(2 * math.pi / p))
    kappa = 1 / delta
    for j, i in enumerate(noisy.tolist()):
        a, b = dataset.inputs[i].tolist()
        w["blocks.0.mlp.in.weight"][j, A:A + 2] = kappa * code[a].float()
        w["blocks.0.mlp.in.weight"][j, B:B + 2] = kappa * code[b].float()
        w["blocks.0.mlp.in.bias"][j] = kappa * (delta - 2)
        w["blocks.0.mlp.out.weight"][O + int(dataset.labels[i]), j] = 1.0
    w["unembed.weight"][torch.arange(p), O + torch.arange(p)] = 1.0
    model.load_state_dict(w)
    return model.eval(), noisy


def union(first: Any, second: Any) -> Any:
    """The block-diagonal union of two one-layer transformers over the same p (no LayerNorm, same
    d_head): residual streams side by side, heads and MLP neurons of `first` then of `second`. Its
    logits are the sum of the two models' logits, and each head and neuron belongs to one side."""
    from .families.transformer import FAMILY

    s1, s2 = FAMILY.spec(first), FAMILY.spec(second)
    if s1.n_layers != 1 or s2.n_layers != 1 or s1.d_head != s2.d_head or s1.act != s2.act:
        raise ValueError("union needs one-layer transformers with the same d_head and activation")
    p = first.cfg.d_vocab_out
    spec = replace(s1, d_model=s1.d_model + s2.d_model, n_heads=s1.n_heads + s2.n_heads, d_mlp=s1.d_mlp + s2.d_mlp)
    model = FAMILY.build(spec, p)
    w1, w2 = first.state_dict(), second.state_dict()
    out = {}
    for name, value in model.state_dict().items():
        a, b = w1[name], w2[name]
        if name == "unembed.bias":
            out[name] = a + b
        elif name in ("embed.weight", "pos_embed.weight"):
            out[name] = torch.cat([a, b], 1)
        elif name == "unembed.weight":
            out[name] = torch.cat([a, b], 1)
        elif value.dim() == 1:  # biases of q/k/v (heads), o (residual), mlp in (neurons), mlp out (residual)
            out[name] = torch.cat([a, b])
        else:
            out[name] = torch.block_diag(a, b)
    model.load_state_dict(out)
    return model.eval()


def planted_transformer(generalising: Any, dataset: Dataset) -> PlantedTransformer:
    """`generalising` (a transformer that computes the rule, e.g. the `nanda-inversion` release)
    beside `lookup_transformer(dataset)`: the union fits every noisy label of `dataset` and keeps
    the rule elsewhere."""
    from .families.transformer import FAMILY

    spec = FAMILY.spec(generalising)
    memoriser, _ = lookup_transformer(dataset, spec.d_head)
    # scale the lookups to outvote the rule where they fire
    with torch.no_grad():
        rule = FAMILY.forward(generalising, dataset.inputs)
    gap = float((rule.max(-1).values - rule.min(-1).values).max())
    with torch.no_grad():
        memoriser.state_dict()["unembed.weight"].mul_(2 * gap)
    model = union(generalising, memoriser)
    mem_spec = FAMILY.spec(memoriser)
    # a trained model has neurons that barely act: by construction they carry nothing, so their
    # truth is inert, decided by the size of their direct effect on the logits (no label read)
    with torch.no_grad():
        hook = FAMILY.readout_hook(generalising)
        _, cache = FAMILY.run_with_cache(generalising, dataset.inputs, names_filter=hook)
        size = (cache[hook].abs().mean(0) * FAMILY.unit_to_logit(generalising).norm(dim=1))
    silent = size < SILENT * size.median()
    neurons = ["inert" if quiet else "generalising" for quiet in silent.tolist()]
    return PlantedTransformer(model, neurons + ["memorising"] * mem_spec.d_mlp,
                              ["generalising"] * spec.n_heads + ["memorising"] * mem_spec.n_heads)


#: A trained neuron whose mean |activation| × ‖unit-to-logit row‖ is below this fraction of the
#: median neuron's is inert by construction in a planted union.
SILENT = 0.1
