"""The training loop: full batch or minibatch, per-subset metrics, checkpoint trajectory, resume.

`train(spec, out)` builds the dataset and model from `spec` alone, so a run is reproducible from
its config; `train(spec, out, dataset=...)` trains on a researcher's own dataset instead, which the
run directory then carries. With `out` set, it writes `config.json` at once, a trajectory checkpoint every
`train.checkpoint_every` steps (and at the end), and the final model; `resume=True` continues
from the last complete checkpoint and ends with the same weights and history as an
uninterrupted run. Ctrl-C stops at the next step boundary after writing a checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..core.metrics import subset_metrics
from ..core.runtime import flush_denormals
from ..core.specs import RunSpec, TrainSpec
from ..core.tasks import Dataset, make_dataset
from ..families.base import build_model, family_of, training_logits
from . import rundir
from .rundir import Run


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; checkpoints already written are kept."""


class RunDirectoryInUse(RuntimeError):
    """`out` already holds a different run (or the same one, without `resume`)."""


def check_device(device: str | torch.device) -> torch.device:
    """The torch device `device`, refused in one line when it is malformed or absent here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:0, mps): {err}") from None
    available = {"cpu": lambda: True, "cuda": torch.cuda.is_available,
                 "mps": lambda: getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if dev.type not in available or not available[dev.type]():
        raise ValueError(f"device {str(dev)!r} is not available in this torch build or on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(dev)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def make_optimizer(train: TrainSpec, params) -> torch.optim.Optimizer:
    """The optimizer of `train`, in torch's fused form (one kernel for all parameters: AdamW's
    step on liu-lu-80's parameters, 0.2 ms instead of 0.7 ms; benchmarks/kernels.py)."""
    betas = (train.beta1, train.beta2)
    if train.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay, betas=betas, fused=True)
    if train.optimizer == "adam":  # L2 penalty coupled into the gradient, as in torch.optim.Adam
        return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay, betas=betas, fused=True)
    return torch.optim.SGD(params, lr=train.lr, weight_decay=train.weight_decay, momentum=train.momentum, fused=True)


def lr_at(train: TrainSpec, step: int) -> float:
    """Learning rate for the update that takes the model from `step` to `step + 1`."""
    if step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    if train.schedule == "cosine":
        span = max(1, train.steps - train.warmup_steps)
        return train.lr * 0.5 * (1 + math.cos(math.pi * (step - train.warmup_steps) / span))
    return train.lr


def batch_indices(train: TrainSpec, train_idx: torch.Tensor, step: int) -> torch.Tensor:
    """Training examples used at `step`: all of them, or a minibatch from a per-epoch
    permutation seeded by (train.seed, epoch) — stateless, so resuming needs no RNG state."""
    n = len(train_idx)
    if train.batch_size == 0 or train.batch_size >= n:
        return train_idx
    per_epoch = math.ceil(n / train.batch_size)
    epoch, k = divmod(step, per_epoch)
    # modulo 2**63: a torch seed is 64-bit (unchanged for every seed below 2**63 / 1_000_003)
    gen = torch.Generator().manual_seed((train.seed * 1_000_003 + epoch) % 2**63)
    perm = torch.randperm(n, generator=gen)
    return train_idx[perm[k * train.batch_size : (k + 1) * train.batch_size]]


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, loss: str) -> dict[str, float | None]:
    """Per-subset accuracy and loss on every pair of the task (through the training path:
    the transformer's last position only, equal to the hooked logits to 1e-5)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        return subset_metrics(training_logits(model, dataset.inputs.to(device)), dataset, loss)
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _stop_on_interrupt() -> Iterator[threading.Event]:
    """Turn Ctrl-C into a flag checked between steps, so the state saved is consistent."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if requested.is_set():  # a second Ctrl-C stops at once
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        requested.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


def step_loop(cfg: TrainSpec, start: int, bar, record: Callable[[int], None], update: Callable[[int, float], None],
              save: Callable[[int], None], stopped: Callable[[int], str]) -> None:
    """The loop every trainer shares (`train`, `batched.train_many`): metrics at step 0, then for
    each step from `start` the update at its learning rate, metrics every `eval_every` steps and a
    checkpoint every `checkpoint_every` (both at the end too). Ctrl-C stops at the next step
    boundary after `save`-ing that step, raising KeyboardInterrupt(`stopped(step)`); denormals
    are flushed for the loop's duration only."""
    with flush_denormals(), _stop_on_interrupt() as interrupted:
        try:
            if start == 0:
                record(0)
            for step in range(start, cfg.steps):
                if interrupted.is_set():
                    save(step)
                    raise KeyboardInterrupt(stopped(step))
                update(step, lr_at(cfg, step))
                done = step + 1
                bar.update(1)
                if done % cfg.eval_every == 0 or done == cfg.steps:
                    record(done)
                if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                    save(done)
        finally:
            bar.close()


def open_run_dir(out: Path, spec: RunSpec, model: nn.Module, optimizer: torch.optim.Optimizer,
                 resume: bool, dataset: Dataset | None = None, at_step: int | None = None
                 ) -> tuple[int, list[dict[str, Any]], Dataset]:
    """Start `out` for `spec` and `dataset` (the spec's own when None), writing its config and
    dataset, or with `resume` restore model and optimizer from its last checkpoint (or the one
    at `at_step`; 0 starts over). Returns the step to continue from, the history so far and the
    run's dataset (on resume, the stored one). The caller holds the run directory's lock."""
    if _prepare_out(out, spec, resume):
        files = rundir.read_manifest(out)
        stored = rundir.read_dataset(out, spec, files)
        if dataset is not None and not dataset.same_as(stored):
            raise RunDirectoryInUse(f"{out} holds a run trained on another dataset; choose another --out")
        steps = rundir.trajectory_steps(out)
        step = at_step if at_step is not None else (steps[-1] if steps else 0)
        if step:
            return step, rundir.load_checkpoint(out, step, model, optimizer), stored
        dataset = stored
    dataset = make_dataset(spec.task, spec.noise) if dataset is None else dataset
    # the split and the labels are in the folder from the start, for work that does not import interp
    digest = rundir.write_tensors(out / "dataset.safetensors", rundir.dataset_tensors(dataset))
    config = rundir.write_json(out / "config.json", {**rundir.model_config(spec, model), "step": 0,
                                                     "dataset": rundir.dataset_origin(spec, dataset),
                                                     "sha256": {"dataset.safetensors": digest}})
    rundir.write_manifest(out, {"config.json": config, "dataset.safetensors": digest})
    return 0, [], dataset


def started(out: Path) -> bool:
    """Whether `out` holds a run (its manifest exists: files it does not name are not part of one)."""
    return os.path.lexists(Path(out) / rundir.MANIFEST)


def _prepare_out(out: Path, spec: RunSpec, resume: bool) -> bool:
    """Whether `out` already holds this run (to resume); refuse one that holds another, or
    files that no manifest covers, or symbolic links where the run's files go."""
    if os.path.lexists(out) and not out.is_dir():
        raise RunDirectoryInUse(f"{out} exists and is not a folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    rundir.refuse_links_in(out)
    if started(out):
        existing = rundir.read_spec(out)
        if existing != spec:
            raise RunDirectoryInUse(f"{out} holds a run with a different spec; choose another --out")
        if not resume:
            raise RunDirectoryInUse(f"{out} already holds this run; pass resume=True (--resume) to continue it")
        return True
    if (out / "config.json").exists():
        raise RunDirectoryInUse(f"{out} holds a config.json but no {rundir.MANIFEST} (an older interp's run, or one "
                                "interrupted before its first manifest); choose another --out")
    return False


def train(
    spec: RunSpec,
    out: Path | str | None = None,
    *,
    dataset: Dataset | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> Run:
    """Train a model for `spec` on `dataset` (by default the one `spec` draws); write its run
    directory to `out` when given, holding its lock throughout (a second writer is refused)."""
    out = Path(out) if out is not None else None
    check_device(device)
    spec.check_memory()
    with rundir.locked(out) if out is not None else contextlib.nullcontext():
        return _train(spec, out, dataset, resume, progress, device)


def _train(spec: RunSpec, out: Path | None, dataset: Dataset | None, resume: bool, progress: bool,
           device: str | torch.device) -> Run:
    if dataset is not None and (dataset.task.describe(), dataset.p) != (spec.task.describe(), spec.task.p):
        raise ValueError(f"the dataset is {dataset.task.describe()}, the spec {spec.task.describe()}")
    model = build_model(spec.model, spec.task.p)
    if next(model.parameters()).device != torch.device(device):
        model = model.to(device)
    optimizer = make_optimizer(spec.train, model.parameters())
    if out is not None:
        start, history, dataset = open_run_dir(out, spec, model, optimizer, resume, dataset)
    else:
        start, history = 0, []
        dataset = make_dataset(spec.task, spec.noise) if dataset is None else dataset

    cfg = spec.train
    inputs = dataset.inputs.to(device)
    labels = dataset.labels.to(device)
    train_idx = dataset.train_mask.nonzero().squeeze(1).to(device)
    # full-batch training reads the same batch every step: prepare it once
    family = family_of(model)

    def batch_at(idx: Tensor) -> Any:
        return family.training_batch(model, inputs[idx], labels[idx])

    whole = batch_at(train_idx) if batch_indices(cfg, train_idx, 0) is train_idx else None
    params = {name: param for name, param in model.named_parameters() if param.requires_grad}
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, desc="train", unit="step")

    def record(step: int) -> None:
        row = {"step": step, "lr": lr_at(cfg, max(step - 1, 0)), **evaluate(model, dataset, cfg.loss)}
        history.append(row)
        bar.set_postfix_str(
            " ".join(f"{label}={row[k]:.3f}" for k, label in _ACC_LABELS.items() if row[k] is not None)
        )

    def update(step: int, lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = whole if whole is not None else batch_at(batch_indices(cfg, train_idx, step))
        loss = family.loss_and_backward(model, params, cfg.loss, batch)
        if not math.isfinite(loss):
            if out is not None:
                rundir.update_manifest(out, {"history.json": rundir.write_json(out / "history.json", history)})
            last = rundir.trajectory_steps(out) if out is not None else []
            kept = f"; the last good checkpoint is step {last[-1]}" if last else ""
            raise TrainingDiverged(f"loss became {loss} at step {step} (lr {lr:g}){kept}")
        optimizer.step()

    def save(step: int) -> None:
        if out is not None:
            rundir.save_checkpoint(out, step, model, optimizer, history)

    def stopped(step: int) -> str:
        where = f"; resume with --resume from {rundir.checkpoint_dir(out, step)}" if out else ""
        return f"training interrupted at step {step}{where}"

    model.train()
    step_loop(cfg, start, bar, record, update, save, stopped)
    run = Run(spec, model.eval(), history, cfg.steps, out, dataset)
    if out is not None:
        rundir.save_run(out, run)
    return run


_ACC_LABELS = {"clean_acc": "clean", "noisy_observed_acc": "noisy/obs", "noisy_true_acc": "noisy/true", "test_acc": "test"}
