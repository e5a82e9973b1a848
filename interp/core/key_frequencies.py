"""Which frequencies are key: the one rule behind the Fourier section, the filters, the probes,
the localisation and the circuit views.

Its unit is a spectral unit of the task (`core.harmonics`): a frequency k of Z_p or, for a task
over a finite group, an irrep (unit 0 the trivial one, K the non-trivial irreps). Everything below
reads "irrep" for "frequency" unchanged — the same shares, the same bars — with one difference in
the evidence, not the rule: an embedding's power per irrep is first divided by the irrep's number
of basis functions (D²/κ), since isotropic noise spreads over functions and irreps differ in how
many they have (every Z_p frequency has two, so for Z_p this changes nothing).

The evidence is a vector of per-frequency shares s_0 … s_K (K = ⌊n/2⌋ non-constant frequencies,
n the length of the residue axis; s_0, the constant, is never key), summing to 1 over k ≥ 1:

- neuron clusters (`cluster_evidence`, models with per-neuron residue maps): a neuron is
  *clustered* at k when k holds more than CLUSTER_SHARE of its non-constant power; s_k is the
  share of the clustered neurons' non-constant energy held by those at k, n_k their number.
  Unclustered neurons (noise, memorising neurons, untrained ones) give no evidence at all.
- embedding power (`embedding_evidence`, transformers): s_k is W_E's share of non-constant
  power at k. Here noise is not removed: isotropic noise gives every frequency about 1/K.
  A transformer on the whole (a, b) grid of a ± b gives cluster evidence too — its readout
  neurons' activations over the grid (Nanda et al.'s neuron clusters, `clusters_evidence`) —
  and its key set is the union: every frequency the embedding or a neuron cluster points to.

The rule (`key_frequencies`): k is key ⇔ s_k ≥ m / K, and n_k ≥ MIN_CLUSTER for clusters —
k holds at least m times the share 1/K it would hold if the power were spread evenly over the
K frequencies, with m = CLUSTER_MULTIPLE for clusters and m = EMBEDDING_MULTIPLE for the
embedding. The constants, measured on the releases and analytic nets (docs/concepts.md):

- EMBEDDING_MULTIPLE = 2: a random W_E puts at most 1.18–1.29× the even share on any frequency,
  and a memorising transformer's spectrum (`nanda-noisy`) forms a continuum up to 1.58×; the
  weakest frequency the grokked rule needs (`nanda-grokking`'s k = 1) holds 2.18×. Twice the even
  share sits in that gap.
- CLUSTER_MULTIPLE = 1/2: a net that uses every frequency equally (Gromov's solution with all
  frequencies, `doshi-coexistence`) puts about 1/K on each, so the bar must be under 1; half the
  even share still drops a cluster holding a sliver of the clustered energy (a few stray or
  weight-decayed neurons in a net whose clusters sit at a few frequencies).
- MIN_CLUSTER = 2: one neuron is not a cluster (a lone periodic neuron in an otherwise
  unclustered net would otherwise hold all of the clustered energy).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: a neuron (or readout unit) belongs to the frequency holding more than this share of its
#: non-constant power; below it the neuron is unclustered and no evidence for any frequency
CLUSTER_SHARE = 0.5
#: clusters: key when holding ≥ this multiple of the even share 1/K of the clustered energy
CLUSTER_MULTIPLE = 0.5
#: clusters: and when made of at least this many neurons
MIN_CLUSTER = 2
#: embedding power: key when holding ≥ this multiple of the even share 1/K (noise sits near 1×)
EMBEDDING_MULTIPLE = 2.0


def rule_in_words(clusters: bool, unit: str = "frequency") -> str:
    """The rule as the summaries state it (the same formula as `key_frequencies`); `unit` is
    "frequency" or "irrep" (`Harmonics.kind`)."""
    even = "1/⌊n/2⌋" if unit == "frequency" else "1/K (K non-trivial irreps)"
    rest = "non-constant" if unit == "frequency" else "non-trivial"  # on a group: off the trivial irrep
    if clusters:
        return (f"every {unit} at which at least {MIN_CLUSTER} neurons cluster (more than {CLUSTER_SHARE:.0%} of "
                f"a neuron's {rest} power at it) holding at least {CLUSTER_MULTIPLE:g}× the even share {even} "
                "of the clustered neurons' energy")
    per = "" if unit == "frequency" else " per basis function"
    return (f"every {unit} holding at least {EMBEDDING_MULTIPLE:g}× the even share {even} of the "
            f"embedding's {rest} power{per}")


def cluster_evidence(power: Tensor) -> tuple[Tensor, Tensor]:
    """(s, n) over frequencies 0 … K from per-neuron power [neuron, K+1] (e.g. of u, v, w summed):
    s_k the share of the clustered neurons' non-constant energy held by those clustered at k
    (all zero when no neuron is clustered), n_k their number."""
    power = power.double()
    energy = power[:, 1:].sum(1)
    freq = power[:, 1:].argmax(1) + 1
    return clusters_evidence(freq, power.gather(1, freq[:, None]).squeeze(1) / energy.clamp_min(1e-300), energy,
                             power.shape[1] - 1)


def clusters_evidence(freq: Tensor, share: Tensor, energy: Tensor, n_freqs: int) -> tuple[Tensor, Tensor]:
    """(s, n) over frequencies 0 … `n_freqs` from each unit's best frequency, the share of its
    non-constant power there and that power: the units clustered at k (share > CLUSTER_SHARE)
    give k their energy, the others nothing (used for neuron maps and for the activations of a
    transformer's readout neurons over the (a, b) grid alike)."""
    clustered = share > CLUSTER_SHARE
    held = torch.zeros(n_freqs + 1, dtype=torch.float64).index_add_(0, freq[clustered], energy[clustered].double())
    sizes = torch.bincount(freq[clustered], minlength=n_freqs + 1)
    return held / held.sum().clamp_min(1e-300), sizes


def embedding_evidence(power: Tensor, sizes: Tensor | None = None) -> Tensor:
    """s over frequencies 0 … K from an embedding's power [direction, K+1]: each frequency's share
    of the non-constant power (s_0 = 0); with `sizes` (each irrep's number of basis functions),
    of the non-constant power per basis function."""
    total = power.double().sum(0)
    if sizes is not None:
        total = total / sizes.double()
    total[0] = 0
    return total / total.sum().clamp_min(1e-300)


def ranking(shares: Tensor) -> list[int]:
    """Every non-constant frequency, largest share first (for top-k curves, not the key set)."""
    return [int(k) + 1 for k in torch.argsort(shares[1:], descending=True, stable=True)]


def key_frequencies(shares: Tensor, sizes: Tensor | None = None) -> list[int]:
    """The key frequencies, largest share first: k ≥ 1 with s_k ≥ m / K (K = len(shares) − 1)
    and, for clusters (`sizes` given), n_k ≥ MIN_CLUSTER; m = CLUSTER_MULTIPLE with `sizes`, else
    EMBEDDING_MULTIPLE (see the module docstring)."""
    n_freqs = len(shares) - 1
    multiple = EMBEDDING_MULTIPLE if sizes is None else CLUSTER_MULTIPLE
    key = shares >= multiple / n_freqs
    if sizes is not None:
        key &= sizes >= MIN_CLUSTER
    key[0] = False
    return [k for k in ranking(shares) if key[k]]
