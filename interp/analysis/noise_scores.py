"""The label-free noise score of a run over features: how strongly what the run holds without
the truth doubts each training example's observed label.

`noise_score` is the sum of three doubts, each read from the observed training labels, the
training inputs and the run itself (never a true label, the noise mask or a test example):
- *the class structure*: the first hidden layer's class-subspace label doubt, the best other
  class's affinity minus the observed label's (`core.class_structure.label_doubt`, in [-1, 1]);
- *the early trajectory*: 1 − the mean probability of the observed label over the checkpoints up
  to the feature edit's label-free choice (`feature_edit.chosen_checkpoint`, the teacher's
  trajectory: the net before it memorised; in [0, 1]);
- *the neighbours*: 1 − the share of the observed label among the labels of the nearest
  training examples (`feature_edit.neighbour_votes`, in [0, 1]).
The sum was chosen among each part alone, the pairs, the trajectory over every checkpoint and
Pleiss et al.'s area under the margin, by one criterion fixed before any was measured: the best
mean AUROC over digits-40 and mnist5k-40 at 20/40/60/80% symmetric noise
(`analyses/real_data_noise_scores.py`, docs/results.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.class_structure import DEFAULT_DIRECTIONS, class_subspaces, label_doubt
from ..families.base import family_of, in_float64
from ..training.rundir import EARLIER_CHECKPOINT, Run, earlier_steps
from .feature_edit import NEIGHBOURS, chosen_checkpoint, neighbour_votes, trajectory_probabilities

#: the parts of the sum, in words (a result's summary says what its AUROC scores)
PARTS = "first-layer class-subspace doubt + early-trajectory doubt + neighbour-vote doubt"


@dataclass
class NoiseScore:
    """Each training example's score (higher: its observed label more likely wrong), its parts,
    and the checkpoints the trajectory part averages."""

    score: Float[Tensor, " example"]
    subspace: Float[Tensor, " example"]
    trajectory: Float[Tensor, " example"]
    votes: Float[Tensor, " example"]
    steps: list[int]


def auroc(score: Float[Tensor, " example"], noisy: Tensor) -> float | None:
    """The AUROC of `score` against the true noise mask (scoring only: the truth is read here);
    None where no example, or every one, is noisy."""
    if not noisy.any() or noisy.all():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(noisy.numpy(), score.numpy()))


def observed_doubt(probabilities: Float[Tensor, "example class"], observed: Int[Tensor, " example"]
                   ) -> Float[Tensor, " example"]:
    """1 − each example's probability of its observed label."""
    return 1 - probabilities.gather(1, observed[:, None]).squeeze(1)


def first_layer_doubt(run: Run, directions: int = DEFAULT_DIRECTIONS) -> Float[Tensor, " example"]:
    """The class-subspace label doubt of the final model's first hidden layer, on the training
    examples (subspaces from their observed labels)."""
    ds, family = run.dataset, family_of(run.model)
    train, first = ds.train_mask, family.layer_hooks(run.model)[0]
    with torch.no_grad():
        _, cache = family.run_with_cache(in_float64(run.model), ds.inputs, names_filter=lambda name: name == first)
    acts, observed = cache[first][train], ds.labels[train]
    return label_doubt(acts, observed, class_subspaces(acts, observed, ds.p, directions))


def narrow_first_layer(run: Run, directions: int = DEFAULT_DIRECTIONS) -> str | None:
    """Why the first hidden layer's class subspaces cannot be read — it has no more units than
    `directions` per class, so every class's subspace would be the whole layer and a readout or a
    doubt would be decided by rounding — or None."""
    family = family_of(run.model)
    first = family.layer_hooks(run.model)[0]
    with torch.no_grad():
        _, cache = family.run_with_cache(in_float64(run.model), run.dataset.inputs[:1],
                                         names_filter=lambda name: name == first)
    width = cache[first].shape[-1]
    return None if width > directions else (f"its first hidden layer ({first}) has {width} units, no more than the "
                                            f"{directions} directions per class of its class subspaces")


def why_not(run: Run) -> str | None:
    """Why the score cannot be read from `run` (what it needs is missing), or None."""
    narrow = narrow_first_layer(run)
    if narrow:
        return narrow
    if not earlier_steps(run):
        return f"it reads the early trajectory: it needs {EARLIER_CHECKPOINT}"
    if int(run.dataset.train_mask.sum()) <= NEIGHBOURS:
        return f"its neighbour vote needs more than {NEIGHBOURS} training examples"
    return None


def noise_score(run: Run, directions: int = DEFAULT_DIRECTIONS,
                subspace: Float[Tensor, " example"] | None = None) -> NoiseScore:
    """The sum of the three doubts on `run`'s training examples (float64). `subspace`: the first
    layer's doubt (`first_layer_doubt`) where the caller has it already. A ValueError says what
    is missing where it does not apply (`why_not`)."""
    reason = why_not(run)
    if reason:
        raise ValueError(f"the noise score does not apply to this run: {reason}")
    ds = run.dataset
    inputs, observed = ds.inputs[ds.train_mask], ds.labels[ds.train_mask]
    shares = neighbour_votes(inputs, observed, ds.p)
    step, _ = chosen_checkpoint(run, shares)
    steps = [s for s in earlier_steps(run) if s <= step]
    subspace = first_layer_doubt(run, directions) if subspace is None else subspace
    trajectory = observed_doubt(trajectory_probabilities(run, steps), observed)
    votes = observed_doubt(shares, observed)
    return NoiseScore(subspace + trajectory + votes, subspace, trajectory, votes, steps)
