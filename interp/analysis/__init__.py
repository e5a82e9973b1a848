"""The analyses. Each module computes one analysis and registers it (`registry.register_analysis`);
importing this package registers them all. Shared building blocks sit below them: `readout`
(the readout units' linear effect on the logits, margins and pushes) and `neurons` (per-neuron
maps and their surgery).
"""

from . import (  # noqa: E402,F401
    ablation, circuit, class_subspaces, dynamics, edit, errors, example_flips, feature_edit, filtration, layer_rewind,
    localize, partition,
    patching, probes, spectra, suspect_neurons)
from .registry import ANALYSES, Analysis, Result, analyze, register_analysis

__all__ = ["ANALYSES", "Analysis", "Result", "analyze", "register_analysis"]
