"""The localisation and the analyses that act on components, on tasks over finite groups: a
planted network whose lookups and rule neurons are known by construction, closed forms for the
per-irrep IPR, and an irrep ablation checked against a projection written here."""

import pytest
import torch
from test_group_analysis import permutation_representations

import interp
from interp.analysis.edit import edit_search
from interp.analysis.localize import localize
from interp.analysis.neurons import neuron_ipr
from interp.analysis.partition import partition_sweep
from interp.analysis.probes import probe
from interp.analysis.readout import margins
from interp.analysis.registry import ANALYSES
from interp.core.irreps import real_irreps
from interp.core.metrics import subset_metrics
from interp.core.specs import NoiseSpec, RunSpec, TaskSpec, TrainSpec, TransformerSpec
from interp.core.tasks import make_dataset
from interp.families.base import family_of, logits
from interp.planted import planted_group_net
from interp.testing import recovery


@pytest.fixture(scope="module")
def planted():
    """S4, 10% wrong labels: Chughtai et al.'s neurons for sign and standard (56), one lookup per
    noisy pair (35), 20 inert neurons."""
    ds = make_dataset(TaskSpec(group="S4", train_fraction=0.6), NoiseSpec(kind="wrong", rate=0.1, seed=3))
    return planted_group_net(ds, list(permutation_representations(4))), ds


def test_the_planted_group_net_memorises_and_holds_the_rule(planted):
    built, ds = planted
    metrics = subset_metrics(logits(built.model, ds.inputs), ds)
    assert metrics["noisy_observed_acc"] == 1.0 and metrics["test_acc"] > 0.95
    assert built.labels.count("memorising") == int(ds.noisy_mask.sum())


def test_localize_names_every_planted_neuron_on_a_group(planted):
    built, ds = planted
    result = localize(built.model, ds)
    found = recovery(result.rows, built.truths())["neuron"]
    assert found == {"generalising": (1.0, 1.0), "memorising": (1.0, 1.0), "inert": (1.0, 1.0)}
    # each neuron's unit is its dominant irrep, by name: the rule neurons' are sign and standard
    named = {r.irrep for r, truth in zip((r for r in result.rows if r.kind == "neuron"), built.labels)
             if truth == "generalising"}
    assert named == {"1b", "3a"} or named == {"1b", "3b"}
    # every label set, ablated, does what its label says beside random sets of its size
    table = result.interventions
    assert {label: table.held("neuron", label) for label in ("generalising", "memorising", "inert")} == {
        label: (3, 3) for label in ("generalising", "memorising", "inert")}


def test_the_per_irrep_ipr_is_one_on_a_rule_neuron_and_closed_form_on_a_lookup(planted):
    built, ds = planted
    ipr = neuron_ipr(built.model, ds.task)
    gen = torch.tensor([x == "generalising" for x in built.labels])
    mem = torch.tensor([x == "memorising" for x in built.labels])
    torch.testing.assert_close(ipr[gen], torch.ones(int(gen.sum())), atol=1e-5, rtol=0)
    # a one-hot map e_a holds d_ρ²/|G| of its power in each (real-type) irrep ρ
    group = ds.task.structure
    dims = torch.tensor([r.dim for r in real_irreps(group)], dtype=torch.float64)
    one_hot = float(((dims**2 / group.order) ** 2).sum())  # u = e_a, v = e_b and w = L·e_c alike
    torch.testing.assert_close(ipr[mem].double(), torch.full((int(mem.sum()),), one_hot, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    # so the IPR ranking's top share is the rule: its filtered subnetwork forgets every wrong label
    share = float(gen.float().mean())
    sweep = partition_sweep(built.model, ds, "ipr", fractions=[share])
    assert sweep.generalisation["noisy_observed_acc"][0] == 0.0
    assert sweep.generalisation["test_acc"][0] == pytest.approx(1.0)


def test_probes_read_the_true_label_of_the_noisy_pairs_the_model_gets_wrong(planted):
    built, ds = planted
    hook = family_of(built.model).probe_hooks(built.model)[0]
    raw, dominant = (probe(built.model, ds, hook, features, controls=True) for features in ("raw", "f^G"))
    assert raw.model_accuracy["noisy_true"] == 0.0  # the model answers with the wrong labels
    assert dominant.accuracy["noisy_true"] >= raw.accuracy["noisy_true"] > 0.85
    for result in (raw, dominant):  # the controls: shuffled labels and random features read nothing
        assert max(c["noisy_true"] for name, c in result.controls.items() if "noisy_true" in c) < 0.1


def test_the_edit_forgets_the_planted_memory_on_a_group():
    # S3 (36 pairs, 4 of them noisy) keeps the edit's search small; every irrep is in the rule
    ds = make_dataset(TaskSpec(group="S3", train_fraction=0.6), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    built = planted_group_net(ds)
    before = subset_metrics(logits(built.model, ds.inputs), ds)
    assert before["noisy_observed_acc"] == 1.0 and before["test_acc"] == 1.0
    result = edit_search(built.model, ds)
    assert result.unit == "irrep" and result.teacher == "f^G"
    edited = result.edit.metrics
    assert edited["noisy_observed_acc"] == 0.0 and edited["test_acc"] == 1.0 and edited["clean_acc"] == 1.0
    _, control = result.random_near(result.edit.size)  # random parts of its size keep memory, lose the rule
    assert control["noisy_observed_acc"] > 0.25 and control["test_acc"] < 0.9


def test_the_chosen_edit_does_not_depend_on_the_order_units_are_summed_in():
    """The same net with its hidden units in another order sums the readout in another order
    (as another CPU's vector width or thread count does): the same edit, unit for unit."""
    import copy

    ds = make_dataset(TaskSpec(group="S3", train_fraction=0.6), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    model = planted_group_net(ds).model
    order = torch.randperm(model.U.shape[0], generator=torch.Generator().manual_seed(3))
    shuffled = copy.deepcopy(model)
    with torch.no_grad():
        shuffled.U.copy_(model.U[order]), shuffled.V.copy_(model.V[order]), shuffled.W.copy_(model.W[:, order])
    first, second = edit_search(model, ds, with_labels=False), edit_search(shuffled, ds, with_labels=False)
    assert second.chosen == first.chosen and torch.equal(second.keep, first.keep[order])
    assert second.edit.metrics == pytest.approx(first.edit.metrics, rel=1e-6)  # margins: the forward's float32
    # the move of both sides toward the teacher net: the same shares, the same agreements
    from interp.analysis.edit import SHIFTED

    def shifted(search):
        return [(pt.parameter, pt.agreement) for pt in search.points if pt.method == SHIFTED]

    assert shifted(first) and shifted(second) == shifted(first)


def test_a_transformer_on_a_group_is_localised_by_irreps(tmp_path):
    spec = RunSpec(task=TaskSpec(group="S3", train_fraction=0.6), noise=NoiseSpec(kind="wrong", rate=0.2, seed=1),
                   model=TransformerSpec(d_model=16, n_heads=2, d_head=8, d_mlp=32),
                   train=TrainSpec(steps=8, lr=1e-3, eval_every=4, checkpoint_every=4))
    run = interp.train(spec, tmp_path / "run", progress=False)
    # every built-in analysis is written for groups (one from outside interp may say it is not:
    # `register_analysis`'s default, groups=False, skips it on a group with the reason said)
    for name, analysis in ANALYSES.items():
        if analysis.compute.__module__.startswith("interp."):
            assert "group" not in (analysis.skip_reason(run) or ""), name
    model, ds = run.model, run.dataset
    result = localize(model, ds, check=False)
    rows = [r for r in result.rows if r.kind == "irrep"]
    group = ds.task.structure
    irreps = real_irreps(group)
    assert [r.irrep for r in rows] == [r.name for r in irreps[1:]]
    # removing irrep ρ from W_E: the projection onto its matrix coefficients, built here by QR
    family = family_of(model)
    embed = family.embedding(model).detach().double()
    gen0, mem0 = margins(logits(model, ds.inputs), ds)
    for row, rho in zip(rows, irreps[1:]):
        q, _ = torch.linalg.qr(rho.matrices.reshape(group.order, -1).double())
        kept = family.with_residue_weights(model, embedding=(embed - q @ (q.T @ embed)).float())
        gen, mem = margins(logits(kept, ds.inputs), ds)
        assert row.gen_score == pytest.approx(gen0 - gen, abs=1e-4)
        assert row.mem_score == pytest.approx(mem0 - mem, abs=1e-4)
