"""The label-free class-subspace readout against a planted MLP whose rule (layer 0) and memory
(lookups in layer 1) are known by construction, and the readout's geometry in closed form."""

import pytest
import torch

import interp
from interp.analysis.class_subspaces import INPUT, class_subspace_readout
from interp.core.class_structure import affinities, class_subspaces, label_doubt
from interp.core.specs import RunSpec
from interp.planted import planted_feature_mlp
from planted_runs import write_planted_feature_run


def test_subspaces_and_affinities_in_closed_form():
    # class 0 spans e0, e1; class 1 spans e2: cosines read off by hand
    acts = torch.tensor([[1.0, 0, 0], [0, 2, 0], [0, 0, 3], [0, 0, -1]])
    bases = class_subspaces(acts, torch.tensor([0, 0, 1, 1]), 2, k=2)
    assert bases[1, 1].abs().sum() == 0  # class 1 has rank 1: its second row is empty
    point = torch.tensor([[1.0, 1, 1]])
    torch.testing.assert_close(affinities(point, bases), torch.tensor([[(2 / 3) ** 0.5, (1 / 3) ** 0.5]],
                                                                      dtype=torch.float64))
    doubt = label_doubt(point.repeat(2, 1), torch.tensor([0, 1]), bases)
    torch.testing.assert_close(doubt, torch.tensor([1 / 3 ** 0.5 - (2 / 3) ** 0.5, (2 / 3) ** 0.5 - 1 / 3 ** 0.5],
                                                   dtype=torch.float64))


@pytest.fixture(scope="module")
def planted():
    dataset, model, memory = planted_feature_mlp()
    spec = RunSpec(task=dataset.task, model=interp.families.family_of(model).spec(model))
    return interp.Run(spec, model, [], 0, None, dataset), memory


def test_the_planted_mlp_memorises_every_label_and_keeps_the_rule(planted):
    run, _ = planted
    ds = run.dataset
    predicted = interp.logits(run.model, ds.inputs).argmax(-1)
    assert bool((predicted[ds.train_mask] == ds.labels[ds.train_mask]).all())  # noisy ones included
    assert bool((predicted[ds.test_mask] == ds.true_labels[ds.test_mask]).all())


def test_the_readout_finds_the_rule_where_it_lives_and_not_in_the_raw_inputs(planted):
    """One direction per class: the planted rule gives each class one direction (with ten, the
    other classes' directions, brought in by the noisy examples, would enter every subspace)."""
    run, _ = planted
    result = class_subspace_readout(run, directions=1)
    rows = {row.where: row for row in result.layers}
    assert result.model_memorised_acc == 1.0
    rule = rows["blocks.0.hook_post"]
    assert rule.test_acc >= 0.95 and rule.recovered_acc >= 0.95  # label-free: observed labels only
    assert rows[INPUT].test_acc <= 0.6  # the control: nuisance outweighs the class directions
    assert rule.shuffled_test_acc <= 0.5  # shuffled labels carry no rule (chance is 0.25)
    assert rule.noise_auroc >= 0.99 and rows["blocks.1.hook_post"].noise_auroc >= 0.99
    assert rule.ceiling_test_acc >= 0.95
    assert "blocks.0.hook_post" in result.summary() and len(result.tables()[0].rows) == 3


def test_the_readout_reads_no_true_label(planted):
    """Swapping the true labels of the noisy examples for their observed ones changes nothing
    the label-free readout computes (only the scores that compare against the truth)."""
    run, _ = planted
    ds = run.dataset
    blind = interp.Dataset.from_tensors(ds.task, ds.inputs, ds.labels, ds.train_mask)
    assert not blind.noisy_mask.any()
    # ten directions: there the noisy examples pull every class's subspace (the truth would not)
    seen = class_subspace_readout(interp.Run(run.spec, run.model, [], 0, None, blind))
    full = class_subspace_readout(run)
    assert [(r.test_acc, r.untrained_test_acc, r.shuffled_test_acc) for r in seen.layers] == [
        (r.test_acc, r.untrained_test_acc, r.shuffled_test_acc) for r in full.layers]


def test_the_analysis_runs_through_the_registry_with_ten_directions(planted):
    run, _ = planted
    result = interp.analyze(run, "class_subspaces")
    assert result.directions == 10 and [row.where for row in result.layers] == [
        INPUT, "blocks.0.hook_post", "blocks.1.hook_post"]


def test_a_place_with_no_more_units_than_directions_has_no_readout():
    """Ten directions per class fill 5 features (or 8 units): every class's subspace is the whole
    space and the readout would decide by rounding (iris' 4 features read "35.6%"). Such a place
    is undefined, not a control; the layer is compared with the controls that exist."""
    import json

    gen = torch.Generator().manual_seed(0)
    truth = torch.arange(90) % 3
    x = torch.randn(90, 5, generator=gen) + 3 * torch.eye(5)[truth]
    train = torch.arange(90) < 60
    observed = torch.where(train & (torch.arange(90) % 10 == 0), (truth + 1) % 3, truth)
    task = interp.TaskSpec(op="classify", data="mine", p=3)
    data = interp.Dataset.from_tensors(task, x, observed, train, truth)
    spec = interp.get_preset("digits-40").spec.with_overrides(["task.data=mine", "task.p=3", "model.d_in=5",
                                                              "model.widths=32,8"])
    run = interp.Run(spec, interp.families.build_model(spec.model, 3), [], 0, None, data)
    result = class_subspace_readout(run)
    inputs, first, second = result.layers
    assert (inputs.width, inputs.test_acc, inputs.noise_auroc) == (5, None, None) and not inputs.defined
    assert second.width == 8 and not second.defined and first.defined and first.width == 32
    json.dumps(result.to_dict(), allow_nan=False)
    assert "on the raw inputs (control) undefined: 10 directions per class fill its 5 features" in result.summary()
    assert "blocks.1.hook_post undefined: 10 directions per class fill its 8 units" in result.summary()
    assert "against the raw inputs' readout undefined" in result.claim()
    assert result.controls(first) == [first.untrained_test_acc]  # the untrained net alone
    assert result.best() is first
    # the verdict against the one control that exists, in the words of that case
    assert result.beyond_controls(first) == (first.test_acc - first.untrained_test_acc > 0.02)
    assert ("Beyond the untrained net (the raw inputs' readout undefined)" in result.summary()
            or "No layer beats the untrained net by more than 2 points (the raw inputs' readout undefined)"
            in result.summary())
    # exactly as many units as directions per class is already the whole space
    assert not class_subspace_readout(run, directions=8).layers[2].defined
    assert class_subspace_readout(run, directions=7).layers[2].defined


def test_an_inverted_noise_score_is_said_to_be_inverted():
    """Binary labels 60% flipped: the noise score reads 0.22, a signal the wrong way round."""
    from interp.analysis.class_subspaces import ClassSubspaces, LayerReadout

    rows = [LayerReadout(INPUT, 0.5, 0.4, None, 0.5, 0.9, 0.3, 30), LayerReadout("blocks.0.hook_post", 0.2, 0.3, 0.5,
                                                                                 0.5, 0.9, 0.3, 64)]
    result = ClassSubspaces(10, 0.3, 1.0, rows, noise_score_auroc=0.2152, noise_score_steps=[25],
                            noise_control_auroc=0.3)
    assert "AUROC 0.215; with no network" in result.summary() and "Below 0.5, the score ranks" in result.summary()
    for near_chance in (0.9, 0.47):  # a good score, and one within the margin of chance: no note
        assert "Below 0.5" not in ClassSubspaces(10, 0.3, 1.0, rows, noise_score_auroc=near_chance,
                                                 noise_score_steps=[25], noise_control_auroc=0.8).summary()


def test_the_claim_names_a_larger_layer_that_forgets_more_without_a_control():
    """mnist1d-tt-40's numbers: the readout rewound forgets 14 points against random's 0.6 (the
    memory's verdict), but the embedding with the block, 99% of the weights and so without a
    control, forgets 93: the claim must not leave the memory at the readout alone."""
    from interp.analysis.layer_rewind import LayerRewind, Rewind

    readout = Rewind("unembed", 150, 0.859, 0.510, 0.994, 0.516, 0.5, 0.013)
    block = Rewind("embed + blocks.0", 150, 0.071, 0.555, 0.066, 0.557, 0.5, 0.987)
    claim = LayerRewind(1.0, 0.519, [block, readout]).claim()
    assert readout.verdict == "memorising" and block.verdict.startswith("no control")
    assert "unembed to step 150 takes memorised 100.0% → 85.9%" in claim
    assert "a part of the memory sits there, checked against random weights — most of it stays (85.9% still" in claim
    assert ("More of it goes with embed + blocks.0 (99% of the weights) rewound to step 150: memorised 7.1%, test 55.5%"
            in claim)
    half = Rewind("unembed", 150, 0.5, 0.510, 0.994, 0.516, 0.5, 0.013)  # takes exactly half: the memory's place
    assert ": the memory sits there, checked against random weights." in LayerRewind(1.0, 0.519, [half]).claim()
    weaker = Rewind("embed + blocks.0", 150, 0.9, 0.555, 0.9, 0.557, 0.5, 0.987)  # forgets less: not named
    assert "More of it" not in LayerRewind(1.0, 0.519, [weaker, readout]).claim()


def test_a_run_with_no_wrong_label_is_read_and_written_without_nan(tmp_path):
    """A clean-label ceiling run (or a user's data without true labels) has no noisy example:
    memorisation is unscored (None, and the summary says so), never NaN, and the result is
    written as strict JSON — NaN there failed the whole report."""
    import json

    dataset, model, memory = planted_feature_mlp(noise_rate=0.0)
    run = interp.load_run(write_planted_feature_run(tmp_path / "clean", dataset, model, memory))
    result = class_subspace_readout(run, directions=1)
    assert result.model_memorised_acc is None and all(row.recovered_acc is None for row in result.layers)
    json.dumps(result.to_dict(), allow_nan=False)
    assert "memorisation not scored" in result.summary() and "none known wrong: no ceiling" in result.claim()
    assert result.tables()[0].rows[0][2] == "–"
    # the spec's own clean split: the true labels are known, and the readout with them is the ceiling
    spec = interp.get_preset("digits-40").spec.with_overrides(["noise.rate=0", "model.widths=16"])
    clean = interp.Run(spec, interp.families.build_model(spec.model, 10), [], 0)
    known = class_subspace_readout(clean, directions=1)
    assert known.truth_known and known.model_memorised_acc is None and "ceiling with the true labels" in known.claim()


def test_rewinding_the_lookup_layer_removes_the_memory_beyond_random(tmp_path):
    """A run whose only earlier checkpoint is the planted net without its lookups: rewinding the
    layer that holds them (or the readout that reads them) forgets every noisy label and keeps
    the test, far beyond rewinding as many random weights; rewinding layer 0 (unchanged) does
    nothing. Wide nuisance, so layer 1 is a small share of the weights."""
    from interp.analysis.layer_rewind import layer_rewind
    dataset, model, memory = planted_feature_mlp(nuisance=396, threshold=0.5)
    out = write_planted_feature_run(tmp_path / "run", dataset, model, memory)
    result = layer_rewind(interp.load_run(out), directions=1)
    rows = {r.layer: r for r in result.rewinds}
    assert result.final_memorised == 1.0 and result.final_test == 1.0
    assert rows["blocks.1.linear"].memorised == 0.0 and rows["blocks.1.linear"].test == 1.0
    assert rows["blocks.1.linear"].random_memorised >= 0.5
    # layer 0 (its wide nuisance) is most of the weights: no control can differ from it
    assert [rows[k].verdict for k in ("blocks.0.linear", "blocks.1.linear", "unembed")] == [
        "no control (the layer is 81% of the weights)", "memorising", "memorising"]
    assert "blocks.1.linear to step 1" in result.claim() and "blocks.0.linear" not in result.claim()
    # without labels: the rewind that agrees with the readout is the lookup layer's (the readout's
    # classes are the true ones here; rewinding layer 0 changes nothing, so it keeps the noise)
    choice = result.label_free()
    assert (choice.layer, choice.step, choice.agreement) == ("blocks.1.linear", 1, 1.0)
    assert rows["blocks.0.linear"].agreement < 0.8
    from interp.analysis.layer_rewind import rewound

    edited = rewound(interp.load_run(out), "blocks.1.linear", 1)
    rule_only = interp.load_run(out, 1).model  # the checkpoint at step 1: the net without its lookups
    assert torch.equal(interp.logits(edited, dataset.inputs), interp.logits(rule_only, dataset.inputs))


@pytest.mark.parametrize("memorised, test, verdict", [
    (0.1, 0.9, "memorising"), (0.9, 0.1, "generalising"), (0.1, 0.1, "shared"), (0.5, 0.5, "inert"), (0.49, 0.5, "inert")])
def test_the_rewind_verdict_follows_the_one_rule(memorised, test, verdict):
    from interp.analysis.layer_rewind import Rewind

    # random rewind: memorised 0.5, test 0.5; a verdict needs a lead above the 2-point band
    assert Rewind("blocks.0.linear", 1, memorised, test, 0.5, 0.5, 0.0, 0.5).verdict == verdict
    # a layer that is most of the net has no control to differ from (the random draw is mostly it)
    assert Rewind("blocks.1.linear", 1, memorised, test, 0.5, 0.5, 0.0, 0.51).verdict == (
        "no control (the layer is 51% of the weights)")


def test_the_most_suspect_units_of_the_lookup_layer_are_its_lookups():
    """Layer 1 holds 4 rule units, 90 lookups and 400 inert units: ranked by correlation with
    the label-free doubt, the top 90 are the lookups; ablating them forgets every noisy label and
    keeps the test, which 90 random units of the layer do not."""
    from interp.analysis.suspect_neurons import most_suspect, suspect_neurons, suspicion

    dataset, model, memory = planted_feature_mlp(inert=400)
    run = interp.Run(RunSpec(task=dataset.task, model=model.spec), model, [], 0, None, dataset)
    _, cache = model.run_with_cache(dataset.inputs)
    first = cache["blocks.0.hook_post"][dataset.train_mask]
    labels = dataset.labels[dataset.train_mask]
    doubt = label_doubt(first, labels, class_subspaces(first, labels, 4, k=1))
    score = suspicion(cache["blocks.1.hook_post"][dataset.train_mask], doubt)
    assert sorted(most_suspect(score, len(memory))) == memory
    result = suspect_neurons(run, shares=(90 / 494,), directions=1)
    row = next(r for r in result.rows if r.layer == "blocks.1.hook_post")
    assert (row.units, row.memorised, row.test) == (90, 0.0, 1.0)
    assert row.random_memorised > 0.5 and row.verdict == "memorising"


def test_suspicion_is_the_activation_weighted_doubt_and_ties_go_to_the_smaller_unit():
    from interp.analysis.suspect_neurons import most_suspect, suspicion

    doubt = torch.tensor([0.0, 1.0, 2.0, 3.0])
    acts = torch.stack([doubt, -doubt, torch.ones(4), 2 * doubt + 1, doubt], 1)
    expected = torch.tensor([14 / 6, float("-inf"), 1.5, 34 / 16, 14 / 6], dtype=torch.float64)
    torch.testing.assert_close(suspicion(acts, doubt), expected)
    assert most_suspect(suspicion(acts, doubt), 2) == [0, 4]
    # scores apart only in float32's last digits (another CPU's sums) are a tie too: smaller first
    near = torch.tensor([0.5, 2.0 - 3e-8, 2.0, 1.0], dtype=torch.float64)
    assert most_suspect(near, 2) == [1, 2] and most_suspect(near.flip(0), 2) == [1, 2]


def test_the_planted_rule_layer_is_beyond_both_controls_and_the_claim_says_so(planted):
    run, _ = planted
    result = class_subspace_readout(run, directions=1)
    rule = result.label_free()
    assert rule.where == "blocks.0.hook_post" and rule.untrained_test_acc < 0.7  # a random net does not make it
    assert result.beyond_controls(rule) and "holds the rule beyond its inputs and an untrained net" in result.claim()
    assert "Beyond both controls by more than 2 points: blocks.0.hook_post" in result.summary()


@pytest.mark.parametrize("inputs, layer, untrained, beyond", [
    (0.80, 0.90, 0.70, True), (0.80, 0.90, 0.89, False),  # an untrained net reads as much (digits-40's case)
    (0.89, 0.90, 0.70, False),  # the raw inputs read as much
    (0.80, 0.821, 0.80, True), (0.80, 0.819, 0.80, False)])  # the 2-point band
def test_a_layer_holds_the_rule_only_beyond_both_controls_and_the_band(inputs, layer, untrained, beyond):
    from interp.analysis.class_subspaces import ClassSubspaces, LayerReadout

    rows = [LayerReadout(INPUT, inputs, 0.5, None, 0.1, 0.99, 0.9),
            LayerReadout("blocks.0.hook_post", layer, 0.5, untrained, 0.1, 0.99, 0.9)]
    result = ClassSubspaces(10, 0.6, 1.0, rows)
    assert result.beyond_controls(rows[1]) == beyond and not result.beyond_controls(rows[0])
    assert ("holds the rule beyond" in result.claim()) == beyond
    assert ("untrained net" in result.summary()) and (f"{untrained:.1%}" in result.summary())
