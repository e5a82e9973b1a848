"""The papers' key frequencies and irreps, read from the logits (Nanda et al. 2023; Chughtai et al.
2023), beside interp's, which are read from the weights (`core.key_frequencies`).

Their definition, as their code computes it (Chughtai et al.'s `Metrics.logit_trace_similarity`
and `determine_key_reps`; for Z_p the same as Nanda et al.'s `calculate_coefficients`, the logits'
coefficient along cos(w_k(a + b − c))): over all |G|² pairs (a, b) and every class c, the model's
logits centred over classes form one vector L̃; each non-trivial unit u (a frequency, or an irrep)
gives the trace tensor T_u[a, b, c] = χ_u((a∘b) ∘ c⁻¹), χ_u its real character (for Z_p,
2cos(2πk(a∘b − c)/p) in the residue order of the op). The similarity s_u = cos(L̃, T_u); s_u² is
the fraction of the logits' variance the unit explains (the T_u are orthogonal, so the fractions
add up to at most 1: their `percent_logits_explained`); u is key when s_u > SIMILARITY.

Their losses at the logits (`total_logit_excluded_and_restricted_loss`, the values of issue 23's
table): L̃ keeps (restricted) or loses (excluded) its component along each key unit's T_u — one
direction per unit — and is scored by cross-entropy on all pairs against a∘b (restricted) and on
the training pairs against their observed labels (excluded).

T_u is computed from the task's orthonormal basis rows (`Harmonics.basis`): Σ_{r ∈ u} b_r(x) b_r(y)
is proportional to χ_u(x y⁻¹) (the kernel of the projection onto the unit's functions), so the
similarity needs only the logits' coefficients in that basis, never the |G|³ tensor. A class
outside the read order (residue 0 for mul/div) has no place in any T_u.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..core.harmonics import Harmonics, harmonics_of
from ..core.specs import TaskSpec
from ..core.tasks import Dataset, apply_op, task_labels
from ..families.base import family_of, logits

#: Chughtai et al.'s bar on the similarity of a key irrep (`determine_key_reps`: > 0.005)
SIMILARITY = 0.005


def rule_in_words(unit: str = "frequency") -> str:
    """The logit-based rule as the summaries state it."""
    trace = "cos(2πk(a∘b − c)/p)" if unit == "frequency" else "χ(a∘b∘c⁻¹)"
    return (f"Nanda et al.'s and Chughtai et al.'s definition, read from the logits: every {unit} whose "
            f"trace tensor {trace} has cosine similarity above {SIMILARITY:g} with the centred logits "
            "of all pairs; its square is the fraction of the logits' variance it explains")


@dataclass(repr=False)
class LogitSpectrum:
    """`similarity[u]`: cos(L̃, T_u) (0 for the trivial unit); `key`: the units with similarity
    above SIMILARITY, largest first; the paper's losses at the logits over `key` (None where the
    run's dataset was not given)."""

    similarity: Tensor
    key: list[int]
    restricted_loss: float | None = None
    excluded_loss: float | None = None

    @property
    def fraction(self) -> Tensor:
        """The fraction of the centred logits' variance each unit explains (s_u²)."""
        return self.similarity.square()

    def to_dict(self) -> dict:
        return {"key": self.key, "similarity": self.similarity.tolist(), "fraction": self.fraction.tolist(),
                "restricted_loss": self.restricted_loss, "excluded_loss": self.excluded_loss,
                "similarity_bar": SIMILARITY}

    def described(self, labels: tuple[str, ...] | list[str], most: int = 8) -> str:
        """"standard (4) (94.1%); sign (5.88%)" (labels such as "2-dim, k = 7" hold commas): the key units with their fractions (the first
        `most`, then how many more), or "none"."""
        shown = "; ".join(f"{labels[u]} ({100 * float(self.fraction[u]):.3g}%)" for u in self.key[:most])
        more = len(self.key) - most
        return (shown + (f"; and {more} more, each under {100 * float(self.fraction[self.key[most]]):.3g}%"
                         if more > 0 else "")) or "none"


def _grid(p: int) -> Int[Tensor, "pair 2"]:
    return torch.cartesian_prod(torch.arange(p), torch.arange(p))


def _op(task: str | TaskSpec) -> str:
    return task.op if isinstance(task, TaskSpec) else task


def _answers(task: str | TaskSpec, pairs: Tensor, p: int) -> Tensor:
    if isinstance(task, TaskSpec):
        return task_labels(task, pairs[:, 0], pairs[:, 1])
    return apply_op(task, pairs[:, 0], pairs[:, 1], p)


def _at_answers(answers: Tensor, units: Harmonics, p: int) -> tuple[Tensor, Tensor]:
    """(the basis rows and their unit, each row's value b_r(a∘b) at every pair's answer [pair, row];
    zero where the answer is outside the read order)."""
    basis, unit = units.basis()
    position = torch.full((p,), -1, dtype=torch.long)
    position[units.order] = torch.arange(len(units.order))
    where = position[answers]
    at = torch.zeros(len(answers), basis.shape[0], dtype=torch.float64)
    at[where >= 0] = basis[:, where[where >= 0]].T
    return basis, unit, at


def trace_similarity(table: Float[Tensor, "pair p"], answers: Int[Tensor, " pair"], units: Harmonics
                     ) -> Float[Tensor, " unit"]:
    """cos(L̃, T_u) for every unit u (0 for the trivial one), L̃ the logits of every pair centred
    over classes."""
    p = table.shape[1]
    centred = table.double() - table.double().mean(-1, keepdim=True)
    basis, unit, at = _at_answers(answers, units, p)
    coeff = centred[:, units.order] @ basis.T  # [pair, row]: each pair's logits in the basis
    inner = torch.zeros(units.n_units, dtype=torch.float64).index_add_(0, unit, (coeff * at).sum(0))
    norm = torch.zeros(units.n_units, dtype=torch.float64).index_add_(0, unit, at.square().sum(0)).sqrt()
    similarity = inner / (norm * centred.norm()).clamp_min(1e-300)
    similarity[0] = 0.0  # the trivial unit's T is constant over classes: nothing of it survives centring
    return similarity


def key_units(similarity: Tensor) -> list[int]:
    """The units with similarity above SIMILARITY, largest first (ties by unit order)."""
    order = torch.argsort(similarity, descending=True, stable=True).tolist()
    return [u for u in order if u > 0 and float(similarity[u]) > SIMILARITY]


def paper_logit_losses(table: Float[Tensor, "pair p"], answers: Int[Tensor, " pair"], units: Harmonics,
                       key: list[int], train: Tensor, observed: Tensor) -> tuple[float, float]:
    """(restricted, excluded): the centred logits' component along the key units' trace tensors,
    cross-entropy on all pairs against `answers`; the rest, on the pairs `train` (a mask or
    indices over the pairs) against `observed`."""
    p = table.shape[1]
    centred = table.double() - table.double().mean(-1, keepdim=True)
    basis, unit, at = _at_answers(answers, units, p)
    kept = torch.zeros_like(centred)
    for u in key:
        rows = unit == u
        trace = torch.zeros_like(centred)
        trace[:, units.order] = at[:, rows] @ basis[rows]  # T_u over [pair, class]
        direction = trace / trace.norm()
        kept += (centred * direction).sum() * direction

    def ce(out: Tensor, labels: Tensor) -> float:
        return float(-torch.log_softmax(out, -1).gather(1, labels[:, None]).mean())

    return ce(kept, answers), ce((centred - kept)[train], observed)


@torch.no_grad()
def logit_spectrum(model: nn.Module, task: str | TaskSpec, dataset: Dataset | None = None) -> LogitSpectrum:
    """The logit-based key units of `model` over the pairs of `dataset` (train and test: every
    pair of the task, for a dataset made by `make_dataset`), or without one over every pair of
    the task; with `dataset`, also the paper's losses (its training pairs and observed labels)."""
    p = family_of(model).embedding(model).shape[0]
    units = harmonics_of(task, p)
    if dataset is None:
        pairs = _grid(p)
        if _op(task) == "div":  # a / 0 is no pair of the task
            pairs = pairs[pairs[:, 1] != 0]
        answers = _answers(task, pairs, p)
    else:
        pairs, answers = dataset.inputs, dataset.true_labels
    table = logits(model, pairs).double()
    similarity = trace_similarity(table, answers, units)
    key = key_units(similarity)
    if dataset is None:
        return LogitSpectrum(similarity, key)
    train = dataset.train_mask
    restricted, excluded = paper_logit_losses(table, answers, units, key, train, dataset.labels[train])
    return LogitSpectrum(similarity, key, restricted, excluded)


def beside_weights(weight_keys: list[int], logit: LogitSpectrum, labels, unit: str = "frequency") -> str:
    """One sentence: the logit-based key set with each unit's fraction of the logits' variance,
    and how interp's weight-based set differs from it."""
    plural = "frequencies" if unit == "frequency" else "irreps"
    only_logit = [labels[u] for u in logit.key if u not in weight_keys]
    only_weight = [labels[u] for u in weight_keys if u not in logit.key]

    def listed(names: list[str]) -> str:
        return "; ".join(names) if len(names) <= 8 else f"{len(names)} {plural} ({'; '.join(names[:3])}; …)"

    if not only_logit and not only_weight:
        diff = "the same set as the weight-based one"
    else:
        diff = "; ".join(part for part in (
            f"the weight-based set leaves out {listed(only_logit)}" if only_logit else "",
            f"it adds {listed(only_weight)}" if only_weight else "") if part)
    line = (f"Key {plural} by the logits ({rule_in_words(unit)}): {logit.described(labels)}, together "
            f"{float(logit.fraction[logit.key].sum()):.1%} of the logits' variance — {diff}.")
    if logit.restricted_loss is not None:
        line += (f" Their losses at the logits over these {plural} (one trace direction each): restricted "
                 f"{logit.restricted_loss:.4g} (all pairs), excluded {logit.excluded_loss:.4g} (training pairs).")
    return line


def comparison_table(weight_keys: list[int], logit: LogitSpectrum, labels, ids, unit: str = "frequency"):
    """The units key by either definition, one row each: its name, stored id, key by the weights,
    fraction of the logits' variance, key by the logits."""
    from ..core.document import Table

    units = sorted(set(weight_keys) | set(logit.key), key=lambda u: (-float(logit.fraction[u]), u))
    rows = [[labels[u], ids[u], "yes" if u in weight_keys else "no", f"{float(logit.fraction[u]):.2%}",
             f"{float(logit.similarity[u]):.4f}", "yes" if u in logit.key else "no"] for u in units]
    plural = "frequencies" if unit == "frequency" else f"{unit}s"
    caption = f"key {plural} by both definitions"
    if logit.restricted_loss is not None:
        caption += (f"; the papers' losses at the logits over the logit-based set: restricted "
                    f"{logit.restricted_loss:.4g} (all pairs), excluded {logit.excluded_loss:.4g} (training pairs)")
    return Table([unit, "id", "key by the weights (interp)", "share of logit variance",
                  "trace similarity", f"key by the logits (> {SIMILARITY:g})"], rows, caption)
