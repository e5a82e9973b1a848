"""One table that says, component by component, what memorises and what generalises.

A row per component — each neuron of the readout layer, each attention head (transformers),
each embedding frequency (transformers) — with the numbers behind its label:
- `gen_effect`: rise of the clean-training loss when the component is zero-ablated;
- `mem_effect`: rise of the loss on noisy examples against their observed labels;
- `test_effect`: rise of the test loss; plus dominant frequency, IPR and strength where defined.

Labels (thresholds relative to the largest effect of any component of the same kind, so they
do not depend on the loss scale): with r_gen = gen_effect / max gen_effect and
r_mem = mem_effect / max mem_effect (negative effects count as 0),
`inert` if max(r_gen, r_mem) < INERT; `generalising` if r_gen ≥ RATIO · r_mem;
`memorising` if r_mem ≥ RATIO · r_gen; otherwise `mixed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .ablation import scan_units, scan_units_hooked
from .filtration import filter_residue_weights
from .metrics import collect_rows, subset_metrics
from .families import family_of
from .nets import logits
from .partition import neuron_ipr, strength
from .spectra import neuron_spectra
from .registry import Result, register_analysis
from .tasks import Dataset

if TYPE_CHECKING:
    from .document import Figure, Table

INERT = 0.1
RATIO = 2.0


def plural(kind: str) -> str:
    """`neurons`, `heads`, `frequencies`: the row kinds as a heading."""
    return "frequencies" if kind == "frequency" else kind + "s"


def label(gen: Tensor, mem: Tensor) -> list[str]:
    """Labels from effects of one kind of component (see module docstring)."""
    gen, mem = gen.clamp_min(0), mem.clamp_min(0)
    r_gen = gen / gen.max().clamp_min(1e-12)
    r_mem = mem / mem.max().clamp_min(1e-12)
    out = []
    for g, m in zip(r_gen.tolist(), r_mem.tolist()):
        if max(g, m) < INERT:
            out.append("inert")
        elif g >= RATIO * m:
            out.append("generalising")
        elif m >= RATIO * g:
            out.append("memorising")
        else:
            out.append("mixed")
    return out


@dataclass(repr=False)
class Localization(Result):
    rows: list[dict] = field(default_factory=list)
    thresholds: dict = field(default_factory=lambda: {"inert": INERT, "ratio": RATIO})

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of components per (kind, label)."""
        out: dict[str, dict[str, int]] = {}
        for row in self.rows:
            kind = out.setdefault(row["kind"], {})
            kind[row["label"]] = kind.get(row["label"], 0) + 1
        return out

    def summary(self) -> str:
        counts = "; ".join(
            f"{plural(kind)}: " + ", ".join(f"{n} {label}" for label, n in sorted(c.items(), key=lambda x: -x[1]))
            for kind, c in self.counts().items())
        return (f"{counts}. A component is inert when neither of its ablation effects reaches "
                f"{self.thresholds['inert']:.0%} of the largest of its kind, generalising or memorising when one "
                f"effect is {self.thresholds['ratio']:g}× the other, mixed otherwise.")

    def tables(self, kinds: tuple[str, ...] = ("head", "frequency"), top: int = 10) -> list[Table]:
        """Every head and embedding frequency, and the `top` neurons by largest effect."""
        from .document import Table

        cols = ["kind", "index", "label", "gen_effect", "mem_effect", "test_effect", "freq", "ipr"]
        neurons = sorted((r for r in self.rows if r["kind"] == "neuron"),
                         key=lambda r: -max(r["gen_effect"], r["mem_effect"]))[:top]
        rows = [[f"{row.get(c):.4g}" if isinstance(row.get(c), float) else str(row.get(c, "—")) for c in cols]
                for row in [r for r in self.rows if r["kind"] in kinds] + neurons]
        return [Table(cols, rows)]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from .document import Figure
        from .plots import plot_localization

        return [Figure(plot_localization(self, Path(out_dir) / f"{stem}.png"),
                       "ablation effect on memorised vs. clean labels per component")]

    def to_dict(self) -> dict:
        return {"rows": self.rows, "thresholds": self.thresholds, "counts": self.counts()}


def _rows(kind: str, baseline: dict, metrics: dict[str, list], extra: dict[str, list] | None = None) -> list[dict]:
    gen = torch.tensor(metrics["clean_loss"], dtype=torch.float64) - baseline["clean_loss"]
    mem = torch.tensor(metrics["noisy_observed_loss"], dtype=torch.float64) - baseline["noisy_observed_loss"] \
        if baseline["noisy_observed_loss"] is not None else torch.zeros_like(gen)
    test = torch.tensor(metrics["test_loss"], dtype=torch.float64) - baseline["test_loss"]
    labels = label(gen, mem)
    rows = []
    for i in range(len(gen)):
        row = {"kind": kind, "index": i, "label": labels[i], "gen_effect": float(gen[i]),
               "mem_effect": float(mem[i]), "test_effect": float(test[i])}
        for name, values in (extra or {}).items():
            row[name] = values[i]
        rows.append(row)
    return rows


@torch.no_grad()
def localize(model: nn.Module, dataset: Dataset, loss: str = "ce") -> Localization:
    """Ablation effects and labels for every neuron, head and embedding frequency."""
    op = dataset.task.op
    scan = scan_units(model, dataset, loss=loss)
    result = Localization()
    family = family_of(model)
    if family.neuron_maps(model) is not None:
        spectra = neuron_spectra(model, op)
        extra = {"freq": spectra.freq.tolist(), "ipr": neuron_ipr(model).tolist(),
                 "strength": strength(model).tolist()}
        result.rows += _rows("neuron", scan.baseline, scan.metrics, extra)
        return result
    result.rows += _rows("neuron", scan.baseline, scan.metrics)
    for layer, (hook, n_heads) in enumerate(family.head_hooks(model).items()):
        heads = scan_units_hooked(model, dataset, hook, n_heads, loss=loss)
        for row in _rows("head", heads.baseline, heads.metrics):
            row["index"] = f"{layer}.{row['index']}"
            result.rows.append(row)
    p = dataset.p
    everything = list(range(1, p // 2 + 1))
    freq_rows = [subset_metrics(logits(filter_residue_weights(model, op, [j for j in everything if j != k], ("W_E",)),
                                       dataset.inputs), dataset, loss) for k in everything]
    for row in _rows("frequency", scan.baseline, collect_rows(freq_rows)):
        row["index"] = row["freq"] = everything[row["index"]]
        result.rows.append(row)
    return result


register_analysis("localize", "Localisation", lambda run: localize(run.model, run.dataset, loss=run.spec.train.loss))
