import json
import sys
import types

import pytest

from interp.cli import main
from interp.sweep import Grid, run_sweep, work_units

GRID = """
preset = "liu-lu-80"
set = { p = 17, steps = 30, eval_every = 10, checkpoint_every = 10 }
[grid]
width = [17, 33]
"noise.rate" = [0.2, 0.5]
"""


@pytest.fixture
def grid_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    return path


def test_grid_expands_and_batches(grid_file, tmp_path):
    grid = Grid.from_toml(grid_file)
    runs = grid.runs()
    assert [name for name, _, _ in runs] == ["width=17,noise.rate=0.2", "width=17,noise.rate=0.5",
                                             "width=33,noise.rate=0.2", "width=33,noise.rate=0.5"]
    assert runs[3][2].model.width == 33 and runs[3][2].noise.rate == 0.5 and runs[3][2].task.p == 17
    units = work_units(runs, tmp_path / "none")
    assert sorted(len(u) for u in units) == [2, 2]  # the noise rates of one width train together


@pytest.mark.parametrize("text,message", [
    ('preset = "liu-lu-80"\n[grid]\nbogus = [1]', "unknown key 'bogus'"),
    ('preset = "liu-lu-80"\n[grid]\nwidth = 3', "must be a non-empty list"),
    ('[grid]\nwidth = [3]', "a grid file has `preset`"),
])
def test_bad_grids_are_refused(tmp_path, text, message):
    path = tmp_path / "g.toml"
    path.write_text(text)
    with pytest.raises(Exception, match=message):
        Grid.from_toml(path).runs()


def test_sweep_is_resumable_and_both_backends_agree(grid_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "local"
    assert main(["sweep", str(grid_file), "--out", str(out), "--no-progress"]) == 0
    table = (out / "summary.md").read_text()
    assert table.count("\n") == 2 + 4 and "| 33 | 0.5 |" in table and (out / "summary.png").stat().st_size > 0
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert all(r["extracted_test_acc"] is not None for r in rows)
    # finished runs are skipped: nothing is rewritten
    stamp = (out / "width=17,noise.rate=0.2" / "model.safetensors").stat().st_mtime_ns
    assert work_units(Grid.from_toml(grid_file).runs(), out) == []
    run_sweep(Grid.from_toml(grid_file), out, progress=False)
    assert (out / "width=17,noise.rate=0.2" / "model.safetensors").stat().st_mtime_ns == stamp

    # The Ray backend's wiring, through a stand-in for Ray that runs each task in this process:
    # starting a real Ray takes about a minute here (the ray backend's own timing is in
    # docs/performance.md). What is checked: units become remote tasks with one CPU each, the
    # cluster is started and shut down by the sweep, and the table is the local one.
    calls = []

    class FakeRay(types.ModuleType):
        started = False

        def is_initialized(self):
            return self.started

        def init(self, **kwargs):
            self.started = True

        def shutdown(self):
            self.started = False

        def remote(self, **resources):
            def wrap(fn):
                calls.append(resources)
                return types.SimpleNamespace(remote=lambda *args: fn(*args))
            return wrap

        def get(self, refs):
            return list(refs)

    fake = FakeRay("ray")
    monkeypatch.setitem(sys.modules, "ray", fake)
    summary = run_sweep(Grid.from_toml(grid_file), tmp_path / "ray", backend="ray", progress=False)
    assert calls == [{"num_cpus": 1, "num_gpus": 0, "max_retries": 3}] and not fake.started
    assert summary.table() + "\n" == table


def test_large_groups_are_cut_into_stacks_of_at_most_max_stack(tmp_path):
    from interp.sweep import MAX_STACK

    path = tmp_path / "g.toml"
    path.write_text('preset = "liu-lu-80"\nset = { p = 11, steps = 5 }\n[grid]\n"model.seed" = '
                    + str(list(range(2 * MAX_STACK + 1))) + "\n")
    units = work_units(Grid.from_toml(path).runs(), tmp_path / "out")
    assert sorted(len(u) for u in units) == [1, MAX_STACK, MAX_STACK]
