"""Planted networks (interp.planted): closed-form generalising neurons, one lookup neuron per
noisy example, inert neurons. The analyses must find the planted labels again."""

from dataclasses import replace

import pytest
import torch

import interp
from interp import NoiseSpec, TaskSpec, logits, make_dataset
from interp.analysis.ablation import pruning_curve
from interp.analysis.localize import label, localize
from interp.analysis.unit_rows import UnitRow
from interp.families.base import heads
from interp.core.metrics import subset_metrics
from interp.analysis.neurons import neuron_scores
from interp.analysis.partition import partition_sweep
from interp.planted import planted_two_layer
from interp.testing import precision_recall, recovery

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


def test_planted_nets_memorise_and_generalise(planted_with_inert):
    built, ds = planted_with_inert
    m = subset_metrics(logits(built.model, ds.inputs), ds)
    assert m["noisy_observed_acc"] == 1.0 and m["test_acc"] > 0.95 and m["clean_acc"] > 0.95


def assert_recovered(rows: list[UnitRow], truths: dict[str, list[str]], names=("generalising", "memorising", "inert")
                     ) -> None:
    """Precision and recall ≥ 0.95 for each label of `names` in each kind's truth — a check that
    labels shuffled across a kind's components fail."""
    for kind, per_label in recovery(rows, truths).items():
        checked = [name for name in names if name in per_label]
        for name in checked:
            assert min(per_label[name]) >= 0.95, (kind, name, per_label[name])
        row_kind, _, part = kind.partition(": ")
        mine = [r for r in rows if r.kind == row_kind and (not part or r.part == part)]
        labels = shuffled = [r.label for r in mine]
        gen = torch.Generator().manual_seed(0)
        while shuffled == labels:  # a permutation that moves some label
            shuffled = [labels[i] for i in torch.randperm(len(labels), generator=gen)]
        moved = recovery([replace(r, label=label) for r, label in zip(mine, shuffled)], {kind: truths[kind]})[kind]
        assert min(min(moved[name]) for name in checked) < 0.95, kind


def test_recovery_scores_each_kind_and_part_against_its_truth():
    def row(kind: str, index: int, label: str, **unit) -> UnitRow:
        return UnitRow(kind, index, label, 0.0, None, 0.0, None, **unit)

    rows = [row("neuron", i, label) for i, label in enumerate(["generalising", "generalising", "memorising", "inert"])]
    rows += [row("neuron part", i % 2, label, part=part) for i, (label, part) in enumerate(
        [("generalising", "dominant"), ("inert", "dominant"), ("memorising", "residual"), ("memorising", "residual")])]
    truths = {"neuron": ["generalising", "memorising", "memorising", "inert"],
              "neuron part: dominant": ["generalising", "generalising"],
              "neuron part: residual": ["memorising", "inert"]}
    # (precision, recall): hits over predicted, hits over true; 0.0 where none is predicted
    assert recovery(rows, truths) == {
        "neuron": {"generalising": (0.5, 1.0), "memorising": (1.0, 0.5), "inert": (1.0, 1.0)},
        "neuron part: dominant": {"generalising": (1.0, 0.5)},
        "neuron part: residual": {"memorising": (0.5, 1.0), "inert": (0.0, 0.0)}}
    with pytest.raises(ValueError, match="3 labels predicted for 4 true ones"):
        recovery(rows[:3], {"neuron": truths["neuron"]})


def test_localize_recovers_every_planted_label(planted_with_inert):
    # ReLU: memorisation inside neurons too — the lookups' residuals memorise, every dominant
    # part is a closed-form rule neuron, the rule neurons' residuals are zero
    built, ds = planted_with_inert
    assert_recovered(localize(built.model, ds).rows, built.truths())


def test_a_clean_run_has_nothing_memorising():
    ds = make_dataset(TaskSpec(p=P, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.0))
    built = planted_two_layer(ds, seed=2)
    rows = localize(built.model, ds).rows
    assert all(r.mem_score is None and r.label in ("generalising", "inert") for r in rows)
    labels = [r.label for r in rows if r.kind == "neuron"]
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
    # margins G = M = 6 logits shared by n = 6 components: each inert floor is INERT · 6 / 6 = 0.1 logits
    gen = torch.tensor([1.0, 0.0, 0.5, 0.01, -1.0, 0.3])
    mem = torch.tensor([0.0, 1.0, 0.5, 0.02, 0.0, 0.1])
    assert label(gen, mem, (6.0, 6.0)) == ["generalising", "memorising", "mixed", "inert", "inert", "generalising"]
    assert label(gen, None, (6.0, 0.0)) == ["generalising", "inert", "generalising", "inert", "inert", "generalising"]
    # the two scores are compared with each other in logits, not ranked within the kind: a kind
    # whose scores are all small next to the model's margin is inert, however they rank
    assert set(label(gen / 20, mem / 20, (6.0, 6.0))) == {"inert"}
    # and a pair of equal scores is mixed even where one is the largest of its kind
    assert label(torch.tensor([0.168, 0.01]), torch.tensor([0.169, 0.0]), (0.5, 0.5), n=2)[0] == "mixed"
    # each score is a share of the model's own margin it is measured in: 1.5 logits of a 10-logit
    # memorised margin is a smaller share than 1 logit of a 1-logit test margin
    assert label(torch.tensor([1.0]), torch.tensor([1.5]), (1.0, 10.0)) == ["generalising"]


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
    truths = built.truths(ds)
    if side == "trained":
        # its embedding keeps the frequencies it needs together, but whether it needs each one is
        # not decided by construction; nor are its barely acting neurons inert beyond SILENT
        del truths["frequency"]
    rows = localize(built.model, ds, kinds=tuple(truths), check=False).rows  # labels here; the check in test_interventions
    every = heads(built.model)
    assert all(type(r.index) is int for r in rows)
    # a head's (and a head frequency's) index is its place in `heads`, its name that head's
    assert [(r.index, r.name) for r in rows if r.kind == "head"] == [(i, name) for i, (_, _, name) in enumerate(every)]
    if side == "analytic":
        assert [r.identifier for r in rows if r.kind == "head frequency"] == [
            f"{name} k={k}" for _, _, name in every for k in range(1, ds.p // 2 + 1)]
        assert all(every[r.index][2] == r.name for r in rows if r.kind == "head frequency")
        clusters = [r for r in rows if r.kind == "neuron cluster"]
        assert [r.index for r in clusters] == list(range(len(clusters)))
        assert sorted(u for r in clusters for u in r.members) == list(range(sum(r.kind == "neuron" for r in rows)))
        assert {r.name for r in rows if r.kind == "neuron cluster"} >= {"k=2", "k=5", "k=9", "unclustered"}
        assert set(truths["neuron cluster"]) == {"generalising", "memorising"}
    assert_recovered(rows, truths, ("generalising", "memorising", "inert") if side == "analytic"
                     else ("generalising", "memorising"))
