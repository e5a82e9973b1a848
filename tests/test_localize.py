"""Planted networks (interp.planted): closed-form generalising neurons, one lookup neuron per
noisy example, inert neurons. The analyses must find the planted labels again."""

import pytest
import torch

import interp
from interp import NoiseSpec, TaskSpec, logits, make_dataset
from interp.ablation import pruning_curve
from interp.localize import label, localize
from interp.metrics import subset_metrics
from interp.partition import neuron_scores, partition_sweep
from interp.planted import planted_two_layer

P, N_GEN = 31, 150


@pytest.fixture(scope="module")
def planted():
    """The quadratic planted net (Doshi et al.'s activation): Gromov's neurons plus lookups."""
    ds = make_dataset(TaskSpec(p=P, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.04, seed=1))
    built = planted_two_layer(ds, act="quadratic", n_inert=0, seed=2)
    return built.model, ds, built.mask("memorising")


@pytest.fixture(scope="module", params=["relu", "quadratic"])
def planted_with_inert(request):
    rate = 0.2 if request.param == "relu" else 0.04  # the quadratic lookups spill onto their rows
    ds = make_dataset(TaskSpec(p=P, train_fraction=0.5), NoiseSpec(kind="wrong", rate=rate, seed=1))
    return planted_two_layer(ds, act=request.param, seed=2), ds


def precision_recall(predicted: list[str], truth: list[str], label: str) -> tuple[float, float]:
    pred, true = torch.tensor([x == label for x in predicted]), torch.tensor([x == label for x in truth])
    hits = int((pred & true).sum())
    return hits / max(int(pred.sum()), 1), hits / max(int(true.sum()), 1)


def test_planted_nets_memorise_and_generalise(planted_with_inert):
    built, ds = planted_with_inert
    m = subset_metrics(logits(built.model, ds.inputs), ds)
    assert m["noisy_observed_acc"] == 1.0 and m["test_acc"] > 0.95 and m["clean_acc"] > 0.95


def test_localize_recovers_every_planted_label(planted_with_inert):
    built, ds = planted_with_inert
    labels = [r["label"] for r in localize(built.model, ds).rows if r["kind"] == "neuron"]
    for name in ("generalising", "memorising", "inert"):
        precision, recall = precision_recall(labels, built.labels, name)
        assert precision >= 0.95 and recall >= 0.95, (name, precision, recall)
    # the same check fails for labels that do not come from the model
    shuffled = [labels[i] for i in torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    assert min(min(precision_recall(shuffled, built.labels, name)) for name in ("generalising", "memorising")) < 0.95


def test_a_clean_run_has_nothing_memorising():
    ds = make_dataset(TaskSpec(p=P, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.0))
    built = planted_two_layer(ds, seed=2)
    rows = localize(built.model, ds).rows
    assert all(r["mem_score"] is None and r["label"] in ("generalising", "inert") for r in rows)
    labels = [r["label"] for r in rows if r["kind"] == "neuron"]
    assert precision_recall(labels, built.labels, "generalising") == (1.0, 1.0)


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
    # scales: the mean of the top 10% of positive scores, here the largest of each (1.0)
    gen = torch.tensor([1.0, 0.0, 0.5, 0.01, -1.0, 0.3])
    mem = torch.tensor([0.0, 1.0, 0.5, 0.02, 0.0, 0.1])
    assert label(gen, mem) == ["generalising", "memorising", "mixed", "inert", "inert", "generalising"]
    assert label(gen, None) == ["generalising", "inert", "generalising", "inert", "inert", "generalising"]


@pytest.fixture(scope="module")
def planted_transformer_model():
    """The released `nanda-inversion` transformer (it computes the rule and memorises nothing)
    beside an analytic lookup transformer that stores 10% wrong labels: a union whose every
    head and neuron belongs to one side."""
    from interp.planted import planted_transformer

    generalising = interp.load("nanda-inversion")
    ds = make_dataset(generalising.spec.task, NoiseSpec(kind="wrong", rate=0.1, seed=7))
    return planted_transformer(generalising.model, ds), ds


def test_planted_transformer_memorises_and_keeps_the_rule(planted_transformer_model):
    from interp.planted import lookup_transformer

    built, ds = planted_transformer_model
    m = subset_metrics(logits(built.model, ds.inputs), ds)
    assert m["noisy_observed_acc"] == 1.0 and m["test_acc"] > 0.9
    lookups, _ = lookup_transformer(ds, d_head=32)
    out = logits(lookups, ds.inputs)
    assert out[~ds.noisy_mask].abs().max() == 0  # the lookups are silent off their pairs


def test_localize_recovers_the_planted_transformer_neurons_and_heads(planted_transformer_model):
    built, ds = planted_transformer_model
    rows = localize(built.model, ds, kinds=("neuron", "head")).rows
    for kind, truth in (("neuron", built.neuron_labels), ("head", built.head_labels)):
        labels = [r["label"] for r in rows if r["kind"] == kind]
        for name in ("generalising", "memorising"):
            precision, recall = precision_recall(labels, truth, name)
            assert precision >= 0.95 and recall >= 0.95, (kind, name, precision, recall)
        shuffled = [labels[i] for i in torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
        assert min(min(precision_recall(shuffled, truth, name)) for name in ("generalising", "memorising")) < 0.95
