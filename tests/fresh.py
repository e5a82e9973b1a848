"""Run several pieces of code in one fresh interpreter, each in its own namespace and working
folder, so that the tests that need a new process share one start of torch and TransformerLens
(3–5 s each) instead of paying it per test. Each piece's outcome is reported on its own."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

_HARNESS = r"""
import contextlib, io, json, os, sys, traceback
jobs, result_file, without_interp = json.loads(sys.stdin.read())
if without_interp:
    sys.modules["interp"] = None  # `import interp` raises from here on
results = {}
for name, code, cwd in jobs:
    out = io.StringIO()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, name, "exec"), {"__name__": "__main__"})
        error = None
    except BaseException:
        error = traceback.format_exc()
    results[name] = {"stdout": out.getvalue(), "error": error}
with open(result_file, "w") as f:
    json.dump(results, f)
"""


@dataclass
class Outcome:
    name: str
    stdout: str
    error: str | None  # the traceback, or None if the code ran to its end
    stderr: str  # the whole process's

    def check(self) -> Outcome:
        """Fail the calling test with this piece's own traceback if it raised."""
        assert self.error is None, f"{self.name} failed in the fresh interpreter:\n{self.error}\n{self.stderr[-2000:]}"
        return self


def run_fresh(jobs: dict[str, tuple[str, Path]], without_interp: bool = False, timeout: float = 600,
              env: dict | None = None) -> dict[str, Outcome]:
    """Run each `name: (code, cwd)` in turn in one new `python` process (in a fresh namespace,
    as `python -c code` would, with `cwd` as the working folder); with `without_interp`,
    `import interp` raises in that process. Returns each piece's stdout and traceback."""
    with tempfile.TemporaryDirectory() as scratch:
        result_file = Path(scratch) / "results.json"
        payload = json.dumps([[[name, code, str(cwd)] for name, (code, cwd) in jobs.items()],
                              str(result_file), without_interp])
        done = subprocess.run([sys.executable, "-c", _HARNESS], input=payload, capture_output=True, text=True,
                              timeout=timeout, env=env)
        assert done.returncode == 0 and result_file.exists(), f"the fresh interpreter died:\n{done.stderr[-3000:]}"
        results = json.loads(result_file.read_text())
    missing = set(jobs) - set(results)
    assert not missing, f"not run: {missing}\n{done.stderr[-2000:]}"
    return {name: Outcome(name, r["stdout"], r["error"], done.stderr) for name, r in results.items()}
