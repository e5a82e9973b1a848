"""Run directories: safetensors weights + JSON, written atomically, loaded without unpickling.

    RUN_DIR/
      config.json          spec (task, noise + seeds, model, training), parameter shapes,
                           TransformerLens config (transformers), library versions
      model.safetensors    final weights
      history.json         metric rows, one per evaluation
      checkpoints/step_N/  model.safetensors, optimizer.safetensors, state.json, history.json

A trajectory checkpoint holds everything needed to resume; the format is in docs/checkpoints.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..core.specs import RunSpec, SpecError
from ..core.tasks import Dataset, DatasetError, make_dataset
from ..families.base import build_model, family_of

FORMAT = "interp.run"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A run directory or checkpoint is missing, truncated, corrupted or does not match its config."""


# --- atomic files -------------------------------------------------------------------------


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename over `path`. The file
    is created with the process's normal permissions (0666 less the umask), not mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    mode = os.stat(tmp).st_mode & 0o777  # 0666 less the umask
    try:
        write(tmp)
        os.chmod(tmp, mode)  # safetensors writes a file of its own, with mode 0600
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON (truncated or corrupted?): {err}") from None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Write `tensors` as safetensors; returns the file's SHA-256 (safetensors has no checksum
    of its own, so configs record it and `read_tensors` checks it)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    return sha256(Path(path))


def read_tensors(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, after checking its SHA-256 when one is expected."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} is missing")
    if expected_sha256 is not None and sha256(path) != expected_sha256:
        raise CheckpointError(f"{path} is truncated or corrupted: its SHA-256 differs from the one recorded when it was written")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupted?): {err}") from None


# --- datasets -----------------------------------------------------------------------------


def dataset_tensors(dataset: Dataset) -> dict[str, torch.Tensor]:
    """The dataset as plain tensors, readable with safetensors alone (docs/checkpoints.md)."""
    return {"inputs": dataset.inputs, "true_labels": dataset.true_labels, "observed_labels": dataset.labels,
            "train_mask": dataset.train_mask, "noisy_mask": dataset.noisy_mask, "clean_mask": dataset.clean_mask,
            "test_mask": dataset.test_mask}


def read_dataset(run_dir: Path, spec: RunSpec) -> Dataset:
    """The run's own dataset, from `dataset.safetensors` after checking its SHA-256. A run whose
    config says its dataset was drawn from its spec (`"dataset": "spec"`, the default) must hold
    exactly what the spec draws here: another torch's random generator, or an edited file, is an
    error, never a silent swap. A user's dataset (`"dataset": "user"`) is taken as stored."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    path = run_dir / "dataset.safetensors"
    expected = config.get("sha256", {}).get("dataset.safetensors")
    if expected is None:
        raise CheckpointError(f"{run_dir}/config.json records no SHA-256 for dataset.safetensors")
    stored = read_tensors(path, expected)
    missing = {"inputs", "observed_labels", "train_mask"} - stored.keys()
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(sorted(missing))}")
    try:
        dataset = Dataset.from_tensors(spec.task, stored["inputs"], stored["observed_labels"], stored["train_mask"],
                                       stored.get("true_labels"))
    except DatasetError as err:
        raise CheckpointError(f"{path} is not a dataset of {spec.task.op} mod {spec.task.p}: {err}") from None
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


def read_spec(run_dir: Path) -> RunSpec:
    config = read_json(Path(run_dir) / "config.json")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{run_dir}/config.json is not an {FORMAT} config")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{run_dir} was written by a newer interp (format {config['format_version']})"
        )
    try:
        return RunSpec.from_dict(config["spec"])
    except (SpecError, KeyError, TypeError) as err:
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

    def __post_init__(self) -> None:
        if self.dataset is None:
            self.dataset = make_dataset(self.spec.task, self.spec.noise)
        elif (self.dataset.task.op, self.dataset.p) != (self.spec.task.op, self.spec.task.p):
            raise ValueError(f"the dataset is {self.dataset.task.op} mod {self.dataset.p}, the spec "
                             f"{self.spec.task.op} mod {self.spec.task.p}")

    @property
    def final_metrics(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    def tokens(self, pairs: Tensor) -> Tensor:
        """What the model's own forward takes for (a, b) `pairs` (`a b =` rows for a transformer)."""
        return family_of(self.model).tokens(self.model, pairs)

    def logits(self, pairs: Tensor) -> Tensor:
        """Mod-p logits [batch, p] for (a, b) `pairs`, at the predicting position."""
        return family_of(self.model).forward(self.model, pairs)

    def run_with_cache(self, pairs: Tensor, names_filter=None) -> tuple[Tensor, Any]:
        """The model's `run_with_cache` on (a, b) `pairs`, tokens made for it: its logits and
        activation cache exactly as TransformerLens returns them (every position)."""
        return self.model.run_with_cache(self.tokens(pairs), names_filter=names_filter)

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path is not None else ""
        return f"Run({self.spec.model.arch}, {self.spec.task.op} mod {self.spec.task.p}, step {self.step}{where})"


def save_run(run_dir: Path, run: Run, extra: dict[str, Any] | None = None) -> None:
    """Write the final model, its dataset, history and config (with the SHA-256 of each
    tensor file, and the `extra` entries) into `run_dir`."""
    run_dir = Path(run_dir)
    hashes = {"model.safetensors": write_tensors(run_dir / "model.safetensors", run.model.state_dict()),
              "dataset.safetensors": write_tensors(run_dir / "dataset.safetensors", dataset_tensors(run.dataset))}
    write_json(run_dir / "history.json", run.history)
    write_json(run_dir / "config.json", {**model_config(run.spec, run.model), "step": run.step,
                                         "dataset": dataset_origin(run.spec, run.dataset), **(extra or {}),
                                         "sha256": hashes})


def load_run(run_dir: Path | str, step: int | None = None) -> Run:
    """Load a run directory's final model, or its trajectory checkpoint at `step`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a run directory")
    spec = read_spec(run_dir)
    source = run_dir if step is None else checkpoint_dir(run_dir, step)
    if step is not None and step not in trajectory_steps(run_dir):
        steps = trajectory_steps(run_dir)
        raise CheckpointError(f"{run_dir} has no checkpoint at step {step}; its steps: "
                              + (", ".join(map(str, steps)) if steps else "none (no trajectory)"))
    model = build_model(spec.model, spec.task.p)
    hashes = (read_json(run_dir / "config.json") if step is None else read_json(source / "state.json")).get("sha256", {})
    load_state(model, read_tensors(source / "model.safetensors", hashes.get("model.safetensors")),
               source / "model.safetensors")
    history = read_json(source / "history.json")
    if step is None:
        step = int(read_json(run_dir / "config.json").get("step", history[-1]["step"] if history else 0))
    return Run(spec, model.eval(), history, step, run_dir, read_dataset(run_dir, spec))


# --- trajectory ---------------------------------------------------------------------------


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step}"


def trajectory_steps(run_dir: Path) -> list[int]:
    """Steps of the complete trajectory checkpoints in `run_dir`, ascending."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    steps = []
    for d in root.iterdir():
        if d.name.startswith("step_") and d.name[5:].isdigit() and (d / "state.json").exists():
            steps.append(int(d.name[5:]))
    return sorted(steps)


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    history: list[dict[str, Any]],
) -> Path:
    """Everything needed to resume at `step`. Built in a scratch folder, then renamed into place,
    so a checkpoint directory is either complete or absent."""
    final = checkpoint_dir(run_dir, step)
    scratch = final.with_name(final.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    hashes = {"model.safetensors": write_tensors(scratch / "model.safetensors", model.state_dict())}
    opt_state = optimizer.state_dict()["state"]
    hashes["optimizer.safetensors"] = write_tensors(
        scratch / "optimizer.safetensors",
        {f"{i}.{k}": v for i, s in opt_state.items() for k, v in s.items() if torch.is_tensor(v)},
    )
    scalars = {
        str(i): {k: v for k, v in s.items() if not torch.is_tensor(v)} for i, s in opt_state.items()
    }
    write_json(scratch / "history.json", history)
    write_json(scratch / "state.json", {"step": step, "optimizer_scalars": scalars, "sha256": hashes})
    shutil.rmtree(final, ignore_errors=True)
    os.replace(scratch, final)
    return final


def load_checkpoint(
    run_dir: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer
) -> list[dict[str, Any]]:
    """Restore model and optimizer in place from the checkpoint at `step`; return its history."""
    source = checkpoint_dir(run_dir, step)
    hashes = read_json(source / "state.json").get("sha256", {})
    load_state(model, read_tensors(source / "model.safetensors", hashes.get("model.safetensors")),
               source / "model.safetensors")
    state: dict[int, dict[str, Any]] = {}
    for key, value in read_tensors(source / "optimizer.safetensors", hashes.get("optimizer.safetensors")).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, scalars in read_json(source / "state.json")["optimizer_scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    groups = optimizer.state_dict()["param_groups"]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{source} optimizer state does not match the config: {err}") from None
    return read_json(source / "history.json")
