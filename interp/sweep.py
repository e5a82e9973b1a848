"""Sweeps: a grid of specs, each result a normal run directory, resumable, with a summary.

A grid file (TOML) names a preset, overrides applied to every run, and the axes:

    preset = "liu-lu-80"
    set = { p = 31, steps = 3000 }
    [grid]
    width = [17, 33, 65, 129, 257]
    "noise.rate" = [0.2, 0.8]

`run_sweep(grid, out)` trains every run not already finished under `out/<name>/` (names are
`width=17,noise.rate=0.2`), then writes `summary.json`, `summary.md` and `summary.png`: test,
memorised and extracted accuracy per run. Work is cut into units — runs that `batched.train_many`
can train together, else single runs — and sent to a backend: `local` (in this process) or
`ray` (tasks on a Ray cluster, `pip install interp[ray]`; every worker must see `out`). Both
backends run the same units through the same code, so they give the same table.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .analysis.plots import _save, _subplots
from .core.specs import RunSpec, SpecError
from .families.base import family_for_spec
from .training import rundir
from .training.batched import batch_key, train_many
from .training.presets import get_preset
from .training.rundir import CheckpointError, load_run, write_json
from .training.train import started, train

BACKENDS = ("local", "ray")

#: At most this many runs train as one stacked computation: larger stacks outgrow the caches
#: (30 `nanda-noisy-59` transformers ran at 93 ms per network-step, 8 at 18 ms).
MAX_STACK = 8


@dataclass(frozen=True)
class Grid:
    preset: str
    overrides: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def from_toml(cls, path: Path | str) -> "Grid":
        """Read and validate a grid file whole — its tables, value types, duplicates and every
        point's spec — before anything trains."""
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        if not Path(path).is_file():
            raise FileNotFoundError(f"grid file {path} does not exist")
        try:
            data = tomllib.loads(rundir.read_bytes(Path(path)).decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid TOML: {err}") from None
        unknown = set(data) - {"preset", "set", "grid"}
        if unknown or "preset" not in data:
            raise ValueError(f"{path}: a grid file has `preset`, optional `set` and `grid` tables"
                             + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ""))
        grid = cls(data["preset"], data.get("set", {}), data.get("grid", {}))
        grid.validate(str(path))
        return grid

    def validate(self, where: str = "grid") -> None:
        """Every problem of the grid as one-line errors, found before any training."""
        if not isinstance(self.preset, str):
            raise ValueError(f"{where}: `preset` must be a preset name, got {self.preset!r}")
        for table, value in (("set", self.overrides), ("grid", self.axes)):
            if not isinstance(value, dict):
                raise ValueError(f"{where}: `{table}` must be a table (`{table} = {{ ... }}` or [{table}]), got {value!r}")
        if not self.axes:
            raise ValueError(f"{where}: the [grid] table names no axes; give at least one, e.g. seed = [0, 1]")
        for key, values in self.axes.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"{where}: grid.{key} must be a non-empty list")
            if not all(isinstance(v, (str, int, float, bool)) for v in values):
                raise ValueError(f"{where}: grid.{key} must list plain values (numbers, strings, booleans)")
            seen = [repr(v) for v in values]
            twice = sorted({v for v in seen if seen.count(v) > 1})
            if twice:
                raise ValueError(f"{where}: grid.{key} lists {', '.join(twice)} more than once")
        for key, value in self.overrides.items():
            if not isinstance(value, (str, int, float, bool)):
                raise ValueError(f"{where}: set.{key} must be a plain value, got {value!r}")
        try:
            runs = self.runs()
        except (SpecError, KeyError) as err:
            raise ValueError(f"{where}: {err.args[0] if isinstance(err, KeyError) else err}") from None
        names = [name for name, _, _ in runs]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: two grid points share a run name; make the axis values distinct")

    def runs(self) -> list[tuple[str, dict[str, Any], RunSpec]]:
        """(name, grid values, spec) of every point, in grid order; bad keys or values raise."""
        base = get_preset(self.preset).spec.with_overrides([f"{k}={v}" for k, v in self.overrides.items()])
        out = []
        for values in itertools.product(*self.axes.values()):
            point = dict(zip(self.axes, values))
            name = ",".join(f"{k}={v}" for k, v in point.items()) or "base"
            out.append((name, point, base.with_overrides([f"{k}={v}" for k, v in point.items()])))
        return out


def finished(run_dir: Path, spec: RunSpec) -> bool:
    """A complete, verified run of `spec` is in `run_dir`."""
    try:
        run = load_run(run_dir)
    except CheckpointError:
        return False
    return run.spec == spec and run.step == spec.train.steps


def work_units(runs: list[tuple[str, dict, RunSpec]], out: Path) -> list[list[tuple[str, RunSpec]]]:
    """Runs cut into units — runs with one `batch_key` together (for families whose stacking
    pays), in stacks of at most MAX_STACK in grid order, others alone — and the units that hold
    an unfinished run. Stacks are cut from the whole grid, finished runs included, so that an
    interrupted sweep resumes every stack with the networks it started with (a stack of other
    networks computes in another order, and ends with other last bits)."""
    groups: dict[Any, list] = {}
    for name, _, spec in runs:
        key = batch_key(spec) if family_for_spec(spec.model).stacking_pays else None
        groups.setdefault(key if key is not None else name, []).append((name, spec))
    units = [group[i:i + MAX_STACK] for group in groups.values() for i in range(0, len(group), MAX_STACK)]
    return [unit for unit in units if not all(finished(out / name, spec) for name, spec in unit)]


def train_unit(unit: list[tuple[str, RunSpec]], out: str, progress: bool = False, device: str = "cpu") -> list[str]:
    """Train one unit into `out/<name>`, resuming what an interrupted sweep (or a killed Ray
    worker, whose task Ray retries) left: a stack resumes as a stack, from the last checkpoint
    all its runs hold, so it ends with the weights of an uninterrupted sweep. Names done."""
    out_path = Path(out)
    if len(unit) > 1:
        train_many([s for _, s in unit], [out_path / n for n, _ in unit], resume=True, progress=progress,
                   device=device)
    else:
        for name, spec in unit:
            train(spec, out_path / name, resume=started(out_path / name), progress=progress, device=device)
    return [name for name, _ in unit]


def run_sweep(grid: Grid, out: Path | str, backend: str = "local", ray_address: str | None = None,
              progress: bool = True, device: str = "cpu") -> "Summary":
    """Train the grid's unfinished runs on `backend`, then summarise every run."""
    out = Path(out)
    grid.validate()
    runs = grid.runs()
    units = work_units(runs, out)
    if backend == "local":
        from tqdm.auto import tqdm

        for unit in tqdm(units, desc="sweep", unit="unit", disable=not progress):
            train_unit(unit, str(out), progress=progress, device=device)
    elif backend == "ray":
        _run_on_ray(units, out, ray_address, device)
    else:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    summary = summarise(grid, out)
    summary.write(out)
    return summary


def _run_on_ray(units: list, out: Path, address: str | None, device: str) -> None:
    try:
        import ray
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the ray backend needs Ray: pip install 'interp[ray]'") from None
    started = not ray.is_initialized()
    if started:
        _check_reachable(address)
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        gpus = 1 if str(device).startswith("cuda") else 0
        # a killed worker's task is retried; train_unit resumes its stack as a stack
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=3)(train_unit)
        ray.get([remote.remote(unit, str(out.resolve()), False, device) for unit in units])
    finally:
        if started:
            ray.shutdown()


#: seconds to wait for a Ray head before giving up
RAY_CONNECT_TIMEOUT = 10.0


def _check_reachable(address: str | None, timeout: float = RAY_CONNECT_TIMEOUT) -> None:
    """Refuse, within `timeout`, a Ray address (host:port, ray://host:port) that nothing
    answers at: ray.init itself waits for minutes."""
    import socket

    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address {address!r} is not HOST:PORT (or ray://HOST:PORT)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"no Ray cluster answers at {address} within {timeout:g} s ({err.strerror or err})") from None


@dataclass
class Summary:
    axes: list[str]
    rows: list[dict[str, Any]]

    def table(self) -> str:
        cols = ["test_acc", "noisy_observed_acc", "extracted_test_acc"]
        head = self.axes + ["test", "memorised", "extracted (label-free), test"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            cells = [str(row[a]) for a in self.axes] + ["—" if row[c] is None else f"{row[c]:.1%}" for c in cols]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def write(self, out: Path) -> None:
        write_json(out / "summary.json", {"axes": self.axes, "rows": self.rows})
        rundir.write_text(out / "summary.md", self.table() + "\n")
        rundir.atomic_write(out / "summary.png", lambda tmp: plot_sweep(self, Path(tmp)))


def summarise(grid: Grid, out: Path) -> Summary:
    """One row per run: its grid values, final accuracies and the label-free extraction."""
    from .analysis.filtration import compare_extractions

    rows = []
    for name, point, spec in grid.runs():
        run = load_run(out / name)
        method, extracted = compare_extractions(run.model, run.dataset, loss=spec.train.loss).label_free()
        rows.append({**point, "name": name, "test_acc": run.final_metrics["test_acc"],
                     "noisy_observed_acc": run.final_metrics.get("noisy_observed_acc"),
                     "extracted_method": method, "extracted_test_acc": extracted})
    return Summary(list(grid.axes), rows)


# --- figures ------------------------------------------------------------------------------


def plot_sweep(summary, path: Path) -> Path:
    """Test, memorised and extracted accuracy against the first grid axis, one line per value
    of the other axes."""
    first, rest = summary.axes[0], summary.axes[1:]
    lines: dict[tuple, list[dict]] = {}
    for row in summary.rows:
        lines.setdefault(tuple(row[a] for a in rest), []).append(row)
    panels = [("test_acc", "test accuracy (raw model)"), ("noisy_observed_acc", "noisy labels memorised"),
              ("extracted_test_acc", "test accuracy, extracted (label-free)")]
    fig, axes = _subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for ax, (key, title) in zip(axes, panels):
        for values, rows in lines.items():
            xs = [r[first] for r in rows]
            ys = [float("nan") if r[key] is None else r[key] for r in rows]
            label = ", ".join(f"{a}={v}" for a, v in zip(rest, values)) or None
            ax.plot(xs, ys, marker="o", label=label)
        numeric = all(isinstance(r[first], (int, float)) for r in summary.rows)
        if numeric and min(r[first] for r in summary.rows) > 0 and max(r[first] for r in summary.rows) / min(
                r[first] for r in summary.rows) > 8:
            ax.set_xscale("log", base=2)
        ax.set(xlabel=first, title=title, ylim=(-0.02, 1.02))
    axes[0].set_ylabel("accuracy")
    if rest:
        axes[-1].legend(fontsize=8)
    return _save(fig, path)
