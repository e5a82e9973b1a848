"""The same answer on every CPU. The decisions a CPU's summation order could move — the edit's
choice on a group (its irreps' basis included), the feature edit's checkpoint, teacher and
fine-tune, the class-subspace readout, the flip counts' push ranking — are recomputed in a fresh process with other kernels
(`interp.testing.NARROW_KERNELS`) and one torch thread, and compared with this process's value
for value (`result_differences`). Mutations it catches: the fine-tune in float32, the irrep basis
as LAPACK returns it. The readout, the trajectory, the checkpoint choice, the layer doubt and the
edit search's inputs back in float32 (this small run has no near-tie there) are caught by the
second test, which checks what each reads. Not compared: the probes, whose
scikit-learn fits in float32 can move a score by an example (docs/results.md, "The same answer
on every CPU")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from interp.testing import NARROW_KERNELS, result_differences


def decisions(run_path: str) -> dict:
    """What the analyses decide on the run at `run_path` and on a planted S3 net, as JSON."""
    from interp import NoiseSpec, TaskSpec, make_dataset
    from interp.analysis.edit import edit_search
    from interp.analysis.registry import analyze
    from interp.planted import planted_group_net
    from interp.training.rundir import load_run

    run = load_run(run_path)
    out = {name: analyze(run, name).to_dict() for name in ("feature_edit", "class_subspaces", "example_flips")}
    ds = make_dataset(TaskSpec(group="S3", train_fraction=0.6), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    search = edit_search(planted_group_net(ds).model, ds)
    out["edit_search"] = {"chosen": search.chosen, "keep": search.keep.tolist(), "metrics": search.edit.metrics}
    return json.loads(json.dumps(out, default=str))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A small token transformer over digits that memorises part of its noise, with checkpoints
    (the feature edit's trajectory). Its fine-tunes in float32 part on the narrower kernels."""
    import interp

    spec = interp.get_preset("digits-tt-40").spec.with_overrides(
        ["task.train_fraction=0.25", "model.d_model=32", "model.d_head=8", "model.d_mlp=64", "train.steps=60",
         "train.eval_every=10", "train.checkpoint_every=10"])
    return interp.train(spec, tmp_path_factory.mktemp("digits") / "run", progress=False)


def test_the_analyses_decide_the_same_on_a_cpu_with_other_kernels(digits_run):
    here = decisions(str(digits_run.path))
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"from test_same_on_every_cpu import decisions; print(json.dumps(decisions({str(digits_run.path)!r})))")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **NARROW_KERNELS}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert here["feature_edit"]["rows"] and here["edit_search"]["keep"]  # something was decided
    assert here["example_flips"]["examples"]["memorised"] > 0
    found = result_differences(here, there)
    assert found == [], "\n".join(found)


def test_result_differences_pass_rounding_and_catch_one_example():
    assert result_differences({"a": [0.5, 1.0 + 1e-15], "b": "x"}, {"a": [0.5, 1.0], "b": "x"}) == []
    assert result_differences({"acc": 500 / 1797}, {"acc": 501 / 1797}) == [f"/acc: {500 / 1797!r} against {501 / 1797!r}"]
    assert result_differences([1, 2], [1, 2, 3]) == [": [1, 2] against [1, 2, 3]"]
    assert result_differences({"k": float("nan")}, {"k": float("nan")}) == []
    float32_rounding = {"loss": [0.9, 0.9 * (1 + 2e-6)]}  # a float32 measurement summed in another order
    assert len(result_differences({"loss": [0.9, 0.9]}, float32_rounding)) == 1
    assert result_differences({"loss": [0.9, 0.9]}, float32_rounding, rel_tol=1e-5) == []
    assert len(result_differences({"acc": 14399 / 14400}, {"acc": 1.0}, rel_tol=1e-5)) == 1  # one example still counts


def test_the_rankings_and_the_searches_read_a_float64_forward(digits_run, monkeypatch):
    """Each place where other kernels' float32 rounding changed an answer (docs/results.md, "The same
    answer on every CPU") reads a float64 forward — the class-subspace readout and the noise score's
    layer doubt, checkpoint choice and trajectory; the edit search's space and teacher — which the
    comparison above cannot catch one by one on runs this small. The model's own accuracy is read
    in its own float32."""
    from interp import NoiseSpec, TaskSpec, make_dataset
    from interp.analysis import edit
    from interp.analysis.class_subspaces import class_subspace_readout
    from interp.analysis.noise_scores import first_layer_doubt
    from interp.families.base import ModelFamily
    from interp.planted import planted_group_net

    seen = []

    def recording(method):
        def wrapped(self, model, *args, **kwargs):
            seen.append((method.__name__, next(model.parameters()).dtype))
            return method(self, model, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(ModelFamily, "run_with_cache", recording(ModelFamily.run_with_cache))
    monkeypatch.setattr(ModelFamily, "forward", recording(ModelFamily.forward))
    class_subspace_readout(digits_run)
    first_layer_doubt(digits_run)  # the noise score's own, where no readout hands it over
    assert ("run_with_cache", torch.float64) in seen and ("forward", torch.float64) in seen
    assert [call for call in seen if call[1] != torch.float64] == [("forward", torch.float32)]  # the model's own
    seen.clear()
    from interp.analysis.example_flips import example_flips

    example_flips(digits_run)  # its pushes rank units and its flips are argmaxes: every forward float64
    assert seen and all(dtype == torch.float64 for _, dtype in seen)

    reads = []
    for name in ("edit_space", "teacher"):
        original = getattr(edit, name)
        monkeypatch.setattr(edit, name, lambda model, *a, _f=original, _n=name: reads.append(
            (_n, next(model.parameters()).dtype)) or _f(model, *a))
    ds = make_dataset(TaskSpec(group="S3", train_fraction=0.6), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    edit.edit_search(planted_group_net(ds).model, ds, with_labels=False)
    assert reads == [("edit_space", torch.float64), ("teacher", torch.float64)]
