"""Every Python snippet in the README and docs runs, for each model family it applies to."""

import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


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
def self_contained(with_interp):
    """The snippets that train what they need ("self" in HOW), each in its own folder and
    namespace, in the one fresh interpreter with interp that the start-up probes also use
    (conftest.py's `with_interp`)."""
    return {name: with_interp[name] for name, how in HOW.items() if how == "self"}


def test_readme_python_session_runs(self_contained):
    outcome, folder = self_contained["README.md#0"]
    outcome.check()
    assert (folder / "runs" / "small" / "checkpoints" / "step_100" / "model.safetensors").exists()


def test_own_dataset_snippet_runs(self_contained):
    outcome, folder = self_contained["your-data"]
    outcome.check()
    assert 0 <= float(outcome.stdout.strip().splitlines()[-1]) <= 1
    assert (folder / "runs" / "mine" / "dataset.safetensors").exists()


@pytest.mark.parametrize("name", [n for n, how in HOW.items() if how == "both"])
@pytest.mark.parametrize("kind", FAMILIES)
def test_snippet_runs_for_each_family(doc_runs, name, kind, tmp_path):
    code = re.sub(r'"runs/[^"]*"', f'"{doc_runs[kind].path}"', snippet(name))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, name, "exec"), {})
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("kind", FAMILIES)
def test_loading_snippet_and_subset_accuracy_without_interp(doc_runs, without_interp, kind):
    """checkpoints.md's loading snippet of each family and `subsets`, in a process where `import
    interp` raises (the `without_interp` fixture, shared with the released transformers)."""
    run = doc_runs[kind]
    outcome, folder = without_interp[f"load:{kind}"]
    outcome.check()
    torch.testing.assert_close(load_file(folder / "logits.safetensors")["logits"], run.logits(run.dataset.inputs),
                               rtol=1e-6, atol=1e-6)
    printed = dict(line.split() for line in outcome.stdout.strip().splitlines())
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
