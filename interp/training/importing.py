"""Other people's checkpoints as interp runs: `import_checkpoint` reads a foreign checkpoint
(`interp.families.importers`), pairs it with a dataset — the researcher's own, or a split drawn
from a spec — and returns a `Run`, written as a normal run directory when `out` is given, which
`analyze`, `report`, `export` and `load_run` take like any other.

A checkpoint trained on a finite group (`group=`: a built-in such as S5, A5, D59, or a user's
Cayley table from a JSON file, the forms `task.group` takes) lands on that group's task: its
token t is the group's element t, in the table's order, so the table must be the one it was
trained with (docs/checkpoints.md, "A model trained on a group").
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..core import features
from ..core.groups import Group, GroupError, read_table
from ..core.groups import group as built_in_group
from ..core.metrics import DEFAULT_LOSS
from ..core.specs import NoiseSpec, RunSpec, TaskSpec, TrainSpec
from ..core.tasks import Dataset, DatasetError, make_dataset
from ..families.base import family_of
from ..families.importers import CheckpointImportError, import_model, read_state_dict
from .rundir import Run, save_new_run, sha256
from .train import evaluate


def read_dataset_file(path: str | Path, task: TaskSpec) -> Dataset:
    """A researcher's dataset of `task` from a `.safetensors` or `.pt` file holding `inputs`
    [N, 2], `observed_labels` (or `labels`) [N] and `train_mask` [N] (bool), optionally
    `true_labels` — the layout of a run directory's `dataset.safetensors`."""
    tensors = read_state_dict(path)
    observed = tensors.get("observed_labels", tensors.get("labels"))
    missing = [name for name, value in (("inputs", tensors.get("inputs")), ("observed_labels", observed),
                                        ("train_mask", tensors.get("train_mask"))) if value is None]
    if missing:
        raise CheckpointImportError(f"{path} lacks {', '.join(missing)} (see docs/checkpoints.md, dataset.safetensors)")
    try:
        return Dataset.from_tensors(task, tensors["inputs"], observed, _mask(tensors["train_mask"]),
                                    tensors.get("true_labels"))
    except DatasetError as err:
        raise CheckpointImportError(f"{path}: {err}") from None


def _mask(mask: torch.Tensor) -> torch.Tensor:
    """A train mask as bool: a bool tensor, or integers that are all 0 or 1. Anything else is
    left for `Dataset.from_tensors` to refuse (a float mask such as 0.3 is not a split)."""
    if mask.dtype != torch.bool and not mask.is_floating_point() and not mask.is_complex() \
            and bool(((mask == 0) | (mask == 1)).all()):
        return mask.bool()
    return mask


def resolve_group(group: Group | str | Path) -> Group:
    """The group `import_checkpoint` is given: a `Group`, a built-in's name ("S5", "A5", "D59",
    "C3xC3"), or a JSON Cayley table file (`groups.read_table`; a path ending in .json, as for
    `task.group`)."""
    if isinstance(group, Group):
        return group
    try:
        if isinstance(group, Path) or str(group).endswith(".json"):
            return read_table(str(group))
        return built_in_group(str(group))
    except OSError as err:
        raise CheckpointImportError(f"group {group}: {err.strerror or err}") from None
    except GroupError as err:
        raise CheckpointImportError(str(err)) from None


def _check_tokens(model: torch.nn.Module, group: Group, source: str | Path) -> None:
    """The checkpoint's classes must be the group's elements, one token each (a transformer
    has one more input token, `=`)."""
    classes = family_of(model).unembedding(model).shape[-1]
    if classes == group.order:
        return
    if family_of(model).spec(model).arch == "transformer":
        raise CheckpointImportError(
            f"{source} has {classes + 1} input tokens; a transformer on {group.name} ({group.order} elements) has "
            f"|G| + 1 = {group.order + 1}: the elements, in the table's order, then `=`")
    raise CheckpointImportError(f"{source} has {classes} tokens; a model on {group.name} has one per element, "
                                f"{group.order}, in the table's order")


def _same_task(dataset: Dataset, op: str, p: int, group: Group | None) -> bool:
    if op == "classify":
        return dataset.task.features and dataset.p == p
    if dataset.task.op != op or dataset.p != p or bool(dataset.task.group) != (group is not None):
        return False
    return group is None or torch.equal(dataset.task.structure.table, group.table)


def import_checkpoint(source: str | Path, format: str, op: str | None = None, p: int | None = None, *,
                      group: Group | str | Path | None = None, dataset: Dataset | str | Path | None = None,
                      train_fraction: float = 0.3, split_seed: int = 0, act: str = "relu", loss: str = DEFAULT_LOSS,
                      out: str | Path | None = None, data: str | None = None,
                      checkpoints: dict[int, str | Path] | None = None, step: int | None = None) -> Run:
    """The checkpoint file `source` in `format` (`interp.families.importers.FORMATS`) as a Run of
    the task `op` mod p (default add; p read from the checkpoint; checked when given).

    With `group` (a `Group`, a built-in's name such as "S5", "A5", "D59", or a JSON Cayley table
    file; `resolve_group`), the task is composition in that group instead (`op` add: a ∘ b, sub:
    a ∘ b⁻¹): the checkpoint's tokens are the group's elements in the table's order, so it must
    have |G| of them (an embedding MLP; a transformer |G| + 1, with `=`), else it is refused.

    Its dataset is `dataset` — a `Dataset`, or a file for `read_dataset_file` — or, without one,
    every pair split by (`train_fraction`, `split_seed`) with clean labels. `loss` is the loss the
    model was trained with (the analyses score in it). The history holds one row per checkpoint
    (below) and one for the imported model, at `step`. A model over feature vectors (`torch-mlp`)
    classifies: its task is `data` (a built-in feature set, split per class by `train_fraction`,
    `split_seed`) or the features of `dataset` (`op` left out, or classify). With `out`, the run directory is written there, recording where
    the checkpoint came from (`config.json` → `imported_from`).

    `checkpoints` (step → file, each in `format`, of the same architecture) is the model's
    trajectory: written as the run's checkpoints (`load_run(step=)`, and what `layer_rewind` and
    `feature_edit` read), each scored into the history; it needs `out` and `step`, the step of
    `source` itself, after every checkpoint's (without checkpoints, `step` defaults to 0)."""
    steps = _trajectory(checkpoints, step, out)
    if dataset is not None and not isinstance(dataset, (Dataset, str, Path)):
        raise CheckpointImportError(f"dataset must be a Dataset (interp.Dataset.from_tensors) or a file's path, not a "
                                    f"{type(dataset).__name__}")
    structure = None if group is None else resolve_group(group)
    if structure is not None and p is not None and p != structure.order:
        raise CheckpointImportError(f"p = {p} but {structure.name} has {structure.order} elements: on a group, p is "
                                    "its order (leave p out)")
    model = import_model(source, format, act=act, p=p if structure is None else None)
    if structure is not None:
        _check_tokens(model, structure, source)
    p = family_of(model).unembedding(model).shape[-1]
    if family_of(model).inputs != "features":
        op = op or "add"
    else:
        if op not in (None, "classify"):
            raise CheckpointImportError(f"{source} holds a model over feature vectors, which classifies: --task {op} "
                                        "is for a model over (a, b) pairs; leave it out")
        op = "classify"
        if dataset is not None and data is not None:
            raise CheckpointImportError(f"give --data {data} or --dataset, not both: --data draws interp's own split "
                                        "of a built-in set, --dataset is the split the model was trained on")
        if dataset is None and data is None:
            raise CheckpointImportError(f"{source} holds a model over feature vectors: name its data (--data, e.g. "
                                        "digits) or give its dataset (--dataset)")
        width, sets = family_of(model).spec(model).d_in, features.FEATURE_SETS
        if data in sets and sets[data][2] != width:
            raise CheckpointImportError(f"{source} reads {width} features per example but {data} has {sets[data][2]}: "
                                        f"it was not trained on {data}; give the dataset it was trained on with "
                                        "--dataset")
        if isinstance(dataset, Dataset):
            data = dataset.task.data
        data = data or "user"

    def task_of(**fields) -> TaskSpec:
        if op == "classify":
            return TaskSpec(op=op, p=p, data=data, **fields)
        return TaskSpec(op=op, p=p, **fields) if structure is None else TaskSpec.from_group(structure, op=op, **fields)

    if isinstance(dataset, (str, Path)):
        dataset = read_dataset_file(dataset, task_of(train_fraction=0.5))
    if dataset is None:
        task = task_of(train_fraction=train_fraction, seed=split_seed)
        dataset = make_dataset(task, NoiseSpec())
    else:
        if not _same_task(dataset, op, p, structure):
            raise CheckpointImportError(f"the dataset is {dataset.task.describe()}, the model "
                                        f"{task_of(train_fraction=0.5).describe()}")
        # the spec records the split's size; the dataset itself is the user's (config "dataset": "user")
        share = min(max(float(dataset.train_mask.double().mean()), 1e-6), 1 - 1e-6)
        task = task_of(train_fraction=share)
    spec = RunSpec(task=task, noise=NoiseSpec(), model=family_of(model).spec(model), train=TrainSpec(loss=loss))
    trajectory, history = {}, []
    for at, path in steps:
        early = import_model(path, format, act=act, p=p if structure is None else None)
        if family_of(early).spec(early) != spec.model:
            raise CheckpointImportError(f"the checkpoint {path} is a {family_of(early).spec(early)}, {source} a "
                                        f"{spec.model}: a trajectory is one architecture")
        history.append(_scored(early, dataset, loss, path, at))
        trajectory[at] = (early, list(history))
    final = 0 if step is None else step
    run = Run(spec, model, [*history, _scored(model, dataset, loss, source, final)], final, None, dataset)
    if out is not None:
        out = Path(out)
        if (out / "config.json").exists():
            raise CheckpointImportError(f"{out} already holds a run; choose another --out")
        # the file the checkpoint was read from: a symbolic link is the user's way of naming it
        origin = {"file": Path(source).name, "format": format, "sha256": sha256(Path(source).resolve())}
        if steps:
            origin["checkpoints"] = {str(at): {"file": Path(path).name, "sha256": sha256(Path(path).resolve())}
                                     for at, path in steps}
        save_new_run(out, run, {"imported_from": origin}, trajectory)
        run.path = out
    return run


def _trajectory(checkpoints: dict[int, str | Path] | None, step: int | None,
                out: str | Path | None) -> list[tuple[int, str | Path]]:
    """The checkpoints an import writes, (step, file) ascending, after checking that they can be
    a trajectory ending at `step`: non-negative integer steps before it, written to a directory."""
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise CheckpointImportError(f"--step must be a non-negative integer, got {step!r}")
    if not checkpoints:
        return []
    if not isinstance(checkpoints, dict):
        raise CheckpointImportError(f"checkpoints must map steps to files, not {type(checkpoints).__name__}")
    bad = [at for at in checkpoints if isinstance(at, bool) or not isinstance(at, int) or at < 0]
    if bad:
        raise CheckpointImportError(f"a checkpoint's step must be a non-negative integer, got {bad[0]!r}")
    if out is None:
        raise CheckpointImportError("checkpoints are written into the run directory: give --out")
    if step is None or step <= max(checkpoints):
        raise CheckpointImportError(f"give --step, the training step of the model imported (after every "
                                    f"checkpoint's, the last at {max(checkpoints)})")
    return sorted(checkpoints.items())


def _scored(model: torch.nn.Module, dataset: Dataset, loss: str, source: str | Path, step: int) -> dict:
    """The history row of `model` at `step`: its metrics on `dataset`, which must be finite."""
    metrics = evaluate(model, dataset, loss)
    overflow = [name for name, value in metrics.items() if isinstance(value, float) and not math.isfinite(value)]
    if overflow:
        raise CheckpointImportError(f"{source}: the model's {overflow[0]} on its dataset is {metrics[overflow[0]]} "
                                    "(its logits overflow float32); only a model with finite outputs can be imported")
    return {"step": step, "lr": 0.0, **metrics}
