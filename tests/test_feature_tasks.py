"""Tasks over feature vectors: the built-in sets, the split, the noise kinds, a user's tensors,
and each bad input refused in one line."""

import pytest
import torch

import interp
from interp.core.features import FEATURE_SETS, load_features
from interp.core.specs import NoiseSpec, RunSpec, SpecError, TaskSpec
from interp.core.tasks import Dataset, DatasetError, make_dataset

DIGITS = TaskSpec(op="classify", data="digits", train_fraction=0.7)


def test_digits_task_takes_its_classes_from_the_data_and_splits_every_class():
    x, y = load_features("digits")
    assert x.shape == (1797, 64) and x.dtype == torch.float32 and float(x.max()) == 1.0
    assert FEATURE_SETS["digits"][1:3] == (10, 64)
    assert DIGITS.p == 10 and DIGITS.describe() == "classify digits"
    ds = make_dataset(DIGITS, NoiseSpec("symmetric", 0.4))
    assert torch.equal(ds.inputs, x) and torch.equal(ds.true_labels, y)
    for c in range(10):  # round(0.7 · n_c) of each class trains
        members = y == c
        assert int((ds.train_mask & members).sum()) == round(0.7 * int(members.sum()))
    # exactly round(rate · n_train) wrong labels, on training examples only, each to another class
    assert int(ds.noisy_mask.sum()) == round(0.4 * int(ds.train_mask.sum()))
    assert not (ds.noisy_mask & ~ds.train_mask).any()
    assert torch.equal(ds.labels != ds.true_labels, ds.noisy_mask)
    # seeded: the same spec draws the same dataset, another noise seed another one
    assert ds.same_as(make_dataset(DIGITS, NoiseSpec("symmetric", 0.4)))
    assert not ds.same_as(make_dataset(DIGITS, NoiseSpec("symmetric", 0.4, seed=1)))


@pytest.mark.parametrize("rate", [0.2, 0.9])
def test_pair_flip_sends_each_class_to_the_next(rate):
    ds = make_dataset(DIGITS, NoiseSpec("pair_flip", rate))
    noisy = ds.noisy_mask
    assert int(noisy.sum()) == round(rate * int(ds.train_mask.sum()))
    assert torch.equal(ds.labels[noisy], (ds.true_labels[noisy] + 1) % 10)


def test_class_conditional_matrix_noise_follows_its_rows():
    table = [[0.0] * 10 for _ in range(10)]
    for i in range(10):  # class i keeps 70%, sends 30% to class 9 - i (and class 4/5 to each other)
        table[i][i] = 0.7
        table[i][9 - i] = 0.3
    spec = RunSpec(task=DIGITS, noise=NoiseSpec("matrix", matrix=table))
    assert RunSpec.from_dict(spec.to_dict()) == spec
    ds = make_dataset(spec.task, spec.noise)
    truth = ds.true_labels
    for c in range(10):
        members = ds.train_mask & (truth == c)
        assert int((ds.noisy_mask & members).sum()) == round(0.3 * int(members.sum()))
        assert bool((ds.labels[ds.noisy_mask & members] == 9 - c).all())
    assert "matrix" in ds.describe_noise()


def test_mnist1d_is_built_from_code_and_leaves_the_global_generators_alone():
    import random

    import numpy as np

    from interp.core.features import _load

    random.seed(7)
    np.random.seed(7)
    expected = (random.random(), np.random.rand())
    random.seed(7)
    np.random.seed(7)
    x, y = _load.__wrapped__("mnist1d")  # uncached: the build itself runs here
    assert x.shape == (5000, FEATURE_SETS["mnist1d"][2]) and torch.bincount(y).tolist() == [500] * 10
    assert (random.random(), np.random.rand()) == expected
    assert TaskSpec(op="classify", data="mnist1d").p == 10


def test_specs_without_matrix_or_data_serialise_as_before():
    assert "matrix" not in RunSpec().to_dict()["noise"] and "data" not in RunSpec().to_dict()["task"]


@pytest.mark.parametrize("make, message", [
    (lambda: TaskSpec(op="classify"), "needs task.data"),
    (lambda: TaskSpec(op="add", data="digits"), "set task.op=classify"),
    (lambda: TaskSpec(op="classify", data="digits", p=7), "has 10 classes"),
    (lambda: TaskSpec(op="classify", data="mine"), "give its number of classes"),
    (lambda: NoiseSpec("matrix", matrix=[[0.5, 0.6], [0, 1]]), "summing to 1"),
    (lambda: NoiseSpec("matrix", matrix=[[1, 0], [0, 1]], rate=0.2), "leave noise.rate at 0"),
    (lambda: NoiseSpec("wrong", 0.2, matrix=[[1, 0], [0, 1]]), "for noise.kind=matrix"),
    (lambda: RunSpec(task=DIGITS, noise=NoiseSpec("matrix", matrix=[[1, 0], [0, 1]])), "10 classes"),
    (lambda: interp.get_preset("digits-40").spec.with_overrides(["task.data=mnist5k"]), "set model.d_in=784"),
])
def test_bad_specs_are_one_line(make, message):
    with pytest.raises(SpecError, match=message):
        make()


def user_tensors(n=60, d=5, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    truth = torch.arange(n) % classes
    train = torch.arange(n) < 40
    observed = truth.clone()
    observed[:8] = (truth[:8] + 1) % classes  # 8 wrong training labels
    return x, observed, train, truth


USER = TaskSpec(op="classify", data="mine", p=3)


def test_a_users_features_make_a_dataset():
    x, observed, train, truth = user_tensors()
    ds = Dataset.from_tensors(USER, x, observed, train, truth)
    assert ds.noisy_mask.nonzero().squeeze(1).tolist() == list(range(8))
    assert int(ds.test_mask.sum()) == 20 and torch.equal(ds.inputs, x)
    assert set(ds.subsets()) == {"clean", "noisy_observed", "noisy_true", "test"}
    # without true labels nothing is known to be noisy
    assert not Dataset.from_tensors(USER, x, observed, train).noisy_mask.any()


@pytest.mark.parametrize("change, message", [
    (lambda x, o, t, tr: (x[:, 0], o, t, tr), "shape \\[N, d\\]"),
    (lambda x, o, t, tr: (x.long(), o, t, tr), "float feature vectors"),
    (lambda x, o, t, tr: (x.index_put((torch.tensor([3]), torch.tensor([1])), torch.tensor(float("nan"))), o, t, tr),
     "NaN or infinite features \\(in float32\\) in 1 examples"),
    (lambda x, o, t, tr: (x.double().index_put((torch.tensor([5]), torch.tensor([0])), torch.tensor(1e300,
                                                dtype=torch.float64)), o, t, tr),
     "infinite features \\(in float32\\) in 1 examples"),  # finite in float64, infinite where it is kept
    (lambda x, o, t, tr: (x, o.index_put((torch.tensor([0]),), torch.tensor(3)), t, tr), "classes 0..2"),
    (lambda x, o, t, tr: (x, o.float(), t, tr), "observed_labels must be integer"),
    (lambda x, o, t, tr: (x, o[:-1], t, tr), "shape \\[60\\]"),
    (lambda x, o, t, tr: (x, o, t.int(), tr), "train_mask must be boolean"),
    (lambda x, o, t, tr: (x, torch.where(t & (o == 2), 0, o), t, tr), "class 2 has no training example"),
    (lambda x, o, t, tr: (x, (o + 1) % 3, t, tr), "test examples"),
])
def test_bad_user_tensors_are_one_line(change, message):
    x, observed, train, truth = user_tensors()
    x, observed, train, truth = change(x, observed, train, truth)
    with pytest.raises(DatasetError, match=message):
        Dataset.from_tensors(USER, x, observed, train, truth)


def test_a_run_whose_spec_and_data_differ_in_classes_says_which():
    """The spec's task and the dataset's must agree; where only the class count differs, the
    message names both counts (it read "the dataset is classify mine, the spec classify mine")."""
    x, observed, train, truth = user_tensors()
    dataset = Dataset.from_tensors(USER, x, observed, train, truth)
    spec = interp.get_preset("digits-40").spec.with_overrides(["task.data=mine", "task.p=10", "model.d_in=5"])
    model = interp.families.build_model(spec.model, spec.task.p)
    with pytest.raises(ValueError, match="with 3 classes, the spec classify mine with 10"):
        interp.Run(spec, model, [], 0, None, dataset)


def test_the_card_of_a_run_on_the_users_data_says_the_specs_split_and_noise_were_not_applied():
    """`config.json` keeps the preset's spec, whose split and noise a given data set does not use:
    the card says so beside it, and says nothing of the kind for a run on the spec's own data."""
    from interp.training.release import model_card

    x, observed, train, truth = user_tensors()
    dataset = Dataset.from_tensors(USER, x, observed, train, truth)
    spec = interp.get_preset("digits-40").spec.with_overrides(
        ["task.data=mine", "task.p=3", "model.d_in=5", "model.widths=8", "train.steps=2"])
    card = model_card(interp.train(spec, dataset=dataset, progress=False), "mine", "", None)
    assert "the split and label noise below are the spec's, not applied" in card
    assert "user labels, 20.0% of training labels wrong" in card  # 8 of the 40 training labels, as given
    assert "40 for training (8 of them known to carry a wrong label), 20 for test." in card
    own = interp.get_preset("digits-40").spec.with_overrides(["model.widths=8", "train.steps=2"])
    assert "not applied" not in model_card(interp.train(own, progress=False), "own", "", None)


def test_a_report_on_a_small_test_set_says_how_few_examples_its_verdicts_rest_on():
    """Where one test example is a point of accuracy or more, the headline says so (20 test
    examples: one is 5 points, the 2-point band 0.4 of an example); on more than 100 it is silent."""
    from interp.reporting.report import _sample_claims

    x, observed, train, truth = user_tensors()
    spec = interp.get_preset("digits-40").spec.with_overrides(["task.data=mine", "task.p=3", "model.d_in=5"])
    run = interp.Run(spec, interp.families.build_model(spec.model, 3), [], 0, None,
                     Dataset.from_tensors(USER, x, observed, train, truth))
    (claim,) = _sample_claims(run)
    assert claim["text"].startswith("20 test examples: one is 5.0 points of accuracy, so the 2-point verdict band is "
                                    "0.4 of an example; 8 training examples are known to carry a wrong label.")
    unknown = Dataset.from_tensors(USER, x, observed, train)  # no true labels: none known wrong
    assert "no training label is known to be wrong" in _sample_claims(interp.Run(spec, run.model, [], 0, None,
                                                                                  unknown))[0]["text"]
    big = Dataset.from_tensors(USER, *user_tensors(n=300)[:3], user_tensors(n=300)[3])
    assert _sample_claims(interp.Run(spec, run.model, [], 0, None, big)) == []
    for n, cautioned in ((140, True), (141, False)):  # 100 test examples: a point each; 101: silent
        edge = Dataset.from_tensors(USER, *user_tensors(n=n)[:3], user_tensors(n=n)[3])
        assert bool(_sample_claims(interp.Run(spec, run.model, [], 0, None, edge))) == cautioned


def test_a_report_says_where_the_wrong_labels_outnumber_the_true_one():
    """Binary labels 60% flipped: each class's training examples mostly carry the other label, and
    every label-free method that reads the observed labels' majority sides with the noise."""
    from interp.reporting.report import _majority_claims

    x, observed, train, truth = user_tensors()  # 8 of 40 training labels moved to the next class
    spec = interp.get_preset("digits-40").spec.with_overrides(["task.data=mine", "task.p=3", "model.d_in=5"])
    model = interp.families.build_model(spec.model, 3)
    assert _majority_claims(interp.Run(spec, model, [], 0, None, Dataset.from_tensors(USER, x, observed, train,
                                                                                      truth))) == []
    flipped = torch.where(train & (torch.arange(60) % 3 == 0) & (torch.arange(60) < 30), (truth + 1) % 3, observed)
    (claim,) = _majority_claims(interp.Run(spec, model, [], 0, None, Dataset.from_tensors(USER, x, flipped, train,
                                                                                             truth)))
    assert claim["text"].startswith("for 1 of 3 classes (0) another observed label is at least as common")
