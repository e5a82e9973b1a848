"""Run directories: safetensors weights + JSON, written atomically, loaded without unpickling.

    RUN_DIR/
      config.json          spec (task, noise + seeds, model, training), parameter shapes,
                           TransformerLens config (transformers), library versions
      model.safetensors    final weights
      history.json         metric rows, one per evaluation
      manifest.json        SHA-256 of every file above and of every checkpoint's manifest
      checkpoints/step_N/  model.safetensors, optimizer.safetensors, state.json, history.json,
                           manifest.json (SHA-256 of the other four)

One integrity rule (docs/checkpoints.md): every file a reader takes is a regular file inside the
run directory whose SHA-256 its manifest records; the manifest is written last, atomically; a
file the manifest does not name, or whose digest differs, is an error. A trajectory checkpoint
holds everything needed to resume. The files are read and written through the file-safety layer
(`interp.core.file_safety`: regular files only, atomic writes, manifests, locks, folders swapped in).
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

# the file-safety layer the run format is written with; its public names are also this module's
from ..core.file_safety import (MANIFEST, MANIFEST_FORMAT, CheckpointError, RunDirectoryLocked,  # noqa: F401
                          atomic_write, atomic_write_bytes, digest, fsync_dir, json_bytes, lock_path, locked,
                          no_links_below, parse_tensors, read_bytes, read_json, read_manifest, read_tensors,
                          read_verified, read_verified_json, read_verified_tensors, refuse_nonempty, replace_folder,
                          scratch_beside, seal, sha256, tensor_bytes, update_manifest, write_json, write_manifest,
                          write_tensors, write_text)
from ..core.specs import RunSpec, SpecError
from ..core.tasks import Dataset, DatasetError, make_dataset
from ..families.base import build_model, family_of

FORMAT = "interp.run"
FORMAT_VERSION = 1
#: the files of a trajectory checkpoint its manifest covers (a release's have no optimizer state)
CHECKPOINT_FILES = ("model.safetensors", "optimizer.safetensors", "history.json", "state.json")


# --- datasets -----------------------------------------------------------------------------


def dataset_tensors(dataset: Dataset) -> dict[str, torch.Tensor]:
    """The dataset as plain tensors, readable with safetensors alone (docs/checkpoints.md)."""
    return {"inputs": dataset.inputs, "true_labels": dataset.true_labels, "observed_labels": dataset.labels,
            "train_mask": dataset.train_mask, "noisy_mask": dataset.noisy_mask, "clean_mask": dataset.clean_mask,
            "test_mask": dataset.test_mask}


def read_config(run_dir: Path, files: dict[str, str] | None = None) -> dict[str, Any]:
    """`config.json`, checked against the manifest; it must be an interp.run object."""
    run_dir = Path(run_dir)
    files = read_manifest(run_dir) if files is None else files
    config = read_verified_json(run_dir, "config.json", files)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{run_dir}/config.json is not an {FORMAT} config")
    if not isinstance(config.get("format_version", 0), int) or config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{run_dir} was written by a newer interp (format {config.get('format_version')!r})")
    if not isinstance(config.get("sha256", {}), dict):
        raise CheckpointError(f"{run_dir}/config.json: `sha256` is not a table of file digests")
    return config


def read_dataset(run_dir: Path, spec: RunSpec, files: dict[str, str] | None = None) -> Dataset:
    """The run's own dataset, from `dataset.safetensors` after checking its SHA-256. A run whose
    config says its dataset was drawn from its spec (`"dataset": "spec"`, the default) must hold
    exactly what the spec draws here: another torch's random generator, or an edited file, is an
    error, never a silent swap. A user's dataset (`"dataset": "user"`) is taken as stored."""
    run_dir = Path(run_dir)
    files = read_manifest(run_dir) if files is None else files
    config = read_config(run_dir, files)
    path = run_dir / "dataset.safetensors"
    expected = config.get("sha256", {}).get("dataset.safetensors")
    if expected is None:
        raise CheckpointError(f"{run_dir}/config.json records no SHA-256 for dataset.safetensors")
    data = read_verified(run_dir, "dataset.safetensors", files)
    if digest(data) != expected:
        raise CheckpointError(f"{path} is truncated or corrupted (or was edited): its SHA-256 differs from the one config.json records")
    stored = parse_tensors(path, data)
    missing = {"inputs", "observed_labels", "train_mask"} - stored.keys()
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(sorted(missing))}")
    try:
        dataset = Dataset.from_tensors(spec.task, stored["inputs"], stored["observed_labels"], stored["train_mask"],
                                       stored.get("true_labels"))
    except DatasetError as err:
        raise CheckpointError(f"{path} is not a dataset of {spec.task.describe()}: {err}") from None
    for name, value in dataset_tensors(dataset).items():
        if name in stored and not torch.equal(stored[name], value):
            raise CheckpointError(f"{path}: `{name}` disagrees with the labels and split stored beside it")
    origin = config.get("dataset", "spec")
    if origin == "user":
        return dataset
    drawn = make_dataset(spec.task, spec.noise)
    if not drawn.same_as(dataset):
        raise CheckpointError(f"{path} differs from the dataset that the run's spec generates here "
                              "(edited, or drawn by another torch's random generator)")
    return drawn


def dataset_origin(spec: RunSpec, dataset: Dataset) -> str:
    """`spec` when the spec draws exactly `dataset`, else `user`."""
    try:
        return "spec" if make_dataset(spec.task, spec.noise).same_as(dataset) else "user"
    except ValueError:  # the spec draws no dataset at all (e.g. a train fraction that empties a set)
        return "user"


# --- models -------------------------------------------------------------------------------


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        **{name: installed(name) for name in ("interp", "torch", "transformer-lens", "safetensors")},
    }


def model_config(spec: RunSpec, model: nn.Module) -> dict[str, Any]:
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": spec.to_dict(),
        "parameters": {k: list(v.shape) for k, v in model.state_dict().items()},
        "versions": library_versions(),
    }
    return {**config, **family_of(model).config(model)}


def load_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load `tensors` into `model` after naming every missing, unexpected or misshapen tensor."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    problems = [f"missing {k} {expected[k]}" for k in expected.keys() - found.keys()]
    problems += [f"unexpected {k} {found[k]}" for k in found.keys() - expected.keys()]
    problems += [
        f"{k} has shape {found[k]}, config says {expected[k]}"
        for k in expected.keys() & found.keys()
        if expected[k] != found[k]
    ]
    if problems:
        raise CheckpointError(f"{source} does not match its config: " + "; ".join(sorted(problems)))
    model.load_state_dict(tensors, strict=True)


def read_spec(run_dir: Path, files: dict[str, str] | None = None) -> RunSpec:
    config = read_config(run_dir, files)
    try:
        return RunSpec.from_dict(config["spec"])
    except (SpecError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{run_dir}/config.json has an invalid spec: {err}") from None


@dataclass
class Run:
    """A trained (or partly trained) model, the spec that made it, its metric history and the
    dataset it was trained on — the one every analysis scores. Without `dataset`, the spec's own
    is drawn (`make_dataset(spec.task, spec.noise)`); pass yours (`Dataset.from_tensors`) for a
    model trained on your own split and labels."""

    spec: RunSpec
    model: nn.Module
    history: list[dict[str, Any]]
    step: int
    path: Path | None = None
    dataset: Dataset | None = None
    #: values computed from the run's files that several analyses read (the float64 logits of a
    #: checkpoint: `feature_edit.checkpoint_logits`), computed once; `dataclasses.replace` starts
    #: a new one (`copy.copy` would share it)
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        family_of(self.model)  # a model no family owns is refused here, with the way in, not in an analysis
        if self.dataset is None:
            self.dataset = make_dataset(self.spec.task, self.spec.noise)
        elif (self.dataset.task.describe(), self.dataset.p) != (self.spec.task.describe(), self.spec.task.p):
            raise ValueError(f"the dataset is {self.dataset.task.describe()} with {self.dataset.p} classes, the spec "
                             f"{self.spec.task.describe()} with {self.spec.task.p} (set the spec's task to the data's)")

    @property
    def final_metrics(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    def tokens(self, pairs: Tensor) -> Tensor:
        """What the model's own forward takes for (a, b) `pairs` (`a b =` rows for a transformer)."""
        family = family_of(self.model)
        return family.model_inputs(self.model, pairs)

    def logits(self, pairs: Tensor) -> Tensor:
        """Mod-p logits [batch, p] for (a, b) `pairs`, at the predicting position."""
        return family_of(self.model).forward(self.model, pairs)

    def run_with_cache(self, pairs: Tensor, names_filter=None) -> tuple[Tensor, Any]:
        """The model's `run_with_cache` on (a, b) `pairs`, tokens made for it: its logits and
        activation cache exactly as TransformerLens returns them (every position)."""
        return self.model.run_with_cache(self.tokens(pairs), names_filter=names_filter)

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path is not None else ""
        return f"Run({self.spec.model.arch}, {self.spec.task.describe()}, step {self.step}{where})"


def recorded_spec(spec: RunSpec, imported: bool) -> dict[str, Any]:
    """The spec as `config.json` records it. An imported run (`imported_from`) knows its task,
    its model and the loss it is scored in, not how it was trained nor the noise of the labels
    it was trained on, nor the seed of its initialisation: its record holds those three only
    (read back, the other fields are `RunSpec`'s defaults, which no reader takes as a claim)."""
    recorded = spec.to_dict()
    if not imported:
        return recorded
    model = {key: value for key, value in recorded["model"].items() if key != "seed"}  # its initialisation: unknown
    return {"task": recorded["task"], "model": model, "train": {"loss": spec.train.loss}}


def save_run(run_dir: Path, run: Run, extra: dict[str, Any] | None = None) -> None:
    """Write the final model, its dataset, history and config (with the SHA-256 of each
    tensor file, and the `extra` entries) into `run_dir`, then its manifest, last: until the
    manifest names them, the new files are not part of the run. With `imported_from` in
    `extra`, the spec is recorded as an import's (`recorded_spec`)."""
    run_dir = Path(run_dir)
    refuse_links_in(run_dir)
    hashes = {"model.safetensors": write_tensors(run_dir / "model.safetensors", run.model.state_dict()),
              "dataset.safetensors": write_tensors(run_dir / "dataset.safetensors", dataset_tensors(run.dataset))}
    files = {**hashes, "history.json": write_json(run_dir / "history.json", _history_list(run.history))}
    files["config.json"] = write_json(run_dir / "config.json", {
        **model_config(run.spec, run.model), "spec": recorded_spec(run.spec, "imported_from" in (extra or {})),
        "step": run.step, "dataset": dataset_origin(run.spec, run.dataset), **(extra or {}), "sha256": hashes})
    update_manifest(run_dir, files)


def save_new_run(run_dir: Path, run: Run, extra: dict[str, Any] | None = None,
                 checkpoints: dict[int, tuple[nn.Module, list[dict[str, Any]]]] | None = None) -> None:
    """`save_run` into the new run directory `run_dir` (absent or an empty folder), holding its
    lock: assembled in a scratch folder beside it and renamed into place, so a second writer
    is refused (`RunDirectoryLocked`) and a failure part-way (a NaN, a full disk) leaves
    nothing behind that a rerun would trip on. `checkpoints`: step → (model, history), written
    as trajectory checkpoints without optimizer state (an import's: readable, not resumable)."""
    run_dir = Path(run_dir)
    with locked(run_dir):
        if os.path.islink(run_dir) or run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise CheckpointError(f"{run_dir} is not empty; choose another --out")
        scratch = scratch_beside(run_dir)
        try:
            save_run(scratch, run, extra)
            for step, (model, history) in sorted((checkpoints or {}).items()):
                save_checkpoint(scratch, step, model, None, history)
            replace_folder(scratch, run_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _history_list(history: Any) -> list:
    if not isinstance(history, list):
        raise CheckpointError(f"a history is a list of metric rows, not {type(history).__name__}")
    return history


#: the names a run directory's writers create: none may be a symbolic link
RUN_FILES = ("config.json", "model.safetensors", "dataset.safetensors", "history.json", MANIFEST, "checkpoints")


def refuse_links_in(run_dir: Path) -> None:
    """Refuse a run directory whose own files or `checkpoints` folder are symbolic links (or a
    `checkpoints` that is not a folder): writes must never land outside it."""
    for name in RUN_FILES:
        path = Path(run_dir) / name
        if os.path.islink(path):
            raise CheckpointError(f"{path} is a symbolic link; a run directory holds real files and folders only")
    checkpoints = Path(run_dir) / "checkpoints"
    if checkpoints.exists() and not checkpoints.is_dir():
        raise CheckpointError(f"{checkpoints} is not a folder")
    if checkpoints.is_dir():
        for entry in checkpoints.iterdir():
            if entry.is_symlink():
                raise CheckpointError(f"{entry} is a symbolic link; a run directory holds real files and folders only")


def imported_from(run: Run) -> dict[str, Any] | None:
    """Where an imported run's model came from (`config.json` → `imported_from`: the file, its
    format and SHA-256), or None for a run trained here or one not read from a directory."""
    if run.path is None:
        return None
    origin = read_config(Path(run.path)).get("imported_from")
    return origin if isinstance(origin, dict) else None


def derived_from(run: Run) -> tuple[str, dict[str, Any]] | None:
    """(key, record) of the run this one was derived from (`config.json` → `edited_from` or any
    other `*_from` but `imported_from`: an edit's source run and weights' SHA-256), or None."""
    if run.path is None:
        return None
    config = read_config(Path(run.path))
    return next(((key, value) for key, value in config.items()
                 if key.endswith("_from") and key != "imported_from" and isinstance(value, dict)), None)


def _check_run_dir(run_dir: Path | str) -> Path:
    if str(run_dir) == "":
        raise CheckpointError("the run directory is an empty path")
    run_dir = Path(run_dir)
    if run_dir.is_symlink() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is a symbolic link to no folder")
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a run directory")
    return run_dir


def load_run(run_dir: Path | str, step: int | None = None) -> Run:
    """Load a run directory's final model, or its trajectory checkpoint at `step`; every file
    read is checked against the manifest first."""
    run_dir = _check_run_dir(run_dir)
    files = read_manifest(run_dir)
    config = read_config(run_dir, files)
    spec = read_spec(run_dir, files)
    model = build_model(spec.model, spec.task.p)
    if step is None:
        if "model.safetensors" not in files:
            raise CheckpointError(f"{run_dir} holds no final model yet (training did not finish); "
                                  f"resume it, or load a checkpoint with step=")
        source, source_files = run_dir, files
        step = config.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise CheckpointError(f"{run_dir}/config.json: `step` must be a non-negative integer, got {step!r}")
    else:
        source, source_files, _ = read_checkpoint(run_dir, step, files)
    load_state(model, read_verified_tensors(source, "model.safetensors", source_files, run_dir),
               source / "model.safetensors")
    history = _checked_history(source / "history.json", read_verified_json(source, "history.json", source_files, run_dir))
    return Run(spec, model.eval(), history, step, run_dir, read_dataset(run_dir, spec, files))


def _checked_history(path: Path, history: Any) -> list[dict[str, Any]]:
    if not isinstance(history, list) or not all(isinstance(row, dict) and "step" in row for row in history):
        raise CheckpointError(f"{path} is not a list of metric rows")
    return history


# --- trajectory ---------------------------------------------------------------------------


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step}"


def _checkpoint_key(step: int) -> str:
    return f"checkpoints/step_{step}/{MANIFEST}"


#: what an analysis that reads the early trajectory needs, and how a run gets it
EARLIER_CHECKPOINT = ("a run directory with a checkpoint before the final step (a run trained with "
                      "train.checkpoint_every below train.steps keeps them; an imported model brings its own: "
                      "interp import SOURCE ... --checkpoint STEP=FILE --step STEP_OF_SOURCE)")


def earlier_steps(run: Run) -> list[int]:
    """The steps of `run`'s trajectory checkpoints before its final step (none for a run not
    read from a directory): what the analyses that read the early trajectory need."""
    return [] if run.path is None else [s for s in trajectory_steps(run.path) if s < run.step]


def trajectory_steps(run_dir: Path) -> list[int]:
    """Steps of the trajectory checkpoints the run's manifest records, ascending (a folder on
    disk that the manifest does not name — a crash's leftover, or one renamed — is not one)."""
    if not os.path.lexists(Path(run_dir) / MANIFEST):
        return []
    steps = []
    for name in read_manifest(run_dir):
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "checkpoints" and parts[2] == MANIFEST and parts[1].startswith("step_") \
                and parts[1][5:].isdigit():
            steps.append(int(parts[1][5:]))
    return sorted(steps)


def read_checkpoint(run_dir: Path, step: int, files: dict[str, str] | None = None
                    ) -> tuple[Path, dict[str, str], dict[str, Any]]:
    """The folder, manifest and state of the checkpoint at `step`, all verified: its manifest
    against the run's, and its recorded step against its folder's name."""
    run_dir = Path(run_dir)
    files = read_manifest(run_dir) if files is None else files
    key = _checkpoint_key(step)
    if key not in files:
        steps = trajectory_steps(run_dir)
        raise CheckpointError(f"{run_dir} has no checkpoint at step {step}; its steps: "
                              + (", ".join(map(str, steps)) if steps else "none (no trajectory)"))
    folder = checkpoint_dir(run_dir, step)
    own = read_manifest(folder, run_dir, files[key])
    state = read_verified_json(folder, "state.json", own, run_dir)
    if not isinstance(state, dict) or state.get("step") != step:
        found = state.get("step") if isinstance(state, dict) else state
        raise CheckpointError(f"{folder}/state.json records step {found!r}, not the {step} its folder is named for")
    return folder, own, state


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    history: list[dict[str, Any]],
) -> Path:
    """Everything needed to resume at `step`. Built in a scratch folder with its manifest
    written last, then renamed into place and named in the run's manifest, so a checkpoint is
    either complete and recorded or not part of the run. Without `optimizer` (an imported
    trajectory), no optimizer state is written: the checkpoint is read, never resumed."""
    run_dir = Path(run_dir)
    refuse_links_in(run_dir)
    final = checkpoint_dir(run_dir, step)
    scratch = final.with_name(final.name + ".partial")
    _remove(scratch)
    scratch.mkdir(parents=True)
    hashes = {"model.safetensors": write_tensors(scratch / "model.safetensors", model.state_dict())}
    opt_state = {} if optimizer is None else optimizer.state_dict()["state"]
    if optimizer is not None:
        hashes["optimizer.safetensors"] = write_tensors(
            scratch / "optimizer.safetensors",
            {f"{i}.{k}": v for i, s in opt_state.items() for k, v in s.items() if torch.is_tensor(v)},
        )
    scalars = {
        str(i): {k: v for k, v in s.items() if not torch.is_tensor(v)} for i, s in opt_state.items()
    }
    own = {**hashes, "history.json": write_json(scratch / "history.json", history)}
    own["state.json"] = write_json(scratch / "state.json", {"step": step, "optimizer_scalars": scalars, "sha256": hashes})
    digest = write_manifest(scratch, own)
    key = _checkpoint_key(step)
    if os.path.lexists(final):  # first out of the run's manifest, so no crash leaves it named but gone
        update_manifest(run_dir, {key: None})
        _remove(final)
    os.replace(scratch, final)
    fsync_dir(final.parent)
    update_manifest(run_dir, {key: digest})
    return final


def _remove(path: Path) -> None:
    """Remove a file, a symlink (never what it points to) or a folder of our own."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def load_checkpoint(
    run_dir: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer
) -> list[dict[str, Any]]:
    """Restore model and optimizer in place from the checkpoint at `step`, every file verified
    (a checkpoint that cannot be verified is never resumed); return its history."""
    run_dir = Path(run_dir)
    source, own, state_json = read_checkpoint(run_dir, step)
    load_state(model, read_verified_tensors(source, "model.safetensors", own, run_dir), source / "model.safetensors")
    if "optimizer.safetensors" not in own:
        raise CheckpointError(f"{source} holds no optimizer state (a released trajectory?); it cannot be resumed")
    state: dict[int, dict[str, Any]] = {}
    try:
        for key, value in read_verified_tensors(source, "optimizer.safetensors", own, run_dir).items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        for index, scalars in state_json["optimizer_scalars"].items():
            state.setdefault(int(index), {}).update(scalars)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{source} optimizer state is malformed: {err}") from None
    groups = optimizer.state_dict()["param_groups"]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{source} optimizer state does not match the config: {err}") from None
    for value in list(model.state_dict().values()):
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{source}/model.safetensors holds NaN or infinite weights; it cannot be resumed")
    return _checked_history(source / "history.json", read_verified_json(source, "history.json", own, run_dir))


def drop_checkpoint(run_dir: Path, step: int) -> None:
    """Remove the checkpoint at `step` from the run: out of its manifest first, then the folder,
    so no crash leaves the manifest naming a checkpoint that is gone."""
    update_manifest(run_dir, {_checkpoint_key(step): None})
    no_links_below(run_dir, checkpoint_dir(run_dir, step) / MANIFEST)
    _remove(checkpoint_dir(run_dir, step))
