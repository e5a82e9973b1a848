"""Fourier spectra of trained models: per-neuron frequencies, phases, IPR; key frequencies.

Analyses are pure functions `(model, ...) -> Result`. The residue axis of every weight is read
through `residue_order`, which is the identity for add/sub/x²+y² and the discrete-log order
g⁰, g¹, …, g^{p−2} (residue 0 left out) for mul/div, where the structure is periodic.

On a task over a finite group (`TaskSpec.group`) the unit is an irrep instead of a frequency
(`core.harmonics`): power per irrep, a neuron's dominant irrep, the key irreps by the same rule.
Amplitude and phase are Z_p notions: on a group a vector's amplitude is the norm of its part in
the dominant irrep, its phase (and the phase error) NaN, and IPR is taken over irrep powers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import einops
import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..core import fourier
from ..core import key_frequencies as keyfreq
from ..core.harmonics import harmonics_of, op_of
from ..core.key_frequencies import CLUSTER_SHARE
from ..core.specs import TaskSpec
from ..families.base import Capability, family_of
from ..core.tasks import Dataset
from .logit_spectrum import LogitSpectrum, beside_weights, comparison_table, logit_spectrum
from .plots import _save, _subplots
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure, Table






def neuron_vectors(model: nn.Module) -> dict[str, Float[Tensor, "neuron p"]]:
    """Each neuron's input map of a (u), of b (v) and output map (w), indexed by residue, for
    families whose neurons read the residues directly (`ModelFamily.neuron_maps`)."""
    maps = family_of(model).neuron_maps(model)
    if maps is None:
        raise TypeError(f"the {family_of(model).name} family has no per-neuron residue maps; "
                        "use embedding_spectra")
    return maps


@dataclass(repr=False)
class NeuronSpectra(Result):
    """Per-neuron Fourier summary of a two-layer network (tensors of length width).

    freq: dominant frequency (argmax over k ≥ 1 of the summed power of u, v, w);
    amp_*/phase_*: amplitude and phase of u, v, w at that frequency (fourier.amplitude_phase);
    energy_frac: share of ‖u‖²+‖v‖²+‖w‖² at that frequency; ipr: mean IPR of u, v, w;
    phase_error: φ_u + φ_v − φ_w (add, x²+y², mul in log index) or φ_u − φ_v − φ_w (sub, div),
    wrapped to (−π, π]: 0 for a neuron that implements the rule exactly;
    power: [width, ⌊n/2⌋+1] summed power per frequency, n the length of the residue axis;
    irreps: on a group, the irreps' stored ids (`freq` and `power`'s columns then index irreps);
    labels: every unit's readable name ("k = 3", "standard (4)"; `core.unit_labels`);
    logit: the key units by the papers' logit-based definition (`logit_spectrum`), beside
    `key_set()`, interp's weight-based ones.
    """

    op: str
    p: int
    freq: Tensor
    amp_u: Tensor
    amp_v: Tensor
    amp_w: Tensor
    phase_u: Tensor
    phase_v: Tensor
    phase_w: Tensor
    energy_frac: Tensor
    ipr: Tensor
    phase_error: Tensor
    power: Tensor
    irreps: list[str] | None = None
    labels: list[str] | None = None
    logit: LogitSpectrum | None = None

    @property
    def unit(self) -> str:
        return "frequency" if self.irreps is None else "irrep"

    def unit_names(self, units: list[int]) -> list[str]:
        """Readable names ("k = 3", "standard (4)")."""
        return [self.labels[u] if self.labels else str(u) if self.irreps is None else self.irreps[u] for u in units]

    def frequency_shares(self) -> Tensor:
        """Share of the neurons' total energy held by neurons dominant at each frequency (clustered
        or not): the ranking of top-k filters, not the key set."""
        share = torch.zeros(self.power.shape[1], dtype=torch.float64)
        share.index_add_(0, self.freq, self.power.sum(1).double())
        return share / share.sum()

    def ranked_frequencies(self) -> list[int]:
        """Every frequency, by `frequency_shares`, largest first (for top-k filters)."""
        return keyfreq.ranking(self.frequency_shares())

    def clusters(self) -> tuple[Tensor, Tensor]:
        """(share of the clustered neurons' energy, number of clustered neurons) per frequency
        (`key_frequencies.cluster_evidence`)."""
        return keyfreq.cluster_evidence(self.power)

    def key_set(self) -> list[int]:
        """The network's key frequencies, in the one sense the report uses throughout (Fourier
        summary, filters, probes, localisation): `key_frequencies.key_frequencies` on its neuron
        clusters, largest share first."""
        return keyfreq.key_frequencies(*self.clusters())

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "logit"}
        out = {k: v.tolist() if torch.is_tensor(v) else v for k, v in out.items()}
        if self.irreps is None:
            del out["irreps"]  # a Z_p result serialises as it did before groups
        else:  # phases are undefined (NaN) on a group
            for name in ("phase_u", "phase_v", "phase_w", "phase_error"):
                del out[name]
        return {**out, **_key_sets(self.key_set(), self.logit, self.labels)}

    def summary(self) -> str:
        _, sizes = self.clusters()
        keys = self.key_set()
        unit = self.unit
        plural = "frequencies" if unit == "frequency" else "irreps"
        phase = ("" if self.irreps is not None else
                 f"; median |phase error| {float(self.phase_error.abs().median()):.3f} rad")
        return (f"Key {plural} ({keyfreq.rule_in_words(clusters=True, unit=unit)}; the extraction's key-{unit} filter "
                f"and the probes use the same set): {'; '.join(self.unit_names(keys)) or 'none'}"
                f"{' (clusters of ' + ', '.join(str(int(sizes[k])) for k in keys) + ' neurons)' if keys else ''}; "
                f"{int(sizes.sum())} of {len(self.freq)} neurons clustered. Median neuron energy share at its dominant {unit} "
                f"{float(self.energy_frac.median()):.3f}; median IPR {float(self.ipr.median()):.3f}{phase}."
                + ("" if self.logit is None else " " + beside_weights(keys, self.logit, self.labels, unit)))

    def tables(self) -> list[Table]:
        return _key_tables(self.key_set(), self.logit, self.labels, self.irreps, self.unit)

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        units = "irreps" if self.irreps is not None else "frequencies"
        return [Figure(plot_neuron_spectra(self, Path(out_dir) / f"{stem}.png"),
                       f"per-neuron Fourier spectra: dominant {units}, energy shares, IPR")]


def neuron_spectra(model: nn.Module, task: str | TaskSpec) -> NeuronSpectra:
    """Dominant frequency (irrep, on a group), amplitudes, phases, energy share and IPR of every
    neuron; `task` is a Z_p op's name or the run's `TaskSpec`."""
    maps = neuron_vectors(model)
    p = maps["u"].shape[1]
    units, op = harmonics_of(task, p), op_of(task)
    vecs = {name: x[:, units.order].double() for name, x in maps.items()}
    powers = {name: units.power(x) for name, x in vecs.items()}
    power = sum(powers.values())
    freq = power[:, 1:].argmax(1) + 1
    amp, phase = {}, {}
    for name, x in vecs.items():
        if units.group is None:
            amp[name], phase[name] = fourier.amplitude_phase(x, freq)
        else:  # no phase on a group: the norm of the vector's part in its neuron's dominant irrep
            amp[name] = powers[name].gather(1, freq[:, None]).squeeze(1).sqrt()
            phase[name] = torch.full_like(amp[name], float("nan"))
    sign = -1 if op in ("sub", "div") else 1
    error = fourier.wrap_phase(phase["u"] + sign * phase["v"] - phase["w"])
    total = sum((x**2).sum(1) for x in vecs.values())
    ipr = sum(units.ipr(x) for x in vecs.values()) / 3
    return NeuronSpectra(
        op=op,
        p=p,
        freq=freq,
        amp_u=amp["u"], amp_v=amp["v"], amp_w=amp["w"],
        phase_u=phase["u"], phase_v=phase["v"], phase_w=phase["w"],
        energy_frac=power.gather(1, freq[:, None]).squeeze(1) / total.clamp_min(1e-30),
        ipr=ipr,
        phase_error=error,
        power=power,
        irreps=None if units.group is None else list(units.names),
        labels=list(units.labels),
    )


def embedding_spectra(model: nn.Module, task: str | TaskSpec = "add") -> dict[str, Tensor]:
    """Power per frequency (irrep, on a group) of every residue-indexed weight, for any family:
    the embedding W_E (residue axis), the unembedding W_U (class axis) and the readout units'
    unit-to-logit map (`<readout hook>.W_out_U`, e.g. W_out·W_U of a transformer's last MLP) —
    [.., ⌊n/2⌋+1] each."""
    family = family_of(model)
    with torch.no_grad():
        embed, unembed, to_logit = family.embedding(model), family.unembedding(model), family.unit_to_logit(model)
    units = harmonics_of(task, embed.shape[0])
    order = units.order
    return {
        "W_E": units.power(embed[order].double().T),
        "W_U": units.power(unembed[:, order].double()),
        f"{family.readout_hook(model)}.W_out_U": units.power(to_logit[:, order].double()),
    }


def transformer_key_frequencies(model: nn.Module, task: str | TaskSpec = "add", top: int | None = None) -> list[int]:
    """Key frequencies (irreps, on a group) of a transformer: `key_frequencies.key_frequencies` on
    the shares of W_E's non-constant power and, for a ± b over Z_p, on its readout neurons'
    clusters over the (a, b) grid — every frequency either points to, largest embedding share
    first; with `top`, the `top` largest embedding shares instead (top-k curves)."""
    units = harmonics_of(task, family_of(model).embedding(model).shape[0])
    sizes = None if units.group is None else units.sizes()
    shares = keyfreq.embedding_evidence(embedding_spectra(model, task)["W_E"], sizes)
    if top:
        return keyfreq.ranking(shares)[:top]
    keys = set(keyfreq.key_frequencies(shares))
    if units.group is None and op_of(task) in ("add", "sub"):
        keys |= set(keyfreq.key_frequencies(*grid_cluster_evidence(model)))
    return [k for k in keyfreq.ranking(shares) if k in keys]


@torch.no_grad()
def readout_grid(model: nn.Module) -> Float[Tensor, "p p unit"]:
    """The readout units' activations (predicting position) on every pair (a, b), as a grid."""
    family = family_of(model)
    p = family.embedding(model).shape[0]
    hook = family.readout_hook(model)
    pairs = torch.cartesian_prod(torch.arange(p), torch.arange(p))
    _, cache = family.run_with_cache(model, pairs, names_filter=hook)
    return einops.rearrange(cache[hook], "(a b) unit -> a b unit", a=p)


def grid_cluster_evidence(model: nn.Module) -> tuple[Tensor, Tensor]:
    """(s, n) of `key_frequencies.clusters_evidence` from the readout neurons' activation spectra
    over the (a, b) grid (`neuron_frequencies_2d`)."""
    acts = readout_grid(model)
    freq, share, energy = _grid_frequencies(acts)
    return keyfreq.clusters_evidence(freq, share, energy, acts.shape[0] // 2)


def activation_spectrum_2d(acts: Float[Tensor, "p p neuron"]) -> Float[Tensor, "neuron p p"]:
    """2-D Fourier coefficients over (a, b) of each neuron's activation on all p² inputs."""
    return fourier.transform_2d(acts.permute(2, 0, 1).double())


def neuron_frequencies_2d(acts: Float[Tensor, "p p neuron"]) -> tuple[Tensor, Tensor]:
    """Each neuron's frequency from its activations over the (a, b) grid: the k whose 2-D terms
    (Const or k) × (Const or k), less the constant, hold the most of the non-constant power;
    returns (k, that share) per neuron (Nanda et al.'s neuron clusters)."""
    freq, share, _ = _grid_frequencies(acts)
    return freq, share


def _grid_frequencies(acts: Float[Tensor, "p p neuron"]) -> tuple[Tensor, Tensor, Tensor]:
    """(k, share, non-constant power) per neuron: `neuron_frequencies_2d` and the power its share
    is of, from one 2-D transform."""
    # power summed into blocks by (frequency of a, frequency of b), the constant left out
    blocks = fourier.frequency_power_2d(acts.permute(2, 0, 1).double())
    blocks[:, 0, 0] = 0
    k = torch.arange(1, blocks.shape[-1])
    per_k = blocks[:, k, k] + blocks[:, k, 0] + blocks[:, 0, k]
    best = per_k.argmax(1)
    energy = blocks.sum((1, 2))
    return best + 1, per_k.gather(1, best[:, None]).squeeze(1) / energy.clamp_min(1e-30), energy


def neuron_clusters(acts: Float[Tensor, "p p neuron"]) -> list[str]:
    """Each neuron's frequency cluster over the (a, b) grid (`neuron_frequencies_2d`): `k=K`
    when frequency K holds more than CLUSTER_SHARE of its power, else `unclustered`."""
    freq, share = neuron_frequencies_2d(acts)
    return [f"k={int(k)}" if s > CLUSTER_SHARE else "unclustered" for k, s in zip(freq, share)]


def cluster_order(name: str) -> tuple[bool, int]:
    """Clusters by frequency, `unclustered` last."""
    return name == "unclustered", int(name[2:]) if name.startswith("k=") else 0


@dataclass(repr=False)
class TransformerSpectra(Result):
    """Power per frequency of a transformer's residue-indexed weights (see embedding_spectra)
    and its key frequencies (`key_frequencies.key_frequencies` on W_E's non-constant power)."""

    op: str
    p: int
    key_frequencies: list[int]
    power: dict[str, Tensor]
    neuron_freq: Tensor | None = None  # last layer's MLP neurons, from activations (add/sub only)
    neuron_share: Tensor | None = None
    irreps: list[str] | None = None  # on a group: the irreps' stored ids (the units of keys and powers)
    labels: list[str] | None = None  # every unit's readable name (`core.unit_labels`)
    logit: LogitSpectrum | None = None  # the papers' logit-based key units (`logit_spectrum`)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "logit"}
        out = {k: (v.tolist() if torch.is_tensor(v) else {n: t.tolist() for n, t in v.items()}
                   if isinstance(v, dict) else v) for k, v in out.items()}
        if self.irreps is None:
            del out["irreps"]  # a Z_p result serialises as it did before groups
        return {**out, **_key_sets(self.key_set(), self.logit, self.labels)}

    @property
    def unit(self) -> str:
        return "frequency" if self.irreps is None else "irrep"

    def tables(self) -> list[Table]:
        return _key_tables(self.key_frequencies, self.logit, self.labels, self.irreps, self.unit)

    def key_set(self) -> list[int]:
        """The key frequencies, in the one sense the report uses throughout (see NeuronSpectra)."""
        return self.key_frequencies

    def summary(self) -> str:
        unit, plural = ("frequency", "frequencies") if self.irreps is None else ("irrep", "irreps")
        names = [self.labels[k] if self.labels else str(k) if self.irreps is None else self.irreps[k]
                 for k in self.key_frequencies]
        line = (f"Key {plural} ({keyfreq.rule_in_words(clusters=False, unit=unit)}; the extraction's filters and the "
                f"probes use the same set): {'; '.join(names) or 'none'}.")
        if self.neuron_freq is not None:
            clustered = self.neuron_share > CLUSTER_SHARE
            at_key = torch.isin(self.neuron_freq[clustered], torch.tensor(self.key_frequencies))
            line += (f" {int(clustered.sum())} of {len(clustered)} readout neurons have more than {CLUSTER_SHARE:.0%} of their "
                     f"activation power at one frequency; of these, {float(at_key.double().mean()) if clustered.any() else 0:.0%} "
                     "at a key frequency.")
        if self.logit is not None:
            line += " " + beside_weights(self.key_frequencies, self.logit, self.labels, unit)
        return line

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        return [Figure(plot_transformer_spectra(self, Path(out_dir) / f"{stem}.png"),
                       "power per frequency of the embedding, unembedding and readout-to-logit map")]


def _key_sets(weight_keys: list[int], logit: LogitSpectrum | None, labels: list[str] | None) -> dict:
    """The key sets as `to_dict` fields: interp's (weight-based) and the papers' (logit-based), by
    index and by readable name."""
    out = {"key_set": list(weight_keys)}
    if labels:
        out["key_set_labels"] = [labels[u] for u in weight_keys]
    if logit is not None:
        out["logit_key_set"] = {**logit.to_dict(), **({"key_labels": [labels[u] for u in logit.key]} if labels else {})}
    return out


def _key_tables(weight_keys: list[int], logit: LogitSpectrum | None, labels: list[str] | None,
                irreps: list[str] | None, unit: str) -> list[Table]:
    if logit is None or not labels:
        return []
    ids = irreps if irreps is not None else [str(u) for u in range(len(labels))]
    return [comparison_table(weight_keys, logit, labels, ids, unit)]


@torch.no_grad()
def fourier_analysis(model: nn.Module, task: str | TaskSpec, dataset: Dataset | None = None
                     ) -> NeuronSpectra | TransformerSpectra:
    """The Fourier summary for either model family (`task`: a Z_p op's name or the run's spec),
    with the papers' logit-based key units beside interp's (and, given the run's `dataset`, their
    losses at the logits)."""
    family = family_of(model)
    p = family.embedding(model).shape[0]
    logit = logit_spectrum(model, task, dataset)
    if family.has(model, Capability.NEURON_MAPS):
        result = neuron_spectra(model, task)
        result.logit = logit
        return result
    units, op = harmonics_of(task, p), op_of(task)
    result = TransformerSpectra(op, p, transformer_key_frequencies(model, task), embedding_spectra(model, task),
                                irreps=None if units.group is None else list(units.names), labels=list(units.labels),
                                logit=logit)
    if units.group is None and op in ("add", "sub"):  # the (a, b) grid is periodic in the residues themselves
        result.neuron_freq, result.neuron_share = neuron_frequencies_2d(readout_grid(model))
    return result


FOURIER: Analysis[NeuronSpectra | TransformerSpectra] = register_analysis(
    "fourier", "Fourier spectra", lambda run: fourier_analysis(run.model, run.spec.task, run.dataset), order=10,
    groups=True)


# --- figures ------------------------------------------------------------------------------


def _irrep_names(spectra) -> list[str] | None:
    """On a group, the irreps' readable names (`core.unit_labels`); None for Z_p (numbered ticks)."""
    if spectra.irreps is None:
        return None
    return spectra.labels or spectra.irreps


def _name_units(ax, names: list[str] | None, axis: str = "x", first: int = 0) -> None:
    """On a group, tick the unit axis with the irreps' names (unit `first` at position `first`)."""
    if names is not None:
        ticks = range(first, len(names))
        (ax.set_xticks if axis == "x" else ax.set_yticks)(list(ticks), [names[u] for u in ticks],
                                                          fontsize=7, rotation=90 if axis == "x" else 0)


def plot_neuron_spectra(spectra, path: Path) -> Path:
    """Per-neuron power over frequencies (irreps, on a group; sorted by the dominant one), the
    count of neurons per dominant frequency, and the IPR histogram."""
    from ..core.document import plural
    unit = "frequency k" if spectra.irreps is None else "irrep"
    power = spectra.power[:, 1:]
    order = torch.argsort(spectra.freq * 10 + (1 - spectra.energy_frac))
    normed = power[order] / power[order].sum(1, keepdim=True).clamp_min(1e-30)
    fig, axes = _subplots(1, 3, figsize=(15, 4.2))
    im = axes[0].imshow(normed.T.numpy(), aspect="auto", origin="lower", cmap="viridis",
                        extent=(0, len(order), 0.5, power.shape[1] + 0.5))
    axes[0].set(xlabel=f"neuron (sorted by dominant {unit.split()[0]})", ylabel=unit,
                title="share of each neuron's power (u+v+w)")
    _name_units(axes[0], _irrep_names(spectra), "y", first=1)
    fig.colorbar(im, ax=axes[0])
    counts = torch.bincount(spectra.freq, minlength=power.shape[1] + 1)[1:]
    axes[1].bar(range(1, len(counts) + 1), counts.numpy(), color="#555555")
    axes[1].set(xlabel=f"dominant {unit}", ylabel="neurons", title=f"dominant {plural(unit.split()[0])}")
    _name_units(axes[1], _irrep_names(spectra), first=1)
    axes[2].hist(spectra.ipr.numpy(), bins=40, color="#555555")
    axes[2].set(xlabel="IPR (mean over u, v, w; r = 2)", ylabel="neurons", title="neuron IPR")
    return _save(fig, path)


def plot_transformer_spectra(spectra, path: Path) -> Path:
    unit = "frequency k" if spectra.irreps is None else "irrep"
    names = [n for n in spectra.power if n in ("W_E", "W_U")]
    layers = [n for n in spectra.power if n.endswith("W_out_U")]
    extra = spectra.neuron_freq is not None
    fig, axes = _subplots(1, len(names) + 1 + extra, figsize=(5 * (len(names) + 1 + extra), 4))
    if extra:
        counts = torch.bincount(spectra.neuron_freq[spectra.neuron_share > CLUSTER_SHARE], minlength=spectra.p // 2 + 1)
        axes[-1].bar(range(len(counts)), counts.numpy(), color="#555555")
        axes[-1].set(xlabel="frequency k", ylabel="MLP neurons",
                     title=f"neurons with > {CLUSTER_SHARE:.0%} of their activation power at k")
        axes = axes[:-1]
    for ax, name in zip(axes, names):
        total = spectra.power[name].sum(0)
        ax.bar(range(len(total)), total.numpy(), color="#555555")
        ax.set(xlabel=f"{unit} (0 = constant)" if spectra.irreps is None else unit, ylabel="power",
               title=f"{name} power per {unit.split()[0]}")
        _name_units(ax, _irrep_names(spectra))
    last = spectra.power[layers[-1]]
    normed = last / last.sum(1, keepdim=True).clamp_min(1e-30)
    order = torch.argsort(normed[:, 1:].argmax(1))
    axes[-1].imshow(normed[order].T.numpy(), aspect="auto", origin="lower", cmap="viridis")
    axes[-1].set(xlabel="neuron (sorted)", ylabel=unit, title=f"{layers[-1]}: neuron-to-logit power")
    _name_units(axes[-1], _irrep_names(spectra), "y")
    return _save(fig, path)
