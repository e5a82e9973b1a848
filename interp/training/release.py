"""Released checkpoints: `models/<name>/` folders and `interp.load(name)`.

A release is a run directory without its optimizer state: `config.json`, `model.safetensors`,
`dataset.safetensors`, `history.json`, optionally a trajectory (`checkpoints/step_N/` with the
weights, history and state of every `trajectory_every`-th step, so progress measures over
training can be computed from the release alone; it cannot be resumed), and a `MODEL_CARD.md`
written from the run (how it was trained, its per-subset accuracies, its extraction numbers
when `analysis/filtration.json` exists, how to load it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..core.tasks import SUBSETS
from .rundir import CheckpointError, Run, checkpoint_dir, load_run, trajectory_steps


def _models_dir() -> Path:
    """$INTERP_MODELS; else `interp/models/` inside an installed wheel; else the checkout's
    top-level `models/` (source tree and editable installs)."""
    if os.environ.get("INTERP_MODELS"):
        return Path(os.environ["INTERP_MODELS"])
    here = Path(__file__).resolve().parent
    installed, checkout = here.parent / "models", here.parent.parent / "models"
    return installed if installed.is_dir() else checkout


#: Where released models live (see `_models_dir`).
MODELS_DIR = _models_dir()


def available() -> list[str]:
    return sorted(d.name for d in MODELS_DIR.iterdir() if (d / "config.json").exists()) if MODELS_DIR.is_dir() else []


def resolve(name_or_path: str | Path) -> Path:
    """The folder of a run directory given by path, or of a released model given by name."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if (MODELS_DIR / str(name_or_path)).is_dir():
        return MODELS_DIR / str(name_or_path)
    raise CheckpointError(f"no run directory or released model {str(name_or_path)!r}; released: {', '.join(available()) or 'none'}")


def load(name_or_path: str | Path) -> Run:
    """A run directory by path, or a released model by name (see `available()`)."""
    return load_run(resolve(name_or_path))


def export(run_dir: Path, dest: Path, command: str = "", trajectory_every: int | None = None) -> Path:
    """Copy the final model of `run_dir` to `dest` and write its model card; with
    `trajectory_every`, also the weights of the trajectory checkpoints at multiples of it."""
    run = load_run(run_dir)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "dataset.safetensors", "history.json"):
        shutil.copy2(Path(run_dir) / name, dest / name)
    if trajectory_every:
        for step in trajectory_steps(run_dir):
            if step % trajectory_every == 0:
                source, target = checkpoint_dir(run_dir, step), checkpoint_dir(dest, step)
                target.mkdir(parents=True, exist_ok=True)
                for name in ("model.safetensors", "history.json", "state.json"):
                    shutil.copy2(source / name, target / name)
    extraction = Path(run_dir) / "analysis" / "filtration.json"
    (dest / "MODEL_CARD.md").write_text(model_card(run, dest.name, command,
                                                   json.loads(extraction.read_text()) if extraction.exists() else None))
    return dest




def model_card(run: Run, name: str, command: str, extraction: dict | None) -> str:
    spec = run.spec
    last = run.final_metrics
    noise = (f"{spec.noise.kind} label noise at rate {spec.noise.rate}" if run.dataset.noise is not None
             else run.dataset.describe_noise())
    lines = [f"# {name}", "",
             f"{spec.model.arch} network on `{spec.task.op}` mod {spec.task.p}, "
             f"{noise}, trained {run.step} steps.", ""]
    if command:
        lines += ["Trained with:", "", "```bash", command, "```", ""]
    lines += ["## Accuracy at the end of training", "", "| subset | accuracy | loss |", "| --- | --- | --- |"]
    for subset in SUBSETS:
        acc, loss = last.get(f"{subset}_acc"), last.get(f"{subset}_loss")
        lines.append(f"| {subset} | {'—' if acc is None else f'{acc:.2%}'} | {'—' if loss is None else f'{loss:.4g}'} |")
    if extraction is not None:
        result = extraction["result"]
        lines += ["", "## Extraction (`interp analyze RUN_DIR --analysis filtration`)", "",
                  "| method | clean | noisy vs observed | noisy vs true | test |", "| --- | --- | --- | --- | --- |"]
        for method, m in result["rows"].items():
            cells = ["—" if m[f"{s}_acc"] is None else f"{m[f'{s}_acc']:.1%}" for s in SUBSETS]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        if result.get("noise_detection"):
            d = result["noise_detection"]
            lines += ["", f"Noise detection ({d['method']}): AUROC {d['auroc']:.4f}, precision {d['precision']:.3f}, "
                          f"recall {d['recall']:.3f}."]
    lines += ["", "## Loading", "", "```python", "import interp", "", f'run = interp.load("{name}")',
              "logits = interp.logits(run.model, run.dataset.inputs)", "```", "",
              "Without `interp` (TransformerLens 4.x or plain PyTorch): see docs/checkpoints.md.",
              "", "## Full spec", "", "```json", json.dumps(spec.to_dict(), indent=2), "```", ""]
    return "\n".join(lines)
