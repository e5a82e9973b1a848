from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest

# Under pytest-xdist (pyproject's addopts run the suite on `-n 2` workers) each worker gets its
# share of the cores: torch's default of one thread per core in every worker would oversubscribe
# them (two workers × two threads on two cores ran slower than one process). Set before torch is
# imported, so the fresh interpreters the tests start (they inherit the environment) keep to the
# same share and compute what the worker computes. An explicit OMP_NUM_THREADS is kept.
if "PYTEST_XDIST_WORKER" in os.environ:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _share = max(1, _cores // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))
    for _name in ("MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, os.environ["OMP_NUM_THREADS"])
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_configure(config):
    """A process that runs tests keeps the memory it frees (glibc's heap, not a fresh mmap per
    large tensor: `interp.core.runtime.reuse_freed_memory`, which changes no value computed).
    Not in xdist's controlling process, which runs none. The fresh interpreters the tests start
    keep glibc's defaults: one of them checks that interp leaves those alone."""
    if "PYTEST_XDIST_WORKER" in os.environ or not getattr(config.option, "numprocesses", None):
        from interp.core.runtime import reuse_freed_memory

        reuse_freed_memory()


def pytest_collection_finish(session):
    """Once every test module is imported, what exists then (torch, TransformerLens and the
    rest: hundreds of thousands of objects that live as long as the process) leaves the cyclic
    garbage collector's care (`gc.freeze`), and collections run less often: the collector's
    walks over those objects had been a tenth of the suite's CPU time. No value computed changes."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


# interp is imported where it is used, not here: under xdist this file is also read by the
# controlling process, which runs no test, and `import interp` (torch, TransformerLens) would
# hold up the start of the workers by seconds.
if TYPE_CHECKING:
    from interp.core.specs import RunSpec


def small_two_layer(**train) -> RunSpec:
    """p=17 two-layer ReLU net with 50% wrong labels: trains in well under a second."""
    from interp.core.specs import NoiseSpec, RunSpec, TaskSpec, TrainSpec, TwoLayerSpec

    return RunSpec(
        task=TaskSpec(op="add", p=17, train_fraction=0.6),
        noise=NoiseSpec(kind="wrong", rate=0.5, seed=3),
        model=TwoLayerSpec(width=65, act="relu"),
        train=TrainSpec(**{"steps": 40, "lr": 3e-3, "weight_decay": 0.1, "eval_every": 10,
                           "checkpoint_every": 10, **train}),
    )


def small_transformer(**train) -> RunSpec:
    from interp.core.specs import NoiseSpec, RunSpec, TaskSpec, TrainSpec, TransformerSpec

    return RunSpec(
        task=TaskSpec(op="add", p=17, train_fraction=0.5),
        noise=NoiseSpec(kind="wrong", rate=0.2, seed=1),
        model=TransformerSpec(d_model=32, n_heads=2, d_head=16, d_mlp=64),
        train=TrainSpec(**{"steps": 12, "lr": 1e-3, "weight_decay": 1.0, "eval_every": 4,
                           "checkpoint_every": 4, **train}),
    )


@pytest.fixture
def two_layer_spec() -> RunSpec:
    return small_two_layer()


@pytest.fixture
def transformer_spec() -> RunSpec:
    return small_transformer()


@pytest.fixture(scope="session")
def planted_union():
    """(model, dataset, built): the analytic union of a rule transformer (frequencies 2, 5;
    heads L0H0, L0H1 copy a and b) and a lookup transformer storing 10% wrong labels (heads
    L0H2, L0H3; its neurons `unclustered`), p = 23: every head and neuron on one side by
    construction (interp.planted.planted_transformer)."""
    import interp
    from interp.planted import planted_transformer

    ds = interp.make_dataset(interp.TaskSpec(p=23, train_fraction=0.5),
                             interp.NoiseSpec(kind="wrong", rate=0.1, seed=7))
    built = planted_transformer(ds, freqs=(2, 5))
    return built.model, ds, built


@pytest.fixture(scope="session")
def doc_runs(tmp_path_factory):
    """A small run of each family, for the docs' snippets that read a run (read-only)."""
    import interp

    root = tmp_path_factory.mktemp("doc_runs")
    return {"two_layer": interp.train(small_two_layer(steps=20), root / "two_layer", progress=False),
            "transformer": interp.train(small_transformer(steps=4), root / "transformer", progress=False)}


#: the released architectures whose docs/checkpoints.md loading snippet (named as the
#: architecture) runs on every release of theirs without interp
RELEASE_SNIPPETS = ("transformer", "mlp", "token_transformer")


@pytest.fixture(scope="session")
def without_interp(doc_runs, tmp_path_factory):
    """Every snippet that reads a run without interp, in one interpreter where `import interp`
    raises (one TransformerLens start for all): docs/checkpoints.md's loading snippet of each
    family on `doc_runs`, each followed by `subsets` (job `load:KIND`), and the loading
    snippet of its architecture on every released transformer, MLP and token transformer
    (`RELEASE_SNIPPETS`; job `release:NAME`). Each job runs in its own
    folder and namespace and saves its `logits` there as logits.safetensors. Returns
    {job: (outcome, folder)}."""
    import re

    from fresh import run_fresh
    from test_docs import snippet

    from interp.training.release import MODELS_DIR, available

    root = tmp_path_factory.mktemp("without_interp")
    save = "\nfrom safetensors.torch import save_file\nsave_file({'logits': logits.contiguous()}, 'logits.safetensors')\n"
    jobs = {}
    for kind, run in doc_runs.items():
        jobs[f"load:{kind}"] = re.sub(r'run_dir = "[^"]*"', f'run_dir = "{run.path}"', snippet(kind)) + snippet("subsets") + save
    for name in available():
        arch = json.loads((MODELS_DIR / name / "config.json").read_text())["spec"]["model"]["arch"]
        if arch in RELEASE_SNIPPETS:
            jobs[f"release:{name}"] = re.sub(r'run_dir = "[^"]*"', f'run_dir = "{MODELS_DIR / name}"',
                                             snippet(arch)) + save
    folders = {job: root / re.sub(r"\W", "_", job) for job in jobs}
    for folder in folders.values():
        folder.mkdir()
    outcomes = run_fresh({job: (code, folders[job]) for job, code in jobs.items()}, without_interp=True)
    return {job: (outcomes[job], folders[job]) for job in jobs}


# What a fresh interpreter sees: its process-wide state before `import interp` and after
# importing, training and analysing (flush-to-zero on the calling and on a new thread, whether
# glibc's heap serves a 64 MB block, matplotlib's backend), and which heavy modules the CLI and
# the report module pull in at start-up.
_PROBE = """
import json, re, sys, threading
import matplotlib
import torch

def heap_grows():
    # glibc serves a 64 MB block with mmap unless M_MMAP_THRESHOLD was raised above it
    def heap():
        for line in open("/proc/self/maps"):
            if line.rstrip().endswith("[heap]"):
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                return hi - lo
        return 0
    before = heap(); block = torch.empty(64 << 20, dtype=torch.uint8); block.fill_(1)
    return heap() - before > (32 << 20)

def flushed_in_new_thread():
    out = []
    t = threading.Thread(target=lambda: out.append((torch.tensor(1e-30) * 1e-10).item() == 0.0))
    t.start(); t.join()
    return out[0]

def state():
    return ((torch.tensor(1e-30) * 1e-10).item() == 0.0, flushed_in_new_thread(), heap_grows(),
            matplotlib.get_backend())

before = state()
import interp.cli, interp.reporting.report
heavy = sorted(m for m in ('transformer_lens.model_bridge', 'sklearn') if m in sys.modules)
import interp
from interp.reporting.report import analyze
spec = interp.get_preset("liu-lu-80").spec.with_overrides(["p=11", "width=17", "steps=20", "eval_every=10"])
run = interp.train(spec, progress=False)
analyze(run, "fourier"); analyze(run, "ablation")
from interp.analysis.plots import plot_history
import tempfile, pathlib
plot_history(run.history, pathlib.Path(tempfile.mkdtemp()) / "h.png")
after = state()
print(json.dumps({"before": before, "after": after, "heavy_after_cli_import": heavy}))
"""


@pytest.fixture(scope="session")
def with_interp(tmp_path_factory):
    """One new `python` process for every check that needs a fresh interpreter with interp (one
    start of torch and interp for all of them), matplotlib's backend set to svg, a backend other
    than the headless default, so that a switch to Agg would show. `_PROBE` runs first (job
    `probe`), before anything in the process has imported torch or interp; then the snippets that
    train what they need ("self" in test_docs.HOW). Each job runs in its own folder and namespace.
    Returns {job: (outcome, folder)}."""
    import re

    from fresh import run_fresh
    from test_docs import HOW, snippet

    root = tmp_path_factory.mktemp("with_interp")
    jobs = {"probe": _PROBE, **{name: snippet(name) for name, how in HOW.items() if how == "self"}}
    folders = {job: root / re.sub(r"\W", "_", job) for job in jobs}
    for folder in folders.values():
        folder.mkdir()
    outcomes = run_fresh({job: (code, folders[job]) for job, code in jobs.items()},
                         env={**os.environ, "MPLBACKEND": "svg"})
    return {job: (outcomes[job], folders[job]) for job in jobs}


@pytest.fixture(scope="session")
def fresh_interpreter(with_interp):
    """`_PROBE`'s findings from its fresh interpreter (`with_interp`)."""
    outcome, _ = with_interp["probe"]
    outcome.check()
    return json.loads(outcome.stdout.strip().splitlines()[-1])


#: Fixtures that take seconds to build, by the module that defines them ("conftest": the
#: session-wide ones here). Under pytest-xdist's `--dist loadgroup` (pyproject's addopts) the
#: tests that use one of them form one group, run by one worker, so each is built once and not
#: once per worker; every other test goes to whichever worker is free. xdist hands out groups
#: before single tests, larger first, so these heavy tests also start early rather than leave
#: one worker running the last of them while the other waits (test_report's `trained`: the demo
#: and the report without a trajectory, seconds each).
SHARED_FIXTURES = {
    "without_interp": "conftest", "with_interp": "conftest", "search": "test_edit", "trained": "test_report",
    "planted_transformer_model": "test_localize", "_writers": "test_integrity",
}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", None)
        used = getattr(item, "fixturenames", ())
        group = next((name for name, where in SHARED_FIXTURES.items() if name in used and where in ("conftest", module)),
                     None)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
