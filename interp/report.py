"""Turn analysis results into files: JSON with every number, figures, Markdown tables.

`analyze(run, name)` computes a named analysis (pure); `write_analysis` writes it under
`RUN_DIR/analysis/`. The CLI's `interp analyze` is these two calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import plots
from .ablation import PruningCurve, UnitScan, pruning_curve, scan_units, scan_units_hooked
from .checkpoint import Run, write_json
from .dynamics import FitSpeed, fit_speed
from .filtration import Extraction, compare_extractions
from .localize import Localization, localize, plural
from .families.two_layer import TwoLayerNet
from .partition import SCORES, PartitionSweep, neuron_scores, partition_sweep
from .spectra import NeuronSpectra, TransformerSpectra, fourier_analysis

if TYPE_CHECKING:
    from .probes import ProbeResult

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
    from .probes import learning_curve, probe  # scikit-learn: 1.5 s of imports, only for probes

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
    sizes = [n for n in (50, 100, 200, 400, 800, 1600) if n < n_clean]
    # each curve ends at all clean examples: the probe fitted above, not fitted again
    on_all = {r.features: r.accuracy for r in results if r.hook == main}
    curves = {source: {**learning_curve(model, ds, main, sizes, source, keys), n_clean: on_all[source]}
              for source in sources}
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
            best = sweep.best_filtered()
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


# --- the full report ------------------------------------------------------------------------


def _extraction_headline(extraction: Extraction) -> dict[str, Any]:
    detector, detector_acc = extraction.label_free()
    tested = {k: v["test_acc"] for k, v in extraction.rows.items() if k != "raw" and v["test_acc"] is not None}
    best = max(tested, key=tested.get) if tested else None
    return {"label_free_method": detector, "label_free_test_acc": detector_acc,
            "best_method": best, "best_test_acc": tested.get(best),
            "noise_auroc": extraction.noise_detection["auroc"] if extraction.noise_detection else None}


def _components_line(loc: Localization) -> str:
    parts = []
    for kind, counts in loc.counts().items():
        order = ("memorising", "generalising", "mixed", "inert")
        parts.append(f"{plural(kind)}: " + ", ".join(f"{counts[k]} {k}" for k in order if k in counts))
    return "; ".join(parts)


def _pruning_table(report: AblationReport):
    from .document import Table

    rows = []
    for curve in report.curves:
        at = {f: i for i, f in enumerate(curve.fractions)}
        cells = [curve.label]
        for f in (0.3, 0.6):
            i = at.get(f)
            cells += ["—", "—"] if i is None else [_pct(curve.metrics["test_acc"][i]),
                                                   _pct(curve.metrics["noisy_observed_acc"][i])]
        rows.append(cells)
    return Table(["order", "30% removed: test", "30%: memorised", "60% removed: test", "60%: memorised"], rows)


def _partition_table(report: PartitionReport):
    from .document import Table

    rows = []
    for score, sweep in report.sweeps.items():
        best = sweep.best_filtered()
        rows.append([score, _pct(max(sweep.generalisation["test_acc"])),
                     f"{_pct(sweep.filtered_generalisation['test_acc'][best])} (γ_G = {sweep.fractions[best]})",
                     _pct(sweep.filtered_whole["test_acc"])])
    return Table(["score", "f^G_part alone: best test", "f^G_part filtered: best test", "whole net filtered: test"],
                 rows)


def write_report(run: Run, out_dir: Path | str, progress: bool = True) -> dict[str, Any]:
    """Run every analysis that applies to `run` and write `report.html` (self-contained),
    `report.md` with its PNG figures, and `results.json` with every number into `out_dir`.
    Returns the contents of `results.json`. Sections that need something the run lacks (a
    trajectory for per-example fitting, a two-layer net for the partition) say so."""
    from tqdm.auto import tqdm

    from .document import Figure, Section, Table, write
    from .metrics import PHASE_HIGH, PHASE_LOW, phase
    from .tasks import SUBSETS

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec, final = run.spec, run.final_metrics
    two_layer = isinstance(run.model, TwoLayerNet)
    names = [n for n in ANALYSES if two_layer or n != "partition"]
    skipped = {} if two_layer else {"partition": "the task-agnostic partition is defined for two-layer networks"}
    results: dict[str, Any] = {}
    for name in tqdm(names, desc="report", disable=not progress):
        results[name] = analyze(run, name)
        write_analysis(run, name, results[name], out_dir)
    has_trajectory = bool(results["dynamics"].checkpoint_steps)
    if not has_trajectory:
        skipped["per-example fitting"] = "the run has no checkpoint trajectory (released models keep only final weights)"

    label = phase(final)
    plots.plot_history(run.history, out_dir / "training.png", title=f"training curves — phase: {label}")
    extraction = _extraction_headline(results["filtration"])
    components = _components_line(results["localize"])
    pct = _pct
    model_line = (f"{spec.model.arch} network" + (f", width {spec.model.width}, {spec.model.act}" if two_layer else "")
                  + f", `{spec.task.op}` mod {spec.task.p}, {spec.noise.kind} label noise at {spec.noise.rate:.0%}, "
                  f"{run.step} steps")
    headline = {
        "model": model_line, "phase": label, "raw_test_acc": final["test_acc"],
        "memorised_acc": final["noisy_observed_acc"], **extraction, "components": results["localize"].counts(),
    }
    data = {"run": str(run.path), "step": run.step, "spec": spec.to_dict(), "final_metrics": final,
            "headline": headline, "skipped": skipped,
            "analyses": {name: result.to_dict() for name, result in results.items()}}
    write_json(out_dir / "results.json", data)

    fig = lambda name, caption: Figure(out_dir / f"{name}.png", caption)  # noqa: E731
    sections = [
        Section("Headline", [
            f"**Model:** {model_line}. **Phase:** {label}.",
            Table(["", "test accuracy"], [
                ["raw model", pct(final["test_acc"])],
                [f"extracted from the weights ({extraction['label_free_method']}, label-free)",
                 pct(extraction["label_free_test_acc"])],
                [f"best extraction ({extraction['best_method']})", pct(extraction["best_test_acc"])]]),
            f"**Memorised:** {pct(final['noisy_observed_acc'])} of the noisy training labels are fitted. "
            + (f"Noise detection from the extracted network: AUROC {extraction['noise_auroc']:.4f}. "
               if extraction["noise_auroc"] is not None else ""),
            f"**Which components memorise:** {components} (see Localisation).",
        ]),
        Section("Training", [
            Table(["subset", "accuracy", "loss"], [[s, pct(final.get(f"{s}_acc")),
                  "—" if final.get(f"{s}_loss") is None else f"{final[f'{s}_loss']:.4g}"] for s in SUBSETS]),
            f"Phase rule (after Doshi et al.): test ≥ {PHASE_HIGH:.0%} with memorised ≥ {PHASE_HIGH:.0%} is "
            f"coexistence, with memorised ≤ {PHASE_LOW:.0%} full inversion, otherwise partial inversion; "
            f"test < {PHASE_HIGH:.0%} with memorised ≥ {PHASE_HIGH:.0%} is memorisation, otherwise forgetting.",
            fig("training", "accuracy per subset during training (one colour per subset throughout)"),
        ]),
        Section("Fourier spectra", [summary("fourier", results["fourier"]),
                                    fig("fourier", "Fourier spectra of the weights")]),
        Section("Extraction", [Table.from_markdown(results["filtration"].table()),
                               fig("filtration", "accuracy per subset of each extracted network")]),
        Section("Pruning", [_pruning_table(results["ablation"]),
                            fig("ablation", "accuracy per subset as units are removed in each order")]),
    ]
    if "partition" in results:
        sections.append(Section("Task-agnostic partition", [
            "f^G_part keeps the top γ_G of neurons by a score; it is compared with frequency filtration "
            "(each neuron's dominant frequency) of f^G_part and of the whole network.",
            _partition_table(results["partition"]), fig("partition", "partition sweeps")]))
    else:
        sections.append(Section("Task-agnostic partition", [f"Skipped: {skipped['partition']}."]))
    sections += [
        Section("Linear probes", [Table.from_markdown(results["probes"].table()),
                                  fig("probes", "probe accuracy against the number of probe-training examples")]),
        Section("Localisation", [
            f"Counts: {components}. A component is inert when neither of its ablation effects reaches "
            f"{results['localize'].thresholds['inert']:.0%} of the largest of its kind, generalising or memorising "
            f"when one effect is {results['localize'].thresholds['ratio']:g}× the other, mixed otherwise.",
            Table.from_markdown(results["localize"].table()),
            fig("localize", "ablation effect on memorised vs. clean labels per component")]),
        Section("Which labels are fitted first", [
            summary("dynamics", results["dynamics"]),
            *([] if has_trajectory else [f"Per-example first-fit steps skipped: {skipped['per-example fitting']}."]),
            fig("dynamics", "fraction of clean and noisy training examples fitted over training")]),
    ]
    write(out_dir, f"interp report: {Path(str(run.path)).name}", sections)
    return data
