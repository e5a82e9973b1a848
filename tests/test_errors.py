"""Test errors explained (`interp.analysis.errors`): structured noise that the model generalises
is named, with its region; random noise and a model that keeps the rule are not."""

import torch

from interp.analysis.errors import FOLLOW_SHARE, explain_test_errors, ranges
from interp.core.specs import NoiseSpec, TaskSpec
from interp.core.tasks import Dataset, make_dataset


def a5_with_structured_noise(g: int = 7, rows: int = 12):
    """A5, all 3600 pairs, 80% for training; for a < `rows` the training label is (a∘b)∘g."""
    task = TaskSpec(group="A5", train_fraction=0.8)
    group = task.structure
    inputs = torch.cartesian_prod(torch.arange(60), torch.arange(60))
    truth = group.table[inputs[:, 0], inputs[:, 1]]
    train = torch.rand(len(inputs), generator=torch.Generator().manual_seed(0)) < 0.8
    shifted = group.table[truth, g]
    observed = torch.where(train & (inputs[:, 0] < rows), shifted, truth)
    return Dataset.from_tensors(task, inputs, observed, train), shifted


def test_generalised_structured_noise_is_named_with_its_region():
    dataset, shifted = a5_with_structured_noise()
    test, inside = dataset.test_mask, dataset.inputs[:, 0] < 12
    # the model: the noise map on rows a < 12 except every fourth of those test pairs, the rule elsewhere
    predicted = torch.where(inside, shifted, dataset.true_labels)
    spoiled = test & inside & (torch.cumsum((test & inside).long(), 0) % 4 == 0)
    predicted = torch.where(spoiled, (dataset.true_labels + 1) % 60, predicted)
    result = explain_test_errors(predicted, dataset)
    g_name = dataset.task.structure.elements[7]
    assert result.consistent and result.consistency == 1.0 and result.map_name == f"(a∘b)∘g with g = {g_name}"
    n_inside, n_spoiled = int((test & inside).sum()), int(spoiled.sum())
    assert result.region["axis"] == "a" and result.region["values"] == list(range(12))
    assert result.region["following"] == n_inside - n_spoiled and result.region["correct"] == 0
    assert result.outside["following"] == 0 and result.outside["correct"] == result.outside["test"]
    assert result.n_wrong == n_inside and result.n_wrong_following == n_inside - n_spoiled
    assert result.noise_rows == "0–11"
    headline = result.headline()
    assert headline.startswith("Held-out pairs with a in 0–11 follow the training noise") and g_name in headline
    assert f"with a in 0–11, {n_inside - n_spoiled} of {n_inside} test pairs" in result.summary()
    # the report's headline names it
    from interp.reporting.report import _error_claims

    assert _error_claims(result) == [{"topic": "Test errors", "text": headline}]
    assert _error_claims(explain_test_errors(dataset.true_labels, dataset)) == []


def test_a_row_is_in_the_region_from_half_of_its_test_pairs():
    dataset, shifted = a5_with_structured_noise(rows=1)
    row = dataset.test_mask & (dataset.inputs[:, 0] == 0)
    k = int(row.sum())
    for follow, inside in ((k - k // 2, True), (k - k // 2 - 1, False)):  # ≥ FOLLOW_SHARE of the row's test pairs
        take = row & (torch.cumsum(row.long(), 0) <= follow)
        result = explain_test_errors(torch.where(take, shifted, dataset.true_labels), dataset)
        assert (result.region is not None) is inside, (follow, k, FOLLOW_SHARE)


def test_random_noise_and_a_model_that_keeps_the_rule_are_not_named():
    dataset = make_dataset(TaskSpec(group="A5", train_fraction=0.8), NoiseSpec(rate=0.2))
    result = explain_test_errors(dataset.true_labels, dataset)
    assert not result.consistent and result.headline() is None and "follow no single map" in result.summary()
    structured, _ = a5_with_structured_noise()
    kept = explain_test_errors(structured.true_labels, structured)
    assert kept.consistent and kept.region is None and kept.headline() is None
    assert ranges([0, 1, 2, 5, 7, 8]) == "0–2, 5, 7–8"
