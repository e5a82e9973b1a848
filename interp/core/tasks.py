"""Composition tasks — modular arithmetic over Z_p, or a ∘ b in any finite group — the
train/test split and the label-noise models.

A `Dataset` holds pairs (a, b) of the task, with their true labels, their observed labels and
the masks that say which pairs are clean training examples, noisy training examples and test
examples. `make_dataset` draws one from the specs: every pair once, in the order a·p + b (pairs
with b = 0 are absent for division; for a group, a and b are element indices and the classes
are the |G| elements). `Dataset.from_tensors` takes a researcher's own: any pairs,
any split, any observed labels. Analyses ask it "on which examples, against which labels"
through `Dataset.subsets()`.

A task over features (`TaskSpec(op="classify", data=...)`) has the same contract with feature
vectors [N, d] as its inputs: `make_dataset` loads a built-in set (`features.load_features`),
splits each class by `task.seed` and corrupts training labels by `noise`;
`Dataset.from_tensors` takes a user's features, labels and split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .features import load_features
from .groups import cyclic
from .specs import NoiseSpec, TaskSpec


@dataclass(frozen=True)
class Subset:
    """A scored subset: which pairs (a `Dataset` mask) against which labels (`observed`: what the
    model was trained on; `true`: a ∘ b), and how it is called in figures (`label`), tables
    (`short`) and progress bars (`tag`). Metrics are keyed `{name}_acc`, `{name}_loss`."""

    name: str
    mask: str
    against: str
    label: str
    short: str
    tag: str


#: Every scored subset, once. Accuracy on the noisy training examples is reported twice —
#: against the observed labels (memorisation) and the true labels (recovery); never blended.
SUBSET_TABLE: dict[str, Subset] = {s.name: s for s in (
    Subset("clean", "clean_mask", "observed", "clean train", "clean", "clean"),
    Subset("noisy_observed", "noisy_mask", "observed", "noisy train vs observed (memorised)", "noisy vs observed",
           "noisy/obs"),
    Subset("noisy_true", "noisy_mask", "true", "noisy train vs true (recovered)", "noisy vs true", "noisy/true"),
    Subset("test", "test_mask", "true", "test", "test", "test"),
    Subset("train", "train_mask", "observed", "all train", "train", "train"),
)}

#: The four subsets every metric is reported on (`train` is their union, scored too).
SUBSETS = ("clean", "noisy_observed", "noisy_true", "test")


def apply_op(op: str, a: Tensor, b: Tensor, p: int) -> Tensor:
    """The true label of each pair. `add` and `sub` are composition in the cyclic group C_p
    (`groups.cyclic`): a ∘ b and a ∘ b⁻¹; `div` uses b^(p−2) = b⁻¹ (p prime, b ≠ 0)."""
    if op in ("add", "sub"):
        group = cyclic(p)
        return group.compose(a, b if op == "add" else group.inverse()[b])
    if op == "mul":
        return (a * b) % p
    if op == "x2y2":
        return (a * a + b * b) % p
    if op == "div":
        inverse = torch.tensor([pow(int(x), p - 2, p) for x in range(p)])
        return (a * inverse[b]) % p
    raise ValueError(f"unknown op {op!r}")


def task_labels(task: TaskSpec, a: Tensor, b: Tensor) -> Tensor:
    """The true label of each pair of `task`: a ∘ b (add) or a ∘ b⁻¹ (sub) in its group, else
    the Z_p operation (`apply_op`)."""
    if not task.group:
        return apply_op(task.op, a, b, task.p)
    group = task.structure
    return group.compose(a, b if task.op == "add" else group.inverse()[b])


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class DatasetError(ValueError):
    """Tensors that do not make a dataset of the task; the message says which and why."""


@dataclass(frozen=True)
class Dataset:
    task: TaskSpec
    noise: NoiseSpec | None  # None: the split and the labels are the user's own (`from_tensors`)
    inputs: Int[Tensor, "pair 2"] | Float[Tensor, "example d"]  # pairs, or a feature task's vectors
    true_labels: Int[Tensor, " pair"]
    labels: Int[Tensor, " pair"]  # observed: equal to true_labels except on noisy examples
    train_mask: Bool[Tensor, " pair"]
    noisy_mask: Bool[Tensor, " pair"]  # training examples whose observed label is wrong

    @property
    def p(self) -> int:
        return self.task.p

    @property
    def test_mask(self) -> Bool[Tensor, " pair"]:
        return ~self.train_mask

    @property
    def clean_mask(self) -> Bool[Tensor, " pair"]:
        return self.train_mask & ~self.noisy_mask

    @property
    def sum_grid(self) -> bool:
        """Every (a, b) pair of an add or sub task, in a·p + b order: what the 2-D Fourier views
        over the (a, b) grid need (the rule then lives on its (k, k) blocks)."""
        return not self.task.group and self.task.op in ("add", "sub") and len(self.inputs) == self.p ** 2

    @property
    def noise_rate(self) -> float:
        """The share of training examples whose observed label is wrong."""
        return float(self.noisy_mask.sum()) / max(1, int(self.train_mask.sum()))

    def describe_noise(self) -> str:
        """The label noise in words, e.g. `wrong label noise at 80%` or, for a user's dataset,
        `user labels, 39.9% of training labels wrong`."""
        if self.noise is None:  # none wrong may mean no true labels were given: say only what is known
            return (f"user labels, {self.noise_rate:.1%} of training labels wrong" if self.noisy_mask.any() else
                    "user labels, none known to be wrong")
        if self.noise.kind == "matrix":
            return f"class-conditional (matrix) label noise, {self.noise_rate:.1%} of training labels wrong"
        return f"{self.noise.kind} label noise at {self.noise.rate:.0%}"

    @classmethod
    def from_tensors(cls, task: TaskSpec, inputs: Int[Tensor, "pair 2"], observed_labels: Int[Tensor, " pair"],
                     train_mask: Bool[Tensor, " pair"], true_labels: Int[Tensor, " pair"] | None = None) -> "Dataset":
        """A researcher's own dataset of `task`: any distinct (a, b) pairs, the labels the model
        was trained on, and which pairs it was trained on. The true labels are a ∘ b (given ones
        are checked against it); the noisy examples are the training pairs whose observed label
        differs from the true one; test pairs keep their true labels (they score generalisation).

        For a task over features: `inputs` are feature vectors [N, d] (finite floats), and the
        true labels, when not given, are the observed ones (no example is known to be noisy)."""
        if task.features:
            return _from_features(cls, task, inputs, observed_labels, train_mask, true_labels)
        p = task.p
        inputs, observed = torch.as_tensor(inputs), torch.as_tensor(observed_labels)
        train = torch.as_tensor(train_mask)
        if inputs.dim() != 2 or inputs.shape[1] != 2 or inputs.is_floating_point() or inputs.dtype == torch.bool:
            raise DatasetError(f"inputs must be integer (a, b) pairs of shape [N, 2], got {inputs.dtype} {tuple(inputs.shape)}")
        n = len(inputs)
        inputs = inputs.long()
        if n == 0 or int(inputs.min()) < 0 or int(inputs.max()) >= p:
            what = "element indices" if task.group else "residues"
            raise DatasetError(f"inputs must be {what} 0..{p - 1} (task {task.describe()})")
        if task.op == "div" and bool((inputs[:, 1] == 0).any()):
            raise DatasetError("division pairs must have b ≠ 0")
        if len(torch.unique(inputs[:, 0] * p + inputs[:, 1])) != n:
            raise DatasetError("inputs repeat a pair: each (a, b) must appear once")
        for name, value in (("observed_labels", observed), ("train_mask", train)):
            if value.shape != (n,):
                raise DatasetError(f"{name} must have shape [{n}] (one per pair), got {tuple(value.shape)}")
        if train.dtype != torch.bool:
            raise DatasetError(f"train_mask must be boolean, got {train.dtype}")
        if observed.is_floating_point() or int(observed.min()) < 0 or int(observed.max()) >= p:
            raise DatasetError(f"observed_labels must be integer classes 0..{p - 1}")
        truth = task_labels(task, inputs[:, 0], inputs[:, 1])
        if true_labels is not None:
            given = torch.as_tensor(true_labels).long()
            if given.shape != (n,) or not torch.equal(given, truth):
                wrong = int((given != truth).sum()) if given.shape == (n,) else n
                raise DatasetError(f"true_labels differ from {task.describe()} on {wrong} pairs")
        observed = observed.long()
        if not torch.equal(observed[~train], truth[~train]):
            raise DatasetError(f"observed_labels differ from the true labels on {int((observed != truth)[~train].sum())} "
                               "test pairs: test labels are the true ones by definition")
        if not train.any() or train.all():
            raise DatasetError("train_mask leaves an empty train or test set")
        return cls(task, None, inputs, truth, observed, train.clone(), train & (observed != truth))

    def subsets(self) -> dict[str, tuple[Bool[Tensor, " pair"], Int[Tensor, " pair"]]]:
        """Each of the four subsets as (mask over pairs, labels to score against)."""
        labels = {"observed": self.labels, "true": self.true_labels}
        return {name: (getattr(self, SUBSET_TABLE[name].mask), labels[SUBSET_TABLE[name].against]) for name in SUBSETS}

    def __repr__(self) -> str:
        n = len(self.inputs)
        noise = "user labels" if self.noise is None else f"{self.noise.kind} @ {self.noise.rate}"
        return (
            f"Dataset({self.task.describe()}: {n} {'examples' if self.task.features else 'pairs'}, "
            f"{int(self.train_mask.sum())} train "
            f"({int(self.noisy_mask.sum())} {'noisy' if self.noise is not None or self.noisy_mask.any() else 'known noisy'}, "
            f"{noise}), {int(self.test_mask.sum())} test)"
        )

    def same_as(self, other: "Dataset") -> bool:
        """Whether both hold the same pairs, labels and split (wherever they came from)."""
        return self.task.describe() == other.task.describe() and self.p == other.p and all(
            torch.equal(getattr(self, name), getattr(other, name))
            for name in ("inputs", "true_labels", "labels", "train_mask", "noisy_mask"))


def _from_features(cls: type[Dataset], task: TaskSpec, inputs: Tensor, observed_labels: Tensor, train_mask: Tensor,
                   true_labels: Tensor | None) -> Dataset:
    """`Dataset.from_tensors` for a task over features, each bad input refused in one line."""
    inputs, observed, train = (torch.as_tensor(x) for x in (inputs, observed_labels, train_mask))
    if inputs.dim() != 2 or not inputs.is_floating_point() or len(inputs) == 0:
        raise DatasetError(f"inputs must be float feature vectors of shape [N, d], got {inputs.dtype} "
                           f"{tuple(inputs.shape)}")
    stored = inputs.float()  # what the dataset keeps: a float64 feature beyond float32's range is infinite there
    if not bool(torch.isfinite(stored).all()):
        bad = int((~torch.isfinite(stored)).any(1).sum())
        raise DatasetError(f"inputs hold NaN or infinite features (in float32) in {bad} examples")
    n, p = len(inputs), task.p
    truth = observed if true_labels is None else torch.as_tensor(true_labels)
    for name, value in (("observed_labels", observed), ("true_labels", truth), ("train_mask", train)):
        if value.shape != (n,):
            raise DatasetError(f"{name} must have shape [{n}] (one per example), got {tuple(value.shape)}")
    if train.dtype != torch.bool:
        raise DatasetError(f"train_mask must be boolean, got {train.dtype}")
    for name, value in (("observed_labels", observed), ("true_labels", truth)):
        if value.is_floating_point() or value.dtype == torch.bool or int(value.min()) < 0 or int(value.max()) >= p:
            raise DatasetError(f"{name} must be integer classes 0..{p - 1} (task {task.describe()})")
    observed, truth = observed.long(), truth.long()
    if not train.any() or train.all():
        raise DatasetError("train_mask leaves an empty train or test set")
    if not torch.equal(observed[~train], truth[~train]):
        raise DatasetError(f"observed_labels differ from the true labels on {int((observed != truth)[~train].sum())} "
                           "test examples: test labels are the true ones by definition")
    missing = sorted(set(range(p)) - set(observed[train].tolist()))
    if missing:
        raise DatasetError(f"class{'es' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
                           f"{'have' if len(missing) > 1 else 'has'} no training example (by observed label)")
    return cls(task, None, inputs.float().clone(), truth.clone(), observed.clone(), train.clone(),
               train & (observed != truth))


def stratified_split(labels: Int[Tensor, " example"], fraction: float, seed: int) -> Bool[Tensor, " example"]:
    """The training mask: round(fraction · n_c) examples of each class c, drawn by `seed`."""
    gen = _generator(seed)
    train = torch.zeros(len(labels), dtype=torch.bool)
    for c in torch.unique(labels).tolist():
        members = (labels == c).nonzero().squeeze(1)
        n_train = round(fraction * len(members))
        if not 0 < n_train < len(members):
            raise ValueError(f"train_fraction {fraction} leaves class {c} ({len(members)} examples) with an empty "
                             "train or test set")
        train[members[torch.randperm(len(members), generator=gen)[:n_train]]] = True
    return train


def all_pairs(task: TaskSpec) -> Int[Tensor, "pair 2"]:
    p = task.p
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    pairs = torch.stack([a.flatten(), b.flatten()], dim=1)
    return pairs[pairs[:, 1] != 0] if task.op == "div" else pairs


def make_dataset(task: TaskSpec, noise: NoiseSpec | None = None) -> Dataset:
    """All pairs of `task`, split by `task.seed`, with noise drawn by `noise.seed`."""
    noise = noise or NoiseSpec()
    if task.features:
        inputs, true_labels = load_features(task.data)
        train_mask = stratified_split(true_labels, task.train_fraction, task.seed)
        labels = _corrupt(task, noise, inputs, true_labels, train_mask)
        return Dataset(task, noise, inputs, true_labels, labels, train_mask, labels != true_labels)
    if noise.kind == "symmetric" and noise.rate > 0 and not task.commutative:
        raise ValueError(f"symmetric noise needs a commutative op, not {task.describe()!r}")
    inputs = all_pairs(task)
    true_labels = task_labels(task, inputs[:, 0], inputs[:, 1])
    n = len(inputs)
    n_train = round(task.train_fraction * n)
    if not 0 < n_train < n:
        raise ValueError(f"train_fraction {task.train_fraction} leaves an empty train or test set")
    order = torch.randperm(n, generator=_generator(task.seed))
    train_mask = torch.zeros(n, dtype=torch.bool)
    train_mask[order[:n_train]] = True
    labels = _corrupt(task, noise, inputs, true_labels, train_mask)
    return Dataset(task, noise, inputs, true_labels, labels, train_mask, labels != true_labels)


def _corrupt(
    task: TaskSpec,
    noise: NoiseSpec,
    inputs: Tensor,
    true_labels: Tensor,
    train_mask: Tensor,
) -> Tensor:
    """Observed labels: exactly round(rate · n_train) training examples are corrupted (for
    `matrix`, round(n_c · (1 − matrix[c][c])) of each class c)."""
    labels = true_labels.clone()
    train_idx = train_mask.nonzero().squeeze(1)
    if noise.kind == "matrix":
        return _corrupt_by_matrix(noise, labels, train_idx)
    n_corrupt = round(noise.rate * len(train_idx))
    if n_corrupt == 0:
        return labels
    gen = _generator(noise.seed)
    p = task.p
    if noise.kind == "symmetric" and not task.features:
        return _corrupt_symmetric(p, inputs, labels, train_idx, n_corrupt, gen)
    chosen = train_idx[torch.randperm(len(train_idx), generator=gen)[:n_corrupt]]
    if noise.kind == "pair_flip":
        labels[chosen] = (true_labels[chosen] + 1) % p
    elif noise.kind in ("wrong", "symmetric"):  # symmetric on features: no pairs to share a label
        shift = torch.randint(1, p, (n_corrupt,), generator=gen)  # never 0: always wrong
        labels[chosen] = (true_labels[chosen] + shift) % p
    else:  # uniform over all p classes
        labels[chosen] = torch.randint(0, p, (n_corrupt,), generator=gen)
    return labels


def _corrupt_by_matrix(noise: NoiseSpec, labels: Tensor, train_idx: Tensor) -> Tensor:
    """Class-conditional noise: of class c's training examples, round(n_c · (1 − T[c][c])) drawn
    at random are relabelled, each to a class j ≠ c drawn with probability ∝ T[c][j]."""
    gen = _generator(noise.seed)
    table = torch.tensor(noise.matrix, dtype=torch.float64)
    truth = labels[train_idx]
    for c in range(len(table)):
        members = train_idx[truth == c]
        n_corrupt = round(len(members) * (1 - float(table[c, c])))
        if n_corrupt == 0:
            continue
        chosen = members[torch.randperm(len(members), generator=gen)[:n_corrupt]]
        away = table[c].clone()
        away[c] = 0
        labels[chosen] = torch.multinomial(away, n_corrupt, replacement=True, generator=gen)
    return labels


def _corrupt_symmetric(
    p: int, inputs: Tensor, labels: Tensor, train_idx: Tensor, n_corrupt: int, gen: torch.Generator
) -> Tensor:
    """Corrupt unordered pairs {a, b}: every training ordering of a chosen pair gets one shared
    wrong label. Pairs are taken in random order until n_corrupt examples are reached."""
    a, b = inputs[train_idx, 0], inputs[train_idx, 1]
    key = torch.minimum(a, b) * p + torch.maximum(a, b)
    groups, group_of = torch.unique(key, return_inverse=True)
    order = torch.randperm(len(groups), generator=gen)
    sizes = torch.bincount(group_of, minlength=len(groups))[order]
    n_groups = int((sizes.cumsum(0) < n_corrupt).sum()) + 1
    chosen_groups = order[:n_groups]
    shift = torch.randint(1, p, (len(groups),), generator=gen)
    picked = torch.isin(group_of, chosen_groups)
    idx = train_idx[picked]
    # (a, b) and (b, a) share a true label (commutative op), so one shift gives one wrong label.
    labels[idx] = (labels[idx] + shift[group_of[picked]]) % p
    return labels
