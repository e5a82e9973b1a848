"""Released checkpoints: `models/<name>/` folders and `interp.load(name)`.

A release is a run directory without its optimizer state: `config.json`, `model.safetensors`,
`dataset.safetensors`, `history.json`, optionally a trajectory (`checkpoints/step_N/` with the
weights, history and state of every `trajectory_every`-th step, or of the `trajectory_steps`
named, so progress measures over training can be computed from the release alone; it cannot be
resumed), and a `MODEL_CARD.md` written from the run (how it was trained, its per-subset
accuracies, its extraction numbers when `analysis/filtration.json` exists, how to load it;
`interp.reporting.cards.refresh_card` adds the localisation's intervention table and the edit,
or on a run over features the analyses that apply to it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

from ..core import file_safety
from ..core.features import FEATURE_SETS
from ..core.tasks import SUBSETS
from . import rundir
from .rundir import CheckpointError, Run, checkpoint_dir, load_run, trajectory_steps

#: what a release copies of a run directory, and of each trajectory checkpoint (no optimizer state)
RELEASE_FILES = ("config.json", "model.safetensors", "dataset.safetensors", "history.json")
RELEASE_CHECKPOINT_FILES = ("model.safetensors", "history.json", "state.json")


#: how a release of each architecture loads without interp, where docs/checkpoints.md has its
#: own section for it (the others: TransformerLens 4.x or plain PyTorch)
PLAIN_LOADING = {"mlp": 'plain PyTorch, "Load an MLP over features in plain PyTorch"',
                 "token_transformer": 'plain PyTorch, "Load a transformer over feature tokens in plain PyTorch"'}


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
    if str(name_or_path) == "":
        raise CheckpointError("no run directory given (an empty path)")
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if (MODELS_DIR / str(name_or_path)).is_dir():
        return MODELS_DIR / str(name_or_path)
    raise CheckpointError(f"no run directory or released model {str(name_or_path)!r}; released: {', '.join(available()) or 'none'}")


def load(name_or_path: str | Path) -> Run:
    """A run directory by path, or a released model by name (see `available()`)."""
    return load_run(resolve(name_or_path))


def export(run_dir: Path, dest: Path, command: str = "", trajectory_every: int | None = None,
           replace: bool = False, trajectory_steps: Sequence[int] | None = None) -> Path:
    """Copy the final model of `run_dir` to `dest` and write its model card; with
    `trajectory_every`, also the weights of the trajectory checkpoints at multiples of it; with
    `trajectory_steps`, of those steps (each one a checkpoint of the run: a release whose
    weights are large keeps the few that its analyses read). Every file copied is the verified
    one; the release is assembled beside `dest`, given its own manifest and renamed into place,
    under `dest`'s lock. A non-empty `dest` is refused
    unless `replace`, and then replaced atomically (never merged)."""
    run_dir, dest = Path(run_dir), Path(dest)
    _refuse_overlap(run_dir, dest)
    if trajectory_every is not None and (not isinstance(trajectory_every, int) or trajectory_every < 1):
        raise ValueError(f"--trajectory-every must be a positive integer, got {trajectory_every!r}")
    if trajectory_every is not None and trajectory_steps is not None:
        raise ValueError("give --trajectory-every or --trajectory-steps, not both")
    with rundir.locked(dest):
        rundir.refuse_nonempty(dest, replace, "release folder")
        run = load_run(run_dir)
        steps = _released_steps(run_dir, trajectory_every, trajectory_steps)
        extraction = _extraction(run_dir)
        scratch = rundir.scratch_beside(dest)
        try:
            _assemble(run_dir, scratch, steps)
            rundir.write_text(scratch / "MODEL_CARD.md", model_card(run, dest.name, command, extraction))
            rundir.replace_folder(scratch, dest)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return dest


def _refuse_overlap(run_dir: Path, dest: Path) -> None:
    source, target = run_dir.resolve(), dest.resolve()
    if source == target or source in target.parents or target in source.parents:
        raise CheckpointError(f"cannot export {run_dir} into {dest}: one folder holds the other; choose another --to")


def _released_steps(run_dir: Path, every: int | None, named: Sequence[int] | None) -> list[int]:
    """The trajectory steps a release copies: the run's checkpoints at multiples of `every`, or
    the `named` ones, each of which must be a checkpoint of the run."""
    have = trajectory_steps(run_dir)
    if named is not None and any(isinstance(step, bool) or not isinstance(step, int) for step in named):
        raise ValueError(f"--trajectory-steps must be integer steps, got {list(named)!r}")
    if named is None:
        return [step for step in have if every and not step % every]
    missing = [step for step in named if step not in have]
    if missing:
        raise ValueError(f"--trajectory-steps: {', '.join(map(str, missing))} not a trajectory checkpoint of {run_dir} "
                         f"(it has {', '.join(map(str, have)) or 'none'})")
    return sorted(set(named))


def _extraction(run_dir: Path) -> dict | None:
    path = run_dir / "analysis" / "filtration.json"
    return rundir.read_json(path) if os.path.lexists(path) else None


def _assemble(run_dir: Path, scratch: Path, steps: list[int]) -> None:
    """Write the release's files into `scratch` from their verified bytes, with the trajectory
    checkpoints at `steps`, then its manifests."""
    files = rundir.read_manifest(run_dir)
    manifest = {name: file_safety.atomic_write_bytes(scratch / name, rundir.read_verified(run_dir, name, files))
                for name in RELEASE_FILES}
    for step in steps:
        source, own, _ = rundir.read_checkpoint(run_dir, step, files)
        target = checkpoint_dir(scratch, step)
        copied = {name: file_safety.atomic_write_bytes(target / name, rundir.read_verified(source, name, own, run_dir))
                  for name in RELEASE_CHECKPOINT_FILES}
        manifest[f"checkpoints/step_{step}/{rundir.MANIFEST}"] = rundir.write_manifest(target, copied)
    rundir.write_manifest(scratch, manifest)


def model_card(run: Run, name: str, command: str, extraction: dict | None, checks: tuple[str, ...] = ()) -> str:
    """The card's Markdown; `checks` are sections written by the reporting layer (the
    localisation's intervention table, the edit: `interp.reporting.cards`), placed after the
    extraction."""
    spec = run.spec
    last = run.final_metrics
    origin = rundir.imported_from(run)
    noise = (f"{spec.noise.kind} label noise at rate {spec.noise.rate}" if run.dataset.noise is not None
             else run.dataset.describe_noise())
    if origin is None:
        lines = [f"# {name}", "",
                 f"{spec.model.arch} network on {spec.task.describe(markdown=True)}, "
                 f"{noise}, trained {run.step} steps.", ""]
    else:  # interp knows the file, not how the model was trained nor on which labels
        clean = run.dataset.noise is not None and run.dataset.noise.rate == 0
        labels = ("the clean labels of interp's own split" if clean
                  else f"its own dataset ({run.dataset.describe_noise()})")
        derived = rundir.derived_from(run)  # an edit of the import: its weights are not the file's
        imported = (f"imported from `{origin['file']}` (format `{origin['format']}`, SHA-256 `{origin['sha256']}`)"
                    + (f" with checkpoints at steps {', '.join(origin['checkpoints'])}" if origin.get("checkpoints")
                       else ""))
        what = (f"{spec.model.arch} network on {spec.task.describe(markdown=True)}: " + (
            f"not the imported weights but `{derived[0]}` them (config.json → `{derived[0]}`: the run "
            f"`{derived[1].get('run')}`, weights SHA-256 `{derived[1].get('model_sha256')}`), a model {imported}"
            if derived else f"{imported}" + (f", as the step {run.step} of that trajectory"
                                              if origin.get("checkpoints") else "")))
        lines = [f"# {name}", "", what + f"; scored on {labels}; how the imported model was trained (steps, "
                 f"optimizer, the noise of its training labels) is not known to interp.", ""]
    if spec.task.group:  # without interp, a token means nothing until its element is named
        group = spec.task.structure
        shown = ", ".join(f"{i} = {e}" for i, e in enumerate(group.elements[:6]))
        where = ("the user's table, as stored in the spec below" if spec.task.table else
                 f'`interp.core.groups.group("{group.name}").elements`; docs/concepts.md, "Groups and irreps"')
        lines += [f"Elements: token i is element i of {group.name} ({group.order} elements; {shown}, …), in the order "
                  f"of {where}. Labels are element indices in the same order.", ""]
    if spec.task.features:  # what a forward without interp reads, and what the classes are
        n, d = run.dataset.inputs.shape
        source = (f"{FEATURE_SETS[spec.task.data][3]}, scaled as `interp.core.features` loads them"
                  if spec.task.data in FEATURE_SETS else "the user's own features, as the user gave them")
        ds = run.dataset
        lines += [f"Inputs: `inputs` in `dataset.safetensors`, {n:,} feature vectors of {d} features ({source}); "
                  f"labels are class indices 0–{spec.task.p - 1}; {int(ds.train_mask.sum()):,} for training "
                  f"({int(ds.noisy_mask.sum()):,} of them known to carry a wrong label), {int(ds.test_mask.sum()):,} "
                  "for test.", ""]
    if command:
        lines += ["Trained with:", "", "```bash", command, "```", ""]
    lines += ["## Accuracy at the end of training" if origin is None else
              "## Accuracy of the edited model" if rundir.derived_from(run) else "## Accuracy of the imported model", "",
              "| subset | accuracy | loss |", "| --- | --- | --- |"]
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
    for section in checks:
        lines += ["", section.strip("\n")]
    lines += ["", "## Loading", "", "```python", "import interp", "", f'run = interp.load("{name}")',
              "logits = interp.logits(run.model, run.dataset.inputs)", "```", "",
              f"Without `interp` ({PLAIN_LOADING.get(spec.model.arch, 'TransformerLens 4.x or plain PyTorch')}): "
              "see docs/checkpoints.md.",
              "", "## Full spec" if origin is None else "## Spec (what an import knows)", ""]
    if origin is None and run.dataset.noise is None:  # the user's data set: the spec's split and noise unused
        lines += ["Trained on the user's own data set (`dataset.safetensors`, `Dataset.from_tensors`): the split "
                  "and label noise below are the spec's, not applied.", ""]
    lines += ["```json", json.dumps(rundir.recorded_spec(spec, origin is not None), indent=2), "```", ""]
    return "\n".join(lines)
