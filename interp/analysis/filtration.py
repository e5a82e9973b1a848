"""Frequency-based extraction of the clean rule from a network that memorised noisy labels.

Each extraction builds a new network of the same family from the model's weights (so it can be
hooked, ablated and probed like any other) and is scored on the four subsets:

- `dominant_split` (Liu & Lu): each neuron's u, v, w keep only their dominant frequency (f^G);
  the rest of each vector forms f^R.
- `key_frequency_filter`: every neuron keeps the same global set of key frequencies.
- `resynthesize`: each neuron rebuilt as a pure cosine from its dominant frequency, amplitudes
  and the phases of u and v, with the output phase set by the rule (φ_w = φ_u ± φ_v).
- `swap_activation`: the same weights under another activation at inference.
- transformers: `restricted_logits` / `excluded_logits` over key frequencies (Nanda et al.).

For mul/div the projections act in the discrete-log index (spectra.residue_order); the column of
residue 0, which has no place in that index, stays with f^G unchanged.

On a task over a finite group the unit is an irrep (`core.harmonics`): f^G keeps each neuron's
dominant irrep (Liu & Lu generalised; it reads no label and no operation, so it is the
label-free extraction of a two-layer net there), the key-irrep filter and the W_E/W_U filters
keep the key irreps, and restricted / excluded logits use the span of the matrix coefficients
ρ(a∘b)_ij of the key irreps (Chughtai et al.), for both families. Re-synthesis and the (a, b)
grid filters are Z_p constructions and are left out.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import einops
import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..core import fourier
from ..core.fourier import residue_order
from ..core.harmonics import harmonics_of
from ..core.metrics import DEFAULT_LOSS, subset_metrics
from ..core.specs import TaskSpec
from ..core.tasks import SUBSET_TABLE, SUBSETS, Dataset, apply_op, task_labels
from ..families.base import Capability, family_of, logits
from .logit_spectrum import LogitSpectrum, beside_weights, comparison_table, logit_spectrum
from .neurons import dominant_split, neuron_uvw, project_per_neuron
from .plots import SUBSET_COLORS, SUBSET_LABELS, _save, _subplots
from .registry import Analysis, Result, register_analysis
from .spectra import neuron_spectra

if TYPE_CHECKING:
    from ..core.document import Figure, Table








def key_frequency_filter(model: nn.Module, task: str | TaskSpec, freqs: list[int]) -> nn.Module:
    """Every neuron keeps only the components at `freqs` (k ≥ 1; irrep indices on a group) in
    u, v and w."""
    maps = neuron_uvw(model)
    width, p = maps[0].shape
    units = harmonics_of(task, p)
    keep = torch.zeros(width, units.n_units, dtype=torch.bool)
    keep[:, list(freqs)] = True
    return family_of(model).with_neuron_maps(model, *(project_per_neuron(x, keep, units) for x in maps))


def resynthesize(model: nn.Module, op: str) -> nn.Module:
    """Each neuron as pure cosines at its dominant frequency k: u = A_u cos(θx + φ_u),
    v = A_v cos(θx + φ_v), w = A_w cos(θc + φ_u ± φ_v) — the phase relation enforced."""
    s = neuron_spectra(model, op)
    width, p = neuron_uvw(model)[0].shape
    order = residue_order(op, p)
    n = len(order)
    x = torch.arange(n, dtype=torch.float64)
    theta = 2 * math.pi * s.freq[:, None].double() * x / n
    sign = -1 if op in ("sub", "div") else 1
    phase_w = s.phase_u + sign * s.phase_v
    vecs = []
    for amp, phase in ((s.amp_u, s.phase_u), (s.amp_v, s.phase_v), (s.amp_w, phase_w)):
        full = torch.zeros(width, p, dtype=torch.float64)
        full[:, order] = amp[:, None] * torch.cos(theta + phase[:, None])
        vecs.append(full.float())
    return family_of(model).with_neuron_maps(model, *vecs)


def swap_activation(model: nn.Module, act: str) -> nn.Module:
    """The same weights evaluated with activation `act` (one of specs.ACTIVATIONS)."""
    return family_of(model).with_neuron_maps(model, *neuron_uvw(model), act=act)


# --- transformers -------------------------------------------------------------------------


def rule_directions(dataset: Dataset, freqs: list[int]) -> Float[Tensor, "pair direction"]:
    """Orthonormal directions over all pairs spanned by cos(2πk·c/p), sin(2πk·c/p) with
    c = a∘b computed from the task's operation — for addition, Nanda et al.'s cos(w_k(a+b)),
    sin(w_k(a+b)); on a group, by the matrix coefficients ρ(c)_ij of the irreps ρ indexed by
    `freqs` (Chughtai et al.; for C_p the same span). They encode knowledge of the task (not of
    any label)."""
    if dataset.task.group:
        c = task_labels(dataset.task, dataset.inputs[:, 0], dataset.inputs[:, 1])
        basis, unit = harmonics_of(dataset.task).basis()
        rows = basis[torch.isin(unit, torch.tensor(list(freqs), dtype=torch.long))]
        if not len(rows):
            return torch.zeros(len(c), 0, dtype=torch.float64)
        counts = torch.bincount(c, minlength=basis.shape[1])
        if bool((counts == counts[0]).all()):  # each element m times (the full grid): already orthogonal
            return rows[:, c].T / math.sqrt(int(counts[0]))
        return torch.linalg.qr(rows[:, c].T)[0]
    c = apply_op(dataset.task.op, dataset.inputs[:, 0], dataset.inputs[:, 1], dataset.p).double()
    if not freqs:
        return torch.zeros(len(c), 0, dtype=torch.float64)
    cols = []
    for k in freqs:
        angle = 2 * math.pi * k * c / dataset.p
        cols += [torch.cos(angle), torch.sin(angle)]
    q, _ = torch.linalg.qr(torch.stack(cols, 1))
    return q


@torch.no_grad()
def restricted_logits(model: nn.Module, dataset: Dataset, freqs: list[int]) -> Float[Tensor, "pair p"]:
    """Logits with the readout units' activations (a transformer's last MLP layer, last position)
    replaced by their projection onto the constant and the key-frequency rule directions over
    all pairs (Nanda et al.)."""
    def project(acts: Tensor) -> Tensor:
        basis = torch.cat([torch.full((len(acts), 1), len(acts) ** -0.5, dtype=torch.float64),
                           rule_directions(dataset, freqs)], 1)
        return basis @ (basis.T @ acts)

    return readout_edited_logits(model, dataset, project)


def readout_edited_logits(model: nn.Module, dataset: Dataset, edit) -> Float[Tensor, "pair p"]:
    """The model's logits with its readout units' activations [pair, unit] (float64) replaced by
    `edit(activations)`: exact, since those units act on the logits linearly."""
    family = family_of(model)
    hook = family.readout_hook(model)
    out, cache = family.run_with_cache(model, dataset.inputs, names_filter=hook)
    acts = cache[hook].double()
    return (out.double() - (acts - edit(acts)) @ family.unit_to_logit(model).double()).float()


@torch.no_grad()
def excluded_logits(model: nn.Module, dataset: Dataset, freqs: list[int], table: Tensor | None = None
                    ) -> Float[Tensor, "pair p"]:
    """Logits with their components along the key-frequency rule directions removed (`table`:
    the model's logits of all pairs, if already computed)."""
    out = (logits(model, dataset.inputs) if table is None else table).double()
    q = rule_directions(dataset, freqs)
    return (out - q @ (q.T @ out)).float()


def filter_residue_weights(model: nn.Module, task: str | TaskSpec, freqs: list[int], weights=("W_E", "W_U")) -> nn.Module:
    """A copy of the model whose embedding (residue rows) and/or unembedding (class columns)
    keep only the constant and the frequencies (irreps, on a group) `freqs` along the residue axis."""
    family = family_of(model)
    embed, unembed = family.embedding(model), family.unembedding(model)
    units = harmonics_of(task, embed.shape[0])
    order = units.order
    keep = torch.zeros(units.n_units, dtype=torch.bool)
    keep[0] = True
    keep[list(freqs)] = True

    def filtered(w: Tensor, dim: int) -> Tensor:
        w = w.detach().clone()
        w.index_copy_(dim, order, units.project(w.index_select(dim, order).double(), keep, dim=dim).to(w.dtype))
        return w

    with torch.no_grad():
        return family.with_residue_weights(
            model, embedding=filtered(embed, 0) if "W_E" in weights else None,
            unembedding=filtered(unembed, 1) if "W_U" in weights else None)


@torch.no_grad()
def activation_filter_logits(model: nn.Module, dataset: Dataset, freqs: list[int]) -> Float[Tensor, "pair p"]:
    """Logits with each readout unit's activation over the (a, b) grid projected onto the 2-D
    Fourier terms (Const or k) × (Const or k), k in `freqs`: like restricted logits, but reading
    no label and assuming no operation (only that the inputs are residues)."""
    from ..core.fourier import grid_fourier_projection

    return readout_edited_logits(model, dataset, lambda acts: grid_fourier_projection(acts, dataset, freqs).double())


def unembedding_ranking(model: nn.Module, task: str | TaskSpec) -> list[int]:
    """Frequencies k ≥ 1 (irreps, on a group) by the power of the unembedding W_U along its class
    axis, largest first."""
    family = family_of(model)
    unembed = family.unembedding(model)
    units = harmonics_of(task, unembed.shape[1])
    power = units.power(unembed[:, units.order].double()).sum(0)[1:]
    return [int(k) + 1 for k in torch.argsort(power, descending=True)]


def function_space_filter(table: Float[Tensor, "pair p"], p: int, k: int) -> Float[Tensor, "pair p"]:
    """The logits of all p² pairs (a·p + b order) keeping, over the (a, b) grid, the constant and
    the k 2-D Fourier components (i, j) with the most energy summed over classes. It reads no
    label and assumes no operation; it edits the function, not the weights."""
    energy = fourier.transform_2d(einops.rearrange(table.double(), "(a b) c -> c a b", a=p)).square().sum(0)
    energy[0, 0] = float("inf")  # the constant always stays
    keep = torch.zeros(p * p, dtype=torch.bool)
    keep[torch.argsort(energy.flatten(), descending=True)[: k + 1]] = True
    return fourier.project_grid(table, p, keep.view(p, p)).float()


@torch.no_grad()
def diagonal_filter_logits(model: nn.Module, dataset: Dataset, freqs: list[int], table: Tensor | None = None
                           ) -> Float[Tensor, "pair p"]:
    """The logits over the (a, b) grid keeping the constant and the (k, k) blocks, k in `freqs`
    (`fourier.grid_blocks(cross=False)`) — the same as filtering the last position's residual
    stream, since the unembedding is linear. Every function of a + b or a − b lives in these
    blocks, while a memorised pair, a spike on the grid, spreads over all of them. Reads no label
    and assumes only that the rule reads a and b at the same frequencies. `table`: the model's
    logits of all pairs, if already computed."""
    table = logits(model, dataset.inputs) if table is None else table
    return fourier.project_grid(table, dataset.p, fourier.grid_blocks(dataset.p, freqs, cross=False)).float()


# --- comparison and noise detection -------------------------------------------------------


@dataclass(repr=False)
class Extraction(Result):
    """Per-subset metrics of the raw model and of every extracted network, side by side."""

    family: str
    key_frequencies: list[int]
    rows: dict[str, dict[str, float | None]]  # method -> subset metrics
    descriptions: dict[str, str]
    noise_detection: dict[str, float] | None = None
    #: method -> k -> subset metrics, for the methods with a size parameter (W_U top-k, function-space top-k)
    curves: dict[str, dict[int, dict[str, float | None]]] = field(default_factory=dict)
    irreps: list[str] | None = None  # on a group: the irreps' stored ids (`key_frequencies` index them)
    labels: list[str] | None = None  # every unit's readable name ("k = 3", "standard (4)")
    #: the papers' logit-based key units (`logit_spectrum`), beside `key_frequencies` (interp's, weight-based)
    logit: LogitSpectrum | None = None

    def summary(self) -> str:
        method, acc = self.label_free()
        from ..core.document import pct

        if self.labels:
            keys = "; ".join(self.labels[k] for k in self.key_frequencies) or "none"
        else:
            keys = ", ".join(map(str, self.key_frequencies)) if self.irreps is None else (
                ", ".join(self.irreps[k] for k in self.key_frequencies) or "none")
        unit = "frequency" if self.irreps is None else "irrep"
        line = (f"Key {'frequencies' if self.irreps is None else 'irreps'} used by the filters (interp's, from the "
                f"weights): {keys}. Label-free extraction ({method}): test {pct(acc)}.")
        for name, curve in self.curves.items():
            best = max(curve, key=lambda k: curve[k]["test_acc"])
            line += f" {name} over k: best test {pct(curve[best]['test_acc'])} at k = {best}"
            line += f" (k = 20: {pct(curve[20]['test_acc'])})." if 20 in curve and best != 20 else "."
        if self.noise_detection:
            d = self.noise_detection
            line += (f" Noise detection ({d['method']}): AUROC {d['auroc']:.4f}, precision {d['precision']:.3f}, "
                     f"recall {d['recall']:.3f}.")
        if self.logit is not None and self.labels:
            line += " " + beside_weights(self.key_frequencies, self.logit, self.labels, unit)
            if LOGIT_ROWS[0] in self.rows:
                r, x = self.rows[LOGIT_ROWS[0]], self.rows[LOGIT_ROWS[1]]
                line += (f" interp's restricted / excluded logits over the logit-based set: train loss "
                         f"{r['train_loss']:.4g} / {x['train_loss']:.4g}, test accuracy {pct(r['test_acc'])} / "
                         f"{pct(x['test_acc'])} (rows \"{LOGIT_ROWS[0]}\", \"{LOGIT_ROWS[1]}\").")
        return line

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        figures = [Figure(plot_extraction(self, Path(out_dir) / f"{stem}.png"),
                          "accuracy per subset of each extracted network")]
        if self.noise_detection:
            figures.append(Figure(plot_noise_detection(self.noise_detection, Path(out_dir) / f"{stem}_noise.png"),
                                  f"finding the noisy labels from the {self.noise_detection['method']} network: ROC "
                                  "curve and the disagreement score of clean and noisy training examples"))
        return figures

    def tables(self) -> list[Table]:
        """One row per method: the four subsets' accuracies and the losses; and the key units by
        both definitions."""
        from ..core.document import Table, pct

        cols = [f"{s}_acc" for s in SUBSETS] + ["train_loss", "test_loss"]
        rows = [[name] + [("—" if m[c] is None else f"{m[c]:.4g}") if c.endswith("loss") else pct(m[c]) for c in cols]
                for name, m in self.rows.items()]
        out = [Table(["method", *(SUBSET_TABLE[s].short for s in SUBSETS), "train loss", "test loss"], rows)]
        if self.logit is not None and self.labels:
            ids = self.irreps if self.irreps is not None else [str(u) for u in range(len(self.labels))]
            out.append(comparison_table(self.key_frequencies, self.logit, self.labels, ids,
                                        "frequency" if self.irreps is None else "irrep"))
        return out

    def to_dict(self) -> dict:
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "logit"}
        out["curves"] = {m: {str(k): v for k, v in c.items()} for m, c in self.curves.items()}
        if self.irreps is None:
            del out["irreps"]  # a Z_p result serialises as it did before groups
        if self.labels:
            out["key_set_labels"] = [self.labels[k] for k in self.key_frequencies]
        if self.logit is not None:
            out["logit_key_set"] = {**self.logit.to_dict(),
                                    **({"key_labels": [self.labels[u] for u in self.logit.key]} if self.labels else {})}
        return out

    def label_free(self) -> tuple[str, float | None]:
        """The label-free method fixed in advance (the first of LABEL_FREE present: it reads no
        label and assumes no operation) and its test accuracy."""
        method = next(m for m in LABEL_FREE if m in self.rows)
        return method, self.rows[method]["test_acc"]


#: Per family, the extraction that reads only the weights (no labels, no knowledge of the op).
#: The first of these that a model's family and task allow is its label-free extraction: the
#: re-synthesized net (per-neuron maps); else the key-frequency diagonal filter of the logits over
#: the (a, b) grid (needs the full grid of add/sub); else W_E and W_U both filtered to the key
#: frequencies of W_E (the rule's output lives at the frequencies, or irreps, of its input; the
#: memory can also use the others of W_U: on nanda-s5-noisy W_E alone gives test 88.6%, noise
#: AUROC 0.866, both 97.5%, 0.998). On a group, a two-layer net's is f^G (each neuron's dominant
#: irrep: no label, no operation).
LABEL_FREE = ("resynthesized", "key-frequency diagonal filter", "W_E+W_U filter", "f^G")

#: interp's restricted and excluded logits over the papers' logit-based key set (`logit_spectrum`),
#: beside "restricted" and "excluded" over interp's own
LOGIT_ROWS = ("restricted, logit keys", "excluded, logit keys")


@torch.no_grad()
def label_free_model(model: nn.Module, task: TaskSpec) -> tuple[str, nn.Module] | None:
    """(method, network) of a net with neuron maps' label-free extraction, of the same
    architecture: the re-synthesized net on Z_p, f^G on a group (re-synthesis is Z_p's cosines
    with phases). None for other families (their extraction is a filter of the logits)."""
    if not family_of(model).has(model, Capability.NEURON_MAPS):
        return None
    if task.group:
        return LABEL_FREE[3], dominant_split(model, task)[0]
    return LABEL_FREE[0], resynthesize(model, task.op)


@torch.no_grad()
def label_free_logits(model: nn.Module, dataset: Dataset) -> tuple[str, Float[Tensor, "pair p"]]:
    """(method, logits) of the model's label-free extraction, the first of LABEL_FREE its family
    and task allow. It reads the weights and the model's outputs over the input grid, no label."""
    task = dataset.task
    extracted = label_free_model(model, task)
    if extracted is not None:
        return extracted[0], logits(extracted[1], dataset.inputs)
    from .spectra import transformer_key_frequencies

    keys = transformer_key_frequencies(model, task)
    if dataset.sum_grid:
        return LABEL_FREE[1], diagonal_filter_logits(model, dataset, keys)
    return LABEL_FREE[2], logits(filter_residue_weights(model, task, keys, ("W_E", "W_U")), dataset.inputs)


@torch.no_grad()
def compare_extractions(model: nn.Module, dataset: Dataset, key_top: int | None = None, loss: str = DEFAULT_LOSS) -> Extraction:
    """Every extraction method for the model's family, scored on the four subsets.

    Two-layer: f^G and f^R, re-synthesis, the global key-frequency filter (the key set of
    `interp.core.key_frequencies`; with `key_top`, the top `key_top` frequencies by neuron energy), activation swaps of
    the raw model and of f^G. Transformer: restricted and excluded logits, embedding and
    unembedding filters over the key frequencies of W_E. Restricted and excluded logits use the
    task's rule directions (they know the operation, as in Nanda et al.), so they measure the
    circuit rather than extract it. Noise detection (`detect_noise`) runs on a method fixed in
    advance that reads no label (LABEL_FREE): the re-synthesized network (two-layer), else the
    key-frequency diagonal filter of the logits over the (a, b) grid, else the W_E+W_U filter.
    """
    task, op = dataset.task, dataset.task.op
    units = harmonics_of(task, family_of(model).embedding(model).shape[0])
    on_group = units.group is not None
    rows, notes, curves = {}, {}, {}

    per_neuron = family_of(model).has(model, Capability.NEURON_MAPS)
    outputs = {}

    def score(name: str, out: Tensor, note: str) -> None:
        rows[name], notes[name] = subset_metrics(out, dataset, loss), note
        if name in LABEL_FREE:
            outputs[name] = out

    # what the unembedding reads: the W_U-only filters below share it (one forward for all)
    family = family_of(model)
    before_unembedding = family.unembedding_input(model, dataset.inputs)
    raw = family.unembed(model, before_unembedding)  # the same as logits(model, dataset.inputs)
    score("raw", raw, "the trained model")
    if per_neuron:
        spectra = neuron_spectra(model, task)
        keys = spectra.ranked_frequencies()[:key_top] if key_top else spectra.key_set()
        g, r = dominant_split(model, task)
        score("f^G", logits(g, dataset.inputs), f"each neuron's dominant {units.kind} (Liu & Lu)")
        score("f^R", logits(r, dataset.inputs), f"each neuron without its dominant {units.kind}")
        if on_group:  # Chughtai et al.'s measures of the circuit, for MLPs too
            named = [units.labels[k] for k in keys]
            score("restricted", restricted_logits(model, dataset, keys),
                  f"readout activations projected on the matrix coefficients ρ(a∘b)_ij of the key irreps {named}")
            score("excluded", excluded_logits(model, dataset, keys),
                  f"logits without the matrix coefficients ρ(a∘b)_ij of the key irreps {named}")
            score(f"key-irrep filter ({len(keys)})", logits(key_frequency_filter(model, task, keys), dataset.inputs),
                  f"all neurons keep irreps {named}")
        else:
            score("resynthesized", logits(resynthesize(model, op), dataset.inputs),
                  "pure cosines at the dominant frequency, phase relation enforced")
            score(f"key-frequency filter ({len(keys)})", logits(key_frequency_filter(model, op, keys), dataset.inputs),
                  f"all neurons keep frequencies {keys}")
        for act in ("quadratic", "abs", "reverse_relu"):
            if act != family_of(model).neuron_activation(model):
                score(f"raw, {act}", logits(swap_activation(model, act), dataset.inputs), f"raw weights, φ = {act}")
                score(f"f^G, {act}", logits(swap_activation(g, act), dataset.inputs), f"f^G weights, φ = {act}")
    else:
        from .spectra import transformer_key_frequencies

        keys = transformer_key_frequencies(model, task, top=key_top)

        def filtered_logits(which: tuple[str, ...], freqs: list[int]) -> Tensor:  # W_U alone: no forward
            filtered = filter_residue_weights(model, task, freqs, which)
            return (family.unembed(filtered, before_unembedding) if which == ("W_U",)
                    else logits(filtered, dataset.inputs))

        score("restricted", restricted_logits(model, dataset, keys), f"MLP activations projected on key-{units.kind} rule directions")
        score("excluded", excluded_logits(model, dataset, keys, raw), f"logits without the key-{units.kind} rule directions")
        for which in (("W_U",), ("W_E",), ("W_E", "W_U")):
            name = "+".join(which) + " filter"
            score(name, filtered_logits(which, keys),
                  f"{' and '.join(which)} keep {'frequencies' if not on_group else 'irreps'} "
                  f"{keys if not on_group else [units.labels[k] for k in keys]}")
        ranked = unembedding_ranking(model, task)
        curves["W_U top-k"] = {k: subset_metrics(filtered_logits(("W_U",), ranked[:k]), dataset, loss)
                               for k in sorted({*range(1, 7), 8, 10, 12, 15, 20, 25, 30, 40, len(ranked)} & {*range(1, len(ranked) + 1)})}
        for k in (6, 20):  # Liu & Lu's Appendix D keeps the top 20
            if k <= len(ranked):
                rows[f"W_U top-{k}"] = curves["W_U top-k"][k]
                notes[f"W_U top-{k}"] = f"W_U keeps its {k} largest frequencies {sorted(ranked[:k])} (Liu & Lu)"
        if dataset.sum_grid:
            table = raw
            curves["function-space top-k"] = {k: subset_metrics(function_space_filter(table, dataset.p, k), dataset, loss)
                                              for k in (1, 2, 4, 6, 8, 10, 15, 20, 30, 50)}
            score("function-space top-10", function_space_filter(table, dataset.p, 10),
                  "the logit table over (a, b) keeps its 10 largest 2-D Fourier components (label-free baseline)")
            score("key-frequency activation filter", activation_filter_logits(model, dataset, keys),
                  f"readout activations keep their (Const or k) × (Const or k) terms over (a, b), k in {keys}")
            score("key-frequency diagonal filter", diagonal_filter_logits(model, dataset, keys, raw),
                  f"the logits (the final residual stream) keep their (k, k) terms over (a, b), k in {keys}")
    logit = logit_spectrum(model, task, dataset)
    if "restricted" in rows:  # the same measures over the papers' key set
        named = [units.labels[k] for k in logit.key]
        score(LOGIT_ROWS[0], restricted_logits(model, dataset, logit.key),
              f"readout activations projected on the rule directions of the logit-based key {units.kind}s {named}")
        score(LOGIT_ROWS[1], excluded_logits(model, dataset, logit.key, raw),
              f"logits without the rule directions of the logit-based key {units.kind}s {named}")
    detector = next(m for m in LABEL_FREE if m in outputs)
    detection = detect_noise(outputs[detector], dataset) if dataset.noisy_mask.any() else None
    if detection is not None:
        detection["method"] = detector
    return Extraction(family_of(model).name, keys, rows, notes, detection, curves,
                      list(units.names) if on_group else None, list(units.labels), logit)


def detect_noise(extracted: Float[Tensor, "pair p"], dataset: Dataset) -> dict:
    """Rank training examples by how much the extracted network disagrees with their observed
    label (log-probability of its top class minus that of the observed label) and score the
    ranking against the planted noise mask: AUROC, and precision/recall of flagging every
    example whose observed label is not the extracted network's top class."""
    from sklearn.metrics import roc_auc_score

    train = dataset.train_mask
    logp = torch.log_softmax(extracted.detach().double()[train], -1)
    observed = dataset.labels[train]
    score = logp.max(-1).values - logp.gather(1, observed[:, None]).squeeze(1)
    truth = dataset.noisy_mask[train]
    flagged = logp.argmax(-1) != observed
    hits = int((flagged & truth).sum())
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(truth.numpy(), score.numpy())
    keep = torch.linspace(0, len(fpr) - 1, min(len(fpr), 200)).round().long().unique()  # a curve, not every point
    edges = torch.linspace(float(score.min()), float(score.max()) + 1e-9, 41)
    return {
        "roc": {"fpr": fpr[keep.numpy()].tolist(), "tpr": tpr[keep.numpy()].tolist()},
        "histogram": {"edges": edges.tolist(),
                      "clean": torch.histogram(score[~truth].float(), edges.float()).hist.tolist(),
                      "noisy": torch.histogram(score[truth].float(), edges.float()).hist.tolist()},
        "auroc": float(roc_auc_score(truth.numpy(), score.numpy())),
        "precision": hits / max(int(flagged.sum()), 1),
        "recall": hits / max(int(truth.sum()), 1),
        "n_flagged": int(flagged.sum()),
        "n_noisy": int(truth.sum()),
    }


EXTRACTION: Analysis[Extraction] = register_analysis("filtration", "Extraction",
                  lambda run: compare_extractions(run.model, run.dataset, loss=run.spec.train.loss), order=20,
                  groups=True)


# --- figures ------------------------------------------------------------------------------


def plot_extraction(extraction, path: Path) -> Path:
    """Accuracy of each extraction method on the four subsets, as grouped bars."""
    methods = list(extraction.rows)
    fig, ax = _subplots(figsize=(max(8, 1.1 * len(methods)), 4.5))
    width = 0.2
    for i, (name, color) in enumerate(SUBSET_COLORS.items()):
        values = [extraction.rows[m][f"{name}_acc"] or 0 for m in methods]
        ax.bar([j + (i - 1.5) * width for j in range(len(methods))], values, width, color=color,
               label=SUBSET_LABELS[name])
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="accuracy", ylim=(0, 1.05), title="extracted networks on the four subsets")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def plot_noise_detection(detection: dict, path: Path) -> Path:
    """ROC curve of the noise detector and histograms of its score on clean and noisy examples."""
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    axes[0].plot(detection["roc"]["fpr"], detection["roc"]["tpr"], color=SUBSET_COLORS["noisy_observed"])
    axes[0].plot([0, 1], [0, 1], color="#bbbbbb", linestyle="--", label="chance")
    axes[0].set(xlabel="false-positive rate (clean flagged)", ylabel="true-positive rate (noisy flagged)",
                title=f"ROC, AUROC {detection['auroc']:.4f}")
    axes[0].legend(fontsize=8)
    edges = detection["histogram"]["edges"]
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    width = edges[1] - edges[0]
    for name, color in (("clean", SUBSET_COLORS["clean"]), ("noisy", SUBSET_COLORS["noisy_observed"])):
        axes[1].bar(centres, detection["histogram"][name], width, color=color, alpha=0.6, label=f"{name} training examples")
    axes[1].set(yscale="log", xlabel="log p(top class) − log p(observed label)", ylabel="examples",
                title="disagreement with the observed label")
    axes[1].legend(fontsize=8)
    return _save(fig, path)
