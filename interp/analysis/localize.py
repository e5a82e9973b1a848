"""One table that says, component by component, what memorises and what generalises.

Rows (`unit_rows.UnitRow`: a unit, its two scores and its label) and the numbers behind each label:
- `neuron` (each readout unit: a two-layer net's hidden neurons, a transformer's last MLP
  neurons): its direct push on the logits, activation × unit-to-logit map, measured as a margin
  (the pushed class's logit minus the mean logit), so it stays informative when the loss is
  saturated and it needs no ablation of a circuit spread over many units.
  `gen_score`: mean push towards the true label on the test pairs (never trained on: only a
  rule can push them right); `mem_score`: mean push towards the observed wrong label, minus that
  towards the true label, on the noisy training pairs (None on a clean run).
- `neuron part` (two-layer nets): the same scores for each neuron's dominant-frequency part (its
  push in Liu & Lu's f^G, the network of dominant parts) and for its residual (what the rest
  adds: the whole neuron's push less the dominant part's, so the two parts sum to the neuron) —
  where memorisation sits inside neurons that also carry the rule.
- `neuron cluster` (transformers, add/sub over the full grid): the readout neurons grouped by
  the frequency that holds most of their activation power over (a, b) (`spectra.neuron_clusters`,
  Nanda et al.'s clusters), scored by the sum of their members' pushes — exactly what
  zero-ablating the whole group costs in the two margins below, since the readout is linear.
- `head frequency` (transformers, add/sub over the full grid; opt-in, one forward per head and
  frequency): what removing frequency k from one head's output over the (a, b) grid costs —
  every 2-D term of its output with k on either axis projected out, the rest kept.
- `head`, `frequency` (transformers): what zero-ablating the head (the ablation analysis's head
  scan, `ablation.scan_heads`), or removing the frequency from the embedding, costs in the same
  two margins, measured on the whole network's logits:
  `gen_score` the fall of the mean true-label margin on the test pairs, `mem_score` the fall of
  the mean (observed − true) logit difference on the noisy pairs.

Every score is measured in logits of margin (`core.metrics.margin`, the label's logit minus the
mean logit) and labelled in one unit across kinds: a share of the model's own margin it is
measured in, gen_share = gen / |G| and mem_share = mem / |M| (G: the model's mean test
true-label margin, M: its mean noisy observed − true margin, both from `readout.margins`; |M|
is the size of what the model does on the noisy pairs, whichever label wins there). A label
compares a component's two shares with each other, with x⁺ = max(x, 0):
- `inert` if max(gen_share⁺, mem_share⁺) < INERT / n — both under INERT of an equal share of the
  margins, n the number of components of the kind (a kind that splits the margins over 512
  neurons has smaller shares than 4 heads);
- `generalising` if gen_share⁺ ≥ RATIO · mem_share⁺; `memorising` if mem_share⁺ ≥ RATIO · gen_share⁺;
  `mixed` otherwise. On a clean run (no M) a component is generalising or inert.
Each label set is then checked by ablating it beside random sets of the same size
(`interp.analysis.interventions`, the `interventions` table of a `Localization`).
Checked against planted models (`interp.planted`, tests/test_localize.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import einops
import torch
from torch import Tensor, nn

from ..core import fourier
from ..core.document import plural
from ..core.harmonics import harmonics_of
from ..core.metrics import subset_metrics
from ..core.runtime import progress_bar
from ..core.tasks import Dataset
from ..families.base import Capability, family_of, head_name, heads, logits
from .ablation import scan_heads
from .filtration import filter_residue_weights
from .interventions import InterventionTable, check_labels
from .neurons import dominant_split, neuron_ipr
from .part_split import PartCheck, part_check
from .readout import linear_readout, margins, push_scores
from .registry import Analysis, Result, register_analysis
from .spectra import cluster_order, neuron_clusters, neuron_spectra, transformer_key_frequencies
from .unit_rows import UnitRow

if TYPE_CHECKING:
    from ..core.document import Figure, Table

#: inert: max(gen / |G|, mem / |M|) < INERT / n (G, M the model's own margins, n components of the kind)
INERT = 0.1
#: generalising: gen_share⁺ ≥ RATIO · mem_share⁺; memorising: mem_share⁺ ≥ RATIO · gen_share⁺; mixed otherwise
RATIO = 2.0
TINY = 1e-12  # a margin this small is taken as this, so shares stay finite


def reference_margins(full: Tensor, dataset: Dataset) -> tuple[float, float]:
    """(|G|, |M|): the sizes in logits of the model's own test margin and memorised margin, the
    references of every share (|M| = 1 on a clean run, where no mem score exists)."""
    gen, mem = margins(full, dataset)
    return max(abs(gen), TINY), 1.0 if mem is None else max(abs(mem), TINY)


def label(gen: Tensor, mem: Tensor | None, reference: tuple[float, float], n: int | None = None) -> list[str]:
    """Labels from one kind's scores in logits (see module docstring): `reference` is (|G|, |M|),
    `n` the number of components sharing them (default len(gen)); without noisy labels (`mem`
    None) a component is generalising or inert."""
    gen = gen.double().clamp_min(0) / reference[0]
    mem = torch.zeros_like(gen) if mem is None else mem.double().clamp_min(0) / reference[1]
    floor = INERT / (n or len(gen))
    out = []
    for g, m in zip(gen.tolist(), mem.tolist()):
        if max(g, m) < floor:
            out.append("inert")
        elif g >= RATIO * m:
            out.append("generalising")
        elif m >= RATIO * g:
            out.append("memorising")
        else:
            out.append("mixed")
    return out


@torch.no_grad()
def readout_scores(model: nn.Module, dataset: Dataset) -> tuple[Tensor, Tensor | None]:
    """(gen_score, mem_score) of every readout unit (see module docstring), `readout.push_scores`."""
    _, acts, to_logit, _ = linear_readout(model, dataset.inputs)
    return push_scores(acts, to_logit, dataset)


@dataclass(repr=False)
class Localization(Result):
    rows: list[UnitRow] = field(default_factory=list)  # one per unit scored (`unit_rows`)
    memorised: float | None = None  # the model's accuracy on the noisy pairs' observed labels
    key_frequencies: list[int] | None = None  # the Fourier section's key set, beside the frequency rows
    reference: tuple[float, float] | None = None  # (|G|, |M|) in logits: the labels compare shares of them
    thresholds: dict = field(default_factory=lambda: {"inert": INERT, "ratio": RATIO})
    interventions: InterventionTable | None = None  # each label set ablated beside random sets of its size
    parts: PartCheck | None = None  # each neuron's dominant part against its residual, by intervention

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of components per (kind, label)."""
        out: dict[str, dict[str, int]] = {}
        for row in self.rows:
            kind = out.setdefault(row.kind, {})
            kind[row.label] = kind.get(row.label, 0) + 1
        return out

    def parts_counts(self) -> dict[str, dict[str, int]]:
        """Labels of the neurons' dominant-frequency parts and residuals, counted separately."""
        out: dict[str, dict[str, int]] = {}
        for row in self.rows:
            if row.kind == "neuron part":
                part = out.setdefault(row.part, {})
                part[row.label] = part.get(row.label, 0) + 1
        return out

    def summary(self) -> str:
        def listing(counts: dict[str, int]) -> str:
            return ", ".join(f"{n} {label}" for label, n in sorted(counts.items(), key=lambda x: -x[1]))

        lines = [f"{plural(kind).capitalize()}: {listing(c)}." for kind, c in self.counts().items() if kind != "neuron part"]
        lines += [f"Neurons' {part} parts: {listing(c)}." for part, c in self.parts_counts().items()]
        by_head: dict[str, list[int]] = {}
        for r in self.rows:
            if r.kind == "head frequency" and r.label in ("generalising", "mixed"):
                by_head.setdefault(r.name, []).append(r.freq)
        if by_head:
            lines.append("Each head's output frequencies that the rule needs (generalising or mixed): " +
                         "; ".join(f"{h}: {', '.join(map(str, sorted(ks)))}" for h, ks in by_head.items()) + ".")
        freq_rows = [r for r in self.rows if r.kind in ("frequency", "irrep")]
        if freq_rows and self.key_frequencies is not None:
            kind = freq_rows[0].kind
            name = {r.index: str(r.index if r.irrep_label is None else r.irrep_label) for r in freq_rows}
            rule = [name[r.index] for r in freq_rows if r.label in ("generalising", "mixed")]
            other = {name[r.index]: r.label for r in freq_rows if r.index in self.key_frequencies
                     and name[r.index] not in rule}
            line = (f"Embedding {plural(kind)} the rule needs (generalising or mixed): {', '.join(rule) or 'none'}; "
                    f"the Fourier section's key {plural(kind)}: "
                    f"{', '.join(name.get(k, str(k)) for k in self.key_frequencies) or 'none'}")
            if other:
                line += (" — of these, " + ", ".join(f"{k} is {label}" for k, label in other.items()) +
                         f" here: removing {'it' if len(other) == 1 else 'each'} costs the memorised labels' margin "
                         "more than the test margin")
            lines.append(line + ".")
        t = self.thresholds
        g, m = self.reference or (0.0, 0.0)
        lines.append(f"Scores are logits of margin, labelled as shares of the model's own margins (test margin "
                     f"{g:.3g}, memorised margin {m:.3g} logits) in every kind: a component is inert when both "
                     f"shares are under {t['inert']:.0%} of an equal split (1 / n, n components of the kind), "
                     f"generalising or memorising when one share is {t['ratio']:g}× the other, mixed otherwise.")
        if self.interventions is not None:
            lines.append(self.interventions.summary())
        if self.parts is not None:
            lines.append(self.parts.summary())
        if self.memorised is not None and self.memorised < 0.5:
            lines.append(f"The model gives only {self.memorised:.1%} of the noisy pairs their observed label, so "
                         "'memorising' marks the components that push hardest towards the wrong labels, not a memory "
                         "that wins.")
        return " ".join(lines)

    def tables(self, kinds: tuple[str, ...] = ("neuron cluster", "head", "frequency", "irrep"), top: int = 10
               ) -> list[Table]:
        """Every neuron cluster, head and embedding frequency (irrep), and the `top` neurons by largest score."""
        from ..core.document import Table

        def size(row: UnitRow) -> float:
            return max(row.gen_score, row.mem_score or 0.0)

        # on a group the unit column names the irrep (its index is in to_dict)
        on_group = any(r.irrep is not None for r in self.rows)
        cols = ["kind", "index", "label", "gen_score", "mem_score", "irrep" if on_group else "freq", "ipr"]
        neurons = sorted((r for r in self.rows if r.kind == "neuron"), key=lambda r: -size(r))[:top]
        shown = {"irrep": "irrep_label"}  # a reader's name in the table, the stored id in to_dict
        chosen = [r for r in self.rows if r.kind in kinds] + neurons
        rows = [[f"{row.get(c):.4g}" if isinstance(row.get(c), float) else
                 str(row.get(shown.get(c, c), row.get(c)) if row.get(c) is not None else "—") for c in cols]
                for row in (r.to_dict() for r in chosen)]  # each row as serialised
        present = [kind for kind in kinds if any(r.kind == kind for r in self.rows)]
        named = [{"frequency": "embedding frequency", "irrep": "embedding irrep"}.get(k, k) for k in present]
        listed = ", ".join(named[:-1]) + (" and " if len(named) > 1 else "") + named[-1] if named else ""
        out = [Table(cols, rows, caption=(f"every {listed}, and " if listed else "") +
                     f"the {top} neurons with the largest scores")]
        return (out + ([self.interventions.table()] if self.interventions is not None else [])
                + ([self.parts.table()] if self.parts is not None and self.parts.rows else []))

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure
        from .plots import plot_localization

        return [Figure(plot_localization(self, Path(out_dir) / f"{stem}.png"),
                       "each component's push (or ablation cost) on the test margin against the memorised margin")]

    def to_dict(self) -> dict:
        return {"rows": [row.to_dict() for row in self.rows], "memorised": self.memorised, "reference": self.reference,
                "thresholds": self.thresholds, "counts": self.counts(),
                "interventions": None if self.interventions is None else self.interventions.to_dict(),
                "parts": None if self.parts is None else self.parts.to_dict()}


def _rows(kind: str, gen: Tensor, mem: Tensor | None, reference: tuple[float, float], n: int | None = None,
          **per_unit: Sequence) -> list[UnitRow]:
    """One row per score, labelled together; `per_unit`: a value per row for the row's other
    fields (`index` defaults to the row's place)."""
    labels = label(gen, mem, reference, n)
    per_unit = {"index": range(len(gen)), **per_unit}
    return [UnitRow(kind, label=labels[i], gen_score=float(gen[i]), mem_score=None if mem is None else float(mem[i]),
                    gen_share=float(gen[i]) / reference[0], mem_share=None if mem is None else float(mem[i]) / reference[1],
                    **{name: values[i] for name, values in per_unit.items()})
            for i in range(len(gen))]


def _ablation_rows(kind: str, full: Tensor, ablated: list[Tensor], dataset: Dataset, reference: tuple[float, float],
                   **per_unit: Sequence) -> list[UnitRow]:
    """Rows scored by what each ablation costs in the two `margins`."""
    gen0, mem0 = margins(full, dataset)
    lost = [margins(out, dataset) for out in ablated]
    gen = torch.tensor([gen0 - g for g, _ in lost], dtype=torch.float64)
    mem = None if mem0 is None else torch.tensor([mem0 - m for _, m in lost], dtype=torch.float64)
    return _rows(kind, gen, mem, reference, **per_unit)


def _cluster_rows(model: nn.Module, dataset: Dataset, gen: Tensor, mem: Tensor | None, reference: tuple[float, float]
                  ) -> list[UnitRow]:
    """One row per frequency cluster of readout neurons, scored by its members' summed pushes."""
    _, acts, _, _ = linear_readout(model, dataset.inputs)
    p = dataset.p
    cluster = neuron_clusters(einops.rearrange(acts, "(a b) unit -> a b unit", a=p))
    names = sorted(set(cluster), key=cluster_order)
    members = [torch.tensor([c == name for c in cluster]) for name in names]
    # members travel with the row: the intervention table ablates them together
    return _rows("neuron cluster", torch.stack([gen[m].sum() for m in members]),
                 None if mem is None else torch.stack([mem[m].sum() for m in members]), reference,
                 name=names, members=[tuple(m.nonzero().flatten().tolist()) for m in members])


def _head_frequency_rows(model: nn.Module, dataset: Dataset, full: Tensor, reference: tuple[float, float]
                         ) -> list[UnitRow]:
    """One row per (head, frequency k): the head's output at the predicting position over the
    (a, b) grid, without its 2-D terms that have k on either axis, patched in."""
    family, p = family_of(model), dataset.p
    component = fourier.component_frequencies(p)
    everything = list(range(1, p // 2 + 1))
    places, names, freqs, ablated = [], [], [], []
    first = 0  # the layer's first head's place in `heads` order
    for layer, (hook, n_heads) in enumerate(family.head_hooks(model).items()):
        _, cache = family.run_with_cache(model, dataset.inputs, names_filter=hook)
        for head, k in progress_bar([(h, k) for h in range(n_heads) for k in everything], "localize: head frequencies"):
            keep = (component[:, None] != k) & (component[None, :] != k)
            kept = fourier.project_grid(cache[hook][:, head], p, keep).to(cache[hook].dtype)

            def patch(acts: Tensor, hook=None, head=head, kept=kept) -> Tensor:
                acts = acts.clone()
                acts[:, -1, head] = kept.to(acts.device)  # the predicting (last) position
                return acts

            ablated.append(family.forward(model, dataset.inputs, fwd_hooks=[(hook, patch)]))
            places.append(first + head)
            names.append(head_name(layer, head))
            freqs.append(k)
        first += n_heads
    return _ablation_rows("head frequency", full, ablated, dataset, reference, index=places, name=names, freq=freqs)


DEFAULT_KINDS = ("neuron", "neuron part", "neuron cluster", "head", "frequency")


@torch.no_grad()
def localize(model: nn.Module, dataset: Dataset, kinds: tuple[str, ...] = DEFAULT_KINDS, check: bool = True
             ) -> Localization:
    """Scores and labels for every readout neuron (and, for two-layer nets, each neuron's
    dominant-frequency part and residual; for transformers, each head and embedding frequency),
    for the row `kinds` asked for; with `check`, every label set ablated beside random sets
    (`interventions.check_labels`) and, with neuron parts, f^G and f^R beside their controls
    (`part_split.part_check`)."""
    result = _labelled(model, dataset, kinds)
    if check:
        result.interventions = check_labels(model, dataset, result.rows)
        if "neuron part" in kinds and family_of(model).has(model, Capability.NEURON_MAPS):
            result.parts = part_check(model, dataset)
    return result


def _labelled(model: nn.Module, dataset: Dataset, kinds: tuple[str, ...]) -> Localization:
    task = dataset.task
    full = logits(model, dataset.inputs)
    reference = reference_margins(full, dataset)
    result = Localization(memorised=subset_metrics(full, dataset)["noisy_observed_acc"], reference=reference)
    family = family_of(model)
    if family.has(model, Capability.NEURON_MAPS):
        spectra = neuron_spectra(model, task)
        extra = {"freq": spectra.freq.tolist(), "ipr": neuron_ipr(model, task).tolist()}
        if spectra.irreps is not None:  # the stored id, and the name a reader knows (`core.unit_labels`)
            extra["irrep"] = [spectra.irreps[k] for k in extra["freq"]]
            extra["irrep_label"] = [spectra.labels[k] for k in extra["freq"]]
        gen, mem = readout_scores(model, dataset)
        if "neuron" in kinds:
            result.rows += _rows("neuron", gen, mem, reference, **extra)
        if "neuron part" not in kinds:
            return result
        # the residual's share of each neuron's push: the whole neuron's less its dominant part's
        g, _ = dominant_split(model, task)
        gen_g, mem_g = readout_scores(g, dataset)
        gen_r, mem_r = gen - gen_g, None if mem is None else mem - mem_g
        n = len(gen_g)
        gen, mem = torch.cat([gen_g, gen_r]), None if mem_g is None else torch.cat([mem_g, mem_r])
        # labelled together, against one share per neuron: the two parts sum to the neuron
        result.rows += _rows("neuron part", gen, mem, reference, n=n, index=[*range(n), *range(n)],
                             part=["dominant"] * n + ["residual"] * n)
        return result
    if "neuron" in kinds or "neuron cluster" in kinds:
        gen, mem = readout_scores(model, dataset)
        if "neuron" in kinds:
            result.rows += _rows("neuron", gen, mem, reference)
        if "neuron cluster" in kinds and dataset.sum_grid:
            result.rows += _cluster_rows(model, dataset, gen, mem, reference)
    has_heads = family.has(model, Capability.HEADS)
    if "head" in kinds and has_heads:
        # the ablation analysis's head scan: what zero-ablating each head alone costs the margins
        scans = scan_heads(model, dataset)
        names = [name for _, _, name in heads(model)]
        gen, mem = (torch.cat(parts) if parts[0] is not None else None
                    for parts in zip(*(scan.margin_costs() for scan in scans.values())))
        result.rows += _rows("head", gen, mem, reference, name=names)
    if "head frequency" in kinds and has_heads and dataset.sum_grid:
        result.rows += _head_frequency_rows(model, dataset, full, reference)
    if "frequency" not in kinds:
        return result
    # on a group the embedding's units are its irreps: rows of kind "irrep", same measure
    units = harmonics_of(task, family.embedding(model).shape[0])
    everything = list(range(1, units.n_units))
    result.key_frequencies = transformer_key_frequencies(model, task)
    ablated = [logits(filter_residue_weights(model, task, [j for j in everything if j != k], ("W_E",)), dataset.inputs)
               for k in progress_bar(everything, f"localize: embedding {plural(units.kind)}")]
    named = {} if units.group is None else {"irrep": [units.names[k] for k in everything],
                                            "irrep_label": [units.labels[k] for k in everything]}
    result.rows += _ablation_rows(units.kind, full, ablated, dataset, reference, index=everything, freq=everything,
                                  **named)
    return result


LOCALIZATION: Analysis[Localization] = register_analysis("localize", "Localisation", lambda run: localize(run.model, run.dataset), order=30,
                                                         groups=True)
