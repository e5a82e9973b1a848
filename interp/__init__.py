"""interp: which components of a network trained on noisy modular arithmetic memorise the noise,
and which carry the generalising circuit."""

__version__ = "0.1.0"

from .checkpoint import CheckpointError, Run, load_run, save_run
from .registry import ANALYSES, analyze
from .metrics import subset_metrics
from .nets import TwoLayerNet, build_model, logits, tokens
from .presets import PRESETS, get_preset
from .release import load
from .specs import NoiseSpec, RunSpec, SpecError, TaskSpec, TrainSpec, TransformerSpec, TwoLayerSpec
from .tasks import SUBSETS, Dataset, make_dataset
from .train import TrainingDiverged, evaluate, train

# every analysis module registers itself in interp.registry.ANALYSES on import
from . import ablation, circuit, dynamics, filtration, localize, partition, patching, probes, spectra  # noqa: E402,F401
from . import families, report  # noqa: E402,F401  (interp.report.write_report without a separate import)

__all__ = [
    "ANALYSES", "analyze", "CheckpointError", "Dataset", "NoiseSpec", "PRESETS", "Run", "RunSpec", "SUBSETS", "SpecError",
    "TaskSpec", "TrainSpec", "TrainingDiverged", "TransformerSpec", "TwoLayerNet", "TwoLayerSpec",
    "build_model", "evaluate", "get_preset", "load", "load_run", "logits", "make_dataset", "save_run",
    "subset_metrics", "tokens", "train",
]
