"""interp: which components of a network trained on noisy modular arithmetic memorise the noise,
and which carry the generalising circuit.

Layers, each importing only from those before it: `core` (specs, tasks and datasets, Fourier,
metrics), `families` (model families and importers), `training` (trainer, run directories,
presets, releases), `analysis` (the registered analyses), `reporting` (reports, model cards);
`sweep`, `planted` and `cli` sit on top.
"""

__version__ = "0.1.0"

from . import analysis, families, reporting  # noqa: E402,F401
from .analysis import ANALYSES, analyze
from .core.metrics import subset_metrics
from .core.specs import NoiseSpec, RunSpec, SpecError, TaskSpec, TrainSpec, TransformerSpec, TwoLayerSpec
from .core.tasks import SUBSETS, Dataset, make_dataset
from .families import build_model, logits, tokens
from .families.mlp import MLPNet, MLPSpec
from .families.two_layer import TwoLayerNet
from .reporting import report  # noqa: E402,F401  (interp.report.write_report without a separate import)
from .training.importing import import_checkpoint
from .training.presets import PRESETS, get_preset
from .training.release import load
from .training.rundir import CheckpointError, Run, load_run, save_run
from .training.train import TrainingDiverged, evaluate, train
from .extensions import load_extensions

load_extensions()  # families and analyses of installed packages (entry points), after the built-ins

__all__ = [
    "ANALYSES", "analyze", "CheckpointError", "Dataset", "NoiseSpec", "PRESETS", "Run", "RunSpec", "SUBSETS", "SpecError",
    "MLPNet", "MLPSpec", "TaskSpec", "TrainSpec", "TrainingDiverged", "TransformerSpec", "TwoLayerNet", "TwoLayerSpec",
    "build_model", "evaluate", "get_preset", "import_checkpoint", "load", "load_run", "logits", "make_dataset", "save_run",
    "subset_metrics", "tokens", "train",
]
