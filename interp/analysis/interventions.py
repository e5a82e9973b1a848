"""Each label set of a localisation checked by acting on it: ablate every component of a kind
that carries one label, beside random sets of the same size.

For each kind and each label (`memorising`, `generalising`, `mixed`, `inert`) with members,
and each ablation mode, the set is ablated at once and the model scored: the four subset
accuracies and the two margins of `readout.margins` (test true-label margin, noisy observed −
true margin), the unit the labels are in. The control is a random set of the same number of
components of the kind, drawn once per seed.

How each kind is ablated:
- `neuron`, `neuron cluster` (the readout neurons, a cluster as all its members): zero, mean and
  resample, in closed form — the readout is linear, so the logits are
  full + (replacement − activation)[:, set] @ unit-to-logit[set], exactly the hooked ablation.
- `head`: zero, mean and resample at each layer's `hook_z`, all layers in one forward.
- `frequency` (embedding; `irrep` on a group): zero removes the frequency from W_E; resample gives each residue the
  frequency's part of another residue's embedding (a random permutation). Mean ablation is not
  run: the part of one frequency averages to zero over the residues, so it equals zero ablation.
`neuron part` and `head frequency` rows are not checked here.

A label set *holds* (`verdict`) when its outcome under the one verdict rule
(`core.metrics.accuracy_verdict`) is its label: `memorising` lowers memorisation more than the
random sets do on average and test no more; `generalising` the reverse; `shared` lowers both
more (then the rule and the memory share those components, whatever the scores said); `inert`
neither. Accuracies decide, by more than VERDICT_BAND; where they tie, the margins. `mixed` has
no verdict, and a set that is the whole kind has no control (a random set of that size is the
same set).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor, nn

from ..core.metrics import accuracy_verdict, subset_metrics
from ..core.tasks import Dataset
from ..families.base import family_of, heads, logits
from .ablation import MODES, _replacement, ablated_logits_at
from .filtration import filter_residue_weights
from .readout import linear_readout, margins
from .unit_rows import LABELS, UnitRow

if TYPE_CHECKING:
    from ..core.document import Table

SEEDS = (0, 1, 2)
#: a set whose verdict holds but whose zero ablation moves the accuracy its label is about
#: (memorised for memorising, test for generalising) by less holds "in the margins only"
MOVED = 0.05
ACCURACIES = ("clean_acc", "noisy_observed_acc", "noisy_true_acc", "test_acc")
#: the modes run per kind (mean ablation of an embedding frequency equals its zero ablation)
KIND_MODES = {"neuron": MODES, "neuron cluster": MODES, "head": MODES, "frequency": ("zero", "resample"),
              "irrep": ("zero", "resample")}

Ablator = Callable[[list[int], str, int], Tensor]  # (positions in the kind's rows, mode, seed) -> logits


@dataclass
class SetAblation:
    """One ablated set: a label's set (`random` False) or a random set of its size (one `seed`)."""

    kind: str
    label: str
    mode: str
    size: int
    random: bool
    seed: int
    metrics: dict[str, float | None]  # ACCURACIES, plus `gen_margin` and `mem_margin` (logits)


@dataclass
class InterventionTable:
    baseline: dict[str, float | None]
    rows: list[SetAblation] = field(default_factory=list)
    kind_sizes: dict[str, int] = field(default_factory=dict)

    def label_rows(self) -> list[SetAblation]:
        return [r for r in self.rows if not r.random]

    def random_mean(self, row: SetAblation) -> dict[str, float | None]:
        """The mean over seeds of the random sets matched to `row` (same kind, label, mode)."""
        matched = [r.metrics for r in self.rows if r.random and (r.kind, r.label, r.mode) == (row.kind, row.label, row.mode)]
        return {k: None if matched[0][k] is None else sum(m[k] for m in matched) / len(matched) for k in matched[0]}

    def outcome(self, row: SetAblation) -> str:
        """What ablating the set does beside random sets of its size, by the one verdict rule
        (`core.metrics.accuracy_verdict`: accuracies first, margins where they tie):
        `memorising`, `generalising`, `shared` or `inert`; `no control` for the whole kind."""
        if row.size >= self.kind_sizes[row.kind]:
            return "no control"
        ref, m = self.random_mean(row), row.metrics
        return accuracy_verdict(m["noisy_observed_acc"], m["test_acc"], ref["noisy_observed_acc"], ref["test_acc"],
                                margins=(m["mem_margin"], m["gen_margin"], ref["mem_margin"], ref["gen_margin"]))

    def verdict(self, row: SetAblation) -> str:
        """`holds` where the outcome is the set's label, `fails` where it is not, `no control`
        (the whole kind) or `—` (mixed: no label to hold)."""
        if row.label == "mixed":
            return "—"
        outcome = self.outcome(row)
        return outcome if outcome == "no control" else "holds" if outcome == row.label else "fails"

    def label_row(self, kind: str, label: str, mode: str = "zero") -> SetAblation | None:
        """The ablation of `kind`'s `label` set in `mode`, or None when the set is empty or unchecked."""
        return next((r for r in self.label_rows() if (r.kind, r.label, r.mode) == (kind, label, mode)), None)

    def held(self, kind: str, label: str) -> tuple[int, int]:
        """(in how many ablation modes the set's verdict is `holds`, in how many it was ablated)."""
        same = [r for r in self.label_rows() if (r.kind, r.label) == (kind, label)]
        return sum(self.verdict(r) == "holds" for r in same), len(same)

    def margins_only(self, row: SetAblation) -> str | None:
        """The accuracy `row`'s label is about (`memorised` or `test`) when zero-ablating the set
        moves it by under MOVED, else None: the set lowers its margin more than random sets do,
        but what its label names is not in it alone."""
        key, name = {"memorising": ("noisy_observed_acc", "memorised"), "generalising": ("test_acc", "test")}.get(
            row.label, (None, None))
        zero = self.label_row(row.kind, row.label)
        if key is None or zero is None or self.baseline[key] is None or zero.metrics[key] is None:
            return None
        return name if abs(zero.metrics[key] - self.baseline[key]) < MOVED else None

    def held_words(self, kind: str, label: str) -> str:
        """The verdict over the modes in words: `holds in 3 of 3 ablation modes`, or why there is none."""
        row = self.label_row(kind, label)
        if row is not None and self.verdict(row) == "no control":
            return "no control: the set is the whole kind"
        held, modes = self.held(kind, label)
        only = self.margins_only(row) if row is not None and held == modes else None
        return f"holds in {held} of {modes} ablation modes" + (
            f", in the margins only ({only} accuracy moves by under {MOVED:.0%})" if only else "")

    def summary(self) -> str:
        """Per kind and label: the zero ablation's numbers beside random, and in how many modes it holds."""
        lines = []
        for row in self.label_rows():
            if row.mode != "zero" or row.label == "mixed":
                continue
            ref = self.random_mean(row)
            numbers = ", ".join(f"{name} {_pct(self.baseline[key])} → {_pct(row.metrics[key])} "
                                f"(random: {_pct(ref[key])})"
                                for name, key in (("memorised", "noisy_observed_acc"), ("test", "test_acc"))
                                if self.baseline[key] is not None)
            lines.append(f"Ablating the {row.size} {row.label} {row.kind} component(s): {numbers}; "
                         f"{self.held_words(row.kind, row.label)}.")
        return " ".join(lines)

    def compact(self) -> Table:
        """Per kind, its memorising and generalising sets zero-ablated beside random sets of their
        size: memorised and test accuracy, and the verdict over every ablation mode."""
        from ..core.document import Table

        base = self.baseline
        rows = [["model", "—", "—", _pct(base["noisy_observed_acc"]), "", _pct(base["test_acc"]), "", ""]]
        for kind in self.kind_sizes:
            for label in ("memorising", "generalising"):
                row = self.label_row(kind, label)
                if row is None:
                    continue
                ref, (held, modes) = self.random_mean(row), self.held(kind, label)
                only = self.margins_only(row) if held == modes else None
                outcome = self.outcome(row)
                verdict = ("no control (the whole kind)" if outcome == "no control" else
                           f"holds in the margins only ({held} of {modes} modes; {only} moves under {MOVED:.0%})"
                           if only else f"holds ({held} of {modes} modes)" if held == modes else
                           f"holds when zero-ablated, not in every mode ({held} of {modes} modes)" if outcome == label
                           else f"{outcome}, not {label} (holds in {held} of {modes} modes)")
                rows.append([kind, label, f"{row.size} of {self.kind_sizes[kind]}",
                             _pct(row.metrics["noisy_observed_acc"]), _pct(ref["noisy_observed_acc"]),
                             _pct(row.metrics["test_acc"]), _pct(ref["test_acc"]), verdict])
        return Table(["kind", "set", "n", "memorised", "random: memorised", "test", "random: test", "verdict"], rows,
                     caption=f"each label set zero-ablated, beside random sets of the same size (mean of {len(SEEDS)} "
                             "seeds); the verdict by the one rule (accuracies; margins where they tie) in the zero "
                             "mode, and in how many ablation modes the label holds")

    def table(self) -> Table:
        from ..core.document import Table

        def margin(value: float | None) -> str:
            return "—" if value is None else f"{value:.3g}"

        cols = ["kind", "set", "n", "mode", "clean", "memorised", "noisy → true", "test", "test margin",
                "memorised margin", "random: memorised", "random: test", "random: test margin",
                "random: memorised margin", "verdict"]
        base = self.baseline
        rows = [["model", "none", "0", "—", *(_pct(base[k]) for k in ACCURACIES), margin(base["gen_margin"]),
                 margin(base["mem_margin"]), "", "", "", "", ""]]
        for row in self.label_rows():
            ref, m = self.random_mean(row), row.metrics
            rows.append([row.kind, row.label, str(row.size), row.mode, *(_pct(m[k]) for k in ACCURACIES),
                         margin(m["gen_margin"]), margin(m["mem_margin"]), _pct(ref["noisy_observed_acc"]),
                         _pct(ref["test_acc"]), margin(ref["gen_margin"]), margin(ref["mem_margin"]),
                         f"{self.verdict(row)} ({self.outcome(row)})"])
        return Table(cols, rows, caption=f"each label set ablated at once, beside random sets of the same size "
                                         f"(mean of {len(SEEDS)} seeds); margins in logits; the verdict, and in brackets "
                                         "the outcome by the one rule (accuracies; margins where they tie)")

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "kind_sizes": self.kind_sizes,
                "rows": [{**asdict(r), "verdict": None if r.random else self.verdict(r),
                          "outcome": None if r.random else self.outcome(r)} for r in self.rows]}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def scored(out: Tensor, dataset: Dataset) -> dict[str, float | None]:
    """The four subset accuracies and the two margins of `out`."""
    metrics = subset_metrics(out, dataset)
    gen, mem = margins(out, dataset)
    return {**{k: metrics[k] for k in ACCURACIES}, "gen_margin": gen, "mem_margin": mem}


def _readout_ablator(model: nn.Module, dataset: Dataset, units_of: Callable[[list[int]], list[int]]) -> Ablator:
    """Closed-form ablation of readout neurons (`units_of` maps row positions to neuron indices)."""
    _, acts, to_logit, full = linear_readout(model, dataset.inputs)
    everything = torch.arange(acts.shape[1])
    deltas: dict[tuple[str, int], Tensor] = {}

    def ablate(positions: list[int], mode: str, seed: int) -> Tensor:
        if (mode, seed) not in deltas:  # one replacement per mode and seed, shared by every set
            deltas[mode, seed] = _replacement(acts, everything, -1, mode, seed) - acts
        units = torch.as_tensor(units_of(positions), dtype=torch.long)
        return full + deltas[mode, seed][:, units] @ to_logit[units]

    return ablate


def _head_ablator(model: nn.Module, dataset: Dataset, places: list[int]) -> Ablator:
    """Heads (their places in `families.base.heads`) ablated at each layer's head hook, in one forward."""
    every = heads(model)

    def ablate(positions: list[int], mode: str, seed: int) -> Tensor:
        units: dict[str, list[int]] = {}
        for i in positions:
            hook, head, _ = every[places[i]]
            units.setdefault(hook, []).append(head)
        return ablated_logits_at(model, dataset.inputs, units, mode, seed)

    return ablate


def _frequency_ablator(model: nn.Module, dataset: Dataset, freqs: list[int]) -> Ablator:
    """Embedding frequencies (irreps, on a group) removed from W_E (zero) or permuted across the
    residues (resample)."""
    family, task = family_of(model), dataset.task

    def ablate(positions: list[int], mode: str, seed: int) -> Tensor:
        removed = {freqs[i] for i in positions}
        kept = filter_residue_weights(model, task, [k for k in freqs if k not in removed], ("W_E",))
        if mode == "resample":
            rest = family.embedding(kept)
            part = family.embedding(model) - rest  # the removed frequencies' part of each residue
            perm = torch.randperm(len(part), generator=torch.Generator().manual_seed(seed))
            kept = family.with_residue_weights(model, embedding=rest + part[perm.to(part.device)])
        elif mode != "zero":
            raise ValueError(f"a frequency is ablated by zero or resample, not {mode!r}")
        return logits(kept, dataset.inputs)

    return ablate


def _ablator(model: nn.Module, dataset: Dataset, kind: str, rows: list[UnitRow]) -> Ablator | None:
    if kind == "neuron":
        index = [r.index for r in rows]
        return _readout_ablator(model, dataset, lambda positions: [index[i] for i in positions])
    if kind == "neuron cluster":
        return _readout_ablator(model, dataset, lambda positions: [u for i in positions for u in rows[i].members])
    if kind == "head":
        return _head_ablator(model, dataset, [r.index for r in rows])
    if kind in ("frequency", "irrep"):
        return _frequency_ablator(model, dataset, [r.index for r in rows])
    return None


@torch.no_grad()
def check_labels(model: nn.Module, dataset: Dataset, rows: list[UnitRow], seeds: tuple[int, ...] = SEEDS
                 ) -> InterventionTable:
    """Every label set of the localisation `rows` ablated in every mode of its kind, beside
    random sets of the same size (one per seed)."""
    table = InterventionTable(scored(logits(model, dataset.inputs), dataset))
    for kind in dict.fromkeys(r.kind for r in rows):
        mine = [r for r in rows if r.kind == kind]
        ablate = _ablator(model, dataset, kind, mine)
        if ablate is None:
            continue
        table.kind_sizes[kind] = len(mine)
        for name in LABELS:
            members = [i for i, r in enumerate(mine) if r.label == name]
            if not members:
                continue
            for mode in KIND_MODES[kind]:
                table.rows.append(SetAblation(kind, name, mode, len(members), False, 0,
                                              scored(ablate(members, mode, 0), dataset)))
                for seed in seeds:
                    drawn = torch.randperm(len(mine), generator=torch.Generator().manual_seed(seed))[: len(members)]
                    table.rows.append(SetAblation(kind, name, mode, len(members), True, seed,
                                                  scored(ablate(drawn.tolist(), mode, seed), dataset)))
    return table
