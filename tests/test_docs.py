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
#: interp cannot be imported (checkpoints.md's loading snippets, each followed by `subsets`);
#: "releases without interp" reads every release of its architecture there (test_release.py).
HOW = {"README.md#0": "self", "your-data": "self", "your-features": "self", "analyses.md#0": "both", "with-interp": "both", "verify": "both",
       "transformer": "without interp", "two_layer": "without interp", "subsets": "without interp",
       "mlp": "releases without interp", "token_transformer": "releases without interp"}


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
    """It prints the memorisation of the run it trained on its own split: the accuracy, against
    the wrong labels it was given, on the training pairs with a < 5, computed here from the
    saved run with a plain forward."""
    import interp

    outcome, folder = self_contained["your-data"]
    outcome.check()
    run = interp.load_run(folder / "runs" / "mine")
    data = run.dataset
    noisy = data.train_mask & (data.inputs[:, 0] < 5)
    assert torch.equal(noisy, data.noisy_mask) and torch.equal(data.labels[noisy], (data.inputs[noisy].sum(1) + 1) % 23)
    memorised = (run.logits(data.inputs[noisy]).argmax(-1) == data.labels[noisy]).double().mean()
    assert float(outcome.stdout.strip().splitlines()[-1]) == pytest.approx(float(memorised), abs=1e-12)
    assert (folder / "runs" / "mine" / "dataset.safetensors").exists()


def test_own_features_snippet_runs(self_contained):
    """It trains on its own digits split with 40% of the training labels moved to another class
    and prints the memorised share before and after the edit: the first recomputed here from the
    saved run with a plain forward, the second far under it (the edit itself is checked in
    tests/test_feature_edit.py; recomputing it here doubled this test's time)."""
    import interp

    outcome, folder = self_contained["your-features"]
    outcome.check()
    run = interp.load_run(folder / "runs" / "features")
    data = run.dataset
    assert data.noise_rate == pytest.approx(0.4, abs=0.03) and data.task.data == "mine"
    noisy = data.noisy_mask
    raw = float((run.logits(data.inputs[noisy]).argmax(-1) == data.labels[noisy]).double().mean())
    printed_raw, printed_after = (float(v) for v in outcome.stdout.strip().splitlines()[-1].split())
    assert printed_raw == pytest.approx(raw, abs=1e-12) and raw > 0.5 and printed_after < 0.05


def check_analyses_md(namespace, printed, run, tmp_path):
    """The two analyses' results are the run's: its type of spectra, the raw model's test accuracy
    in the extraction's rows; the summary, the table and every registered analysis printed."""
    import interp
    from interp.analysis.spectra import NeuronSpectra, TransformerSpectra

    kind = NeuronSpectra if run.spec.model.arch == "two_layer" else TransformerSpectra
    assert type(namespace["spectra"]) is kind
    extraction = namespace["extraction"]
    assert extraction.rows["raw"]["test_acc"] == pytest.approx(run.final_metrics["test_acc"], abs=1e-9)
    assert printed == f"{extraction.summary()}\n{extraction.tables()[0].markdown()}\n{sorted(interp.ANALYSES)}\n"


def check_with_interp(namespace, printed, run, tmp_path):
    """The names it binds are what its comments say: the tokens of the run's family, the model's
    own output and cache, the predicting position's logits as `interp.logits`."""
    import interp

    pairs = run.dataset.inputs
    expected = interp.logits(run.model, pairs)
    tokens, logits, cache = namespace["tokens"], namespace["logits"], namespace["cache"]
    if run.spec.model.arch == "transformer":
        assert torch.equal(tokens[:, :2], pairs) and bool((tokens[:, 2] == run.spec.task.p).all())
        logits = logits[:, -1]
    else:
        assert torch.equal(tokens, pairs)
    torch.testing.assert_close(logits, expected)
    assert interp.families.family_of(run.model).readout_hook(run.model) in cache


def check_verify(namespace, printed, run, tmp_path):
    """`verify` passes on the run and names the file when one byte of a copy's weights changes."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="model.safetensors"):
        namespace["verify"](copy)


CHECKS = {"analyses.md#0": check_analyses_md, "with-interp": check_with_interp, "verify": check_verify}


@pytest.mark.parametrize("name", [n for n, how in HOW.items() if how == "both"])
@pytest.mark.parametrize("kind", FAMILIES)
def test_snippet_runs_for_each_family(doc_runs, name, kind, tmp_path, capsys):
    code = re.sub(r'"runs/[^"]*"', f'"{doc_runs[kind].path}"', snippet(name))
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, name, "exec"), namespace)
    finally:
        os.chdir(cwd)
    CHECKS[name](namespace, capsys.readouterr().out, doc_runs[kind], tmp_path)


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
