import json
import shutil
import subprocess
import zipfile
import sys

import pytest
import torch

import interp
from conftest import RELEASE_SNIPPETS
from interp.training.release import MODELS_DIR, available

RELEASED = available()


def test_releases_are_present():
    assert {"liu-lu-80", "doshi-coexistence", "nanda-grokking"} <= set(RELEASED)


@pytest.mark.parametrize("name", RELEASED)
def test_released_model_loads_and_matches_its_card(name):
    run = interp.load(name)
    card = (MODELS_DIR / name / "MODEL_CARD.md").read_text()
    metrics = interp.subset_metrics(interp.logits(run.model, run.dataset.inputs), run.dataset, run.spec.train.loss)
    assert f"| test | {metrics['test_acc']:.2%} |" in card
    assert metrics["test_acc"] == pytest.approx(run.final_metrics["test_acc"])


def _arch(name):
    return json.loads((MODELS_DIR / name / "config.json").read_text())["spec"]["model"]["arch"]


def test_released_transformers_in_transformer_lens_without_interp(without_interp):
    """Every released transformer through docs/checkpoints.md's snippet, in a process that never
    imports interp (the `without_interp` fixture: one TransformerLens start for all of them)."""
    from safetensors.torch import load_file

    names = [n for n in RELEASED if _arch(n) == "transformer"]
    assert "nanda-grokking" in names
    assert sorted(job.split(":", 1)[1] for job in without_interp if job.startswith("release:")) == \
        sorted(n for n in RELEASED if _arch(n) in RELEASE_SNIPPETS)
    for name in names:
        outcome, folder = without_interp[f"release:{name}"]
        outcome.check()
        run = interp.load(name)
        p = run.spec.task.p
        pairs = torch.stack([torch.arange(p).repeat_interleave(p), torch.arange(p).repeat(p)], 1)
        torch.testing.assert_close(load_file(folder / "logits.safetensors")["logits"], interp.logits(run.model, pairs))


def test_released_models_over_features_in_plain_torch_without_interp(without_interp):
    """Every released MLP and token transformer through its docs/checkpoints.md snippet (plain
    torch on the release's files, interp not importable): the logits over its dataset's inputs
    are the model's."""
    from safetensors.torch import load_file

    names = [n for n in RELEASED if _arch(n) in ("mlp", "token_transformer")]
    assert {"digits-40", "digits-tt-40"} <= set(names)
    for name in names:
        outcome, folder = without_interp[f"release:{name}"]
        outcome.check()
        run = interp.load(name)
        torch.testing.assert_close(load_file(folder / "logits.safetensors")["logits"],
                                   interp.logits(run.model, run.dataset.inputs), rtol=1e-5, atol=1e-5)


def test_unknown_name():
    with pytest.raises(interp.CheckpointError, match="released: .*liu-lu-80"):
        interp.load("no-such-model")


@pytest.mark.parametrize("name", RELEASED)
def test_model_card_extraction_matches_the_analysis(name):
    """The card's label-free extraction row is what that extraction scores today, so the card,
    `interp demo` and `results.json` agree. It is computed alone (`label_free_logits`), not with
    every other row of compare_extractions: that the two give the same row is
    tests/test_filtration.py's `test_the_label_free_row_is_the_label_free_extraction`. On a run
    over features, where the extraction does not apply, the label-free extraction is the class
    subspaces' readout of the first hidden layer, and its row of the card is checked the same way."""
    from interp.analysis.class_subspaces import CLASS_SUBSPACES
    from interp.analysis.filtration import EXTRACTION, label_free_logits

    run = interp.load(name)
    lines = (MODELS_DIR / name / "MODEL_CARD.md").read_text().splitlines()
    if EXTRACTION.skip_reason(run):
        first = CLASS_SUBSPACES(run).label_free()
        assert any(line.startswith(f"| {first.where} | {first.test_acc:.1%} |") for line in lines)
        return
    method, extracted = label_free_logits(run.model, run.dataset)
    test_acc = interp.subset_metrics(extracted, run.dataset, run.spec.train.loss)["test_acc"]
    row = next(line for line in lines if line.startswith(f"| {method} |"))
    assert row.rstrip(" |").endswith(f"{test_acc:.1%}")


def test_refresh_card_recomputes_the_extraction_and_keeps_the_command(tmp_path):
    from interp.reporting.cards import refresh_card

    copy = tmp_path / "doshi-coexistence"
    shutil.copytree(MODELS_DIR / "doshi-coexistence", copy)
    old = (copy / "MODEL_CARD.md").read_text()
    (copy / "MODEL_CARD.md").write_text(old.replace("| resynthesized |", "| stale |"))
    card = refresh_card(copy, checks=False).read_text()
    assert card == old  # the stale row is recomputed, the command and everything else kept


def test_wheel_carries_the_released_models(tmp_path):
    """A normal (non-editable) install gets `interp/models/NAME/...` from the top-level `models/`,
    where `interp.training.release` looks first (the full install-and-demo check is in the issue note)."""
    root = MODELS_DIR.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("interp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in RELEASED:
        for file in ("config.json", "model.safetensors", "dataset.safetensors", "MODEL_CARD.md"):
            assert f"interp/models/{name}/{file}" in names, f"{name}/{file}"
    assert "interp/families/transformer.py" in names


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A trained run directory (the conftest's small noisy two-layer net, 40 steps), read only."""
    from conftest import small_two_layer

    path = tmp_path_factory.mktemp("small") / "run"
    interp.train(small_two_layer(steps=40), path, progress=False)
    return path


@pytest.mark.xdist_group("small_run")
def test_export_with_trajectory_loads_every_released_step(tmp_path, small_run):
    from interp.training.rundir import trajectory_steps
    from interp.training.release import export

    dest = export(small_run, tmp_path / "release", "interp train ...", trajectory_every=20)
    assert trajectory_steps(dest) == [20, 40]
    assert not any(dest.rglob("optimizer.safetensors"))  # weights only
    early = interp.load_run(dest, step=20)
    assert early.step == 20 and early.history[-1]["step"] == 20
    assert interp.analyze(interp.load(dest), "dynamics").checkpoint_steps == [20, 40]


@pytest.mark.xdist_group("small_run")
def test_export_with_checks_puts_the_interventions_and_the_edit_in_the_card(tmp_path, small_run):
    from interp.cli import main
    from interp.reporting.cards import EDIT_HEADING, INTERVENTIONS_HEADING

    assert main(["export", str(small_run), "--to", str(tmp_path / "release"), "--command", "interp train X",
                 "--checks"]) == 0
    card = (tmp_path / "release" / "MODEL_CARD.md").read_text()
    assert INTERVENTIONS_HEADING in card and EDIT_HEADING in card and "interp train X" in card
    # this tiny net's verdict, from its table: the card's row is the localisation's
    from interp.analysis.localize import localize

    run = interp.load(tmp_path / "release")
    row = next(line for line in localize(run.model, run.dataset).interventions.compact().markdown().splitlines()
               if line.startswith("| neuron | memorising |"))
    assert row in card
    interp.load(tmp_path / "release")  # the release still verifies
