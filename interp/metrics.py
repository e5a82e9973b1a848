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


def accuracy(logits: Float[Tensor, "batch p"], labels: Int[Tensor, " batch"]) -> float:
    return float((logits.argmax(-1) == labels).double().mean())


def subset_metrics(
    logits: Float[Tensor, "pair p"], dataset: Dataset, loss: str = "ce"
) -> dict[str, float | None]:
    """`{subset}_acc` and `{subset}_loss` for each subset (None where a subset is empty), plus
    `train_acc`/`train_loss` on all training examples against the labels the model was given."""
    logits = logits.detach().double().cpu()
    out: dict[str, float | None] = {}
    named = dict(dataset.subsets(), train=(dataset.train_mask, dataset.labels))
    for name, (mask, labels) in named.items():
        empty = not bool(mask.any())
        out[f"{name}_acc"] = None if empty else accuracy(logits[mask], labels[mask])
        out[f"{name}_loss"] = None if empty else float(loss_fn(loss, logits[mask], labels[mask]))
    return out
