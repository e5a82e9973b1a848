"""Class structure on a task over features: the label-free readout of the rule, layer by layer,
with its controls, and noise detection from it.

For each hidden layer (and, as the control, the raw inputs), the class subspaces of the
training examples grouped by their *observed* labels (`core.class_structure`) read every
example out: its class is the one whose subspace it is closest to in angle. No true label is
read, so its test accuracy is the rule that the layer holds, pulled out without labels. Beside
it: the same readout on an untrained network of the same spec (is it the training or the
architecture?), with the observed labels shuffled (must fall to chance: the readout is not
reading the truth some other way), and with the true labels (the ceiling of this readout on
these activations). Noise detection: each training example's doubt about its label (the best
other class's affinity minus its own label's), scored against the true noise mask (AUROC) per
layer; and, where the run has its trajectory, the label-free noise score (`noise_scores`: the
first layer's doubt plus the early trajectory's and the neighbours'), the one the headline
reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..core.class_structure import DEFAULT_DIRECTIONS, INPUT, class_subspaces, label_doubt, readout
from ..core.metrics import VERDICT_BAND
from ..families.base import Capability, build_model, family_of, in_float64
from ..training.rundir import Run
from .noise_scores import PARTS, auroc, noise_score, why_not
from .plots import _save, _subplots
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure, Table

#: the noise score's control: its parts that read no network
NO_NETWORK = "the raw inputs' class-subspace doubt + the neighbour vote"
#: how far under 0.5 a noise score's AUROC must be to be called inverted (not chance)
INVERTED_MARGIN = 0.05
#: the shuffled-label control's seed (any fixed one: the permutation must not depend on the run)
SHUFFLE_SEED = 0


@dataclass
class LayerReadout:
    """The readout at one place (`where`: a hook, or `input`)."""

    where: str
    #: each readout below is None where the place has no more units than the directions per class:
    #: every class's subspace is then the whole space and the readout decides by rounding
    test_acc: float | None  # label-free: subspaces from the observed labels
    recovered_acc: float | None  # noisy training examples against their true labels (None: none known)
    untrained_test_acc: float | None  # the same readout on an untrained net (None on the inputs)
    shuffled_test_acc: float | None  # subspaces from the observed labels shuffled: chance expected
    ceiling_test_acc: float | None  # subspaces from the true labels (the observed ones where none is known wrong)
    noise_auroc: float | None  # label doubt vs the true noise mask (None: no noisy example)
    width: int = 0  # the place's units (features, for the inputs)

    @property
    def defined(self) -> bool:
        return self.test_acc is not None


@dataclass(repr=False)
class ClassSubspaces(Result):
    directions: int  # per class
    model_test_acc: float
    model_memorised_acc: float | None  # None: no training label is known to be wrong
    layers: list[LayerReadout]
    #: the label-free noise score's AUROC (`noise_scores`; None: no noisy example, or not read)
    noise_score_auroc: float | None = None
    #: the checkpoints its trajectory part averages (empty: the score was not read, see below)
    noise_score_steps: list[int] = field(default_factory=list)
    #: why the score was not read from this run (None: it was)
    noise_score_missing: str | None = None
    #: its control with no network: the raw inputs' class-subspace doubt plus the neighbour vote
    noise_control_auroc: float | None = None
    #: whether the true labels are known (the spec drew the noise, or some given label differs
    #: from its true one): where not, the "true labels" are the observed ones, no ceiling
    truth_known: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def control(self) -> LayerReadout:
        return next(row for row in self.layers if row.where == INPUT)

    def hidden(self) -> list[LayerReadout]:
        return [row for row in self.layers if row.where != INPUT]

    def label_free(self) -> LayerReadout:
        """The extraction the headline names: the readout of the first hidden layer (a fixed
        choice; picking the layer by its test accuracy would read the test labels)."""
        return self.hidden()[0]

    def noise_detection(self) -> tuple[str, float | None]:
        """(method, AUROC) of the noise detection the headline reports: the label-free noise
        score where the run has its trajectory, else the first hidden layer's label doubt."""
        if self.noise_score_missing is None:
            return f"the label-free noise score ({PARTS})", self.noise_score_auroc
        first = self.label_free()
        return f"label doubt at {first.where}", first.noise_auroc

    def noise_control(self) -> tuple[str, float | None]:
        """(method, AUROC) of the noise detection's control that reads no network: for the noise
        score, the raw inputs' doubt plus the neighbour vote; for a layer's doubt, the inputs'."""
        if self.noise_score_missing is None:
            return NO_NETWORK, self.noise_control_auroc
        return "label doubt at the raw inputs", self.control().noise_auroc

    def best(self) -> LayerReadout:
        """The hidden layer whose readout scores best on test (the input side first on a tie; a
        layer whose readout is undefined last)."""
        return max(self.hidden(), key=lambda row: (row.defined, row.test_acc or 0.0, -self.layers.index(row)))

    def controls(self, row: LayerReadout) -> list[float]:
        """The controls' readouts that exist for `row`: the raw inputs' (undefined with no more
        features than directions per class) and the untrained net's."""
        return [acc for acc in (self.control().test_acc, row.untrained_test_acc) if acc is not None]

    def beyond_controls(self, row: LayerReadout) -> bool:
        """Whether the layer's readout beats its controls — the raw inputs and an untrained net
        of the same shape, those whose readout exists — by more than the verdict band: only then
        did training put there the class structure it reads (the check that can contradict "the
        layer holds the rule")."""
        controls = self.controls(row)
        return row.where != INPUT and row.defined and bool(controls) and row.test_acc - max(controls) > VERDICT_BAND

    def _undefined(self, row: LayerReadout) -> str:
        return (f"undefined: {self.directions} directions per class fill its {row.width} "
                f"{'features' if row.where == INPUT else 'units'}")

    def claim(self) -> str:
        """The rule in one sentence, its controls beside it."""
        row, control = self.label_free(), self.control()
        if not row.defined:
            return f"read out without labels (class subspaces of the observed labels), {row.where}'s readout is {self._undefined(row)}."
        inputs = (f"{control.test_acc:.1%} for the raw inputs" if control.defined
                  else f"the raw inputs' readout {self._undefined(control)}")
        if self.beyond_controls(row):
            verdict = (f"holds the rule beyond {'its inputs and ' if control.defined else ''}an untrained net (by "
                       f"more than {VERDICT_BAND * 100:g} points)")
        else:
            verdict = (f"holds no more of the rule than {'its inputs or ' if control.defined else ''}an untrained net "
                       "of the same shape")
        return (f"read out without labels (class subspaces of the observed labels), {row.where} scores "
                f"{row.test_acc:.1%} on test against {inputs}, "
                f"{_pct(row.untrained_test_acc)} for an untrained net and {_pct(row.shuffled_test_acc)} with shuffled "
                f"labels ({self._ceiling()} {_pct(row.ceiling_test_acc)}; the model "
                f"{self.model_test_acc:.1%}): "
                f"the layer {verdict}.")

    def _ceiling(self) -> str:
        # where no label is known wrong the "true" labels are the observed ones: not a ceiling
        return ("ceiling with the true labels" if self.truth_known else
                "with the labels as given (none known wrong: no ceiling)")

    def summary(self) -> str:
        control = self.control()
        parts = ", ".join(f"{row.where} {row.test_acc:.1%} (untrained net {_pct(row.untrained_test_acc)})"
                          if row.defined else f"{row.where} {self._undefined(row)}" for row in self.hidden())
        line = (f"Label-free class-subspace readout ({self.directions} directions per class from the observed "
                f"labels), test accuracy: {parts}; on the raw inputs (control) "
                f"{_pct(control.test_acc) if control.defined else self._undefined(control)}; the model "
                f"itself {self.model_test_acc:.1%} ("
                + (f"memorised {self.model_memorised_acc:.1%})." if self.model_memorised_acc is not None else
                   "no training label is known to be wrong: memorisation not scored)."))
        beyond = [row.where for row in self.hidden() if self.beyond_controls(row)]
        band = f"by more than {VERDICT_BAND * 100:g} points"
        if not any(row.defined for row in self.hidden()):
            line += " No layer's readout is defined: nothing is compared."
        elif control.defined:
            line += (f" Beyond both controls {band}: {', '.join(beyond)}." if beyond else
                     f" No layer beats both the raw inputs and the untrained net {band}: the class structure it reads "
                     "is the inputs' geometry, not something training put there.")
        else:  # the raw inputs unreadable: the untrained net is the one control
            line += (f" Beyond the untrained net (the raw inputs' readout undefined) {band}: {', '.join(beyond)}."
                     if beyond else f" No layer beats the untrained net {band} (the raw inputs' readout undefined): "
                     "it reads no more class structure than a random net of the same shape.")
        best = self.best()
        if best.defined:
            line += f" At {best.where}: shuffled labels {best.shuffled_test_acc:.1%}; {self._ceiling()} {best.ceiling_test_acc:.1%}."
        scored = [row for row in self.layers if row.noise_auroc is not None]
        if scored:
            line += " Noise detection AUROC: " + ", ".join(f"{row.where} {row.noise_auroc:.3f}" for row in scored) + "."
        if self.noise_score_missing is not None:
            line += f" The label-free noise score ({PARTS}) is not read: {self.noise_score_missing}."
        elif self.noise_score_auroc is not None:
            line += (f" The label-free noise score ({PARTS}; checkpoints up to step {self.noise_score_steps[-1]}): "
                     f"AUROC {self.noise_score_auroc:.3f}; with no network ({NO_NETWORK}): "
                     f"{_auroc(self.noise_control_auroc)}.")
            if self.noise_score_auroc < 0.5 - INVERTED_MARGIN:  # inverted: a signal, but the wrong way round
                line += (" Below 0.5, the score ranks the clean examples as the noisier: where most of a class's "
                         "observed labels are wrong, the class structure they draw is the noise's.")
        return line

    def tables(self) -> list[Table]:
        from ..core.document import Table

        rows = [[row.where, _pct(row.test_acc), _pct(row.recovered_acc), _pct(row.untrained_test_acc),
                 _pct(row.shuffled_test_acc), _pct(row.ceiling_test_acc),
                 "–" if row.noise_auroc is None else f"{row.noise_auroc:.3f}"] for row in self.layers]
        return [Table(["where", "readout test (label-free)", "noisy train vs true", "untrained net", "shuffled labels",
                       "true labels (ceiling)", "noise AUROC"], rows,
                      f"class-subspace readout, {self.directions} directions per class; the model's own test "
                      f"accuracy {self.model_test_acc:.1%}")]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        return [Figure(plot_class_subspaces(self, Path(out_dir) / f"{stem}.png"),
                       "label-free class-subspace readout per layer, with its controls")]


def plot_class_subspaces(result: ClassSubspaces, path: Path) -> Path:
    fig, ax = _subplots(figsize=(7, 4))
    where = [row.where for row in result.layers]
    x = torch.arange(len(where), dtype=torch.float64)
    series = [("readout (observed labels)", "test_acc", "#9467bd"), ("untrained net", "untrained_test_acc", "#7f7f7f"),
              ("shuffled labels", "shuffled_test_acc", "#bcbd22"),
              ("true labels (ceiling)", "ceiling_test_acc", "#2ca02c")]
    width = 0.8 / len(series)
    for i, (label, name, color) in enumerate(series):
        values = [getattr(row, name) if getattr(row, name) is not None else float("nan") for row in result.layers]
        ax.bar((x + (i - 1.5) * width).tolist(), values, width, label=label, color=color)
    ax.axhline(result.model_test_acc, color="#d62728", linestyle="--", label="the model's test accuracy")
    ax.set_xticks(x.tolist(), where, fontsize=8)
    ax.set(ylabel="test accuracy", ylim=(0, 1.02), title="class-subspace readout per layer")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _auroc(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _accuracy(predicted: Tensor, labels: Tensor, mask: Tensor) -> float | None:
    """The share of `mask`'s examples predicted as their label (None where the mask is empty:
    a run with no noisy example has no memorisation to score)."""
    return float((predicted[mask] == labels[mask]).double().mean()) if mask.any() else None


@torch.no_grad()
def class_subspace_readout(run: Run, directions: int = DEFAULT_DIRECTIONS) -> ClassSubspaces:
    ds, model = run.dataset, in_float64(run.model)  # subspaces, rankings and AUROCs not turning on rounding
    family = family_of(model)
    hooks = family.layer_hooks(model)
    untrained = in_float64(build_model(family.spec(model), ds.p))
    acts = {INPUT: ds.inputs}
    _, cache = family.run_with_cache(model, ds.inputs, names_filter=lambda name: name in hooks)
    acts.update({hook: cache[hook] for hook in hooks})
    _, fresh = family.run_with_cache(untrained, ds.inputs, names_filter=lambda name: name in hooks)
    train, test, noisy = ds.train_mask, ds.test_mask, ds.noisy_mask
    gen = torch.Generator().manual_seed(SHUFFLE_SEED)
    shuffled = ds.labels[train][torch.randperm(int(train.sum()), generator=gen)]

    def score(values: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        bases = class_subspaces(values[train], labels, ds.p, directions)
        return readout(values, bases), bases

    rows, doubts = [], {}
    for where, values in acts.items():
        if values.shape[-1] <= directions:  # every class's subspace would be the whole space
            rows.append(LayerReadout(where, None, None, None, None, None, None, values.shape[-1]))
            doubts[where] = None
            continue
        predicted, bases = score(values, ds.labels[train])
        doubt = doubts[where] = label_doubt(values[train], ds.labels[train], bases)
        untrained_acc = None if where == INPUT else _accuracy(score(fresh[where], ds.labels[train])[0], ds.true_labels,
                                                              test)
        rows.append(LayerReadout(
            where, _accuracy(predicted, ds.true_labels, test), _accuracy(predicted, ds.true_labels, noisy),
            untrained_acc, _accuracy(score(values, shuffled)[0], ds.true_labels, test),
            _accuracy(score(values, ds.true_labels[train])[0], ds.true_labels, test), auroc(doubt, noisy[train]),
            values.shape[-1]))
    predicted = family.forward(run.model, ds.inputs).argmax(-1)  # the model's own answers, in its own type
    missing = why_not(run) or (None if doubts[hooks[0]] is not None else
                               f"its first hidden layer has {acts[hooks[0]].shape[-1]} units, no more than the "
                               f"{directions} directions per class")
    noise = None if missing else noise_score(run, directions, doubts[hooks[0]])  # the first layer's, computed above
    return ClassSubspaces(directions, _accuracy(predicted, ds.true_labels, test),
                          _accuracy(predicted, ds.labels, noisy), rows,
                          None if noise is None else auroc(noise.score, noisy[train]),
                          [] if noise is None else noise.steps, missing,
                          None if noise is None or doubts[INPUT] is None else auroc(doubts[INPUT] + noise.votes,
                                                                                    noisy[train]),
                          ds.noise is not None or bool(noisy.any()))


CLASS_SUBSPACES: Analysis[ClassSubspaces] = register_analysis(
    "class_subspaces", "Class structure: the label-free readout", class_subspace_readout, needs=(Capability.LAYERS,),
    order=15, groups=True, features=True)
