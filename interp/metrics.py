"""Losses and per-subset scores of mod-p logits.

Training uses `loss_fn` in float32; everything reported to users is float64. Each subset of
`tasks.SUBSETS` is scored against its own labels, so memorisation (noisy examples vs. observed
labels) and recovery (noisy examples vs. true labels) are never blended.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from .tasks import Dataset


def loss_fn(kind: str, logits: Float[Tensor, "batch p"], labels: Int[Tensor, " batch"]) -> Tensor:
    """`ce`: mean cross-entropy. `mse`: mean over examples of ‖logits − one_hot(label)‖²."""
    if kind == "ce":
        return F.cross_entropy(logits, labels)
    if kind == "mse":
        target = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
        return (logits - target).square().sum(-1).mean()
    raise ValueError(f"unknown loss {kind!r}; valid: ce, mse")


def _per_example(logits: Tensor, labels: dict[str, Tensor], loss: str) -> dict[str, tuple[Tensor, Tensor]]:
    """For each named label vector: (correct, loss) of every example, logits [..., pair, p].
    The normaliser (log-sum-exp or ‖x‖²) and the argmax are computed once for all of them."""
    biggest, top = logits.max(-1)  # one pass gives the argmax and log-sum-exp's shift
    if loss == "ce":
        norm = biggest + (logits - biggest[..., None]).exp_().sum(-1).log_()
    elif loss == "mse":  # ‖x − e_y‖² = ‖x‖² − 2 x_y + 1
        norm = logits.square().sum(-1) + 1
    else:
        raise ValueError(f"unknown loss {loss!r}; valid: ce, mse")
    out = {}
    for name, y in labels.items():
        picked = logits.gather(-1, y.expand(logits.shape[:-1])[..., None])[..., 0]
        out[name] = (top == y, norm - picked if loss == "ce" else norm - 2 * picked)
    return out


def subset_metrics_batched(
    logits: Float[Tensor, "... pair p"], dataset: Dataset, loss: str = "ce", dtype: torch.dtype = torch.float64
) -> dict[str, Tensor | None]:
    """`subset_metrics` for a stack of logits: each value is a float64 tensor over the leading
    dimensions (None where a subset is empty). Scans of many units pass dtype=float32: the
    per-example losses are then computed in float32 (relative error ~1e-7) and summed in
    float64."""
    logits = logits.detach().to(dtype).cpu()
    scored = _per_example(logits, {"observed": dataset.labels, "true": dataset.true_labels}, loss)
    named = {
        "clean": (dataset.clean_mask, "observed"),
        "noisy_observed": (dataset.noisy_mask, "observed"),
        "noisy_true": (dataset.noisy_mask, "true"),
        "test": (dataset.test_mask, "true"),
        "train": (dataset.train_mask, "observed"),
    }
    out: dict[str, Tensor | None] = {}
    for against in ("observed", "true"):
        names = [name for name, (mask, a) in named.items() if a == against and mask.any()]
        # subset sums as one product with the 0/1 masks (no copies of masked rows); counts of
        # correct examples are exact integers, divided in float64
        masks = torch.stack([named[n][0] for n in names], 1).double()
        sizes = masks.sum(0)
        correct, per = scored[against]
        hits, total_loss = correct.double() @ masks, per.double() @ masks
        for j, name in enumerate(names):
            out[f"{name}_acc"], out[f"{name}_loss"] = hits[..., j] / sizes[j], total_loss[..., j] / sizes[j]
    return {key: out.get(key) for name in named for key in (f"{name}_acc", f"{name}_loss")}


def subset_metrics(
    logits: Float[Tensor, "pair p"], dataset: Dataset, loss: str = "ce"
) -> dict[str, float | None]:
    """`{subset}_acc` and `{subset}_loss` for each subset (None where a subset is empty), plus
    `train_acc`/`train_loss` on all training examples against the labels the model was given."""
    return {k: None if v is None else float(v) for k, v in subset_metrics_batched(logits, dataset, loss).items()}


def collect_rows(rows: list[dict]) -> dict[str, list]:
    """Metric rows (one dict per unit, fraction, …) as one list per metric."""
    return {k: [row[k] for row in rows] for k in rows[0]}


#: Thresholds of `phase`: a subset counts as high at ≥ HIGH accuracy and low at ≤ LOW.
PHASE_HIGH, PHASE_LOW = 0.9, 0.1


def phase(metrics: dict[str, float | None]) -> str:
    """Doshi et al.'s phase of a noisy run from its test accuracy and its accuracy on the noisy
    training examples against their observed labels (memorisation):
    test ≥ HIGH and memorised ≥ HIGH: `coexistence`; test ≥ HIGH and memorised ≤ LOW: `full
    inversion`; test ≥ HIGH otherwise: `partial inversion`; test < HIGH and memorised ≥ HIGH:
    `memorisation`; otherwise `forgetting`. Runs without noisy labels: `generalisation` or
    `no generalisation`."""
    test, memorised = metrics.get("test_acc"), metrics.get("noisy_observed_acc")
    if test is None:
        return "no test set"
    if memorised is None:
        return "generalisation" if test >= PHASE_HIGH else "no generalisation"
    if test >= PHASE_HIGH:
        if memorised >= PHASE_HIGH:
            return "coexistence"
        return "full inversion" if memorised <= PHASE_LOW else "partial inversion"
    return "memorisation" if memorised >= PHASE_HIGH else "forgetting"
