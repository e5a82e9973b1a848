"""One table that says, component by component, what memorises and what generalises.

Rows and the numbers behind each label:
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
- `head`, `frequency` (transformers): what zero-ablating the head, or removing the frequency
  from the embedding, costs in the same two margins, measured on the whole network's logits:
  `gen_score` the fall of the mean true-label margin on the test pairs, `mem_score` the fall of
  the mean (observed − true) logit difference on the noisy pairs.

Labels, per kind, from r_gen = gen⁺ / scale_gen and r_mem = mem⁺ / scale_mem, where x⁺ = max(x, 0)
and each scale is the mean of the top SCALE_TOP fraction of that kind's positive scores (robust to
one outlier, unlike the maximum): `inert` if max(r_gen, r_mem) < INERT; `generalising` if
r_gen ≥ RATIO · r_mem; `memorising` if r_mem ≥ RATIO · r_gen; otherwise `mixed`.
Checked against planted models (`interp.planted`, tests/test_localize.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import einops
import torch
from torch import Tensor, nn

from ..core import fourier
from ..core.document import plural
from ..core.metrics import subset_metrics
from ..core.runtime import progress_bar
from ..core.tasks import Dataset
from ..families.base import Capability, family_of, logits
from .ablation import ablated_logits
from .filtration import filter_residue_weights
from .neurons import dominant_split, neuron_ipr
from .readout import linear_readout, margin_push, margins
from .registry import Analysis, Result, register_analysis
from .spectra import cluster_order, neuron_clusters, neuron_spectra, transformer_key_frequencies

if TYPE_CHECKING:
    from ..core.document import Figure, Table

INERT = 0.05
RATIO = 2.0
SCALE_TOP = 0.1




def _scale(x: Tensor) -> Tensor:
    positive = x[x > 0].sort(descending=True).values
    if not len(positive):
        return torch.tensor(1.0, dtype=torch.float64)
    return positive[: max(1, int(SCALE_TOP * len(positive)))].mean()


def label(gen: Tensor, mem: Tensor | None) -> list[str]:
    """Labels from one kind's scores (see module docstring); without noisy labels (`mem` None)
    a component is generalising or inert."""
    gen = gen.double().clamp_min(0)
    mem = torch.zeros_like(gen) if mem is None else mem.double().clamp_min(0)
    r_gen, r_mem = gen / _scale(gen), mem / _scale(mem)
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




@torch.no_grad()
def readout_scores(model: nn.Module, dataset: Dataset) -> tuple[Tensor, Tensor | None]:
    """(gen_score, mem_score) of every readout unit (see module docstring), from `margin_push`."""
    _, acts, to_logit, _ = linear_readout(model, dataset.inputs)

    def towards(mask: Tensor, labels: Tensor) -> Tensor:
        return margin_push(acts[mask], to_logit, labels[mask])

    gen = towards(dataset.test_mask, dataset.true_labels)
    noisy = dataset.noisy_mask
    mem = towards(noisy, dataset.labels) - towards(noisy, dataset.true_labels) if noisy.any() else None
    return gen, mem


@dataclass(repr=False)
class Localization(Result):
    rows: list[dict] = field(default_factory=list)
    memorised: float | None = None  # the model's accuracy on the noisy pairs' observed labels
    key_frequencies: list[int] | None = None  # the Fourier section's key set, beside the frequency rows
    thresholds: dict = field(default_factory=lambda: {"inert": INERT, "ratio": RATIO, "scale_top": SCALE_TOP})

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of components per (kind, label)."""
        out: dict[str, dict[str, int]] = {}
        for row in self.rows:
            kind = out.setdefault(row["kind"], {})
            kind[row["label"]] = kind.get(row["label"], 0) + 1
        return out

    def parts_counts(self) -> dict[str, dict[str, int]]:
        """Labels of the neurons' dominant-frequency parts and residuals, counted separately."""
        out: dict[str, dict[str, int]] = {}
        for row in self.rows:
            if row["kind"] == "neuron part":
                part = out.setdefault(row["part"], {})
                part[row["label"]] = part.get(row["label"], 0) + 1
        return out

    def summary(self) -> str:
        def listing(counts: dict[str, int]) -> str:
            return ", ".join(f"{n} {label}" for label, n in sorted(counts.items(), key=lambda x: -x[1]))

        lines = [f"{plural(kind).capitalize()}: {listing(c)}." for kind, c in self.counts().items() if kind != "neuron part"]
        lines += [f"Neurons' {part} parts: {listing(c)}." for part, c in self.parts_counts().items()]
        by_head: dict[str, list[int]] = {}
        for r in self.rows:
            if r["kind"] == "head frequency" and r["label"] in ("generalising", "mixed"):
                by_head.setdefault(r["index"].split()[0], []).append(r["freq"])
        if by_head:
            lines.append("Each head's output frequencies that the rule needs (generalising or mixed): " +
                         "; ".join(f"{h}: {', '.join(map(str, sorted(ks)))}" for h, ks in by_head.items()) + ".")
        freq_rows = [r for r in self.rows if r["kind"] == "frequency"]
        if freq_rows and self.key_frequencies is not None:
            rule = [r["index"] for r in freq_rows if r["label"] in ("generalising", "mixed")]
            other = {r["index"]: r["label"] for r in freq_rows if r["index"] in self.key_frequencies
                     and r["index"] not in rule}
            line = (f"Embedding frequencies the rule needs (generalising or mixed): {', '.join(map(str, rule)) or 'none'}; "
                    f"the Fourier section's key frequencies: {', '.join(map(str, self.key_frequencies))}")
            if other:
                line += (" — of these, " + ", ".join(f"{k} is {label}" for k, label in other.items()) +
                         f" here: removing {'it' if len(other) == 1 else 'each'} costs the memorised labels' margin "
                         "more than the test margin")
            lines.append(line + ".")
        t = self.thresholds
        lines.append(f"A component is inert when both its scores stay under {t['inert']:.0%} of the scale of its kind "
                     f"(the mean of its top {t['scale_top']:.0%} positive scores), generalising or memorising when "
                     f"one scaled score is {t['ratio']:g}× the other, mixed otherwise.")
        if self.memorised is not None and self.memorised < 0.5:
            lines.append(f"The model gives only {self.memorised:.1%} of the noisy pairs their observed label, so "
                         "'memorising' marks the components that push hardest towards the wrong labels, not a memory "
                         "that wins.")
        return " ".join(lines)

    def tables(self, kinds: tuple[str, ...] = ("neuron cluster", "head", "frequency"), top: int = 10) -> list[Table]:
        """Every neuron cluster, head and embedding frequency, and the `top` neurons by largest score."""
        from ..core.document import Table

        def size(row: dict) -> float:
            return max(row["gen_score"], row["mem_score"] or 0.0)

        cols = ["kind", "index", "label", "gen_score", "mem_score", "freq", "ipr"]
        neurons = sorted((r for r in self.rows if r["kind"] == "neuron"), key=lambda r: -size(r))[:top]
        rows = [[f"{row.get(c):.4g}" if isinstance(row.get(c), float) else str(row.get(c) if row.get(c) is not None
                                                                                 else "—") for c in cols]
                for row in [r for r in self.rows if r["kind"] in kinds] + neurons]
        return [Table(cols, rows, caption=f"every neuron cluster, head and embedding frequency, and the {top} neurons "
                                          "with the largest scores")]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure
        from .plots import plot_localization

        return [Figure(plot_localization(self, Path(out_dir) / f"{stem}.png"),
                       "each component's push (or ablation cost) on the test margin against the memorised margin")]

    def to_dict(self) -> dict:
        return {"rows": self.rows, "memorised": self.memorised, "thresholds": self.thresholds,
                "counts": self.counts()}


def _rows(kind: str, gen: Tensor, mem: Tensor | None, extra: dict[str, list] | None = None) -> list[dict]:
    labels = label(gen, mem)
    rows = []
    for i in range(len(gen)):
        row = {"kind": kind, "index": i, "label": labels[i], "gen_score": float(gen[i]),
               "mem_score": None if mem is None else float(mem[i])}
        for name, values in (extra or {}).items():
            row[name] = values[i]
        rows.append(row)
    return rows




def _ablation_rows(kind: str, full: Tensor, ablated: list[Tensor], dataset: Dataset) -> list[dict]:
    """Rows scored by what each ablation costs in the two `margins`."""
    gen0, mem0 = margins(full, dataset)
    lost = [margins(out, dataset) for out in ablated]
    gen = torch.tensor([gen0 - g for g, _ in lost], dtype=torch.float64)
    mem = None if mem0 is None else torch.tensor([mem0 - m for _, m in lost], dtype=torch.float64)
    return _rows(kind, gen, mem)


def _cluster_rows(model: nn.Module, dataset: Dataset, gen: Tensor, mem: Tensor | None) -> list[dict]:
    """One row per frequency cluster of readout neurons, scored by its members' summed pushes."""
    _, acts, _, _ = linear_readout(model, dataset.inputs)
    p = dataset.p
    cluster = neuron_clusters(einops.rearrange(acts, "(a b) unit -> a b unit", a=p))
    names = sorted(set(cluster), key=cluster_order)
    members = [torch.tensor([c == name for c in cluster]) for name in names]
    rows = _rows("neuron cluster", torch.stack([gen[m].sum() for m in members]),
                 None if mem is None else torch.stack([mem[m].sum() for m in members]))
    for row, name, m in zip(rows, names, members):
        row["index"], row["neurons"] = name, int(m.sum())
    return rows


def _head_frequency_rows(model: nn.Module, dataset: Dataset, full: Tensor) -> list[dict]:
    """One row per (head, frequency k): the head's output at the predicting position over the
    (a, b) grid, without its 2-D terms that have k on either axis, patched in."""
    family, p = family_of(model), dataset.p
    component = fourier.component_frequencies(p)
    everything = list(range(1, p // 2 + 1))
    names, ablated = [], []
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
            names.append(f"L{layer}H{head} k={k}")
    rows = _ablation_rows("head frequency", full, ablated, dataset)
    for row, name in zip(rows, names):
        row["index"], row["freq"] = name, int(name.split("k=")[1])
    return rows


@torch.no_grad()
def localize(model: nn.Module, dataset: Dataset,
             kinds: tuple[str, ...] = ("neuron", "neuron part", "neuron cluster", "head", "frequency")
             ) -> Localization:
    """Scores and labels for every readout neuron (and, for two-layer nets, each neuron's
    dominant-frequency part and residual; for transformers, each head and embedding frequency),
    for the row `kinds` asked for."""
    op = dataset.task.op
    full = logits(model, dataset.inputs)
    result = Localization(memorised=subset_metrics(full, dataset)["noisy_observed_acc"])
    family = family_of(model)
    if family.has(model, Capability.NEURON_MAPS):
        spectra = neuron_spectra(model, op)
        extra = {"freq": spectra.freq.tolist(), "ipr": neuron_ipr(model).tolist()}
        gen, mem = readout_scores(model, dataset)
        if "neuron" in kinds:
            result.rows += _rows("neuron", gen, mem, extra)
        if "neuron part" not in kinds:
            return result
        # the residual's share of each neuron's push: the whole neuron's less its dominant part's
        g, _ = dominant_split(model, op)
        gen_g, mem_g = readout_scores(g, dataset)
        gen_r, mem_r = gen - gen_g, None if mem is None else mem - mem_g
        n = len(gen_g)
        gen, mem = torch.cat([gen_g, gen_r]), None if mem_g is None else torch.cat([mem_g, mem_r])
        for row in _rows("neuron part", gen, mem):  # labelled together: one scale for both parts
            row["part"] = "dominant" if row["index"] < n else "residual"
            row["index"] = row["index"] % n
            result.rows.append(row)
        return result
    if "neuron" in kinds or "neuron cluster" in kinds:
        gen, mem = readout_scores(model, dataset)
        if "neuron" in kinds:
            result.rows += _rows("neuron", gen, mem)
        if "neuron cluster" in kinds and dataset.sum_grid:
            result.rows += _cluster_rows(model, dataset, gen, mem)
    heads = family.head_hooks(model) if family.has(model, Capability.HEADS) else {}
    for layer, (hook, n_heads) in enumerate(heads.items() if "head" in kinds else []):
        ablated = [ablated_logits(model, dataset.inputs, hook, [h]) for h in range(n_heads)]
        for row in _ablation_rows("head", full, ablated, dataset):
            row["index"] = f"L{layer}H{row['index']}"
            result.rows.append(row)
    if "head frequency" in kinds and heads and dataset.sum_grid:
        result.rows += _head_frequency_rows(model, dataset, full)
    if "frequency" not in kinds:
        return result
    everything = list(range(1, dataset.p // 2 + 1))
    result.key_frequencies = transformer_key_frequencies(model, op)
    ablated = [logits(filter_residue_weights(model, op, [j for j in everything if j != k], ("W_E",)), dataset.inputs)
               for k in progress_bar(everything, "localize: embedding frequencies")]
    for row in _ablation_rows("frequency", full, ablated, dataset):
        row["index"] = row["freq"] = everything[row["index"]]
        result.rows.append(row)
    return result


LOCALIZATION: Analysis[Localization] = register_analysis("localize", "Localisation", lambda run: localize(run.model, run.dataset), order=30)
