"""Issue 21: nothing on disk can lie. Every file of a run directory is checked against its
manifest, no read or write leaves the run directory, one writer at a time, specs and grids are
validated before anything is allocated, and every CLI error is one line. Small runs (p = 11)."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import interp
from interp.cli import main
from interp.core.specs import NoiseSpec, RunSpec, SpecError, TaskSpec, TrainSpec, TwoLayerSpec
from interp.training import rundir
from interp.training.release import export
from interp.training.rundir import CheckpointError, RunDirectoryLocked, load_run, trajectory_steps
from interp.training.train import train

ROOT = Path(__file__).resolve().parent.parent


def tiny(**train_kw) -> RunSpec:
    return RunSpec(task=TaskSpec(p=11, train_fraction=0.6), noise=NoiseSpec(rate=0.3, seed=1),
                   model=TwoLayerSpec(width=16),
                   train=TrainSpec(**{"steps": 20, "lr": 3e-3, "weight_decay": 0.1, "eval_every": 5,
                                      "checkpoint_every": 10, **train_kw}))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    train(tiny(), out, progress=False)
    return out


@pytest.fixture
def run_dir(trained, tmp_path):
    return Path(shutil.copytree(trained, tmp_path / "run"))


def one_line_error(capsys, argv, rc=2) -> str:
    assert main(argv) == rc
    err = capsys.readouterr().err.strip()
    assert err.startswith("interp: error:") and "\n" not in err and "Traceback" not in err, err
    return err


# --- 1. one integrity rule ------------------------------------------------------------------


def test_every_file_is_in_the_manifest(run_dir):
    files = rundir.read_manifest(run_dir)
    assert {"config.json", "history.json", "dataset.safetensors", "model.safetensors"} <= files.keys()
    assert trajectory_steps(run_dir) == [10, 20]
    own = rundir.read_manifest(run_dir / "checkpoints" / "step_10")
    assert set(own) == {"model.safetensors", "optimizer.safetensors", "history.json", "state.json"}
    json.loads((run_dir / "config.json").read_text())  # still plain JSON, readable without interp


def test_edited_history_is_refused_by_load_and_report(run_dir, capsys):
    history = json.loads((run_dir / "history.json").read_text())
    history[-1]["test_acc"] = 0.99
    (run_dir / "history.json").write_text(json.dumps(history))
    with pytest.raises(CheckpointError, match="history.json is truncated or corrupted .or was edited"):
        load_run(run_dir)
    assert "history.json" in one_line_error(capsys, ["report", str(run_dir), "--no-progress"])


def test_edited_config_is_refused(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    config["spec"]["model"]["act"] = "gelu"
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    with pytest.raises(CheckpointError, match="config.json is truncated or corrupted"):
        load_run(run_dir)


def test_missing_checksum_is_an_error_and_resume_refuses_an_unverifiable_checkpoint(run_dir):
    ckpt = run_dir / "checkpoints" / "step_10"
    state = json.loads((ckpt / "state.json").read_text())
    del state["sha256"]
    (ckpt / "state.json").write_text(json.dumps(state))
    weights = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(weights[:-4] + bytes([weights[-4] ^ 0x40]) + weights[-3:])
    rundir.drop_checkpoint(run_dir, 20)
    with pytest.raises(CheckpointError, match="step_10/(state.json|model.safetensors) is truncated or corrupted"):
        train(tiny(), run_dir, resume=True, progress=False)
    # deleting a file's entry from the manifest is no way around it either
    files = rundir.read_manifest(run_dir)
    del files["config.json"]
    rundir.write_manifest(run_dir, files)
    with pytest.raises(CheckpointError, match="config.json is not recorded"):
        load_run(run_dir)


def test_manifest_deleted_is_an_error(run_dir):
    os.unlink(run_dir / "manifest.json")
    with pytest.raises(CheckpointError, match="manifest.json is missing"):
        load_run(run_dir)


def test_checkpoint_step_is_checked_against_its_folder(run_dir):
    os.rename(run_dir / "checkpoints" / "step_10", run_dir / "checkpoints" / "step_15")
    assert 15 not in trajectory_steps(run_dir)  # a folder the manifest does not name is not a checkpoint
    with pytest.raises(CheckpointError, match="no checkpoint at step 15"):
        load_run(run_dir, step=15)
    files = rundir.read_manifest(run_dir)  # even with the manifest edited to match the new name
    files["checkpoints/step_15/manifest.json"] = files.pop("checkpoints/step_10/manifest.json")
    rundir.write_manifest(run_dir, files)
    with pytest.raises(CheckpointError, match="records step 10, not the 15"):
        load_run(run_dir, step=15)


def test_crash_before_the_final_manifest_leaves_no_run_that_loads_as_finished(run_dir, monkeypatch):
    """save_run writes the manifest last: dying before it leaves the old manifest, which names
    no final model, so the run does not load as finished (nor as step 0)."""
    run = load_run(run_dir)
    rundir.update_manifest(run_dir, {"model.safetensors": None, "history.json": None})
    monkeypatch.setattr(rundir, "update_manifest", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "boom")))
    with pytest.raises(OSError):
        rundir.save_run(run_dir, run)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="holds no final model yet"):
        load_run(run_dir)


# --- 2. regular files only, nothing leaves the run directory ----------------------------------


def test_symlink_to_dev_zero_is_refused_at_once(run_dir):
    os.unlink(run_dir / "model.safetensors")
    os.symlink("/dev/zero", run_dir / "model.safetensors")
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="symbolic link"):
        load_run(run_dir)
    assert time.monotonic() - start < 5


def test_fifo_and_device_are_refused_without_blocking(run_dir):
    os.unlink(run_dir / "history.json")
    os.mkfifo(run_dir / "history.json")
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_run(run_dir)
    with pytest.raises(CheckpointError, match="not a regular file"):
        rundir.read_bytes(Path("/dev/null"))


def test_checkpoints_symlink_never_deletes_another_folder(tmp_path):
    victim = tmp_path / "victim"
    (victim / "step_10").mkdir(parents=True)
    (victim / "step_10" / "precious.txt").write_text("keep me")
    out = tmp_path / "run"
    out.mkdir()
    os.symlink(victim, out / "checkpoints")
    with pytest.raises(CheckpointError, match="symbolic link"):
        train(tiny(), out, progress=False)
    assert (victim / "step_10" / "precious.txt").read_text() == "keep me"


def test_analysis_output_symlink_is_not_followed(run_dir, tmp_path, capsys):
    outside = tmp_path / "outside.md"
    outside.write_text("untouched")
    (run_dir / "analysis").mkdir()
    os.symlink(outside, run_dir / "analysis" / "filtration.md")
    one_line_error(capsys, ["analyze", str(run_dir), "--analysis", "filtration"])
    assert outside.read_text() == "untouched"


def test_export_refuses_a_non_empty_target_and_replaces_atomically(run_dir, tmp_path, capsys):
    other = Path(shutil.copytree(run_dir, tmp_path / "other"))
    dest = tmp_path / "release"
    export(run_dir, dest, trajectory_every=10)
    assert trajectory_steps(dest) == [10, 20]
    err = one_line_error(capsys, ["export", str(other), "--to", str(dest)])
    assert "--replace" in err
    assert main(["export", str(other), "--to", str(dest), "--replace"]) == 0
    assert trajectory_steps(dest) == [] and not (dest / "checkpoints").exists()  # never merged
    assert load_run(dest).step == 20
    assert not [p for p in dest.parent.iterdir() if p.name.endswith((".partial", ".old"))]


def test_export_target_symlinked_files_are_not_written_through(run_dir, tmp_path):
    dest = tmp_path / "release"
    dest.mkdir()
    outside = tmp_path / "outside.json"
    outside.write_text("untouched")
    os.symlink(outside, dest / "config.json")
    export(run_dir, dest, replace=True)
    assert outside.read_text() == "untouched" and not (dest / "config.json").is_symlink()
    load_run(dest)


def test_export_onto_itself_and_empty_names_are_one_line(run_dir, capsys):
    err = one_line_error(capsys, ["export", str(run_dir), "--to", str(run_dir / "inner")])
    assert "PosixPath" not in err and "one folder holds the other" in err
    with pytest.raises(CheckpointError, match="empty path"):
        interp.load("")


def test_report_refuses_a_non_empty_target_and_an_empty_history(run_dir, tmp_path, capsys):
    from interp.reporting.report import write_report

    target = tmp_path / "report"
    target.mkdir()
    (target / "mine.txt").write_text("x")
    run = load_run(run_dir)
    with pytest.raises(CheckpointError, match="not empty; pass --replace"):
        write_report(run, target, progress=False)
    assert (target / "mine.txt").exists()
    run.history = []
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="empty history"):
        write_report(run, target, progress=False, replace=True)
    assert time.monotonic() - start < 2 and (target / "mine.txt").exists()


# --- 3. one writer per run directory ----------------------------------------------------------


def test_second_writer_is_refused_naming_the_holder(run_dir, tmp_path, capsys):
    with rundir.locked(run_dir):
        err = one_line_error(capsys, ["train", "--preset", "liu-lu-80", "--out", str(run_dir), "--resume",
                                      "--no-progress", "--set", "p=11", "--set", "steps=20"])
        assert f"pid {os.getpid()}" in err
        with pytest.raises(RunDirectoryLocked):
            export(tmp_path / "nowhere", run_dir)
    with rundir.locked(run_dir):  # released on exit, and re-taken
        pass


# --- 4. specs and grids at the boundary -------------------------------------------------------


@pytest.mark.parametrize("setting", ["lr=inf", "weight_decay=inf", "momentum=nan", "p=23.9", "width=1e9",
                                     "task.seed=1180591620717411303424", "p=100003"])
def test_bad_values_are_refused_before_anything_is_written(tmp_path, capsys, setting):
    out = tmp_path / "run"
    one_line_error(capsys, ["train", "--preset", "liu-lu-80", "--out", str(out), "--no-progress", "--set", setting])
    assert not out.exists()


def test_spec_values_in_the_python_api():
    with pytest.raises(SpecError, match="integer"):
        TaskSpec(p=23.9)
    with pytest.raises(SpecError, match="integer"):
        TwoLayerSpec(width=65.0)
    with pytest.raises(SpecError, match="not a valid int"):
        RunSpec().with_overrides({"p": 23.9})
    with pytest.raises(SpecError, match="not prime"):
        TaskSpec(op="mul", p=12)
    with pytest.raises(SpecError, match="< 9223372036854775808"):
        TaskSpec(seed=2**70)
    with pytest.raises(SpecError, match="over the limit of 32.0 GiB"):
        replace(tiny(), model=TwoLayerSpec(width=10**9))
    assert TaskSpec(op="mul", p=11).p == 11 and TaskSpec(seed=2**63 - 1).seed == 2**63 - 1


@pytest.mark.parametrize("text, message", [
    ('preset = "liu-lu-80"\nset = 5\n[grid]\nwidth = [3]', "`set` must be a table"),
    ('preset = "liu-lu-80"\ngrid = 5', "`grid` must be a table"),
    ('preset = "liu-lu-80"\nset = { p = 11 }', "names no axes"),
    ('preset = "liu-lu-80"\n[grid]\nwidth = [3, 3]', "lists 3 more than once"),
    ('preset = "liu-lu-80"\n[grid]\nwidth = [3.5]', "width"),
])
def test_grid_files_are_validated_whole_before_training(tmp_path, capsys, text, message):
    grid = tmp_path / "grid.toml"
    grid.write_text(text)
    err = one_line_error(capsys, ["sweep", str(grid), "--out", str(tmp_path / "sweep"), "--no-progress"])
    assert message in err
    assert not (tmp_path / "sweep").exists()


# --- 5. every CLI error one line --------------------------------------------------------------


def test_bad_device_is_one_line(tmp_path, capsys):
    for device in ["bogus"] + ([] if torch.cuda.is_available() else ["cuda"]):
        err = one_line_error(capsys, ["train", "--preset", "liu-lu-80", "--out", str(tmp_path / "r"), "--no-progress",
                                      "--set", "p=11", "--device", device])
        assert device in err


def test_config_that_is_a_list_is_one_line(run_dir, capsys):
    (run_dir / "config.json").write_text("[]")
    rundir.update_manifest(run_dir, {"config.json": rundir.sha256(run_dir / "config.json")})
    assert "not an interp.run config" in one_line_error(capsys, ["report", str(run_dir), "--no-progress"])


def test_full_disk_part_way_through_an_export(run_dir, tmp_path, capsys, monkeypatch):
    """The third file written fails with ENOSPC after half its bytes: one line, nothing of the
    release in place, no temporary file left, and a later export succeeds."""
    real = os.fdopen
    count = {"n": 0}

    class HalfFull:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "disk")

        def __getattr__(self, name):
            return getattr(self.f, name)

    def fdopen(fd, *args, **kwargs):
        count["n"] += 1
        f = real(fd, *args, **kwargs)
        return HalfFull(f) if count["n"] == 3 else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    dest = tmp_path / "release"
    err = one_line_error(capsys, ["export", str(run_dir), "--to", str(dest)])
    assert "No space left on device" in err and "disk is full" in err
    monkeypatch.undo()
    assert not dest.exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".partial"))]
    export(run_dir, dest)
    assert load_run(dest).step == 20


def test_full_disk_during_training_leaves_a_resumable_run(tmp_path, monkeypatch):
    straight = train(tiny(), None, progress=False)
    out = tmp_path / "run"
    real = rundir.write_tensors
    calls = {"n": 0}

    def failing(path, tensors):
        calls["n"] += 1
        if calls["n"] == 4:  # the second checkpoint's model file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, tensors)

    monkeypatch.setattr(rundir, "write_tensors", failing)
    with pytest.raises(OSError):
        train(tiny(), out, progress=False)
    monkeypatch.undo()
    assert trajectory_steps(out) == [10]
    resumed = train(tiny(), out, resume=True, progress=False)
    for name, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value)


def test_unreachable_ray_address_times_out_with_a_message():
    from interp.sweep import _check_reachable

    start = time.monotonic()
    with pytest.raises(ConnectionError, match="no Ray cluster answers at 127.0.0.1:9"):
        _check_reachable("127.0.0.1:9", timeout=2)
    assert time.monotonic() - start < 5


# --- 6/7. kill -9 during writes ---------------------------------------------------------------


# The killed writers are forks of one fresh interpreter (the zygote) that imports interp once
# (seconds) and then, for each line of code it reads on its stdin, forks a writer that runs it,
# prints the writer's pid, waits for it to end and prints `ended`. It starts when this module's
# first test starts, to import while the tests before the kill tests run; under pytest-xdist,
# when the first kill test needs it (both cores already run tests: importing beside them would
# only compete). It runs one torch thread, so that it has no thread pool for a fork to break.
_ZYGOTE = r"""
import json, os, sys, traceback
import interp.training.release, interp.training.train
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            exec(compile(json.loads(line), "<writer>", "exec"), {"__name__": "__main__"})
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(1)  # only a writer that was not killed gets here
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("ended", flush=True)
"""
_zygote: list[subprocess.Popen] = []


def _start_zygote() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _ZYGOTE], env={**os.environ, "PYTHONPATH": str(ROOT),
                            "OMP_NUM_THREADS": "1"}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module", autouse=True)
def _writers():
    if "PYTEST_XDIST_WORKER" not in os.environ:
        _zygote[:] = [_start_zygote()]
    yield
    for zygote in _zygote:
        zygote.kill()
        zygote.wait(timeout=10)
        zygote.stdin.close(), zygote.stdout.close(), zygote.stderr.close()
    _zygote.clear()


def _run_until_marker_then_kill(code: str, marker: Path, timeout: float = 60) -> None:
    if not _zygote:
        _zygote.append(_start_zygote())
    zygote = _zygote[0]

    def fail(why: str):
        zygote.kill()
        zygote.wait(timeout=10)
        _zygote.clear()
        err = zygote.stderr.read()[-2000:]
        zygote.stdin.close(), zygote.stdout.close(), zygote.stderr.close()
        raise AssertionError(f"{why}: {err}")

    zygote.stdin.write(json.dumps(textwrap.dedent(code)) + "\n")
    zygote.stdin.flush()
    pid = int(zygote.stdout.readline() or 0) or fail("the zygote died")
    deadline = time.monotonic() + timeout
    while not marker.exists():
        try:
            os.kill(pid, 0)  # the zygote reaps its writer at once: a writer that ended is gone
        except ProcessLookupError:
            fail("the writer ended before the marker")
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            fail("no marker in time")
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    assert zygote.stdout.readline().strip() == "ended"  # the writer is dead and reaped


SLOW_WRITE = """
    import os, sys, time
    from pathlib import Path
    from interp.core import file_safety
    real, marker, nth = file_safety.atomic_write_bytes, Path(sys.argv[0] if False else {marker!r}), {nth}
    count = [0]
    def slow(path, data):
        count[0] += 1
        if count[0] == nth:  # write half a temporary file, then wait to be killed
            tmp = Path(path).parent / ('.' + Path(path).name + '.killed.tmp')
            tmp.write_bytes(data[: len(data) // 2])
            marker.write_text('now')
            time.sleep(60)
        return real(path, data)
    file_safety.atomic_write_bytes = slow
"""


def test_kill_during_export_leaves_nothing_that_loads(run_dir, tmp_path):
    dest, marker = tmp_path / "release", tmp_path / "marker"
    _run_until_marker_then_kill(SLOW_WRITE.format(marker=str(marker), nth=3) + f"""
    from interp.training.release import export
    export(Path({str(run_dir)!r}), Path({str(dest)!r}), trajectory_every=10)
    """, marker)
    with pytest.raises(CheckpointError):
        load_run(dest)
    export(run_dir, dest, trajectory_every=10)  # the kernel released the dead writer's lock
    assert load_run(dest).step == 20 and trajectory_steps(dest) == [10, 20]


def test_kill_during_a_checkpoint_write_resumes_bit_identical(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "marker"
    spec = tiny(steps=30)
    # files: dataset, config, manifest, then 5 per checkpoint + its manifest entry: kill inside step 20's
    _run_until_marker_then_kill(SLOW_WRITE.format(marker=str(marker), nth=10) + f"""
    from interp.core.specs import RunSpec
    from interp.training.train import train
    spec = RunSpec.from_dict({spec.to_dict()!r})
    train(spec, Path({str(out)!r}), progress=False)
    """, marker)
    assert trajectory_steps(out) == [10]
    with pytest.raises(CheckpointError):
        load_run(out)
    resumed = train(spec, out, resume=True, progress=False)
    straight = train(spec, None, progress=False)
    for name, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value)
    assert resumed.history == straight.history


def test_interrupted_stacked_sweep_ends_bit_identical(tmp_path):
    from interp.sweep import Grid, run_sweep

    grid = tmp_path / "grid.toml"
    grid.write_text('preset = "liu-lu-80"\nset = { p = 11, width = 16, steps = 20 }\n[grid]\n"model.seed" = [0, 1, 2]\n')
    straight = run_sweep(Grid.from_toml(grid), tmp_path / "a", progress=False)
    partial = tmp_path / "b"
    shutil.copytree(tmp_path / "a", partial)
    # as if killed inside the stack: one run two checkpoints back, one a checkpoint back, one finished
    names = [row["name"] for row in straight.rows]
    steps = trajectory_steps(partial / names[0])
    for step in steps[-2:]:
        rundir.drop_checkpoint(partial / names[0], step)
    rundir.drop_checkpoint(partial / names[1], steps[-1])
    for name in names[:2]:
        rundir.update_manifest(partial / name, {"model.safetensors": None})
    again = run_sweep(Grid.from_toml(grid), partial, progress=False)
    assert again.rows == straight.rows
    for name in names:
        a, b = load_run(tmp_path / "a" / name), load_run(partial / name)
        for key, value in a.model.state_dict().items():
            assert torch.equal(b.model.state_dict()[key], value), (name, key)
