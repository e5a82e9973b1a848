"""Train many networks of the same shapes in one batched computation (two-layer nets and
one-layer transformers: each family says whether it can, `ModelFamily.batchable`).

Sweeps are made of runs that differ only in seeds, noise and weight decay. `train_many(specs,
outs)` stacks K such networks into [K, …] parameters, runs one forward and backward pass for all
of them (the family's `stacked_loss_and_grads`: the two-layer net's hand-written step in
`interp.families.stacked`, the transformer's batched last-position forward), and steps one optimizer over the stacked
tensors. The update is elementwise, so each network follows its own run: each gets the gradient
of its own mean loss, and weight decay — the one optimizer setting allowed to differ — is
applied per network by hand with the optimizer's own rule (by the optimizer itself when all
networks share it). Every network keeps a plain model of its family whose parameters are views into
the stack, so evaluation, checkpoints and the run directories are exactly those of `train`:
each can be loaded, analysed or resumed on its own.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..core.specs import RunSpec
from ..core.tasks import make_dataset
from ..families.base import build_model, family_for_spec
from . import rundir
from .rundir import Run
from .train import TrainingDiverged, check_device, evaluate, lr_at, make_optimizer, open_run_dir, started, step_loop


def batch_key(spec: RunSpec) -> RunSpec | None:
    """Specs with equal keys train together; None when `spec` cannot be batched (a family that
    cannot stack, minibatches). Seeds, the noise model and weight decay may differ."""
    if not family_for_spec(spec.model).batchable(spec.model) or spec.train.batch_size != 0:
        return None
    return replace(spec, task=replace(spec.task, seed=0), noise=replace(spec.noise, rate=0.0, seed=0, kind="wrong"),
                   model=replace(spec.model, seed=0), train=replace(spec.train, weight_decay=0.0))


def _decay(optimizer: str, params: list[Tensor], decay: Tensor, lr: float) -> None:
    """Per-network weight decay, as torch applies it: AdamW shrinks the weights before its
    update; Adam and SGD add `wd · θ` to the gradient."""
    with torch.no_grad():
        for param in params:
            wd = decay.view(-1, *[1] * (param.dim() - 1))
            if optimizer == "adamw":
                param.mul_(1 - lr * wd)
            else:
                param.grad.add_(param * wd)


def train_many(
    specs: Sequence[RunSpec],
    outs: Sequence[Path | str | None] | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> list[Run]:
    """Train the networks of `specs` together (all must share one `batch_key`); write each run
    directory to its entry of `outs` as `train` would, holding every one's lock. With `resume`,
    the stack continues as a stack from the last checkpoint that all its runs hold (a kill -9
    between two runs' checkpoints leaves them a step apart), so an interrupted stack ends with
    the weights of an uninterrupted one, bit for bit. Returns one `Run` per spec."""
    specs = list(specs)
    outs = [Path(o) if o is not None else None for o in (outs or [None] * len(specs))]
    keys = {batch_key(s) for s in specs}
    if None in keys or len(keys) != 1:
        raise ValueError("train_many needs full-batch specs of a family that stacks (two-layer nets, one-layer "
                         "transformers) that differ only in seeds, noise and weight decay; train the others one "
                         "by one with interp.train")
    if len(outs) != len(specs):
        raise ValueError(f"{len(specs)} specs but {len(outs)} output folders")
    check_device(device)
    with contextlib.ExitStack() as locks:
        for out in outs:
            if out is not None:
                locks.enter_context(rundir.locked(out))
        return _train_many(specs, outs, resume, progress, device)


def common_step(outs: Sequence[Path | None], resume: bool) -> int:
    """The step a stack resumes from: the last checkpoint every run directory records (0 when
    one has none, or has not started)."""
    if not resume:
        return 0
    common: set[int] | None = None
    for out in outs:
        steps = set(rundir.trajectory_steps(out)) if out is not None and started(out) else set()
        common = steps if common is None else common & steps
    return max(common) if common else 0


def _train_many(specs: list[RunSpec], outs: list[Path | None], resume: bool, progress: bool, device) -> list[Run]:
    cfg, model_spec, p = specs[0].train, specs[0].model, specs[0].task.p
    datasets = [make_dataset(s.task, s.noise) for s in specs]
    models = [build_model(s.model, p).to(device) for s in specs]
    optimizers = [make_optimizer(s.train, m.parameters()) for s, m in zip(specs, models)]
    histories: list[list[dict[str, Any]]] = [[] for _ in specs]
    start = common_step(outs, resume)
    for i, (spec, out) in enumerate(zip(specs, outs)):
        if out is not None:
            _, histories[i], datasets[i] = open_run_dir(out, spec, models[i], optimizers[i], resume, datasets[i],
                                                        at_step=start)

    family = family_for_spec(model_spec)
    # stacked by state-dict name (what the family's stacked step reads), in the order of
    # model.parameters() (what the per-network optimizers' states follow); buffers ride along
    states = [m.state_dict(keep_vars=True) for m in models]
    order = {id(param): i for i, param in enumerate(models[0].parameters())}
    names = sorted(states[0], key=lambda n: order.get(id(states[0][n]), len(order)))
    stacked = {name: torch.stack([s[name].detach() for s in states]).requires_grad_(id(states[0][name]) in order)
               for name in names}
    for k, state in enumerate(states):  # each network's tensors become views into the stack
        for name in names:
            state[name].data = stacked[name].data[k]
    trained = {name: t for name, t in stacked.items() if t.requires_grad}
    decays = [s.train.weight_decay for s in specs]
    shared_decay = decays[0] if len(set(decays)) == 1 else None  # then the optimizer applies it
    optimizer = _stacked_optimizer(cfg, shared_decay or 0.0, trained, optimizers)
    decay = torch.tensor(decays, device=device)

    train_idx = [ds.train_mask.nonzero().squeeze(1) for ds in datasets]
    if len({len(t) for t in train_idx}) != 1:
        raise ValueError("the specs have different numbers of training examples")
    batch = family.stacked_batch(model_spec, p, torch.stack([ds.inputs[t] for ds, t in zip(datasets, train_idx)]).to(device),
                                 torch.stack([ds.labels[t] for ds, t in zip(datasets, train_idx)]).to(device))
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, desc=f"train ×{len(specs)}", unit="step")

    def record(step: int) -> None:
        for k, m in enumerate(models):
            histories[k].append({"step": step, "lr": lr_at(cfg, max(step - 1, 0)),
                                 **evaluate(m, datasets[k], cfg.loss)})

    def save(step: int) -> None:
        for k, out in enumerate(outs):
            if out is not None:
                rundir.save_checkpoint(out, step, models[k], _view_optimizer(optimizer, trained, optimizers[k], models[k], k),
                                           histories[k])

    def update(step: int, lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr
        losses, grads = family.stacked_loss_and_grads(stacked, model_spec, p, batch, cfg.loss)
        if not math.isfinite(losses.sum().item()):  # finite iff every network's loss is
            bad = [f"{outs[k] or k}: {losses[k].item()}" for k in range(len(specs)) if not torch.isfinite(losses[k])]
            raise TrainingDiverged(f"loss became non-finite at step {step} (lr {lr:g}) in {', '.join(bad)}")
        for name, param in trained.items():
            # torch's fused AdamW reads a non-contiguous gradient (a transposed matmul's) with
            # the parameter's strides, silently scrambling the update: hand it contiguous ones
            param.grad = grads[name].contiguous()
        if shared_decay is None:
            _decay(cfg.optimizer, list(trained.values()), decay, lr)
        optimizer.step()

    for m in models:
        m.train()
    step_loop(cfg, start, bar, record, update, save,
              lambda step: f"training interrupted at step {step}; resume with resume=True")
    runs = []
    for k, (spec, m, out) in enumerate(zip(specs, models, outs)):
        own = build_model(spec.model, p).to(device)  # detach from the stack
        own.load_state_dict({name: t.clone() for name, t in m.state_dict().items()})
        run = Run(spec, own.eval(), histories[k], cfg.steps, out, datasets[k])
        if out is not None:
            rundir.save_run(out, run)
        runs.append(run)
    return runs


def _stacked_optimizer(cfg, weight_decay: float, stacked: dict[str, Tensor], optimizers: list
                       ) -> torch.optim.Optimizer:
    """One optimizer over the stacked parameters with `weight_decay` (0 when it differs between
    networks and is applied per network), its state stacked from the per-network optimizers
    (non-empty when resuming)."""
    optimizer = make_optimizer(replace(cfg, weight_decay=weight_decay), list(stacked.values()))
    params = list(stacked.values())
    states = [[opt.state.get(p_, {}) for p_ in opt.param_groups[0]["params"]] for opt in optimizers]
    for j, param in enumerate(params):
        per_net = [s[j] for s in states]
        if per_net[0]:
            optimizer.state[param] = {
                key: torch.stack([s[key] for s in per_net]) if per_net[0][key].dim() else per_net[0][key].clone()
                for key in per_net[0]
            }
    return optimizer


def _view_optimizer(optimizer, stacked: dict[str, Tensor], own, model: torch.nn.Module, k: int):
    """Network k's optimizer, its state a slice of the stacked state (for its checkpoint)."""
    for param, mine in zip(stacked.values(), model.parameters()):
        state = optimizer.state.get(param, {})
        own.state[mine] = {key: value[k] if torch.is_tensor(value) and value.dim() else value
                           for key, value in state.items()}
    return own

