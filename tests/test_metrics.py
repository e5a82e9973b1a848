"""Per-subset scoring against plain PyTorch references, in both logit layouts and with ties."""

import pytest
import torch
import torch.nn.functional as F

from interp.core.metrics import aggregate_subsets, score_labels, subset_metrics_batched
from interp.core.tasks import make_dataset
from interp.core.specs import NoiseSpec, TaskSpec


def reference(logits, dataset, loss):
    """Subset metrics of a stack of [..., pair, p] logits, computed the obvious way."""
    out = {}
    subsets = {"clean": (dataset.clean_mask, dataset.labels), "noisy_observed": (dataset.noisy_mask, dataset.labels),
               "noisy_true": (dataset.noisy_mask, dataset.true_labels), "test": (dataset.test_mask, dataset.true_labels),
               "train": (dataset.train_mask, dataset.labels)}
    for name, (mask, y) in subsets.items():
        x = logits[..., mask, :].double()
        yy = y[mask].expand(x.shape[:-1])
        out[f"{name}_acc"] = (x.argmax(-1) == yy).double().mean(-1)
        if loss == "ce":
            per = F.cross_entropy(x.flatten(0, -2), yy.flatten(), reduction="none").view(yy.shape)
        else:
            per = (x - F.one_hot(yy, x.shape[-1])).square().sum(-1)
        out[f"{name}_loss"] = per.mean(-1)
    return out


def tied_logits(ds):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, len(ds.inputs), 13, generator=gen)
    logits[0] = 0.0  # all tied: argmax picks class 0, so only label-0 examples count as correct
    logits[1, :, 5] = logits[1, :, 2] = logits[1].amax(-1) + 1  # tied between 2 and 5: 2 wins
    logits[2] = logits[2].round()  # many ties among integers
    logits[3] *= 20  # peaked rows
    return logits


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("class_dim", [-1, -2])
def test_scores_match_reference_with_ties(loss, class_dim):
    ds = make_dataset(TaskSpec(op="add", p=13, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.3, seed=2))
    logits = tied_logits(ds)
    laid_out = logits if class_dim == -1 else logits.transpose(-1, -2).contiguous()
    ours = subset_metrics_batched(laid_out, ds, loss, dtype=torch.float32, class_dim=class_dim)
    expected = reference(logits, ds, loss)
    for key, value in expected.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-5, atol=1e-6)
    assert ours["test_acc"][0] == pytest.approx((ds.true_labels[ds.test_mask] == 0).double().mean())
    assert ours["clean_acc"][1] == pytest.approx((ds.labels[ds.clean_mask] == 2).double().mean())


@pytest.mark.parametrize("class_dim", [-1, -2])
def test_exp_ready_scores_match_reference_with_ties(class_dim):
    """Logits shifted per example (not to a maximum of 0, so tied maxima have exp ≠ 1) and
    exp'd as they are: the same cross-entropy scores, ties broken as argmax does."""
    ds = make_dataset(TaskSpec(op="add", p=13, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.3, seed=2))
    logits = tied_logits(ds)
    logits[3] /= 4  # keep every shifted logit inside exp's normal range, as the contract asks
    shifted = logits - logits.amax(-1, keepdim=True) - 3
    laid_out = shifted if class_dim == -1 else shifted.transpose(-1, -2).contiguous()
    ours = aggregate_subsets(score_labels(laid_out, ds, "ce", class_dim, exp_ready=True), ds)
    for key, value in reference(logits, ds, "ce").items():
        torch.testing.assert_close(ours[key], value, rtol=1e-5, atol=1e-6)
    assert ours["clean_acc"][1] == pytest.approx((ds.labels[ds.clean_mask] == 2).double().mean())


def test_exp_floored_equals_exp_above_the_normal_range():
    from interp.core.runtime import exp_floored_

    x = torch.tensor([3.0, 0.0, -10.0, -87.0, -88.0, -100.0, float("-inf")])
    torch.testing.assert_close(exp_floored_(x.clone()), x.exp(), rtol=1e-6, atol=2e-38)


def test_margin_is_the_labels_logit_less_the_mean_logit():
    from interp.core.metrics import margin

    # one row by hand: logits (1, 2, 6, −1), mean 2; label 2 → 6 − 2, label 3 → −1 − 2
    row = torch.tensor([1.0, 2.0, 6.0, -1.0])
    assert margin(row, torch.tensor(2)).item() == 4.0 and margin(row, torch.tensor(3)).item() == -3.0
    # any leading axes: each entry against its own row's mean, not the batch's or the maximum's
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)
    labels = torch.randint(7, (3, 5), generator=gen)
    expected = torch.tensor([[logits[i, j, labels[i, j]] - logits[i, j].sum() / 7 for j in range(5)] for i in range(3)],
                            dtype=torch.float64)
    torch.testing.assert_close(margin(logits, labels), expected, rtol=0, atol=1e-12)
    # a constant added to a row's logits changes no margin
    torch.testing.assert_close(margin(logits + torch.arange(5.0, dtype=torch.float64)[:, None], labels), expected,
                               rtol=0, atol=1e-12)
