import pytest
import torch

from interp import NoiseSpec, TaskSpec, make_dataset
from interp.core.tasks import apply_op

P = 31


def dataset(kind="wrong", rate=0.4, op="add", noise_seed=0, split_seed=0, p=P, fraction=0.7):
    return make_dataset(
        TaskSpec(op=op, p=p, train_fraction=fraction, seed=split_seed),
        NoiseSpec(kind=kind, rate=rate, seed=noise_seed),
    )


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "x2y2"])
def test_true_labels(op):
    ds = dataset(op=op, rate=0.0)
    a, b, c = ds.inputs[:, 0], ds.inputs[:, 1], ds.true_labels
    checks = {
        "add": (a + b - c) % P,
        "sub": (a - b - c) % P,
        "mul": (a * b - c) % P,
        "div": (c * b - a) % P,  # c = a / b  <=>  c·b = a
        "x2y2": (a * a + b * b - c) % P,
    }
    assert (checks[op] == 0).all()
    assert len(ds.inputs) == (P * (P - 1) if op == "div" else P * P)
    assert (ds.labels == ds.true_labels).all() and not ds.noisy_mask.any()


def test_split_sizes_and_masks():
    ds = dataset()
    n = P * P
    assert int(ds.train_mask.sum()) == round(0.7 * n)
    assert (ds.train_mask ^ ds.test_mask).all()
    assert not (ds.noisy_mask & ds.test_mask).any()
    assert (ds.labels[ds.test_mask] == ds.true_labels[ds.test_mask]).all()
    assert (ds.clean_mask | ds.noisy_mask | ds.test_mask).all()


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_wrong_noise_exact_rate_and_always_wrong(rate):
    ds = dataset("wrong", rate)
    n_train = int(ds.train_mask.sum())
    assert int(ds.noisy_mask.sum()) == round(rate * n_train)
    assert (ds.labels[ds.noisy_mask] != ds.true_labels[ds.noisy_mask]).all()


def test_wrong_noise_is_uniform_over_wrong_classes():
    ds = dataset("wrong", 0.8, p=97, fraction=0.9)
    shift = (ds.labels - ds.true_labels)[ds.noisy_mask] % 97
    counts = torch.bincount(shift, minlength=97).double()
    assert counts[0] == 0
    expected = counts[1:].mean()
    # chi-square with 95 dof: mean 95, sd ~13.8; 160 is far beyond 4 sd
    assert float(((counts[1:] - expected) ** 2 / expected).sum()) < 160


def test_uniform_noise_leaves_about_one_in_p_correct():
    ds = dataset("uniform", 0.6, p=97, fraction=0.9)
    n_corrupted = round(0.6 * int(ds.train_mask.sum()))
    still_right = n_corrupted - int(ds.noisy_mask.sum())
    assert still_right > 0
    assert abs(still_right / n_corrupted - 1 / 97) < 0.01


def test_symmetric_noise_is_symmetric():
    ds = dataset("symmetric", 0.5)
    index = {(int(a), int(b)): i for i, (a, b) in enumerate(ds.inputs)}
    n_pairs_checked = 0
    for i in ds.noisy_mask.nonzero().squeeze(1).tolist():
        a, b = ds.inputs[i].tolist()
        j = index[(b, a)]
        if ds.train_mask[j]:
            assert ds.noisy_mask[j] and ds.labels[j] == ds.labels[i]
            n_pairs_checked += 1
    assert n_pairs_checked > 100
    assert ds.noisy_mask.sum() >= round(0.5 * int(ds.train_mask.sum()))
    assert ds.noisy_mask.sum() <= round(0.5 * int(ds.train_mask.sum())) + 1


@pytest.mark.parametrize("kind", ["wrong", "uniform", "symmetric"])
def test_seeds_reproduce_and_differ(kind):
    first, again = dataset(kind, noise_seed=5), dataset(kind, noise_seed=5)
    assert torch.equal(first.labels, again.labels) and torch.equal(first.train_mask, again.train_mask)
    other_noise = dataset(kind, noise_seed=6)
    assert torch.equal(first.train_mask, other_noise.train_mask)  # the split has its own seed
    assert not torch.equal(first.labels, other_noise.labels)
    other_split = dataset(kind, split_seed=1, noise_seed=5)
    assert not torch.equal(first.train_mask, other_split.train_mask)


def test_subsets_score_noisy_examples_against_both_labels():
    ds = dataset()
    subsets = ds.subsets()
    mask_obs, labels_obs = subsets["noisy_observed"]
    mask_true, labels_true = subsets["noisy_true"]
    assert torch.equal(mask_obs, mask_true)
    assert (labels_obs[mask_obs] != labels_true[mask_true]).all()


def test_apply_op_unknown():
    with pytest.raises(ValueError):
        apply_op("pow", torch.tensor([1]), torch.tensor([2]), 5)
