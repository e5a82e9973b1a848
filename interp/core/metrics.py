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

from .runtime import exp_floored_
from .specs import LOSSES, TrainSpec
from .tasks import SUBSET_TABLE, Dataset


#: The loss kinds (`specs.LOSSES`) and the default one: the spec's own training default.
DEFAULT_LOSS: str = TrainSpec.loss


def check_loss(kind: str) -> None:
    """Refuse a loss kind other than those of `specs.LOSSES`."""
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}; valid: {', '.join(LOSSES)}")


def loss_fn(kind: str, logits: Float[Tensor, "batch p"], labels: Int[Tensor, " batch"]) -> Tensor:
    """`ce`: mean cross-entropy. `mse`: mean over examples of ‖logits − one_hot(label)‖²."""
    check_loss(kind)
    if kind == "ce":
        return F.cross_entropy(logits, labels)
    target = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    return (logits - target).square().sum(-1).mean()


def centred(logits: Float[Tensor, "... p"]) -> Float[Tensor, "... p"]:
    """Logits less their mean over the classes: the reference every margin is measured from."""
    return logits - logits.mean(-1, keepdim=True)


def margin(logits: Float[Tensor, "... p"], labels: Int[Tensor, "..."]) -> Float[Tensor, "..."]:
    """The logit margin of `labels`: the label's logit minus the mean logit (one definition,
    used by the localisation, the ablation tables and the circuit views). Any leading axes."""
    return centred(logits).gather(-1, labels[..., None]).squeeze(-1)


def _per_example(logits: Tensor, labels: dict[str, Tensor], loss: str, class_dim: int = -1,
                 exp_ready: bool = False) -> dict[str, tuple[Tensor, Tensor]]:
    """For each named label vector: (correct, loss) of every example. The classes lie along
    `class_dim` (-1: [..., pair, p]; -2: [..., p, pair], the fast layout for big stacks, where
    every reduction over classes runs along contiguous memory). The maximum, the normaliser
    (log-sum-exp or ‖x‖²) and the labels' logits are computed once for all label vectors.
    `exp_ready=True` (cross-entropy) is for callers that have shifted each example's logits by a
    constant, which changes no score, into [EXP_FLOOR, -EXP_FLOOR]: exp then needs neither the
    maximum subtracted nor a floor, which saves a pass over the logits."""
    check_loss(loss)
    biggest = logits.amax(class_dim, keepdim=True)
    ys = torch.stack([y.to(logits.device).expand(biggest.squeeze(class_dim).shape) for y in labels.values()],
                     class_dim)
    picked = logits.gather(class_dim, ys)
    correct = picked == biggest
    if loss == "mse":
        norm = logits.square().sum(class_dim) + 1  # ‖x − e_y‖² = ‖x‖² − 2 x_y + 1
        tied = (logits == biggest).sum(class_dim) >= 2
    elif exp_ready:
        sum_exp = logits.exp().sum(class_dim)
        norm = sum_exp.log()
        # a tie at the maximum puts exp(max) in the sum twice; the margin covers exp's rounding
        tied = sum_exp >= 1.999 * biggest.squeeze(class_dim).exp()
    else:
        sum_exp = exp_floored_(logits - biggest).sum(class_dim)
        norm = biggest.squeeze(class_dim) + sum_exp.log()
        tied = sum_exp >= 2  # a tie at the maximum adds exp(0) = 1 twice
    # Correct means the label is argmax's pick, and argmax breaks ties by the first index. A
    # label at a tied maximum needs argmax itself; only rows that may hold a tie and have a
    # label at the maximum are checked (few rows: the full argmax over a big stack cost more
    # than the rest of the scoring here).
    check = (tied & correct.any(class_dim)).nonzero(as_tuple=True)
    top = logits.movedim(class_dim, -1)[check].argmax(-1)
    correct.movedim(class_dim, -1)[check] = top[:, None] == ys.movedim(class_dim, -1)[check]
    out = {}
    for j, name in enumerate(labels):
        mine = picked.select(class_dim, j)
        out[name] = (correct.select(class_dim, j), norm - mine if loss == "ce" else norm - 2 * mine)
    return out




def score_labels(logits: Tensor, dataset: Dataset, loss: str, class_dim: int = -1,
                 exp_ready: bool = False) -> dict[str, tuple[Tensor, Tensor]]:
    """(correct, loss) of every example against its observed and its true label: the part of
    `subset_metrics_batched` that reads the logits; `aggregate_subsets` turns it into metrics."""
    return _per_example(logits, {"observed": dataset.labels, "true": dataset.true_labels}, loss, class_dim, exp_ready)


def aggregate_subsets(scored: dict[str, tuple[Tensor, Tensor]], dataset: Dataset) -> dict[str, Tensor | None]:
    """Per-subset accuracy and mean loss (float64, over the leading dimensions) from
    `score_labels`; None where a subset is empty."""
    out: dict[str, Tensor | None] = {}
    for against in ("observed", "true"):
        names = [s.name for s in SUBSET_TABLE.values() if s.against == against and getattr(dataset, s.mask).any()]
        # subset sums as one product with the 0/1 masks (no copies of masked rows); counts of
        # correct examples are exact integers, divided in float64
        correct, per = scored[against]
        masks = torch.stack([getattr(dataset, SUBSET_TABLE[n].mask) for n in names], 1).to(correct.device, torch.float64)
        sizes = masks.sum(0)
        hits, total_loss = correct.double() @ masks, per.double() @ masks
        for j, name in enumerate(names):
            out[f"{name}_acc"], out[f"{name}_loss"] = hits[..., j] / sizes[j], total_loss[..., j] / sizes[j]
    return {key: out.get(key) for name in SUBSET_TABLE for key in (f"{name}_acc", f"{name}_loss")}


def subset_metrics_batched(
    logits: Float[Tensor, "... pair p"], dataset: Dataset, loss: str = DEFAULT_LOSS, dtype: torch.dtype = torch.float64,
    class_dim: int = -1,
) -> dict[str, Tensor | None]:
    """`subset_metrics` for a stack of logits: each value is a float64 tensor over the leading
    dimensions (None where a subset is empty). Scans of many units pass dtype=float32: the
    per-example losses are then computed in float32 (relative error ~1e-7) and summed in
    float64. `class_dim=-2` takes logits laid out as [..., p, pair]."""
    logits = logits.detach().to(dtype).cpu()
    return aggregate_subsets(score_labels(logits, dataset, loss, class_dim), dataset)


def subset_metrics(
    logits: Float[Tensor, "pair p"], dataset: Dataset, loss: str = DEFAULT_LOSS
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


#: an intervention must beat its random control by more than this (accuracy) to earn a verdict
VERDICT_BAND = 0.02
#: what a run with no noisy example may be: the one phrase every analysis and the report use
NO_KNOWN_WRONG = "no training label is known to be wrong (clean labels, or no true labels given)"
#: where the accuracies tie (within the band), the margins (in logits) decide beyond this
MARGIN_TIE = 1e-6
VERDICTS = ("memorising", "generalising", "shared", "inert")


def lowers_more(after: float | None, random: float | None, margin_after: float | None = None,
                margin_random: float | None = None, band: float = VERDICT_BAND) -> bool:
    """Whether an intervention lowers a quantity more than its random control does: the
    accuracy by more than `band`; where the accuracies tie (within the band, e.g. a test
    accuracy already at chance), the margin (logits) by more than MARGIN_TIE. False where the
    quantity does not exist (no noisy labels)."""
    if after is None or random is None:
        return False
    if abs(random - after) > band:
        return random - after > 0
    return margin_after is not None and margin_random is not None and margin_random - margin_after > MARGIN_TIE


def accuracy_verdict(memorised: float | None, test: float, random_memorised: float | None, random_test: float,
                     band: float = VERDICT_BAND, margins: tuple[float | None, float, float | None, float] | None = None
                     ) -> str:
    """The one verdict rule, on what an intervention leaves and what its random control (same
    size) leaves. With `lowers_more` on memorised accuracy and on test accuracy:
    `memorising` when it lowers memorisation more than random and test no more; `generalising`
    the reverse; `shared` when it lowers both more (the rule and the memory share what it
    removes); `inert` when it lowers neither more. `margins` = (memorised margin, test margin,
    random's memorised margin, random's test margin) decide where the accuracies tie. Without
    noisy labels (`memorised` None) only `generalising` or `inert`."""
    mem_m, gen_m, mem_r, gen_r = margins or (None, None, None, None)
    memory = lowers_more(memorised, random_memorised, mem_m, mem_r, band)
    rule = lowers_more(test, random_test, gen_m, gen_r, band)
    if memory and rule:
        return "shared"
    return "memorising" if memory else "generalising" if rule else "inert"
