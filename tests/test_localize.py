"""Planted networks (interp.planted): closed-form generalising neurons, one lookup neuron per
noisy example, inert neurons. The analyses must find the planted labels again."""

import pytest
import torch

import interp
from interp import NoiseSpec, TaskSpec, logits, make_dataset
from interp.ablation import linear_readout, pruning_curve
from interp.localize import label, localize
from interp.metrics import subset_metrics
from interp.partition import neuron_scores, partition_sweep
from interp.planted import planted_two_layer
from interp.spectra import neuron_clusters

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


def assert_recovered(labels: list[str], truth: list[str], names=("generalising", "memorising", "inert")) -> None:
    """Precision and recall ≥ 0.95 for each label of `names` present in `truth` — a check that
    labels shuffled across components fail."""
    names = [name for name in names if name in truth]
    for name in names:
        precision, recall = precision_recall(labels, truth, name)
        assert precision >= 0.95 and recall >= 0.95, (name, precision, recall)
    gen, shuffled = torch.Generator().manual_seed(0), labels
    while shuffled == labels:  # a permutation that moves some label
        shuffled = [labels[i] for i in torch.randperm(len(labels), generator=gen)]
    assert min(min(precision_recall(shuffled, truth, name)) for name in names) < 0.95


def test_localize_recovers_every_planted_label(planted_with_inert):
    built, ds = planted_with_inert
    rows = localize(built.model, ds).rows
    assert_recovered([r["label"] for r in rows if r["kind"] == "neuron"], built.labels)
    # memorisation inside neurons (ReLU): the lookups' residuals memorise, every dominant part
    # is a closed-form rule neuron; the rule neurons' residuals are zero
    for part, truth in (built.part_labels or {}).items():
        assert_recovered([r["label"] for r in rows if r["kind"] == "neuron part" and r["part"] == part], truth)


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


@pytest.fixture(scope="module", params=["analytic", "trained"])
def planted_transformer_model(request):
    """Unions of a generalising transformer and an analytic lookup transformer that stores 10%
    wrong labels, each head, neuron and embedding frequency on one side (or inert): the
    generalising side is the closed-form rule transformer (p = 31), or the released
    `nanda-inversion` transformer (trained; it computes the rule and memorises nothing)."""
    from interp.planted import planted_transformer

    noise = NoiseSpec(kind="wrong", rate=0.1, seed=7)
    if request.param == "analytic":
        ds = make_dataset(TaskSpec(p=P, train_fraction=0.5), noise)
        return request.param, planted_transformer(ds), ds
    trained = interp.load("nanda-inversion")
    ds = make_dataset(trained.spec.task, noise)
    return request.param, planted_transformer(ds, trained.model), ds


def test_planted_transformer_memorises_and_keeps_the_rule(planted_transformer_model):
    from interp.planted import lookup_transformer

    _, built, ds = planted_transformer_model
    m = subset_metrics(logits(built.model, ds.inputs), ds)
    assert m["noisy_observed_acc"] == 1.0 and m["test_acc"] > 0.9
    lookups, _ = lookup_transformer(ds, d_head=32, freq=3)
    out = logits(lookups, ds.inputs)
    assert out[~ds.noisy_mask].abs().max() == 0  # the lookups are silent off their pairs
    assert out[ds.noisy_mask].argmax(-1).equal(ds.labels[ds.noisy_mask])


def test_the_rule_transformer_computes_the_rule_in_closed_form():
    from interp.planted import rule_transformer

    pairs = torch.cartesian_prod(torch.arange(P), torch.arange(P))
    assert logits(rule_transformer(P), pairs).argmax(-1).equal(pairs.sum(1) % P)


def test_localize_recovers_the_planted_transformer_components(planted_transformer_model):
    side, built, ds = planted_transformer_model
    analytic = side == "analytic"
    # the trained side's embedding frequencies are kept to the sufficient ones, but whether the
    # model needs each of them is not known by construction: frequencies are checked analytically
    kinds = ("neuron", "neuron cluster", "head", "head frequency", "frequency") if analytic else ("neuron", "head")
    rows = localize(built.model, ds, kinds=kinds).rows
    truths = {"neuron": built.neuron_labels, "head": built.head_labels, "frequency": built.frequency_labels}
    if analytic:  # a cluster's truth is its members' (the inert ones, whose output is zero, aside)
        clusters = [r for r in rows if r["kind"] == "neuron cluster"]
        assert {r["index"] for r in clusters} >= {"k=2", "k=5", "k=9", "unclustered"}
        _, acts, _, _ = linear_readout(built.model, ds.inputs)
        members = neuron_clusters(acts.reshape(P, P, -1))
        sides = [{t for c, t in zip(members, built.neuron_labels) if c == r["index"]} - {"inert"} for r in clusters]
        truths["neuron cluster"] = [side.pop() if len(side) == 1 else "mixed" if side else "inert" for side in sides]
        assert set(truths["neuron cluster"]) == {"generalising", "memorising"}
        # each side's copying heads carry exactly that side's frequencies
        truths["head frequency"] = [
            head if head == built.frequency_labels[k - 1] else "inert"
            for head in built.head_labels for k in range(1, P // 2 + 1)]
    for kind in kinds:
        names = ("generalising", "memorising") + (("inert",) if analytic and kind != "head" else ())
        assert_recovered([r["label"] for r in rows if r["kind"] == kind], truths[kind], names)
