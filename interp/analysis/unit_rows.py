"""One row of a localisation (`interp.analysis.localize`): a unit of the model, its two scores in
logits of margin and its label.

A unit is its `kind` and its `index`, an int in every kind:
- `neuron`: the readout neuron; `neuron part`: the neuron whose `part` (`dominant` or
  `residual`) the row scores;
- `neuron cluster`: the cluster's place in `spectra.cluster_order`, with its `name` (`k=5`,
  `unclustered`) and its `members` (readout neurons);
- `head`: the head's place in `families.base.heads` (layer by layer), with its `name` (`L0H1`);
  `head frequency`: the same head, and the frequency `freq` removed from its output;
- `frequency` (`irrep` on a group): the embedding's frequency k (irrep number), also its `freq`.

Serialised (`to_dict`, results.json) a named unit's index is its name (`L0H1`, `k=5`,
`L0H1 k=3`: `identifier`), and a field that is not set is left out, so the JSON reads as it did
when rows were dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

Kind = Literal["neuron", "neuron part", "neuron cluster", "head", "head frequency", "frequency", "irrep"]
Label = Literal["memorising", "generalising", "mixed", "inert"]
Part = Literal["dominant", "residual"]
KINDS: tuple[str, ...] = get_args(Kind)
LABELS: tuple[str, ...] = get_args(Label)
PARTS: tuple[str, ...] = get_args(Part)
#: the kinds whose units have a name of their own
NAMED = ("neuron cluster", "head", "head frequency")
#: what `to_dict` writes after the scores, in this order, where set
_OPTIONAL = ("freq", "ipr", "irrep", "irrep_label", "part", "neurons", "members")


@dataclass(frozen=True)
class UnitRow:
    """A unit of the model (see module docstring), scored and labelled: `gen_score` and
    `mem_score` in logits of margin (`mem_score` None on a clean run), the same as shares of the
    model's own margins (`gen_share`, `mem_share`), and the label they give."""

    kind: Kind
    index: int
    label: Label
    gen_score: float
    mem_score: float | None
    gen_share: float
    mem_share: float | None
    name: str | None = None  # a cluster's or a head's name (a head frequency's head)
    freq: int | None = None  # a neuron's dominant frequency, a head frequency's, an embedding frequency
    ipr: float | None = None  # a neuron's inverse participation ratio over frequencies (two-layer nets)
    irrep: str | None = None  # on a group: the irrep's stored id (`3a`) …
    irrep_label: str | None = None  # … and the name a reader knows (`standard (3)`, `core.unit_labels`)
    part: Part | None = None
    members: tuple[int, ...] | None = None  # a cluster's readout neurons

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown localisation row kind {self.kind!r}; one of {', '.join(KINDS)}")
        if self.label not in LABELS:
            raise ValueError(f"unknown label {self.label!r}; one of {', '.join(LABELS)}")
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise ValueError(f"a row's index is an int (its unit's place), not {self.index!r}")
        if (self.name is None) == (self.kind in NAMED):
            raise ValueError(f"a {self.kind} row {'needs a' if self.kind in NAMED else 'takes no'} name")
        if (self.part is None) == (self.kind == "neuron part") or (self.part is not None and self.part not in PARTS):
            raise ValueError(f"a {self.kind} row's part is one of {', '.join(PARTS)} for a neuron part, else none: "
                             f"not {self.part!r}")
        if (self.members is None) == (self.kind == "neuron cluster"):
            raise ValueError(f"a {self.kind} row {'needs' if self.kind == 'neuron cluster' else 'takes no'} members")
        if self.kind == "head frequency" and self.freq is None:
            raise ValueError("a head frequency row needs its frequency")

    @property
    def neurons(self) -> int | None:
        """A cluster's number of neurons."""
        return None if self.members is None else len(self.members)

    @property
    def identifier(self) -> int | str:
        """The unit as tables and JSON call it: a named unit's name (`L0H1 k=3` for a head
        frequency), else its index."""
        if self.kind == "head frequency":
            return f"{self.name} k={self.freq}"
        return self.index if self.name is None else self.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "index": self.identifier, "label": self.label,
                               "gen_score": self.gen_score, "mem_score": self.mem_score,
                               "gen_share": self.gen_share, "mem_share": self.mem_share}
        for key in _OPTIONAL:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if key == "members" else value
        return out
