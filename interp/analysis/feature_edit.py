"""The label-free edit that forgets the noise on a model over features: the weights rewound to
a checkpoint chosen without labels, then fine-tuned, for a bounded number of full-batch steps,
toward a teacher that reads no true label.

**The teacher** (`teacher_classes`), per training example, from what a run holds without the
truth — its observed labels, its inputs and its trajectory checkpoints:
- *the neighbours*: the share of each class among the observed labels of its NEIGHBOURS
  nearest training examples (the example itself left out), found twice and averaged: by the
  cosine of the raw inputs (`neighbour_votes`) and by the cosine of the chosen checkpoint's first
  hidden layer (`hidden_votes`). With symmetric noise the true class outnumbers any one wrong
  class among them. (Until analyses/real_data_edit.py --space, the raw inputs' alone: on
  MNIST-1D, whose templates sit at random shifts, their vote names the true class of 40% of the
  training examples and the layer's of 78%, and the edit ended under the checkpoint it started
  from; on its unseen runs the two spaces gain 7.6 points of test there, and they move digits and
  MNIST-5k by 0.1.)
- *the early trajectory*: the checkpoint whose training predictions agree most with the raw
  inputs' neighbours' class (`chosen_checkpoint`; the earliest on a tie), and the mean of the
  softmax of every checkpoint up to it — the net before it memorised. (Until the comparison of
  analyses/real_data_edit.py --choice, the checkpoint that agreed most with the class-subspace
  readout of the first hidden layer, `layer_rewind`'s rule: the same one at 40% noise on every
  seed measured, a later one that had memorised more at 60-80% on digits and at 80% on MNIST-5k,
  up to 94% of the wrong labels, where the readout itself sides with the memory.)
The teacher's class is the argmax of the two distributions' sum (the smallest class on a tie).
Measured on digits-40 and mnist5k-40 with the raw inputs' vote (docs/results.md), the sum gives up
fewer of the wrong labels than either part or than the class-subspace readout itself (which still
names the wrong observed label for 12–15% of the noisy examples).

**The fine-tune**: Adam at FINE_TUNE_LR on the cross-entropy to the teacher's classes, all
training examples in every step, from the weights of the chosen checkpoint (the teacher's last),
not the final ones: the memory's weights are then never there to be outvoted, and on
digits-40 and mnist5k-40 it ends above the fine-tune from the final weights in test at 20-60%
noise and on every seed measured, level or above at 80% (docs/results.md); it stops at the first step whose
predictions agree with the teacher on AGREEMENT of the training examples, or after MAX_STEPS.
The result is a model of the same architecture (`forget_noise`), which `interp edit` writes.

**Scored afterwards, by the truth** (memorised: noisy training examples predicted as their wrong
observed label; test): beside the raw model, the chosen checkpoint itself (a label-free early
stop), the best evaluation of training (an oracle: it reads the test labels) and three controls
of the same fine-tune and step count: on the observed labels (it is not "train more"); on the
observed labels with the examples the teacher relabels left out, not relabelled (what the new
labels add to dropping the flagged ones); and with as many examples relabelled at random, each to
a random other class (relabelling as many is not what forgets) — all three from the same
checkpoint, so the chosen checkpoint's own row and the first control say what the rewind and more
training give without the teacher.
Where no training label is known to be wrong (a user's data without true labels) the edit runs
all the same, and memorisation is left unscored (None).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..core.metrics import VERDICT_BAND, subset_metrics
from ..families.base import Capability, family_of, in_float64, replaced_parameters
from ..training.rundir import EARLIER_CHECKPOINT, Run, earlier_steps, load_run
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Table

#: nearest training examples whose observed labels vote (the example itself left out)
NEIGHBOURS = 10
NEIGHBOUR_CHUNK = 512  # rows of the similarity matrix held at once
#: the fine-tune: Adam's learning rate, the most full-batch steps, and the agreement with the
#: teacher on the training examples at which it stops
FINE_TUNE_LR = 1e-3
MAX_STEPS = 100
AGREEMENT = 0.995
#: the random-relabel control's seed (any fixed one: it must not depend on the run)
CONTROL_SEED = 0
#: what the teacher reads (an edited run's config records it)
READS = "observed training labels, training inputs, the run's checkpoints; no true label, noise mask or test example"
#: the label that cross-entropy skips (the left-out examples of a control)
IGNORE = -100


@dataclass
class Scores:
    """What a model does, scored by the truth afterwards."""

    name: str
    memorised: float | None  # noisy training examples predicted as their (wrong) observed label (None: none known)
    recovered: float | None  # the same examples predicted as their true label
    clean: float
    test: float
    label_free: bool  # chosen without reading a true label or the test


@dataclass(repr=False)
class FeatureEdit(Result):
    checkpoint: int  # the chosen checkpoint's step (the teacher's last)
    checkpoints: list[int]  # every checkpoint the teacher averages
    agreement: float  # the chosen checkpoint's agreement with the raw inputs' neighbours' class
    relabelled: float  # share of training examples whose teacher class is not the observed label
    teacher_memorised: float | None  # noisy examples whose teacher class is the wrong observed label (scored)
    teacher_recovered: float | None  # ... is the true label (scored); both None where no label is known wrong
    steps: int  # fine-tune steps taken
    rows: list[Scores]  # raw model, chosen checkpoint, best evaluation, the edit, the three controls

    def to_dict(self) -> dict:
        return asdict(self)

    def row(self, name: str) -> Scores | None:
        """The row whose name starts with `name` (one of the names below), or None."""
        return next((r for r in self.rows if r.name.startswith(name)), None)

    @property
    def scored(self) -> bool:
        """Whether memorisation was scored: some training label is known to be wrong (a dataset
        without true labels, `Dataset.from_tensors` with none given, marks none)."""
        return self.teacher_memorised is not None

    def edit_line(self) -> str:
        raw, edit = self.row(RAW), self.row(EDIT)
        scores = (f"memorised {raw.memorised:.1%} → {edit.memorised:.1%}, " if self.scored else
                  f"{UNSCORED}; ")
        return (f"the weights of step {self.checkpoint} fine-tuned for {self.steps} full-batch steps toward a "
                f"label-free teacher (the checkpoints up to step {self.checkpoint} with the observed labels of each "
                f"example's {NEIGHBOURS} nearest neighbours, in the inputs and in the first hidden layer): "
                f"{scores}test {raw.test:.1%} → {edit.test:.1%}.")

    def claim(self) -> str:
        """The headline's sentence: the edit, and beside it the controls that take the same steps
        from the same checkpoint, with what they say about where the forgetting comes from."""
        line = self.edit_line()
        edit, control, flagged, relabelled = self.row(EDIT), self.row(OBSERVED), self.row(FLAGGED), self.row(RELABELLED)
        raw = self.row(RAW)
        if not self.scored:  # test alone: against the model, and against the same steps without the teacher
            return line + (f" Beside it, the same steps from the same checkpoint: on the observed labels, test "
                           f"{control.test:.1%}; with the examples the teacher relabels left out instead, "
                           f"{flagged.test:.1%}" + (f"; the edit lowers test ({raw.test:.1%} → {edit.test:.1%}): "
                                                    "with no label known wrong there may be no noise to forget."
                                                    if raw.test - edit.test > VERDICT_BAND else "."))
        line += (f" Beside it, the same steps from the same checkpoint: on the observed labels, memorised "
                 f"{control.memorised:.1%}, test {control.test:.1%}; with as many examples relabelled at random, "
                 f"{relabelled.memorised:.1%}, {relabelled.test:.1%}; with the examples the teacher relabels left out "
                 f"instead, {flagged.memorised:.1%}, {flagged.test:.1%}")
        if flagged.test >= edit.test:
            more = (flagged.memorised - edit.memorised) * 100
            better = f"does {'better' if flagged.test - edit.test > VERDICT_BAND else 'as well'} on test"
            if more > VERDICT_BAND * 100:  # it keeps more of the memory: the flags alone do not forget as much
                return line + f": leaving them out {better} but keeps {more:.1f} points more of the memory."
            return line + (f": leaving them out {better}, so the teacher's flags, more than its new labels, carry "
                           f"the forgetting (the new labels forget {abs(more):.1f} points "
                           f"{'more' if more >= 0 else 'less'}).")
        return line + "."

    def summary(self) -> str:
        best, control, flagged, relabelled = self.row(BEST), self.row(OBSERVED), self.row(FLAGGED), self.row(RELABELLED)
        if not self.scored:
            return (f"The edit: {self.edit_line()} The teacher relabels {self.relabelled:.1%} of the training "
                    f"examples. The same fine-tune on the observed labels: test {control.test:.1%}.")
        line = (f"The edit: {self.edit_line()} The teacher relabels {self.relabelled:.1%} of the training examples "
                f"and names the wrong observed label for {self.teacher_memorised:.1%} of the noisy ones. The same "
                f"fine-tune on the observed labels leaves memorised {control.memorised:.1%}, test {control.test:.1%}; "
                f"with the examples the teacher relabels left out instead, {flagged.memorised:.1%} and "
                f"{flagged.test:.1%}; with as many relabelled at random, {relabelled.memorised:.1%} and "
                f"{relabelled.test:.1%}.")
        if best is not None and best.memorised is not None:
            line += (f" The best evaluation during training (it reads the test labels): test {best.test:.1%}, "
                     f"memorised {best.memorised:.1%}.")
        return line

    def tables(self) -> list[Table]:
        from ..core.document import Table

        def pct(x: float | None) -> str:
            return "–" if x is None else f"{x:.1%}"

        rows = [[r.name, pct(r.memorised), pct(r.recovered), pct(r.clean), pct(r.test),
                 "yes" if r.label_free else "no (reads the test labels)"] for r in self.rows]
        return [Table(["model", "memorised", "noisy vs true", "clean", "test", "label-free"], rows,
                      f"fine-tune of {self.steps} full-batch steps (Adam, lr {FINE_TUNE_LR:g}); teacher: checkpoints "
                      f"{', '.join(map(str, self.checkpoints))} and {NEIGHBOURS} neighbours' observed labels "
                      "(inputs and first hidden layer)"
                      + ("" if self.scored else f"; {UNSCORED}"))]


RAW, CHECKPOINT, BEST, EDIT, OBSERVED, FLAGGED, RELABELLED = (
    "raw model", "chosen checkpoint (the whole net rewound)", "best evaluation during training (oracle)",
    "the edit: the chosen checkpoint fine-tuned toward the teacher",
    "control: the same fine-tune on the observed labels",
    "control: observed labels, the examples the teacher relabels left out",
    "control: as many examples relabelled at random")
#: what the edit says where no training label is known to be wrong
UNSCORED = ("no training label is known to be wrong (clean labels, or no true labels given): memorised not "
            "scored against the truth; test against the held-out labels")


def nearest_neighbours(inputs: Float[Tensor, "example d"], k: int = NEIGHBOURS
                       ) -> tuple[Int[Tensor, "example k"], Float[Tensor, "example k"]]:
    """(indices, cosines) of each example's `k` nearest other examples by the cosine of their
    inputs, nearest first. Cosines are rounded to 1e-9 and ties go to the smaller index, so the
    neighbours are the same whatever order a CPU sums in."""
    if len(inputs) <= k:
        raise ValueError(f"the neighbour vote needs more than {k} training examples, got {len(inputs)}")
    unit = F.normalize(inputs.double(), dim=1)
    indices, cosines = [], []
    for start in range(0, len(unit), NEIGHBOUR_CHUNK):  # a chunk of rows at a time: memory O(chunk · n)
        similarity = ((unit[start:start + NEIGHBOUR_CHUNK] @ unit.T) * 1e9).round()
        rows = torch.arange(len(similarity))
        similarity[rows, rows + start] = float("-inf")  # not its own neighbour
        order = torch.sort(similarity, dim=1, descending=True, stable=True)
        indices.append(order.indices[:, :k])
        cosines.append(order.values[:, :k] / 1e9)
    return torch.cat(indices), torch.cat(cosines)


def neighbour_votes(inputs: Float[Tensor, "example d"], labels: Int[Tensor, " example"], classes: int,
                    k: int = NEIGHBOURS) -> Float[Tensor, "example class"]:
    """Each example's share of each class among the labels of its `k` nearest other examples by
    the cosine of their inputs (`nearest_neighbours`)."""
    return F.one_hot(labels[nearest_neighbours(inputs, k)[0]], classes).double().mean(1)


def hidden_votes(model: nn.Module, inputs: Float[Tensor, "example d"], labels: Int[Tensor, " example"],
                 classes: int, k: int = NEIGHBOURS) -> Float[Tensor, "example class"]:
    """`neighbour_votes` with the neighbours found by the cosine of `model`'s first hidden layer
    (a float64 forward) instead of the inputs: where the inputs' own geometry does not group a
    class (MNIST-1D's templates sit at random shifts) the layer's does."""
    family = family_of(model)
    first = family.layer_hooks(model)[0]
    with torch.no_grad():
        _, cache = family.run_with_cache(in_float64(model), inputs, names_filter=lambda name: name == first)
    return neighbour_votes(cache[first], labels, classes, k)


def teacher_votes(start: nn.Module, inputs: Float[Tensor, "example d"], labels: Int[Tensor, " example"],
                  classes: int, raw: Float[Tensor, "example class"] | None = None) -> Float[Tensor, "example class"]:
    """The teacher's neighbour vote: the mean of the raw inputs' (`raw`, computed when not given)
    and `start`'s first hidden layer's (`hidden_votes`) — where the inputs' geometry groups no
    class (MNIST-1D) the layer's does."""
    raw = neighbour_votes(inputs, labels, classes) if raw is None else raw
    return (raw + hidden_votes(start, inputs, labels, classes)) / 2


def teacher_classes(trajectory: Float[Tensor, "example class"], votes: Float[Tensor, "example class"]
                    ) -> Int[Tensor, " example"]:
    """The class of largest summed probability (the early trajectory's plus the neighbours'),
    rounded to 1e-9 so that a tie goes to the smallest class on every CPU."""
    return ((trajectory + votes) * 1e9).round().argmax(-1)


def relabelled_at_random(labels: Int[Tensor, " example"], count: int, classes: int) -> Int[Tensor, " example"]:
    """`labels` with `count` examples, drawn at random (seed CONTROL_SEED), each given a random
    other class. The examples are drawn as the order of uniform draws, not by `randperm`: label
    noise is drawn by randperm, and with the same seed (0 is every preset's) it would pick exactly
    the noisy examples."""
    generator = torch.Generator().manual_seed(CONTROL_SEED)
    chosen = torch.rand(len(labels), generator=generator).argsort()[:count]
    shift = torch.randint(1, classes, (count,), generator=generator)
    relabelled = labels.clone()
    relabelled[chosen] = (labels[chosen] + shift) % classes
    return relabelled


def chosen_checkpoint(run: Run, votes: Float[Tensor, "example class"] | None = None) -> tuple[int, float]:
    """(step, agreement): the trajectory checkpoint whose training predictions agree most with the
    class the neighbours' observed labels name (`votes`: `neighbour_votes` of the training
    examples, computed when not given; the earliest checkpoint on a tie)."""
    ds = run.dataset
    if votes is None:
        votes = neighbour_votes(ds.inputs[ds.train_mask], ds.labels[ds.train_mask], ds.p)
    return most_agreeing_checkpoint(run, teacher_classes(torch.zeros_like(votes), votes))


def checkpoint_logits(run: Run, step: int) -> Float[Tensor, "example class"]:
    """The logits of the checkpoint at `step` on the training examples, a float64 forward (no
    near-tied logit moves a choice read from them), computed once per run and dataset: the noise
    score and the edit read the same checkpoints."""
    key = ("float64 training logits", step)
    held = run.memo.get(key)
    if held is None or held[0] is not run.dataset:
        ds = run.dataset
        with torch.no_grad():
            logits = family_of(run.model).forward(in_float64(load_run(run.path, step).model), ds.inputs[ds.train_mask])
        held = run.memo[key] = (run.dataset, logits)
    return held[1]


def most_agreeing_checkpoint(run: Run, target: Int[Tensor, " example"]) -> tuple[int, float]:
    """(step, agreement): the checkpoint before the final step whose predictions on the training
    examples agree most with `target` (one class per training example; the earliest on a tie),
    from their float64 logits (`checkpoint_logits`)."""
    best = None
    for step in earlier_steps(run):
        predicted = checkpoint_logits(run, step).argmax(-1)
        agreement = float((predicted == target).double().mean())
        if best is None or round(agreement, 9) > round(best[1], 9):
            best = (step, agreement)
    return best


def trajectory_probabilities(run: Run, steps: list[int]) -> Float[Tensor, "example class"]:
    """The mean softmax, over the checkpoints at `steps`, on the training examples (float64)."""
    ds = run.dataset
    total = torch.zeros(int(ds.train_mask.sum()), ds.p, dtype=torch.float64)
    for step in steps:
        total += checkpoint_logits(run, step).softmax(-1)
    return total / len(steps)


def fine_tuned(model: nn.Module, inputs: Tensor, target: Int[Tensor, " example"], max_steps: int = MAX_STEPS,
               stop_at: float | None = AGREEMENT, soft: Float[Tensor, "example class"] | None = None
               ) -> tuple[nn.Module, int]:
    """(a copy of `model` after full-batch Adam steps on the cross-entropy to `target`, the steps
    taken): it stops at the first step whose predictions agree with `target` on `stop_at` of the
    examples (IGNORE ones aside), or after `max_steps`. With `soft`, the cross-entropy is to
    those class distributions instead (the stop still reads `target`). Changes nothing outside
    the copy."""
    family = family_of(model)
    # in float32, a gradient near zero took an Adam step of the learning rate in a direction set
    # by rounding, and an AVX2 CPU moved the released digits-tt-40's control scores
    tuned = in_float64(model)
    tuned.train()
    optimizer = torch.optim.Adam(tuned.parameters(), lr=FINE_TUNE_LR)
    kept = target != IGNORE
    steps = 0
    with torch.enable_grad():
        while steps < max_steps:
            logits = family.readout_logits(tuned, inputs)  # in float64 every exact path gives the same edit
            if stop_at is not None and float((logits.argmax(-1)[kept] == target[kept]).double().mean()) >= stop_at:
                break
            optimizer.zero_grad(set_to_none=True)
            loss = (F.cross_entropy(logits, target, ignore_index=IGNORE) if soft is None
                    else F.cross_entropy(logits, soft.to(logits.dtype)))
            loss.backward()
            optimizer.step()
            steps += 1
    # back in the model's own types, parameter by parameter (copy_ casts), its buffers untouched
    return replaced_parameters(model, {n: p.detach() for n, p in tuned.named_parameters()}).eval(), steps


def _scores(name: str, model: nn.Module, run: Run, label_free: bool = True) -> Scores:
    m = subset_metrics(family_of(model).forward(model, run.dataset.inputs).detach(), run.dataset, run.spec.train.loss)
    return Scores(name, m["noisy_observed_acc"], m["noisy_true_acc"], m["clean_acc"], m["test_acc"], label_free)


def _best_evaluation(run: Run) -> Scores | None:
    rows = [r for r in run.history if r.get("test_acc") is not None]
    if not rows:
        return None
    best = max(rows, key=lambda r: (round(r["test_acc"], 9), -r["step"]))  # the earliest of a tie
    return Scores(f"{BEST}, step {best['step']}", best.get("noisy_observed_acc"), best.get("noisy_true_acc"),
                  best.get("clean_acc"), best["test_acc"], False)


@torch.no_grad()
def forget_noise(run: Run) -> tuple[FeatureEdit, nn.Module]:
    """The edit and its scores: (result, the edited model of the same architecture)."""
    reason = _applies(run)
    if reason:
        raise ValueError(f"the feature edit does not apply to this run: {reason}")
    ds, model = run.dataset, run.model
    train = ds.train_mask
    inputs, observed = ds.inputs[train], ds.labels[train]
    votes = neighbour_votes(inputs, observed, ds.p)
    step, agreement = chosen_checkpoint(run, votes)
    steps = [s for s in earlier_steps(run) if s <= step]
    start = load_run(run.path, step).model  # the fine-tune starts before the memory was written
    target = teacher_classes(trajectory_probabilities(run, steps), teacher_votes(start, inputs, observed, ds.p, votes))
    edited, taken = fine_tuned(start, inputs, target)

    changed = target != observed
    controls = {OBSERVED: observed, FLAGGED: torch.where(changed, IGNORE, observed),
                RELABELLED: relabelled_at_random(observed, int(changed.sum()), ds.p)}
    rows = [_scores(RAW, model, run), _scores(f"{CHECKPOINT}, step {step}", start, run),
            _scores(EDIT, edited, run)]
    rows += [_scores(name, fine_tuned(start, inputs, labels, taken, None)[0], run) for name, labels in controls.items()]
    best = _best_evaluation(run)
    if best is not None:
        rows.insert(2, best)
    noisy = ds.noisy_mask[train]  # the truth, read only to score the teacher (where it is known)
    result = FeatureEdit(step, steps, agreement, float(changed.double().mean()),
                         _share(target[noisy] == observed[noisy]), _share(target[noisy] == ds.true_labels[train][noisy]),
                         taken, rows)
    return result, edited


def provenance(result: FeatureEdit) -> dict:
    """What an edited run's config records of the edit (`training.derived.save_derived_run`)."""
    return {"edit": "the chosen checkpoint fine-tuned toward a label-free teacher (interp.analysis.feature_edit)",
            "reads": READS, "start": result.checkpoint, "checkpoints": result.checkpoints, "neighbours": NEIGHBOURS,
            "neighbour spaces": ["inputs", "the start's first hidden layer"],
            "steps": result.steps, "lr": FINE_TUNE_LR, "optimizer": "adam, full batch"}


def _share(mask: Tensor) -> float | None:
    return float(mask.double().mean()) if len(mask) else None


def _applies(run: Run) -> str | None:
    if not run.spec.task.features:
        return "its teacher reads neighbours among the inputs: it needs a task over feature vectors"
    if not earlier_steps(run):
        return f"its teacher reads the early trajectory: it needs {EARLIER_CHECKPOINT}"
    return None  # what it reads exists; whether any label is wrong (the truth) is not asked


FEATURE_EDIT: Analysis[FeatureEdit] = register_analysis(
    "feature_edit", "The edit that forgets the noise (models over features)", lambda run: forget_noise(run)[0],
    needs=(Capability.LAYERS,), skip_reason=_applies, order=56, groups=True, features=True)
