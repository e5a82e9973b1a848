"""The same answer on every CPU. The decisions a CPU's summation order could move — the edit's
choice on a group, the feature edit's checkpoint, teacher and fine-tune, the probes' fits — are
recomputed in a fresh process whose kernels are held to a narrower vector width (torch's own
kernels without SIMD, MKL's and oneDNN's at SSE4.2, OpenBLAS's at Nehalem: other matrix
kernels, so other summation orders, as on another CPU) and one torch thread, and compared with
this process's, value for value: counts and accuracies exactly, other floats to 1e-7 (float64
sums in another order differ near 1e-15; an accuracy moved by one example differs by more than
1e-5). On a CPU without these instruction sets the variables change nothing and the test
compares a process with itself."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

NARROW = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
          "OPENBLAS_CORETYPE": "Nehalem", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
          "OPENBLAS_NUM_THREADS": "1"}


def decisions(run_path: str) -> dict:
    """What the analyses decide on the run at `run_path` and on a planted S3 net, as JSON."""
    from interp import NoiseSpec, TaskSpec, make_dataset
    from interp.analysis.edit import edit_search
    from interp.analysis.registry import analyze
    from interp.planted import planted_group_net
    from interp.training.rundir import load_run

    run = load_run(run_path)
    out = {name: analyze(run, name).to_dict() for name in ("feature_edit", "probes", "class_subspaces")}
    ds = make_dataset(TaskSpec(group="S3", train_fraction=0.6), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    search = edit_search(planted_group_net(ds).model, ds)
    out["edit_search"] = {"chosen": search.chosen, "keep": search.keep.tolist(), "metrics": search.edit.metrics}
    return json.loads(json.dumps(out, default=str))


def differences(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-12):
        return []
    return [] if a == b else [f"{where}: {a!r} here, {b!r} on the narrower CPU"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A small token transformer over digits that memorises part of its noise, with checkpoints
    (the feature edit's trajectory)."""
    import interp

    spec = interp.get_preset("digits-tt-40").spec.with_overrides(
        ["task.train_fraction=0.25", "model.d_model=32", "model.d_head=8", "model.d_mlp=64", "train.steps=60",
         "train.eval_every=10", "train.checkpoint_every=10"])
    return interp.train(spec, tmp_path_factory.mktemp("digits") / "run", progress=False)


def test_the_analyses_decide_the_same_on_a_cpu_with_other_kernels(digits_run):
    here = decisions(str(digits_run.path))
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"from test_same_on_every_cpu import decisions; print(json.dumps(decisions({str(digits_run.path)!r})))")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **NARROW}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert here["feature_edit"]["rows"] and here["edit_search"]["keep"]  # something was decided
    found = differences(here, there)
    assert found == [], "\n".join(found)
