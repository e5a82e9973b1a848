"""Turn analysis results into files: JSON with every number, figures, Markdown tables.

`analyze(run, name)` computes a named analysis (pure); `write_analysis` writes it under
`RUN_DIR/analysis/`. The CLI's `interp analyze` is these two calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import plots
from .ablation import PruningCurve, UnitScan, pruning_curve, scan_units, scan_units_hooked
from .checkpoint import Run, write_json
from .dynamics import FitSpeed, fit_speed
from .filtration import Extraction, compare_extractions
from .localize import Localization, localize
from .nets import TwoLayerNet
from .probes import ProbeResult, learning_curve, probe
from .partition import SCORES, PartitionSweep, neuron_scores, partition_sweep
from .spectra import NeuronSpectra, TransformerSpectra, fourier_analysis

ANALYSES = ("fourier", "filtration", "ablation", "partition", "localize", "probes", "dynamics")


@dataclass
class ProbeReport:
    """Probes per hook and feature source, with controls on raw features, and a learning
    curve (accuracy against probe-training examples) per feature source at the main hook."""

    probes: list[ProbeResult]
    curves: dict[str, dict[int, dict]]

    def to_dict(self) -> dict:
        return {"probes": [p.to_dict() for p in self.probes],
                "curves": {k: {str(n): v for n, v in c.items()} for k, c in self.curves.items()}}

    def table(self) -> str:
        lines = ["| hook | features | probe: test | probe: noisy vs true | model: test | model: noisy vs true "
                 "| shuffled-label control: test | random-feature control: test |", "|---|---|---|---|---|---|---|---|"]
        for r in self.probes:
            ctl = r.controls
            lines.append(f"| {r.hook} | {r.features} | {_pct(r.accuracy['test'])} | {_pct(r.accuracy['noisy_true'])} | "
                         f"{_pct(r.model_accuracy['test'])} | {_pct(r.model_accuracy['noisy_true'])} | "
                         f"{_pct(ctl['shuffled labels']['test']) if ctl else '—'} | "
                         f"{_pct(ctl['random features']['test']) if ctl else '—'} |")
        return "\n".join(lines)


def probe_report(run: Run) -> ProbeReport:
    model, ds = run.model, run.dataset
    op = ds.task.op
    keys = fourier_analysis(model, op)
    keys = keys.key_frequencies() if isinstance(keys, NeuronSpectra) else keys.key_frequencies
    if isinstance(model, TwoLayerNet):
        hooks, sources, main = ["hook_pre", "hook_post"], ["raw", "fourier", "f^G"], "hook_post"
    else:
        last = model.cfg.n_layers - 1
        hooks = [f"blocks.{last}.hook_resid_post", f"blocks.{last}.hook_attn_out", f"blocks.{last}.mlp.hook_post"]
        sources, main = ["raw", "fourier"], hooks[0]
    if op not in ("add", "sub"):
        sources = [s for s in sources if s != "fourier"]
    results = [probe(model, ds, hook, source, key_frequencies=keys, controls=source == "raw")
               for hook in hooks for source in sources]
    n_clean = int(ds.clean_mask.sum())
    sizes = sorted({n for n in (50, 100, 200, 400, 800, 1600, n_clean) if n <= n_clean})
    curves = {source: learning_curve(model, ds, main, sizes, source, keys) for source in sources}
    return ProbeReport(results, curves)


@dataclass
class AblationReport:
    """Single-unit scans (readout neurons; heads for transformers) and pruning curves in
    several orders, with random orders over `len(seeds)` seeds as the control."""

    scans: dict[str, UnitScan]
    curves: list[PruningCurve]

    def to_dict(self) -> dict:
        return {"scans": {k: v.to_dict() for k, v in self.scans.items()},
                "curves": [c.to_dict() for c in self.curves]}


@dataclass
class PartitionReport:
    """One partition sweep per score."""

    sweeps: dict[str, PartitionSweep]

    def to_dict(self) -> dict:
        return {score: sweep.to_dict() for score, sweep in self.sweeps.items()}


def ablation_report(run: Run, seeds: tuple[int, ...] = (0, 1, 2)) -> AblationReport:
    model, ds = run.model, run.dataset
    loss = run.spec.train.loss
    scans = {"neurons": scan_units(model, ds, loss=loss)}
    if not isinstance(model, TwoLayerNet):
        for layer in range(model.cfg.n_layers):
            name = f"blocks.{layer}.attn.hook_z"
            scans[name] = scan_units_hooked(model, ds, name, model.cfg.n_heads, loss=loss)
    scores = neuron_scores(model, ds)
    n = len(next(iter(scores.values())))
    orders = {}
    for score, values in scores.items():
        orders[f"{score} ascending"] = torch.argsort(values)
        orders[f"{score} descending"] = torch.argsort(values, descending=True)
    for seed in seeds:
        orders[f"random (seed {seed})"] = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    curves = [pruning_curve(model, ds, order, label, loss=loss) for label, order in orders.items()]
    return AblationReport(scans, curves)


def analyze(run: Run, name: str) -> Any:
    """The result of analysis `name` (one of ANALYSES) on a loaded run."""
    if name == "fourier":
        return fourier_analysis(run.model, run.spec.task.op)
    if name == "filtration":
        return compare_extractions(run.model, run.dataset, loss=run.spec.train.loss)
    if name == "ablation":
        return ablation_report(run)
    if name == "partition":
        if not isinstance(run.model, TwoLayerNet):
            raise ValueError("the partition analysis is for two-layer networks; use --analysis ablation")
        return PartitionReport({score: partition_sweep(run.model, run.dataset, score) for score in SCORES})
    if name == "localize":
        return localize(run.model, run.dataset, loss=run.spec.train.loss)
    if name == "probes":
        return probe_report(run)
    if name == "dynamics":
        return fit_speed(run)
    raise ValueError(f"unknown analysis {name!r}; available: {', '.join(ANALYSES)}")


def write_analysis(run: Run, name: str, result: Any, out_dir: Path | None = None) -> list[Path]:
    """Write `result` as `<name>.json` plus its figure (and table) into `out_dir`
    (default RUN_DIR/analysis). Returns the paths written."""
    out_dir = Path(out_dir or Path(run.path) / "analysis")
    data = {"run": str(run.path), "step": run.step, "analysis": name, "result": result.to_dict()}
    paths = [out_dir / f"{name}.json"]
    write_json(paths[0], data)
    paths.append(_FIGURES[type(result)](result, out_dir / f"{name}.png"))
    if hasattr(result, "table"):
        paths.append(out_dir / f"{name}.md")
        paths[-1].write_text(result.table() + "\n")
    return paths


_FIGURES = {
    NeuronSpectra: plots.plot_neuron_spectra,
    TransformerSpectra: plots.plot_transformer_spectra,
    Extraction: plots.plot_extraction,
    AblationReport: lambda result, path: plots.plot_pruning(result.curves, path),
    PartitionReport: lambda result, path: plots.plot_partition(list(result.sweeps.values()), path),
    ProbeReport: lambda result, path: plots.plot_probe_curves(result.curves, path),
    FitSpeed: plots.plot_fit_speed,
    Localization: plots.plot_localization,
}


def summary(name: str, result: Any) -> str:
    """A few lines for the terminal."""
    if isinstance(result, NeuronSpectra):
        return (f"key frequencies {result.key_frequencies()}; median neuron energy share at its dominant "
                f"frequency {float(result.energy_frac.median()):.3f}; median IPR {float(result.ipr.median()):.3f}; "
                f"median |phase error| {float(result.phase_error.abs().median()):.3f} rad")
    if isinstance(result, TransformerSpectra):
        line = f"key frequencies {result.key_frequencies}"
        if result.neuron_freq is not None and bool((result.neuron_share > 0.5).any()):
            clustered = result.neuron_share > 0.5
            line += (f"; {int(clustered.sum())}/{len(clustered)} MLP neurons have > 50% of their activation "
                     f"power at one frequency, of these "
                     f"{float(torch.isin(result.neuron_freq[clustered], torch.tensor(result.key_frequencies)).double().mean()):.0%}"
                     f" at a key frequency")
        return line
    if isinstance(result, Extraction):
        lines = [result.table()]
        if result.noise_detection:
            d = result.noise_detection
            lines.append(f"noise detection ({d['method']}): AUROC {d['auroc']:.4f}, precision "
                         f"{d['precision']:.3f}, recall {d['recall']:.3f}")
        return "\n".join(lines)
    if isinstance(result, AblationReport):
        lines = []
        for curve in result.curves:
            at = {f: i for i, f in enumerate(curve.fractions)}
            pick = [f for f in (0.3, 0.6) if f in at]
            lines.append(f"{curve.label:<24}" + "  ".join(
                f"{f:.0%} removed: test {curve.metrics['test_acc'][at[f]]:.1%}, memorised "
                f"{_pct(curve.metrics['noisy_observed_acc'][at[f]])}" for f in pick))
        return "\n".join(lines)
    if isinstance(result, PartitionReport):
        lines = []
        for score, sweep in result.sweeps.items():
            best = max(range(len(sweep.fractions)), key=lambda i: sweep.filtered_generalisation["test_acc"][i])
            lines.append(f"{score:<12} best filtered f^G_part test {sweep.filtered_generalisation['test_acc'][best]:.1%} "
                         f"at γ_G={sweep.fractions[best]}; f^G_part alone "
                         f"{max(sweep.generalisation['test_acc']):.1%} at best; whole-net filtration "
                         f"{sweep.filtered_whole['test_acc']:.1%}")
        return "\n".join(lines)
    if isinstance(result, Localization):
        return str(result.counts())
    if isinstance(result, ProbeReport):
        return result.table()
    if isinstance(result, FitSpeed):
        return (f"≥50% fitted first at step: clean {result.half_fitted['clean']}, noisy {result.half_fitted['noisy']}; "
                f"median first-fit checkpoint: {result.median_first_fit()}")
    return str(result)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"
