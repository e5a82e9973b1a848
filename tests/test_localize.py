"""A planted network: Gromov's generalising neurons plus one lookup neuron per noisy example.
The analyses must find the planted split again."""

import pytest
import torch

from interp import NoiseSpec, TaskSpec, logits, make_dataset
from interp.ablation import pruning_curve
from interp.localize import label, localize
from interp.metrics import subset_metrics
from interp.nets import TwoLayerNet, gromov_solution
from interp.partition import neuron_scores, partition_sweep
from interp.specs import TwoLayerSpec

P, N_GEN = 31, 150


@pytest.fixture(scope="module")
def planted():
    ds = make_dataset(TaskSpec(p=P, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.04, seed=1))
    gen, _ = gromov_solution(P, N_GEN, seed=2)
    noisy = ds.noisy_mask.nonzero().squeeze(1)
    n_mem = len(noisy)
    net = TwoLayerNet(TwoLayerSpec(width=N_GEN + n_mem, act="quadratic", bias=False), P)
    scale = 0.7  # 4·s² on the planted pair outvotes the rule; s² on its row and column does not
    with torch.no_grad():
        net.U.zero_(), net.V.zero_(), net.W.zero_()
        net.U[:N_GEN], net.V[:N_GEN], net.W[:, :N_GEN] = gen.U, gen.V, gen.W
        for j, i in enumerate(noisy.tolist()):
            a, b = ds.inputs[i].tolist()
            net.U[N_GEN + j, a] = net.V[N_GEN + j, b] = scale
            net.W[ds.labels[i], N_GEN + j] = 1.0
    is_mem = torch.arange(N_GEN + n_mem) >= N_GEN
    return net, ds, is_mem


def test_planted_net_memorises_and_generalises(planted):
    net, ds, _ = planted
    m = subset_metrics(logits(net, ds.inputs), ds)
    assert m["noisy_observed_acc"] == 1.0 and m["test_acc"] > 0.97 and m["clean_acc"] > 0.97


def test_localize_finds_the_planted_memorising_neurons(planted):
    net, ds, is_mem = planted
    rows = localize(net, ds).rows
    labels = [r["label"] for r in rows]
    assert all(labels[i] == "memorising" for i in is_mem.nonzero().squeeze(1).tolist())
    assert all(labels[i] in ("generalising", "inert") for i in (~is_mem).nonzero().squeeze(1).tolist())
    assert sum(label == "generalising" for label in labels) > N_GEN // 2


def test_ipr_separates_and_pruning_low_ipr_removes_only_memorisation(planted):
    net, ds, is_mem = planted
    scores = neuron_scores(net, ds)
    assert scores["ipr"][is_mem].max() < scores["ipr"][~is_mem].min()
    assert scores["attribution"][is_mem].max() < scores["attribution"][~is_mem].median()
    n_mem = int(is_mem.sum())
    fraction = n_mem / len(is_mem)
    curve = pruning_curve(net, ds, torch.argsort(scores["ipr"]), "ipr ascending", fractions=[0.0, fraction])
    assert curve.metrics["noisy_observed_acc"] == [1.0, 0.0]
    assert curve.metrics["test_acc"][1] == 1.0


def test_partition_sweep_by_ipr_keeps_the_rule(planted):
    net, ds, is_mem = planted
    keep = 1 - float(is_mem.double().mean())
    sweep = partition_sweep(net, ds, "ipr", fractions=[round(keep, 4)])
    assert sweep.generalisation["test_acc"][0] == 1.0
    assert sweep.generalisation["noisy_observed_acc"][0] == 0.0
    assert sweep.memorisation["noisy_observed_acc"][0] == 1.0


def test_label_thresholds():
    gen = torch.tensor([1.0, 0.0, 0.5, 0.01, -1.0])
    mem = torch.tensor([0.0, 1.0, 0.5, 0.02, 0.0])
    assert label(gen, mem) == ["generalising", "memorising", "mixed", "inert", "inert"]
