"""Run directories around `interp.planted.planted_feature_mlp`, for the analyses that read a
run's trajectory (layer rewinds, the feature edit)."""

from __future__ import annotations

from pathlib import Path

import torch

import interp
from interp.core.specs import RunSpec


def write_planted_feature_run(out: Path, dataset, model, memory, memorising_steps: int = 0) -> Path:
    """A run directory at `out` whose step 1 is `model` without its lookups (the `memory` units
    of block 1 and the readout's weights from them zeroed: the rule alone), then
    `memorising_steps` checkpoints of `model` itself, and `model` as the final step."""
    from interp.training import rundir
    from interp.training.train import make_optimizer, open_run_dir

    early = interp.families.replaced_parameters(model, {})
    with torch.no_grad():
        early.blocks[1].linear.weight[memory] = 0
        early.blocks[1].linear.bias[memory] = 0
        early.unembed.weight[:, memory] = 0
    spec = RunSpec(task=dataset.task, model=model.spec)
    optimizer = make_optimizer(spec.train, early.parameters())
    open_run_dir(out, spec, early, optimizer, False, dataset)
    rundir.save_checkpoint(out, 1, early, optimizer, [])
    for step in range(2, 2 + memorising_steps):
        rundir.save_checkpoint(out, step, model, optimizer, [])
    final = 2 + memorising_steps
    rundir.save_run(out, interp.Run(spec, model, [{"step": final}], final, out, dataset))
    return out
