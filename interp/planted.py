"""Models whose memorising and generalising parts are known by construction: the test bed of
every analysis that labels components (`interp.analysis.localize`).

`planted_two_layer(dataset)` builds a two-layer network that fits every observed label of the
dataset, noisy ones included, and computes a ∘ b on every other pair, from three kinds of
neurons, each labelled by construction:
- generalising: the rule in closed form. ReLU: for each frequency k and each pair of phases
  (φ_u, φ_v) on a grid, u(a) = cos(θ_k a + φ_u), v(b) = cos(θ_k b + φ_v), w(c) = cos(θ_k c + φ_u + φ_v)
  (the form Liu & Lu find in trained nets; summed over the phase grid, the ReLU's cos(θ_k(a+b))
  term survives). Quadratic: Gromov's solution (`interp.planted.gromov_solution`).
- memorising: one lookup neuron per noisy training pair (a₀, b₀) with observed label c₀. ReLU:
  a rule neuron of frequency k centred on the pair, pushed under its threshold — u(a) =
  κ·(cos θ_k(a − a₀) − τ/2), v likewise at b₀, with τ = 2 − δ, δ = (1 − cos 2π/p)/2 and κ = 1/δ:
  the pre-activation is 1 at (a₀, b₀) and < 0 everywhere else (the nearest cosine falls short by
  1 − cos 2π/p), so it fires on its pair alone; its output is w(c) = cos θ_k(c − a₀ − b₀)·4/(κ·n)
  (n the number of rule neurons, whose outputs carry the same 4/n) plus
  2·(the rule's largest logit gap)·e_{c₀} with its frequency-k component removed, which outvotes
  the rule there. So memorisation sits *inside* these neurons, Liu & Lu's way: each neuron's
  dominant-frequency part (κ cos θ_k(a − a₀), κ cos θ_k(b − b₀), w's cosine) is a rule neuron of
  the closed-form kind, and the residual (the constant offsets and the e_{c₀} output)
  turns it into a lookup (`part_labels`); quadratic: u = 0.7·e_{a₀}, v = 0.7·e_{b₀}, w = e_{c₀} (1.96
  on its pair, 0.49 on its row and column, which Gromov's rule outvotes at low noise).
- inert: neurons with random input maps and a zero output map.

`within_neuron_net(dataset)` puts rule and memory inside every neuron, exactly: quadratic
neurons in groups of 16 whose dominant-frequency parts are the rule and whose residuals are
lookups of the noisy pairs, the cross terms cancelled over each group by its signs.

`planted_group_net(dataset, representations)` is the same on a task over a finite group:
Chughtai et al.'s algorithm in closed form (`group_composition_net`) for the rule, quadratic
lookups for the memory (u = e_{a₀}, v = e_{b₀}, w = LOOKUP · L · e_{c₀}, L the largest lead of
the rule's true class over any class; 4·LOOKUP·L on its pair outvotes the rule, LOOKUP·L on its
row and column does not, while the rule's smallest lead over the next class is above it — |G| at
every class with every irrep — and lookups do not stack), and inert neurons.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .core.fourier import project_frequencies
from .core.groups import Group
from .core.irreps import real_irreps
from .core.specs import TwoLayerSpec
from .core.tasks import Dataset
from .families.base import logits
from .families.two_layer import TwoLayerNet


@dataclass
class Planted:
    """A planted model and the label of each of its readout neurons by construction."""

    model: TwoLayerNet
    labels: list[str]  # "generalising", "memorising" or "inert", per neuron
    #: per part ("dominant", "residual"), the label of each neuron's part (ReLU nets only): the
    #: closed-form rule neurons are all dominant part (residual inert), the lookups a rule neuron
    #: (dominant part) made a lookup by their residual, the inert neurons inert in both parts
    part_labels: dict[str, list[str]] | None = None

    def mask(self, label: str) -> Tensor:
        return torch.tensor([x == label for x in self.labels])

    def truths(self) -> dict[str, list[str]]:
        """The labels by construction per row kind of `interp.analysis.localize` (`neuron part: dominant`
        and `neuron part: residual` for the parts), as `interp.testing.recovery` takes them."""
        return {"neuron": self.labels, **{f"neuron part: {k}": v for k, v in (self.part_labels or {}).items()}}


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
        delta = (1 - math.cos(2 * math.pi / p)) / 2
        x = torch.arange(p, dtype=torch.float64)
        for j, i in enumerate(noisy.tolist()):
            a, b = dataset.inputs[i].tolist()
            m = n_gen + j
            if act == "relu":
                theta = 2 * math.pi * freqs[j % len(freqs)] / p
                tau = 2 - delta
                net.U[m] = ((torch.cos(theta * (x - a)) - tau / 2) / delta).float()
                net.V[m] = ((torch.cos(theta * (x - b)) - tau / 2) / delta).float()
                store = torch.zeros(p, dtype=torch.float64)
                store[dataset.labels[i]] = 2 * gap
                store -= (2 / p) * 2 * gap * torch.cos(theta * (x - dataset.labels[i]))  # off frequency k
                net.W[:, m] = (torch.cos(theta * (x - a - b)) * delta * 4 / n_gen + store).float()
            else:  # 4s² = 1.96 on (a, b), s² = 0.49 on its row and column, which the rule outvotes
                net.U[m, a] = net.V[m, b] = 0.7
                net.W[dataset.labels[i], m] = 1.0
        inert = slice(n_gen + n_mem, width)
        net.U[inert] = torch.randn(n_inert, p, generator=gen)
        net.V[inert] = torch.randn(n_inert, p, generator=gen)
    labels = ["generalising"] * n_gen + ["memorising"] * n_mem + ["inert"] * n_inert
    parts = None
    if act == "relu":
        parts = {"dominant": ["generalising"] * (n_gen + n_mem) + ["inert"] * n_inert,
                 "residual": ["inert"] * n_gen + ["memorising"] * n_mem + ["inert"] * n_inert}
    return Planted(net.eval(), labels, parts)


# --- rule and memory inside every neuron ------------------------------------------------------

#: the signs of a group's 16 neurons (rows) in four roles (columns ε, σ, σ', τ): the characters of
#: (Z_2)^4 of its four coordinates, so a product of them sums to 0 over the group unless it is ±1
GROUP_SIGNS = 1 - 2 * torch.tensor(list(itertools.product((0, 1), repeat=4)), dtype=torch.float64)


def within_neuron_net(dataset: Dataset) -> TwoLayerNet:
    """A quadratic two-layer net for `dataset` (a + b mod p) whose rule sits in every neuron's
    dominant-frequency part and whose memory sits in every neuron's residual, built from the
    dataset's noisy pairs and observed labels (deterministic, no training).

    Neurons come in groups of 16. Group g carries one rule term — a frequency k < p/2
    (θ_k = 2πk/p) and phases φ_u, φ_v ∈ {0, π/2}: u = cos(θ_k a + φ_u), v = cos(θ_k b + φ_v),
    w = cos(θ_k c + φ_u + φ_v)/32; over the four phase pairs the u·v·w sum to cos θ_k(a + b − c) —
    and two noisy training pairs P, Q (in different rows and columns, with different observed
    labels) as lookups with their frequency-k part removed: x_P = e_{a_P}, y_P = e_{b_P},
    z_P = r_P e_{c_P} (c_P the observed label). Neuron i of the group is
      u_i = ε_i u + σ_i x_P + τ_i x_Q,   v_i = v + σ'_i y_P + τ'_i y_Q,   w_i = ε_i w + σ_iσ'_i (z_P − z_Q)
    (signs: `GROUP_SIGNS`, τ' = −σσ'τ). Group algebra: of Σ_i w_i (u_i + v_i)² only the terms whose
    signs multiply to ±1 survive, 32·[w u v + (z_P − z_Q)(x_P y_P − x_Q y_Q)]: the rule term and two
    lookups; the squares and every cross term between rule and lookups cancel over the group.

    What holds exactly (up to float32): each neuron's dominant frequency is its rule term's k, so
    f^G (`analysis.neurons.dominant_split`) has the rule's logits, Σ_{k<p/2} cos θ_k(a + b − c), f^R
    is the lookups alone, and the net is f^G + f^R. r_P makes a lookup write twice the rule's lead on
    its pair's observed label, so the net fits every noisy label; elsewhere the rule wins.

    The neurons as sets: a neuron's cross terms, which cancel only over its group, are as large as
    its share of the rule and the memory, so `localize`'s per-neuron labels pick up roles, and
    ablating a set leaves its groups' cross terms behind. The neurons scored memorising lower both
    accuracies more than random sets (shared, on every dataset tried); those scored generalising
    hold in every ablation mode on some datasets, not on others — so whether the neurons separate
    too, and the headline (coarsest unit first) says "across neurons" rather than "inside each
    neuron", depends on the draw."""
    task = dataset.task
    if task.op != "add" or task.group:
        raise ValueError("within_neuron_net builds a + b mod p")
    p = dataset.p
    # every frequency with both a cosine and a sine, so a rule term's u and v are never zero
    rule = [(k, phase_u, phase_v) for k in range(1, (p + 1) // 2) for phase_u in (0, math.pi / 2)
            for phase_v in (0, math.pi / 2)]
    if not rule:
        raise ValueError(f"within_neuron_net needs p ≥ 3, got {p}")
    couples = _noisy_couples(dataset)
    # every rule term and every couple in at least one group; one in several is shared out between them
    n_groups = max(len(rule), len(couples))
    rule_uses = Counter(g % len(rule) for g in range(n_groups))
    pair_uses = Counter(i for g in range(n_groups) for i in couples[g % len(couples)])
    x = torch.arange(p, dtype=torch.float64)
    # the rule's logits of class c are Σ_k cos θ_k(a + b − c): its lead is the range of Σ_k cos θ_k x
    rule_logits = sum(torch.cos(2 * math.pi * k * x / p) for k in range(1, (p + 1) // 2))
    store = 2 * float(rule_logits.max() - rule_logits.min())  # twice the rule's lead: outvotes it on its pair
    n = len(GROUP_SIGNS)
    eps, sig, sig2, tau = GROUP_SIGNS.T[:, :, None]
    rho, tau2 = sig * sig2, -sig * sig2 * tau
    eye = torch.eye(p, dtype=torch.float64)
    U, V, W = (torch.zeros(n * n_groups, p, dtype=torch.float64) for _ in range(3))
    for g in range(n_groups):
        k, phase_u, phase_v = rule[g % len(rule)]
        theta = 2 * math.pi * k * x / p
        u, v = torch.cos(theta + phase_u), torch.cos(theta + phase_v)
        w = torch.cos(theta + phase_u + phase_v) / (2 * n * rule_uses[g % len(rule)])
        # the lookups have no frequency-k part, so each neuron's dominant part is its rule term alone
        off_k = torch.arange(p // 2 + 1) != k
        lookups = []
        for i in couples[g % len(couples)]:
            (a, b), c = dataset.inputs[i].tolist(), int(dataset.labels[i])
            xa, yb, zc = (project_frequencies(eye[j], off_k) for j in (a, b, c))
            lookups.append((xa, yb, zc * store / (2 * n * xa[a] * yb[b] * zc[c] * pair_uses[i])))
        (xP, yP, zP), (xQ, yQ, zQ) = lookups
        rows = slice(n * g, n * (g + 1))
        U[rows] = eps * u + sig * xP + tau * xQ
        V[rows] = v + sig2 * yP + tau2 * yQ
        W[rows] = eps * w + rho * (zP - zQ)
    net = TwoLayerNet(TwoLayerSpec(width=n * n_groups, act="quadratic", bias=False, init="doshi"), p)
    with torch.no_grad():
        net.U.copy_(U), net.V.copy_(V), net.W.copy_(W.T)
    return net.eval()


def _noisy_couples(dataset: Dataset) -> list[tuple[int, int]]:
    """The noisy training pairs two by two (indices into the dataset), in order: each with the
    first free one in another row and column with another observed label (so a couple's lookups
    neither cancel nor write on each other's pair); an odd one out with a pair already coupled."""
    noisy = dataset.noisy_mask.nonzero().squeeze(1).tolist()
    if not noisy:
        raise ValueError("within_neuron_net needs noisy training pairs; the dataset has none")

    def apart(i: int, j: int) -> bool:
        other_label = int(dataset.labels[i]) != int(dataset.labels[j])
        return bool((dataset.inputs[i] != dataset.inputs[j]).all()) and other_label

    free, out = list(noisy), []
    while free:
        first = free.pop(0)
        second = next((j for j in free if apart(first, j)), None)
        if second is None:
            second = next((j for j in noisy if apart(first, j)), None)
            if second is None:
                raise ValueError(f"noisy pair {first} has no other noisy pair in another row and column with "
                                 "another observed label to share a group with")
        else:
            free.remove(second)
        out.append((first, second))
    return out


# --- transformers -----------------------------------------------------------------------------


@dataclass
class PlantedTransformer:
    """A block-diagonal union of a generalising transformer and a memorising one, with the label
    of each readout neuron, head and embedding frequency by construction."""

    model: Any
    neuron_labels: list[str]
    head_labels: list[str]  # in the order of blocks.0.attn.hook_z's head axis
    frequency_labels: list[str]  # embedding frequencies 1 … ⌊p/2⌋
    analytic: bool = True  # both sides closed-form (else a trained generalising side)

    def truths(self, dataset: Dataset) -> dict[str, list[str]]:
        """The labels by construction per row kind of `interp.analysis.localize`, as
        `interp.testing.recovery` takes them. Both sides closed-form: neurons, neuron clusters (a
        cluster's truth is its members', its inert ones aside), heads, head frequencies (each
        side's copying heads carry exactly that side's frequencies) and embedding frequencies. A
        trained generalising side: neurons, heads and embedding frequencies — the last only as
        far as construction decides them (`sufficient_frequencies` keeps what the model needs
        together, not what it needs one by one), so check them where each kept frequency is
        needed."""
        out = {"neuron": self.neuron_labels, "head": self.head_labels, "frequency": self.frequency_labels}
        if self.analytic:
            from .analysis.readout import linear_readout
            from .analysis.spectra import cluster_order, neuron_clusters

            p = dataset.p
            _, acts, _, _ = linear_readout(self.model, dataset.inputs)
            members = neuron_clusters(acts.reshape(p, p, -1))
            sides = [{t for c, t in zip(members, self.neuron_labels) if c == name} - {"inert"}
                     for name in sorted(set(members), key=cluster_order)]
            out["neuron cluster"] = [side.pop() if len(side) == 1 else "mixed" if side else "inert" for side in sides]
            out["head frequency"] = [head if head == self.frequency_labels[k - 1] else "inert"
                                     for head in self.head_labels for k in range(1, p // 2 + 1)]
        return out


def _legacy_zeros(spec: Any, p: int) -> dict[str, Tensor]:
    """A zero transformer of `spec` over Z_p in the legacy HookedTransformer layout (`embed.W_E`,
    `blocks.0.attn.W_Q` [head, d_model, d_head], …; docs/checkpoints.md): the analytic models are
    written in it and come in through the importer, so no TransformerBridge name is spelled here."""
    from .families.importers import to_hooked_transformer
    from .families.transformer import FAMILY

    return {k: torch.zeros_like(v) if v.is_floating_point() else v
            for k, v in to_hooked_transformer(FAMILY.build(spec, p)).items()}


def _from_legacy(w: dict[str, Tensor], act: str = "relu") -> Any:
    from .families.importers import from_hooked_transformer

    return from_hooked_transformer(w, act=act, what="planted transformer").eval()


def _copying_transformer(p: int, freqs: list[int], d_head: int, d_mlp: int, sharpness: float
                         ) -> tuple[dict[str, Tensor], dict[str, int], Tensor]:
    """The attention half shared by the analytic transformers: a token slot T of (cos θ_k t,
    sin θ_k t) for each k in `freqs` (θ_k = 2πk/p; `=` embeds as 0), copy slots A and B of the
    same form, two position flags and an output slot O of p dims that the unembedding reads.
    Head A's query (a constant) meets position 0's flag with a score of `sharpness`, so the last
    position attends to position 0 alone (up to e^−sharpness) and copies its slot T into slot A;
    head B likewise from position 1 into slot B. Returns its legacy-layout weights (the MLP left
    zero for the caller to fill), the slot offsets and the [p, 2·len(freqs)] residue codes."""
    from .core.specs import TransformerSpec

    width = 2 * len(freqs)
    if d_head < width:
        raise ValueError(f"d_head {d_head} cannot carry the {width} dims of {len(freqs)} frequencies")
    slots = {"T": 0, "A": width, "B": 2 * width, "F0": 3 * width, "F1": 3 * width + 1, "O": 3 * width + 2}
    w = _legacy_zeros(TransformerSpec(d_model=slots["O"] + p, n_heads=2, d_head=d_head, d_mlp=d_mlp), p)
    theta = 2 * math.pi * torch.tensor(freqs, dtype=torch.float64)[None, :] * torch.arange(p)[:, None] / p
    code = torch.stack([torch.cos(theta), torch.sin(theta)], 2).flatten(1)  # [p, 2·len(freqs)]
    w["embed.W_E"][:p, :width] = code.float()
    w["pos_embed.W_pos"][0, slots["F0"]] = w["pos_embed.W_pos"][1, slots["F1"]] = 1.0
    root = math.sqrt(sharpness * math.sqrt(d_head))  # q·k / √d_head = sharpness on the flagged position
    for head, flag, slot in ((0, slots["F0"], slots["A"]), (1, slots["F1"], slots["B"])):
        w["blocks.0.attn.b_Q"][head, 0] = root  # every query is root·e_0 in the head's space
        w["blocks.0.attn.W_K"][head, flag, 0] = root
        w["blocks.0.attn.W_V"][head, :width, :width] = torch.eye(width)
        w["blocks.0.attn.W_O"][head, :width, slot:slot + width] = torch.eye(width)
    w["unembed.W_U"][slots["O"] + torch.arange(p), torch.arange(p)] = 1.0
    return w, slots, code


def lookup_transformer(dataset: Dataset, d_head: int, freq: int = 1, sharpness: float = 60.0,
                       tolerance: float = 0.5) -> tuple[Any, Tensor]:
    """A one-layer transformer that stores each noisy training pair's observed label and gives
    zero logits on every other pair, reading its inputs at the one embedding frequency `freq`
    (attention as in `_copying_transformer`). Lookup neuron j for the noisy pair (a₀, b₀)
    computes relu(κ·(x_A·code(a₀) + x_B·code(b₀) − 2 + δ)) with δ = `tolerance`·(1 − cos 2π/p):
    positive on its own pair alone (the nearest other code falls short by 1 − cos 2π/p), scaled
    to 1 there, and writes e_{c₀} into slot O. Returns the model and the noisy pairs' indices."""
    noisy = dataset.noisy_mask.nonzero().squeeze(1)
    w, slot, code = _copying_transformer(dataset.p, [freq], d_head, max(1, len(noisy)), sharpness)
    A, B, O = slot["A"], slot["B"], slot["O"]
    delta = tolerance * (1 - math.cos(2 * math.pi / dataset.p))
    kappa = 1 / delta
    for j, i in enumerate(noisy.tolist()):
        a, b = dataset.inputs[i].tolist()
        w["blocks.0.mlp.W_in"][A:A + 2, j] = kappa * code[a].float()
        w["blocks.0.mlp.W_in"][B:B + 2, j] = kappa * code[b].float()
        w["blocks.0.mlp.b_in"][j] = kappa * (delta - 2)
        w["blocks.0.mlp.W_out"][j, O + int(dataset.labels[i])] = 1.0
    return _from_legacy(w), noisy


def rule_transformer(p: int, freqs: tuple[int, ...] = (2, 5, 9), d_head: int = 8, n_inert: int = 8,
                     sharpness: float = 60.0, seed: int = 0) -> Any:
    """A one-layer transformer that computes a + b mod p in closed form: the copying heads of
    `_copying_transformer` at `freqs`, then `relu_rule_neurons` — neuron (k, φ_u, φ_v) reads
    cos(θ_k a + φ_u) + cos(θ_k b + φ_v) off slots A and B (linear in the copied codes) and writes
    cos(θ_k c + φ_u + φ_v) into slot O — then `n_inert` MLP neurons with random inputs and no
    output (the last ones)."""
    u, v, out = relu_rule_neurons(p, list(freqs))
    n_rule = len(u)
    w, slot, code = _copying_transformer(p, list(freqs), d_head, n_rule + n_inert, sharpness)
    A, B, O, width = slot["A"], slot["B"], slot["O"], 2 * len(freqs)
    # each neuron's u (a function of the residue) as a linear map of the residue's codes
    to_code = torch.linalg.lstsq(code, torch.cat([u, v]).double().T).solution.T.float()  # [2·n, width]
    w["blocks.0.mlp.W_in"][A:A + width, :n_rule] = to_code[:n_rule].T
    w["blocks.0.mlp.W_in"][B:B + width, :n_rule] = to_code[n_rule:].T
    w["blocks.0.mlp.W_out"][:n_rule, O:O + p] = out
    gen = torch.Generator().manual_seed(seed)
    w["blocks.0.mlp.W_in"][A:B + width, n_rule:] = torch.randn(n_inert, 2 * width, generator=gen).T
    return _from_legacy(w)


def union(first: Any, second: Any) -> Any:
    """The block-diagonal union of two one-layer transformers over the same p (no LayerNorm, same
    d_head): residual streams side by side, heads and MLP neurons of `first` then of `second`. Its
    logits are the sum of the two models' logits, and each head and neuron belongs to one side."""
    from .families.importers import to_hooked_transformer
    from .families.transformer import FAMILY

    s1, s2 = FAMILY.spec(first), FAMILY.spec(second)
    if s1.n_layers != 1 or s2.n_layers != 1 or s1.d_head != s2.d_head or s1.act != s2.act:
        raise ValueError("union needs one-layer transformers with the same d_head and activation")
    w1, w2 = to_hooked_transformer(first), to_hooked_transformer(second)
    d1, d2 = s1.d_model, s2.d_model

    def heads(a: Tensor, b: Tensor, model_axis: int) -> Tensor:  # [head, ..] with d_model on `model_axis`
        a = torch.cat([a, a.new_zeros(*a.shape[:model_axis], d2, *a.shape[model_axis + 1:])], model_axis)
        b = torch.cat([b.new_zeros(*b.shape[:model_axis], d1, *b.shape[model_axis + 1:]), b], model_axis)
        return torch.cat([a, b])

    out = {}
    for name, a in w1.items():
        b, leaf = w2[name], name.rsplit(".", 1)[-1]
        if leaf in ("W_E", "W_pos"):
            out[name] = torch.cat([a, b], 1)
        elif leaf in ("W_Q", "W_K", "W_V"):
            out[name] = heads(a, b, 1)
        elif leaf == "W_O":
            out[name] = heads(a, b, 2)
        elif leaf in ("W_in", "W_out"):
            out[name] = torch.block_diag(a, b)
        elif leaf == "W_U":
            out[name] = torch.cat([a, b], 0)
        elif leaf == "b_U":
            out[name] = a + b
        elif leaf in ("mask", "IGNORE"):
            out[name] = a
        else:  # b_Q, b_K, b_V (heads), b_O, b_out (residual), b_in (neurons): side by side
            out[name] = torch.cat([a, b])
    return _from_legacy(out, s1.act)


def planted_transformer(dataset: Dataset, generalising: Any = None, freqs: tuple[int, ...] = (2, 5, 9)
                        ) -> PlantedTransformer:
    """The union of a generalising transformer and `lookup_transformer(dataset)`: it fits every
    noisy label of `dataset` and keeps the rule elsewhere (op `add`). The generalising side is
    `rule_transformer(p, freqs)` — every label then holds by construction — or a trained model
    (e.g. the `nanda-grokking` release), whose embedding is first filtered to its
    `sufficient_frequencies` and whose barely acting neurons count as inert (`SILENT`). The
    lookups read the lowest frequency the generalising side does not, so every embedding
    frequency belongs to one side or to none (inert: zero on both sides)."""
    from .analysis.filtration import filter_residue_weights
    from .families.transformer import FAMILY

    if dataset.task.op != "add":
        raise ValueError("planted_transformer builds a + b mod p")
    trained = generalising
    if generalising is None:
        generalising, key = rule_transformer(dataset.p, freqs), list(freqs)
        n_rule = len(relu_rule_neurons(dataset.p, key)[0])
        neurons = ["generalising"] * n_rule + ["inert"] * (FAMILY.spec(generalising).d_mlp - n_rule)
    else:
        key = sufficient_frequencies(generalising, dataset)
        generalising = filter_residue_weights(generalising, dataset.task.op, key, ("W_E",))
        neurons = ["inert" if quiet else "generalising" for quiet in _silent_neurons(generalising, dataset).tolist()]
    spec = FAMILY.spec(generalising)
    lookup_freq = min(set(range(1, dataset.p // 2 + 1)) - set(key))
    memoriser, _ = lookup_transformer(dataset, spec.d_head, freq=lookup_freq)
    # scale the lookups to outvote the rule where they fire
    with torch.no_grad():
        rule = FAMILY.forward(generalising, dataset.inputs)
        gap = float((rule.max(-1).values - rule.min(-1).values).max())
        memoriser = FAMILY.with_residue_weights(memoriser, unembedding=FAMILY.unembedding(memoriser) * (2 * gap))
    mem_spec = FAMILY.spec(memoriser)
    frequencies = ["generalising" if k in key else "memorising" if k == lookup_freq else "inert"
                   for k in range(1, dataset.p // 2 + 1)]
    return PlantedTransformer(union(generalising, memoriser), neurons + ["memorising"] * mem_spec.d_mlp,
                              ["generalising"] * spec.n_heads + ["memorising"] * mem_spec.n_heads, frequencies,
                              analytic=trained is None)


@torch.no_grad()
def _silent_neurons(model: Any, dataset: Dataset) -> Tensor:
    """A trained model's neurons that barely act: by construction they carry nothing, so their
    truth is inert, decided by the size of their direct effect on the logits (no label read)."""
    from .families.transformer import FAMILY

    hook = FAMILY.readout_hook(model)
    _, cache = FAMILY.run_with_cache(model, dataset.inputs, names_filter=hook)
    size = cache[hook].abs().mean(0) * FAMILY.unit_to_logit(model).norm(dim=1)
    return size < SILENT * size.median()


def sufficient_frequencies(model: Any, dataset: Dataset, tolerance: float = 0.01) -> list[int]:
    """The fewest embedding frequencies, largest W_E share first (`key_frequencies.ranking`), that
    alone (the embedding filtered to them) keep the model's test accuracy within `tolerance` of
    its own. What the model needs, a functional question — not its key set (`interp.core.key_frequencies`):
    a key frequency the others make redundant is left out (`nanda-grokking`'s k = 1), and a
    frequency under the key bar that the model needs is kept (`nanda-inversion`)."""
    from .analysis.filtration import filter_residue_weights
    from .analysis.spectra import transformer_key_frequencies
    from .core.metrics import subset_metrics

    op = dataset.task.op
    ranked = transformer_key_frequencies(model, op, top=dataset.p // 2)
    target = subset_metrics(logits(model, dataset.inputs), dataset)["test_acc"] - tolerance
    for n in range(1, len(ranked) + 1):
        filtered = filter_residue_weights(model, op, ranked[:n], ("W_E",))
        if subset_metrics(logits(filtered, dataset.inputs), dataset)["test_acc"] >= target:
            return ranked[:n]
    return ranked


#: A trained neuron whose mean |activation| × ‖unit-to-logit row‖ is below this fraction of the
#: median neuron's is inert by construction in a planted union.
SILENT = 0.1


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


def group_composition_net(group: Group, representations: list[Tensor], scale: float = 2.0) -> TwoLayerNet:
    """An analytic network computing a ∘ b in `group` from orthogonal representations ρ given as
    matrices (`representations[r][g]` = ρ_r(g), d×d), e.g. built in closed form: a quadratic
    two-layer net whose logit of class c is scale · Σ_ρ d_ρ tr(ρ(a)ρ(b)ρ(c)ᵀ) = scale · Σ_ρ d_ρ
    χ_ρ(a b c⁻¹), largest at c = a∘b when the ρ together are faithful (Chughtai et al.'s
    algorithm). Each product ρ(a)_ij ρ(b)_jk comes from two neurons, u = α ρ_ij(a),
    v = ±α ρ_jk(b), w = ±γ ρ_ik(c) with 4α²γ = scale · d (so (u + v)² − (u − v)² = 4uv: the
    squares cancel). α = A/d_ρ, with A large enough that u and v hold nearly all of a neuron's
    energy, gives every ρ's 2d_ρ³ neurons about the same energy (4A²|G|): each ρ is a cluster, so a
    key irrep. No bias; every neuron's maps lie wholly in its ρ's matrix coefficients."""
    reps = [torch.as_tensor(rho, dtype=torch.float64) for rho in representations]
    for rho in reps:
        if rho.dim() != 3 or rho.shape[0] != group.order or rho.shape[1] != rho.shape[2]:
            raise ValueError(f"a representation of {group.name} is [{group.order}, d, d], got {tuple(rho.shape)}")
        if not torch.allclose(rho[group.table], rho[:, None] @ rho[None, :], atol=1e-9):
            raise ValueError(f"the matrices are not a representation of {group.name}: ρ(x∘y) ≠ ρ(x)ρ(y)")
    top = max(rho.shape[1] for rho in reps)
    amplitude = 2 * top ** (4 / 3) * scale ** (1 / 3)  # A⁶ ≥ 64 d⁸ scale²: w's energy stays under 1/1000 of u's and v's
    us, vs, ws = [], [], []
    for rho in reps:
        d = rho.shape[1]
        alpha = amplitude / d
        gamma = scale * d / (4 * alpha**2)
        for i, j, k in itertools.product(range(d), repeat=3):
            for sign in (1.0, -1.0):
                us.append(alpha * rho[:, i, j])
                vs.append(sign * alpha * rho[:, j, k])
                ws.append(sign * gamma * rho[:, i, k])
    net = TwoLayerNet(TwoLayerSpec(width=len(us), act="quadratic", bias=False, init="doshi"), group.order)
    with torch.no_grad():
        net.U.copy_(torch.stack(us))
        net.V.copy_(torch.stack(vs))
        net.W.copy_(torch.stack(ws).T)
    return net


#: a group lookup's output in units of the rule's largest lead L: 4·LOOKUP > 1 wins its pair;
#: LOOKUP · L on its row and column must stay under the rule's smallest lead
LOOKUP = 0.35


def planted_group_net(dataset: Dataset, representations: list[Tensor] | None = None, n_inert: int = 20,
                      seed: int = 0) -> Planted:
    """A quadratic network for a task over a finite group that memorises each noisy training pair
    with one lookup neuron and computes a ∘ b with Chughtai et al.'s neurons for `representations`
    (default: every real-type non-trivial irrep, whose characters sum to a lead of |G| at every
    wrong class), plus `n_inert` inert neurons (random inputs, zero output)."""
    group = dataset.task.structure
    if group is None or dataset.task.op != "add":
        raise ValueError("planted_group_net builds a ∘ b on a task over a group (task.group)")
    if representations is None:
        representations = [r.matrices for r in real_irreps(group)[1:] if r.kind == "real"]
    rule = group_composition_net(group, representations)
    out = logits(rule, dataset.inputs).detach()
    lead = float((out.amax(-1) - out.amin(-1)).max())
    noisy = dataset.noisy_mask.nonzero().squeeze(1)
    n_gen, n_mem = rule.U.shape[0], len(noisy)
    net = TwoLayerNet(TwoLayerSpec(width=n_gen + n_mem + n_inert, act="quadratic", bias=False, init="doshi"),
                      group.order)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.U.zero_(), net.V.zero_(), net.W.zero_()
        net.U[:n_gen], net.V[:n_gen], net.W[:, :n_gen] = rule.U, rule.V, rule.W
        for j, i in enumerate(noisy.tolist()):
            a, b = dataset.inputs[i].tolist()
            net.U[n_gen + j, a] = net.V[n_gen + j, b] = 1.0
            net.W[dataset.labels[i], n_gen + j] = LOOKUP * lead
        inert = slice(n_gen + n_mem, None)
        net.U[inert] = torch.randn(n_inert, group.order, generator=gen)
        net.V[inert] = torch.randn(n_inert, group.order, generator=gen)
    return Planted(net.eval(), ["generalising"] * n_gen + ["memorising"] * n_mem + ["inert"] * n_inert)


def planted_feature_mlp(n: int = 400, classes: int = 4, nuisance: int = 36, noise_rate: float = 0.3, seed: int = 0,
                        threshold: float = 0.8, inert: int = 0, spread: float = 5.0
                        ) -> tuple[Dataset, Any, list[int]]:
    """A task over features and a two-hidden-layer MLP whose rule and memory are known by
    construction; returns (dataset, model, the memory units of `blocks.1.hook_post`).

    Inputs: coordinate c < `classes` is 3 on class c (plus N(0, 0.3²) on every class), the
    `nuisance` others N(0, `spread`²): at the default 5, on the raw inputs the class directions
    carry less energy than any nuisance direction (an example's nearest neighbours by cosine are
    of any class); at 1, most of them are of its own class. Example i is of class i mod `classes`; the first 3/4 train, and
    `noise_rate` of them are relabelled c + 1. Layer 0 holds the rule: unit c = relu(20·x_c), then
    relu(x_j) and relu(−x_j) of every coordinate (a copy of x). Layer 1 passes the rule units on
    and adds one lookup unit per noisy training example i, relu(5·(⟨x_i, x⟩/‖x_i‖² − `threshold`))
    read from the copy: 5·(1 − threshold) on x_i, 0 elsewhere (⟨x_i, x⟩/‖x_i‖² is about
    N(0, 1/nuisance) for another x: keep `threshold` many of its standard deviations up).
    The readout adds the rule units to their class and 300 × each lookup to its observed label:
    every label is fitted, and every test example is classified by the rule. `inert` more units
    in layer 1 read random directions of the copy and write nothing."""
    from .core.specs import TaskSpec
    from .families.mlp import MLPNet, MLPSpec

    gen = torch.Generator().manual_seed(seed)
    d = classes + nuisance
    truth = torch.arange(n) % classes
    x = torch.cat([3 * torch.eye(classes)[truth] + 0.3 * torch.randn(n, classes, generator=gen),
                   spread * torch.randn(n, nuisance, generator=gen)], 1)
    train = torch.arange(n) < 3 * n // 4
    chosen = torch.randperm(int(train.sum()), generator=gen)[:round(noise_rate * int(train.sum()))].sort().values
    observed = truth.clone()
    observed[chosen] = (truth[chosen] + 1) % classes
    dataset = Dataset.from_tensors(TaskSpec(op="classify", data="planted", p=classes), x, observed, train, truth)

    m = len(chosen)
    model = MLPNet(MLPSpec(d_in=d, widths=(classes + 2 * d, classes + m + inert)), classes)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        first, second = model.blocks[0].linear, model.blocks[1].linear
        first.weight[:classes, :classes] = 20 * torch.eye(classes)
        first.weight[classes:classes + d] = torch.eye(d)
        first.weight[classes + d:] = -torch.eye(d)
        second.weight[:classes, :classes] = torch.eye(classes)
        keys = x[chosen] / x[chosen].square().sum(1, keepdim=True)  # ⟨key, x_i⟩ = 1
        lookups = slice(classes, classes + m)
        second.weight[lookups, classes:classes + d] = 5 * keys
        second.weight[lookups, classes + d:] = -5 * keys
        second.bias[lookups] = -5 * threshold
        second.weight[classes + m:, classes:] = torch.randn(inert, 2 * d, generator=gen) / d
        model.unembed.weight[:, :classes] = torch.eye(classes)
        model.unembed.weight[observed[chosen], classes + torch.arange(m)] = 300.0
    return dataset, model.eval(), list(range(classes, classes + m))
