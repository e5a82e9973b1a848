"""Releases of runs over features (issue 29): `models/digits-40` and `models/digits-tt-40` are
their presets exported with a trajectory that fits in 3 MB, and their cards state the analyses
that apply to a run over features (`cards.CARD_ANALYSES`, chosen by the registry's skip reasons);
`export --trajectory-steps` keeps the named checkpoints only. The plain-torch snippets and the
cards' readout rows are checked on every release in tests/test_release.py."""

import pytest

import interp
from interp.core.specs import NoiseSpec, RunSpec, TaskSpec, TrainSpec
from interp.families.mlp import MLPSpec
from interp.reporting.cards import CARD_ANALYSES, EDIT_HEADING, INTERVENTIONS_HEADING, refresh_card
from interp.training.presets import PRESETS
from interp.training.release import MODELS_DIR, export
from interp.training.rundir import trajectory_steps

#: each feature release and the trajectory it carries (digits-40's weights are 1.2 MB a step:
#: the one checkpoint the feature edit's teacher chooses on the full run)
RELEASES = {"digits-40": [50], "digits-tt-40": list(range(300, 2401, 300))}


@pytest.mark.parametrize("name", RELEASES)
def test_the_release_is_the_preset_with_a_trajectory_under_3_mb(name):
    run = interp.load(name)
    spec = PRESETS[name].spec
    assert run.spec == spec and run.step == spec.train.steps
    assert trajectory_steps(MODELS_DIR / name) == RELEASES[name]
    assert sum(f.stat().st_size for f in (MODELS_DIR / name).rglob("*") if f.is_file()) < 3_000_000
    card = (MODELS_DIR / name / "MODEL_CARD.md").read_text()
    assert f"interp train --preset {name}\n" in card
    metrics = interp.subset_metrics(interp.logits(run.model, run.dataset.inputs), run.dataset, run.spec.train.loss)
    assert metrics["noisy_observed_acc"] == 1.0 and metrics["test_acc"] < 0.7  # memorises every wrong label


@pytest.mark.parametrize("name", RELEASES)
def test_the_card_states_the_feature_analyses_from_the_release(name):
    """Every analysis of CARD_ANALYSES has its section, the pair sections none; the layer rewind's
    label-free choice (cheap to recompute: one layer at a time, per released checkpoint) is the
    one the release gives today."""
    from interp.analysis.layer_rewind import LAYER_REWIND

    card = (MODELS_DIR / name / "MODEL_CARD.md").read_text()
    for analysis, command in CARD_ANALYSES.items():
        assert f"## {interp.ANALYSES[analysis].title} (`{command}`)" in card
    assert INTERVENTIONS_HEADING not in card and "## Extraction" not in card
    assert LAYER_REWIND(interp.load(name)).edit_line() in card
    assert "plain PyTorch, \"Load " in card  # the plain-torch section of docs/checkpoints.md


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory):
    """A small MLP on digits with 40% wrong labels and checkpoints at 10, 20, 30, 40 (read only)."""
    path = tmp_path_factory.mktemp("feature") / "run"
    spec = RunSpec(task=TaskSpec(op="classify", data="digits", train_fraction=0.5), noise=NoiseSpec("symmetric", 0.4),
                   model=MLPSpec(d_in=64, widths=(32, 16)),
                   train=TrainSpec(steps=40, optimizer="adam", lr=3e-3, eval_every=10, checkpoint_every=10))
    interp.train(spec, path, progress=False)
    return path


def test_export_keeps_the_named_trajectory_steps_only(tmp_path, feature_run):
    dest = export(feature_run, tmp_path / "release", trajectory_steps=[20, 10])
    assert trajectory_steps(dest) == [10, 20]
    assert interp.load_run(dest, step=10).step == 10
    with pytest.raises(ValueError, match=r"15 not a trajectory checkpoint of .* \(it has 10, 20, 30, 40\)"):
        export(feature_run, tmp_path / "other", trajectory_steps=[15])
    with pytest.raises(ValueError, match="must be integer steps"):
        export(feature_run, tmp_path / "other", trajectory_steps=[10.0])
    with pytest.raises(ValueError, match="not both"):
        export(feature_run, tmp_path / "other", trajectory_every=10, trajectory_steps=[10])
    assert not (tmp_path / "other").exists()


def test_refresh_card_on_a_feature_run_writes_the_analyses_that_apply_and_keeps_them(tmp_path, feature_run):
    dest = export(feature_run, tmp_path / "release", "interp train X", trajectory_steps=[10])
    card = refresh_card(dest).read_text()
    for analysis in CARD_ANALYSES:
        assert f"## {interp.ANALYSES[analysis].title} (" in card
    assert INTERVENTIONS_HEADING not in card and f"{EDIT_HEADING} (`" not in card and "interp train X" in card
    from interp.analysis.class_subspaces import CLASS_SUBSPACES

    assert CLASS_SUBSPACES(interp.load(dest)).summary() in card
    # without checks, the old sections are kept as they are (only the rest is recomputed)
    marked = card.replace("## Suspect neurons per layer (", "## Suspect neurons per layer (stale) (")
    (dest / "MODEL_CARD.md").write_text(marked)
    assert refresh_card(dest, checks=False).read_text() == marked
