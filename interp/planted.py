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
from dataclasses import dataclass

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
