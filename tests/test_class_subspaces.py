"""The label-free class-subspace readout against a planted MLP whose rule (layer 0) and memory
(lookups in layer 1) are known by construction, and the readout's geometry in closed form."""

import pytest
import torch

import interp
from interp.analysis.class_subspaces import INPUT, class_subspace_readout
from interp.core.class_structure import affinities, class_subspaces, label_doubt
from interp.core.specs import RunSpec
from interp.planted import planted_feature_mlp


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
