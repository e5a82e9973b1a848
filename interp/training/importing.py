"""Other people's checkpoints as interp runs: `import_checkpoint` reads a foreign checkpoint
(`interp.families.importers`), pairs it with a dataset — the researcher's own, or a split drawn
from a spec — and returns a `Run`, written as a normal run directory when `out` is given, which
`analyze`, `report`, `export` and `load_run` take like any other.
"""

from __future__ import annotations

from ..core.metrics import DEFAULT_LOSS

from pathlib import Path

from ..core.specs import NoiseSpec, RunSpec, TaskSpec, TrainSpec
from ..core.tasks import Dataset, DatasetError, make_dataset
from ..families.base import family_of
from ..families.importers import CheckpointImportError, import_model, read_state_dict
from .rundir import Run, save_run, sha256
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
        return Dataset.from_tensors(task, tensors["inputs"], observed, tensors["train_mask"].bool(),
                                    tensors.get("true_labels"))
    except DatasetError as err:
        raise CheckpointImportError(f"{path}: {err}") from None


def import_checkpoint(source: str | Path, format: str, op: str = "add", p: int | None = None, *,
                      dataset: Dataset | str | Path | None = None, train_fraction: float = 0.3, split_seed: int = 0,
                      act: str = "relu", loss: str = DEFAULT_LOSS, out: str | Path | None = None) -> Run:
    """The checkpoint file `source` in `format` (`interp.families.importers.FORMATS`) as a Run of
    the task `op` mod p (p read from the checkpoint; checked when given).

    Its dataset is `dataset` — a `Dataset`, or a file for `read_dataset_file` — or, without one,
    every pair split by (`train_fraction`, `split_seed`) with clean labels. `loss` is the loss the
    model was trained with (the analyses score in it). The history holds one row: the imported
    model's metrics, at step 0. With `out`, the run directory is written there, recording where
    the checkpoint came from (`config.json` → `imported_from`)."""
    model = import_model(source, format, act=act, p=p)
    p = family_of(model).unembedding(model).shape[-1]
    if isinstance(dataset, (str, Path)):
        dataset = read_dataset_file(dataset, TaskSpec(op=op, p=p, train_fraction=0.5))
    if dataset is None:
        task = TaskSpec(op=op, p=p, train_fraction=train_fraction, seed=split_seed)
        dataset = make_dataset(task, NoiseSpec())
    else:
        if (dataset.task.op, dataset.p) != (op, p):
            raise CheckpointImportError(f"the dataset is {dataset.task.op} mod {dataset.p}, the model {op} mod {p}")
        # the spec records the split's size; the dataset itself is the user's (config "dataset": "user")
        share = min(max(float(dataset.train_mask.double().mean()), 1e-6), 1 - 1e-6)
        task = TaskSpec(op=op, p=p, train_fraction=share)
    spec = RunSpec(task=task, noise=NoiseSpec(), model=family_of(model).spec(model), train=TrainSpec(loss=loss))
    run = Run(spec, model, [{"step": 0, "lr": 0.0, **evaluate(model, dataset, loss)}], 0, None, dataset)
    if out is not None:
        out = Path(out)
        if (out / "config.json").exists():
            raise CheckpointImportError(f"{out} already holds a run; choose another --out")
        run.path = out
        save_run(out, run, {"imported_from": {"file": Path(source).name, "format": format,
                                              "sha256": sha256(Path(source))}})
    return run
