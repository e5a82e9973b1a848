"""The one key-frequency rule (`interp.core.key_frequencies`) on nets whose key set is known."""

import math

import pytest
import torch

from interp import TaskSpec, build_model, make_dataset
from interp.core.key_frequencies import (CLUSTER_MULTIPLE, MIN_CLUSTER, cluster_evidence,
                                    key_frequencies)
from interp.analysis.spectra import neuron_spectra, transformer_key_frequencies
from interp.core.specs import NoiseSpec, TransformerSpec, TwoLayerSpec
from interp.families.two_layer import TwoLayerNet
from interp.planted import gromov_solution

#: the published grokked MLP of the issue (p = 113, 128 neurons): cluster frequency -> neurons
C113 = {44: 22, 4: 21, 50: 20, 16: 19, 17: 18, 11: 10, 1: 9, 22: 9}


def clustered_net(p: int, clusters: dict[int, int], n_noise: int, seed: int = 0) -> TwoLayerNet:
    """A two-layer net whose neurons are noisy cosines at the cluster frequencies (random phases and
    amplitudes, Gromov's phase relation), then `n_noise` neurons of small random weights."""
    gen = torch.Generator().manual_seed(seed)
    freqs = torch.tensor([k for k, n in clusters.items() for _ in range(n)])
    width = len(freqs) + n_noise
    x = torch.arange(p, dtype=torch.float64)
    theta = 2 * math.pi * freqs[:, None].double() * x / p
    phase_u, phase_v = torch.rand(2, len(freqs), 1, generator=gen, dtype=torch.float64) * 2 * math.pi
    amp = 0.5 + torch.rand(len(freqs), 1, generator=gen, dtype=torch.float64)

    def noisy(signal: torch.Tensor) -> torch.Tensor:
        return amp * signal + 0.1 * torch.randn(signal.shape, generator=gen, dtype=torch.float64)

    maps = [torch.cat([noisy(torch.cos(theta + phase)), 0.3 * torch.randn(n_noise, p, generator=gen, dtype=torch.float64)])
            for phase in (phase_u, phase_v, phase_u + phase_v)]
    net = TwoLayerNet(TwoLayerSpec(width=width, act="relu", bias=False), p)
    with torch.no_grad():
        net.U.copy_(maps[0]), net.V.copy_(maps[1]), net.W.copy_(maps[2].T)
    return net


def test_unequal_clusters_are_all_found_and_noise_neurons_left_out():
    net = clustered_net(113, C113, n_noise=32)
    s = neuron_spectra(net, "add")
    assert sorted(s.key_set()) == sorted(C113)
    shares, sizes = s.clusters()
    assert {k: int(sizes[k]) for k in C113} == C113 and int(sizes.sum()) == sum(C113.values())


def test_a_lone_periodic_neuron_or_a_sliver_is_no_cluster():
    shares = torch.zeros(57, dtype=torch.float64)
    sizes = torch.zeros(57, dtype=torch.long)
    shares[[3, 8, 40]] = torch.tensor([0.6, 0.395, 0.005], dtype=torch.float64)
    sizes[[3, 8, 40]] = torch.tensor([30, 1, 2])
    assert key_frequencies(shares, sizes) == [3]  # 8: one neuron (< MIN_CLUSTER); 40: under the bar
    assert 0.005 < CLUSTER_MULTIPLE / 56 and MIN_CLUSTER == 2


@pytest.mark.parametrize("n_freqs", [3, 0])
def test_gromov_solution_reads_back_exactly_its_frequencies(n_freqs):
    net, truth = gromov_solution(97, 500, n_freqs=n_freqs, seed=1)
    assert sorted(neuron_spectra(net, "add").key_set()) == sorted(set(truth["freq"].tolist()))


@pytest.mark.parametrize("p, init", [(59, "standard"), (113, "standard"), (113, "doshi")])
def test_an_untrained_net_has_no_key_frequency(p, init):
    net = TwoLayerNet(TwoLayerSpec(width=512, init=init), p)
    assert neuron_spectra(net, "add").key_set() == []


def test_planted_two_layer_nets_give_their_planted_frequencies():
    from interp.planted import planted_two_layer

    ds = make_dataset(TaskSpec(p=31, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.1, seed=0))
    for act in ("relu", "quadratic"):
        built = planted_two_layer(ds, act=act)
        key = neuron_spectra(built.model, "add").key_set()
        # the quadratic rule is Gromov's with every frequency; its lookups are one-hot (unclustered)
        assert sorted(key) == ([2, 5, 9] if act == "relu" else list(range(1, 16)))


def test_planted_transformer_gives_its_rule_and_lookup_frequencies():
    from interp.planted import planted_transformer

    ds = make_dataset(TaskSpec(p=31, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.1, seed=7))
    built = planted_transformer(ds)
    lookup = [k for k, label in enumerate(built.frequency_labels, 1) if label == "memorising"]
    assert sorted(transformer_key_frequencies(built.model)) == sorted([2, 5, 9, *lookup])


def test_embedding_shares_planted_power_plus_noise():
    p, gen = 59, torch.Generator().manual_seed(0)
    model = build_model(TransformerSpec(d_model=64, n_heads=2, d_head=16, d_mlp=64), p)
    x = torch.arange(p, dtype=torch.float64)
    with torch.no_grad():
        w_e = model.state_dict()["embed.weight"]
        w_e[:p] = 0.1 * torch.randn(p, 64, generator=gen)  # noise: about 1/29 of the power each
        for j, (k, amp) in enumerate([(4, 1.0), (17, 0.7), (23, 0.45)]):
            w_e[:p, 2 * j] += (amp * torch.cos(2 * math.pi * k * x / p)).float()
            w_e[:p, 2 * j + 1] += (amp * torch.sin(2 * math.pi * k * x / p)).float()
    assert transformer_key_frequencies(model) == [4, 17, 23]
    assert transformer_key_frequencies(model, top=2) == [4, 17]


def test_untrained_transformer_embedding_has_no_key_frequency():
    model = build_model(TransformerSpec(d_model=64, d_mlp=256), 59)  # neither W_E nor the grid clusters
    assert transformer_key_frequencies(model) == []


def boundary_shares(n_freqs: int, bar: float, above: int, below: int, gap: float = 1e-9) -> torch.Tensor:
    """Shares over 0 … n_freqs summing to 1 over k ≥ 1 (none renormalised after the bar is set):
    `above` holds the bar times (1 + gap), `below` the bar times (1 − gap), every other k ≥ 1
    an equal part of the rest, the constant nothing."""
    shares = torch.zeros(n_freqs + 1, dtype=torch.float64)
    shares[[above, below]] = torch.tensor([bar * (1 + gap), bar * (1 - gap)], dtype=torch.float64)
    rest = [k for k in range(1, n_freqs + 1) if k not in (above, below)]
    shares[rest] = (1 - shares.sum()) / len(rest)
    assert abs(float(shares.sum()) - 1) < 1e-12
    return shares


# The bars are written out (2/K and 1/(2K), as the docs state them), not read from the constants,
# so a changed multiple fails here: a multiple off by more than a part in 10⁸, or K off by one
# (the bar 2/(K+1) takes in the share just under 2/K), moves one of the two frequencies across.
@pytest.mark.parametrize("n_freqs", [5, 29, 56])
def test_embedding_bar_is_exactly_twice_the_even_share(n_freqs):
    shares = boundary_shares(n_freqs, 2 / n_freqs, above=2, below=1)
    assert float(shares[3:].max()) < 2 / n_freqs  # the rest under the bar
    assert key_frequencies(shares) == [2]
    shares[1] = 2 / n_freqs  # at the bar exactly: key (≥)
    assert key_frequencies(shares) == [2, 1]


@pytest.mark.parametrize("n_freqs", [3, 29, 56])
def test_cluster_bar_is_exactly_half_the_even_share_of_at_least_two_neurons(n_freqs):
    shares = boundary_shares(n_freqs, 0.5 / n_freqs, above=1, below=n_freqs)
    sizes = torch.full((n_freqs + 1,), 2)
    # every other frequency holds more than the bar: give those clusters a single neuron
    sizes[2:n_freqs] = 1
    assert key_frequencies(shares, sizes) == [1]
    sizes[1] = 1  # one neuron is no cluster, whatever its share
    assert key_frequencies(shares, sizes) == []
    sizes[1], shares[n_freqs] = 2, 0.5 / n_freqs  # at the bar exactly: key (≥)
    assert key_frequencies(shares, sizes) == [1, n_freqs]


def test_cluster_evidence_counts_only_clustered_neurons():
    power = torch.zeros(4, 6, dtype=torch.float64)
    power[0, 2] = 1.0                          # clustered at 2
    power[1, [2, 3]] = torch.tensor([0.6, 0.4], dtype=torch.float64)  # clustered at 2 (60%)
    power[2, [3, 4]] = 0.5                     # half and half: unclustered
    power[3, 0] = 5.0                          # the constant counts for nothing
    power[3, 5] = 1.0
    shares, sizes = cluster_evidence(power)
    assert sizes.tolist() == [0, 0, 2, 0, 0, 1]
    torch.testing.assert_close(shares, torch.tensor([0, 0, 2 / 3, 0, 0, 1 / 3], dtype=torch.float64))
