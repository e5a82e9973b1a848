"""Turn analysis results into files: JSON with every number, figures, Markdown tables.

`analyze(run, name)` computes a named analysis (pure); `write_analysis` writes it under
`RUN_DIR/analysis/`. The CLI's `interp analyze` is these two calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import plots
from .checkpoint import Run, write_json
from .filtration import Extraction, compare_extractions
from .spectra import NeuronSpectra, TransformerSpectra, fourier_analysis

ANALYSES = ("fourier", "filtration")


def analyze(run: Run, name: str) -> Any:
    """The result of analysis `name` (one of ANALYSES) on a loaded run."""
    if name == "fourier":
        return fourier_analysis(run.model, run.spec.task.op)
    if name == "filtration":
        return compare_extractions(run.model, run.dataset)
    raise ValueError(f"unknown analysis {name!r}; available: {', '.join(ANALYSES)}")


def write_analysis(run: Run, name: str, result: Any, out_dir: Path | None = None) -> list[Path]:
    """Write `result` as `<name>.json` plus its figure (and table) into `out_dir`
    (default RUN_DIR/analysis). Returns the paths written."""
    out_dir = Path(out_dir or Path(run.path) / "analysis")
    data = {"run": str(run.path), "step": run.step, "analysis": name, "result": result.to_dict()}
    paths = [out_dir / f"{name}.json"]
    write_json(paths[0], data)
    if isinstance(result, NeuronSpectra):
        paths.append(plots.plot_neuron_spectra(result, out_dir / f"{name}.png"))
    elif isinstance(result, TransformerSpectra):
        paths.append(plots.plot_transformer_spectra(result, out_dir / f"{name}.png"))
    elif isinstance(result, Extraction):
        paths.append(plots.plot_extraction(result, out_dir / f"{name}.png"))
        (out_dir / f"{name}.md").write_text(result.table() + "\n")
        paths.append(out_dir / f"{name}.md")
    return paths


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
    return str(result)
