"""Every Python snippet in the README and docs runs, for each model family it applies to."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import small_transformer, small_two_layer
from safetensors.torch import load_file

import interp

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FAMILIES = ["two_layer", "transformer"]


def python_blocks(path: Path) -> list[tuple[str, str]]:
    """(name, code) of each ```python block; the name comes from a `<!-- snippet: NAME -->`
    line just above it, else from the file and its position."""
    out = []
    for i, m in enumerate(re.finditer(r"(?:<!-- snippet: (\S+) -->\n)?```python\n(.*?)```", path.read_text(), re.S)):
        out.append((m.group(1) or f"{path.name}#{i}", m.group(2)))
    return out


def snippet(name: str) -> str:
    return next(code for path in DOCS for n, code in python_blocks(path) if n == name)


#: How each snippet runs: "self" trains what it needs; "both" takes a run of either family in
#: place of the path it names; "without interp" reads a run of one family in a process where
#: interp cannot be imported (checkpoints.md's loading snippets, each followed by `subsets`).
HOW = {"README.md#0": "self", "your-data": "self", "analyses.md#0": "both", "with-interp": "both", "verify": "both",
       "transformer": "without interp", "two_layer": "without interp", "subsets": "without interp"}


def test_every_snippet_is_run_by_a_test():
    names = [name for path in DOCS for name, _ in python_blocks(path)]
    assert sorted(names) == sorted(HOW), "a snippet was added or renamed: say in HOW how it is tested"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"two_layer": interp.train(small_two_layer(steps=20), root / "two_layer", progress=False),
            "transformer": interp.train(small_transformer(steps=4), root / "transformer", progress=False)}


def test_readme_python_session_runs(tmp_path):
    subprocess.run([sys.executable, "-c", snippet("README.md#0")], check=True, cwd=tmp_path, capture_output=True)
    assert (tmp_path / "runs" / "small" / "checkpoints" / "step_100" / "model.safetensors").exists()


def test_own_dataset_snippet_runs(tmp_path):
    done = subprocess.run([sys.executable, "-c", snippet("your-data")], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0 <= float(done.stdout.strip().splitlines()[-1]) <= 1
    assert (tmp_path / "runs" / "mine" / "dataset.safetensors").exists()


@pytest.mark.parametrize("name", [n for n, how in HOW.items() if how == "both"])
@pytest.mark.parametrize("kind", FAMILIES)
def test_snippet_runs_for_each_family(runs, name, kind, tmp_path):
    code = re.sub(r'"runs/[^"]*"', f'"{runs[kind].path}"', snippet(name))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, name, "exec"), {})
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("kind", FAMILIES)
def test_loading_snippet_and_subset_accuracy_without_interp(runs, kind, tmp_path):
    run = runs[kind]
    code = re.sub(r'run_dir = "[^"]*"', f'run_dir = "{run.path}"', snippet(kind)) + snippet("subsets")
    out = tmp_path / "logits.safetensors"
    code = ("import sys\nsys.modules['interp'] = None  # `import interp` raises from here on\n" + code
            + f"\nfrom safetensors.torch import save_file\nsave_file({{'logits': logits.contiguous()}}, '{out}')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    torch.testing.assert_close(load_file(out)["logits"], run.logits(run.dataset.inputs), rtol=1e-6, atol=1e-6)
    printed = dict(line.split() for line in done.stdout.strip().splitlines())
    for subset, value in run.final_metrics.items():
        if subset.endswith("_acc") and subset[:-4] in printed:
            expected = "None" if value is None else value
            assert printed[subset[:-4]] == "None" if value is None else abs(float(printed[subset[:-4]]) - expected) < 1e-6


def test_cli_reference_covers_every_command_and_option():
    from interp.cli import build_parser

    text = (ROOT / "docs" / "cli.md").read_text()
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        assert f"`interp {name}" in text, name
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert f"`{flag}" in text, f"{name} {flag}"
