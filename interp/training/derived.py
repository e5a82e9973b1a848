"""A run derived from another by changing its weights (an edit): the same spec, dataset and
architecture, the new model evaluated once, written as a new run directory whose config says
where it came from. The analyses compute derived models; this is where they become runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .rundir import Run, imported_from, save_new_run, sha256
from .train import evaluate


def refuse_filled(out: str | Path) -> Path:
    """`out` as a Path, refused (before any work) when it is a file or a non-empty folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder; choose another --out")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; choose another --out")
    return out


def source_of(run: Run) -> dict[str, str | None]:
    """Where a derived run came from: the source run's folder and its weights' checksum."""
    source = None if run.path is None else Path(run.path)
    return {"run": None if source is None else str(source),
            "model_sha256": None if source is None else sha256(source / "model.safetensors")}


def save_derived_run(run: Run, model: nn.Module, out: str | Path, key: str, provenance: dict[str, Any],
                     updates: int = 0) -> Run:
    """`run` with its model replaced by `model` (same architecture), evaluated on its dataset and
    written to the new run directory `out`, its config recording `{key: source_of(run) + provenance}`.
    `updates`: the optimiser steps the edit added (a fine-tune's; 0 for a mask or projection), so
    that the derived run's `step` stays the number of updates behind its weights."""
    if updates < 0:
        raise ValueError(f"updates must be ≥ 0, got {updates}")
    out = refuse_filled(out)
    step = run.step + updates
    derived = Run(run.spec, model, [{"step": step, "lr": 0.0, **evaluate(model, run.dataset, run.spec.train.loss)}],
                  step, None, run.dataset)
    # under out's lock (save_new_run): two writers into one folder cannot interleave
    # an edit of an imported model knows no more of its training than the import did
    origin = imported_from(run)
    save_new_run(out, derived, {key: {**source_of(run), **provenance}, **({"imported_from": origin} if origin else {})})
    derived.path = out
    return derived
