"""Test errors explained: do the wrong test predictions repeat the training noise?

Structured noise is a rule too. When the wrong training labels obey one map of the classes —
the observed label a function π of the true one, e.g. (a∘b)∘g for a fixed g — a network can learn
that map and apply it to held-out pairs, where test accuracy then reads as mere error. This
analysis says so, per region of the input grid:

- the noise map: π(y) is the most common observed label of the noisy training examples whose
  true label is y (ties to the smaller label); it is *consistent* when at least MAP_CONSISTENCY
  of the noisy examples obey it, and *named* when it is one translation: y ↦ y∘g or g∘y on a
  group, y ↦ y + s mod p on Z_p;
- where it is followed: a test pair follows the map when the model predicts π(true label) (and
  π moves that label). Each row a (and each column b) of the grid whose test pairs follow it at
  least FOLLOW_SHARE of the time belongs to the region; of the two axes, the one whose region
  holds more following pairs is reported (rows on a tie), with the test accuracy inside and out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from ..core.tasks import Dataset
from ..families.base import logits
from .registry import Analysis, Result, register_analysis

#: the noise map is consistent when at least this share of the noisy training examples obey it
MAP_CONSISTENCY = 0.9
#: a row (column) of the grid is in the region when at least this share of its test pairs follow the map
FOLLOW_SHARE = 0.5


def ranges(values: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] → "0–2, 5, 7–8"."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs)


def noise_map(dataset: Dataset) -> tuple[Tensor, float]:
    """(π over the classes, −1 where no noisy example has that true label; the share of noisy
    training examples whose observed label is π of their true label)."""
    noisy = dataset.noisy_mask
    true, observed = dataset.true_labels[noisy], dataset.labels[noisy]
    p = dataset.task.p
    counts = torch.zeros(p, p, dtype=torch.long).index_put_((true, observed), torch.ones_like(true), accumulate=True)
    pi = torch.where(counts.sum(1) > 0, counts.argmax(1), torch.full((p,), -1))  # argmax: the first of a tie
    obeyed = float((pi[true] == observed).double().mean()) if len(true) else 0.0
    return pi, obeyed


def translation(dataset: Dataset, pi: Tensor) -> tuple[str, Tensor] | None:
    """(the map in words, the map on every class) when π is one translation of the classes on
    the classes it is seen on, else None."""
    seen = (pi >= 0).nonzero().squeeze(1)
    if not len(seen):
        return None
    task = dataset.task
    if task.group:
        group = task.structure
        for g in range(group.order):
            if g == group.identity:
                continue
            if torch.equal(group.table[seen, g], pi[seen]):
                return f"(a∘b)∘g with g = {group.elements[g]}", group.table[:, g].clone()
            if torch.equal(group.table[g, seen], pi[seen]):
                return f"g∘(a∘b) with g = {group.elements[g]}", group.table[g].clone()
        return None
    shift = int((pi[seen[0]] - seen[0]) % task.p)
    if shift and torch.equal((seen + shift) % task.p, pi[seen]):
        return f"the true label + {shift} mod {task.p}", (torch.arange(task.p) + shift) % task.p
    return None


@dataclass(repr=False)
class ErrorsExplained(Result):
    """What the wrong test predictions are: `noise_map[y]` π(y) (−1: no noisy example of class y);
    `consistency` the share of noisy examples obeying it; `region` where test pairs follow it
    (axis, values, and counts: test pairs, following, correct) and `outside` the other test pairs."""

    n_test: int
    n_wrong: int
    n_noisy: int
    n_wrong_following: int
    noise_map: list[int]
    consistency: float
    map_name: str | None
    region: dict | None
    outside: dict | None
    noise_rows: str | None  # the rows a holding the noisy training examples, when at most half the rows do

    @property
    def consistent(self) -> bool:
        return self.n_noisy > 0 and self.consistency >= MAP_CONSISTENCY

    def to_dict(self) -> dict:
        return {**asdict(self), "consistent": self.consistent, "map_consistency": MAP_CONSISTENCY,
                "follow_share": FOLLOW_SHARE}

    def _map_words(self) -> str:
        return self.map_name or f"one map of the classes ({sum(1 for y, t in enumerate(self.noise_map) if t not in (-1, y))} classes moved)"

    def headline(self) -> str | None:
        """One sentence for the headline when held-out pairs follow the noise map, else None."""
        if not self.consistent or self.region is None:
            return None
        r = self.region
        return (f"Held-out pairs with {r['axis']} in {r['text']} follow the training noise, not the rule: the model "
                f"gives {r['following']} of {r['test']} of them ({r['following'] / r['test']:.0%}) the label "
                f"{self._map_words()}, the map the noisy training labels obey (test accuracy there "
                f"{r['correct'] / r['test']:.1%}).")

    def summary(self) -> str:
        if self.n_noisy == 0:
            return (f"No noisy training labels, so no noise map to follow; {self.n_wrong} of {self.n_test} test "
                    "predictions are wrong.")
        where = f" (all in rows a in {self.noise_rows})" if self.noise_rows else ""
        if not self.consistent:
            return (f"The {self.n_noisy} noisy training labels{where} follow no single map of the classes (the most "
                    f"common wrong label of each class covers {self.consistency:.0%} of them, under the "
                    f"{MAP_CONSISTENCY:.0%} asked), so there is no structured noise for the test errors to repeat "
                    f"({self.n_wrong} of {self.n_test} test predictions are wrong).")
        line = (f"The {self.n_noisy} noisy training labels{where} obey one map, {self._map_words()} "
                f"({self.consistency:.0%} of them). Of the {self.n_wrong} wrong test predictions of {self.n_test}, "
                f"{self.n_wrong_following} ({self.n_wrong_following / max(self.n_wrong, 1):.0%}) give that map's label.")
        if self.region is None:
            return line + (f" No row or column of the grid follows it on {FOLLOW_SHARE:.0%} of its test pairs: the "
                           "model did not generalise the noise.")
        r, o = self.region, self.outside
        rest = (f"; elsewhere {o['following']} of {o['test']} ({o['following'] / o['test']:.1%}), test accuracy "
                f"{o['correct'] / o['test']:.1%}" if o and o["test"] else "")
        return line + (f" By region: with {r['axis']} in {r['text']}, {r['following']} of {r['test']} test pairs "
                       f"({r['following'] / r['test']:.0%}) follow it and {r['correct'] / r['test']:.1%} are right{rest}.")

    def tables(self):
        from ..core.document import Table

        rows = [[f"{part['axis']} in {part['text']}" if name == "region" else "elsewhere", str(part["test"]),
                 str(part["following"]), f"{part['correct'] / max(part['test'], 1):.1%}"]
                for name, part in (("region", self.region), ("outside", self.outside)) if part and part["test"]]
        return [Table(["test pairs", "count", "predicted with the noise map", "test accuracy"], rows)] if rows else []


def explain_test_errors(predicted: Int[Tensor, " pair"], dataset: Dataset) -> ErrorsExplained:
    """Whether the wrong test predictions (`predicted`: the model's class for every pair of the
    dataset) follow the map the noisy training labels obey, and where on the grid."""
    pi, obeyed = noise_map(dataset)
    named = translation(dataset, pi)
    if named is not None:  # a translation is known on every class, also those no noisy example shows
        pi = named[1]
    test = dataset.test_mask
    true = dataset.true_labels
    moved = pi[true] >= 0  # a noisy label is never its true one, so π moves every class it is known on
    following = test & moved & (predicted == pi[true])
    correct = test & (predicted == true)
    wrong = test & ~correct
    region = outside = None
    if bool(following.any()):
        best = None
        for axis, column in (("a", 0), ("b", 1)):
            coord = dataset.inputs[:, column]
            n = int(coord.max()) + 1
            per_test = torch.bincount(coord[test], minlength=n)
            per_follow = torch.bincount(coord[following], minlength=n)
            chosen = ((per_test > 0) & (per_follow >= FOLLOW_SHARE * per_test)).nonzero().squeeze(1)
            held = int(per_follow[chosen].sum())
            if chosen.numel() and (best is None or held > best[2]):
                best = (axis, chosen, held, coord)
        if best is not None:
            axis, chosen, _, coord = best
            inside = torch.isin(coord, chosen)

            def counts(mask: Tensor) -> dict:
                return {"test": int((test & mask).sum()), "following": int((following & mask).sum()),
                        "correct": int((correct & mask).sum())}

            region = {"axis": axis, "values": chosen.tolist(), "text": ranges(chosen.tolist()), **counts(inside)}
            outside = {"axis": axis, **counts(~inside)}
    rows = dataset.inputs[dataset.noisy_mask, 0].unique().tolist()
    all_rows = dataset.inputs[dataset.train_mask, 0].unique().tolist()
    return ErrorsExplained(int(test.sum()), int(wrong.sum()), int(dataset.noisy_mask.sum()), int((wrong & following).sum()),
                      pi.tolist(), obeyed, None if named is None else named[0], region, outside,
                      ranges(rows) if rows and len(rows) <= len(all_rows) / 2 else None)


@torch.no_grad()
def _on_run(run) -> ErrorsExplained:
    return explain_test_errors(logits(run.model, run.dataset.inputs).argmax(-1), run.dataset)


ERRORS: Analysis[ErrorsExplained] = register_analysis("errors", "Test errors explained", _on_run, order=25, groups=True)
