"""The group presets a5-noisy (with its release and phase grid) and nanda-s5-noisy: each spec is
what its description and the docs say, the dataset is the task it names, a5-noisy trains (a few
steps) and its release keeps the rule inside (the measured numbers are in docs/reproductions.md
from the commands beside them)."""

from dataclasses import replace

import pytest
import torch

import interp
from interp.core.groups import group
from interp.core.tasks import make_dataset
from interp.training.presets import PRESETS

NAME = "a5-noisy"


@pytest.fixture(scope="module")
def preset():
    return PRESETS[NAME]


def test_a5_noisy_is_s5_noisy_on_a5_at_width_256_and_an_80_percent_split(preset):
    spec, s5 = preset.spec, PRESETS["s5-noisy"].spec
    assert (spec.task.group, spec.task.p, spec.task.train_fraction) == ("A5", 60, 0.8)
    assert (spec.noise.kind, spec.noise.rate) == ("wrong", 0.2)
    assert (spec.model.arch, spec.model.width, spec.model.act, spec.model.bias) == ("two_layer", 256, "quadratic", True)
    assert spec.train == s5.train  # s5-noisy's optimiser, steps and checkpoint interval, unchanged
    t = spec.train
    assert (t.optimizer, t.lr, t.weight_decay, t.beta1, t.beta2, t.loss, t.batch_size) == \
        ("adamw", 0.01, 1.0, 0.9, 0.98, "ce", 0)
    assert t.steps // t.checkpoint_every == 8  # the release carries eight trajectory checkpoints


def test_the_description_states_the_spec(preset):
    spec, text = preset.spec, preset.description
    n = spec.task.p ** 2
    for phrase in (f"{spec.task.group} ({spec.task.p} elements, {n:,} pairs)", f"{spec.noise.rate:.0%} wrong labels",
                   f"{spec.task.train_fraction:.0%} of pairs", f"width {spec.model.width}",
                   f"{spec.train.steps} steps", f"lr {spec.train.lr:g} wd {spec.train.weight_decay:g}",
                   f"betas ({spec.train.beta1:g}, {spec.train.beta2:g})"):
        assert phrase in text, phrase


def test_the_dataset_is_composition_in_a5_with_576_wrong_labels(preset):
    data = make_dataset(preset.spec.task, preset.spec.noise)
    a5 = group("A5")
    assert len(data.inputs) == 3600 and int(data.train_mask.sum()) == 2880
    assert torch.equal(data.true_labels, a5.table[data.inputs[:, 0], data.inputs[:, 1]])
    assert not a5.abelian
    assert int(data.noisy_mask.sum()) == 576  # 20% of the 2,880 training pairs
    assert not (data.noisy_mask & ~data.train_mask).any()
    assert (data.labels[data.noisy_mask] != data.true_labels[data.noisy_mask]).all()
    assert torch.equal(data.labels[~data.noisy_mask], data.true_labels[~data.noisy_mask])


def test_a_few_steps_of_the_real_preset_lower_the_training_loss(preset):
    spec = preset.spec.with_overrides(["steps=4", "eval_every=4", "checkpoint_every=4"])
    run = interp.train(spec, progress=False)  # in memory: no run directory written
    first, last = run.history[0], run.history[-1]
    assert (first["step"], last["step"]) == (0, 4)
    assert last["train_loss"] < first["train_loss"]


def test_the_phase_grid_is_the_preset_over_weight_decay_and_noise_and_trains_in_stacks():
    from pathlib import Path

    from interp.sweep import MAX_STACK, Grid, work_units

    grid = Grid.from_toml(Path(__file__).parents[1] / "analyses" / "group_phases.toml")
    assert grid.preset == NAME and set(grid.axes) == {"model.seed", "noise.rate", "weight_decay"}
    assert list(grid.axes)[0] == "model.seed"  # every cell gets one seed before any gets two
    runs = grid.runs()
    assert len(runs) == len(grid.axes["model.seed"]) * len(grid.axes["noise.rate"]) * len(grid.axes["weight_decay"])
    base = PRESETS[NAME].spec
    for _, point, spec in runs:
        assert (spec.train.weight_decay, spec.noise.rate, spec.model.seed) == \
            (point["weight_decay"], point["noise.rate"], point["model.seed"])
        assert (spec.task, spec.model.width, spec.train.steps) == (base.task, base.model.width, base.train.steps)
    units = work_units(runs, Path("/nonexistent"))
    assert [len(u) for u in units] == [min(MAX_STACK, len(runs) - i) for i in range(0, len(runs), MAX_STACK)]


def test_the_release_is_the_preset_with_its_trajectory_and_keeps_the_rule_inside(preset):
    """models/a5-noisy is `interp train --preset a5-noisy` exported with every checkpoint, and
    meets the description's claims: every wrong label memorised, the rule extracted label-free."""
    from interp.training.release import MODELS_DIR
    from interp.training.rundir import trajectory_steps

    run = interp.load(NAME)
    assert run.spec == preset.spec and run.step == preset.spec.train.steps
    every = preset.spec.train.checkpoint_every
    assert trajectory_steps(MODELS_DIR / NAME) == list(range(every, preset.spec.train.steps + 1, every))
    assert f"interp train --preset {NAME}\n" in (MODELS_DIR / NAME / "MODEL_CARD.md").read_text()
    assert sum(f.stat().st_size for f in (MODELS_DIR / NAME).rglob("*") if f.is_file()) < 3_000_000
    metrics = interp.subset_metrics(interp.logits(run.model, run.dataset.inputs), run.dataset, run.spec.train.loss)
    assert metrics["noisy_observed_acc"] == 1.0 and metrics["test_acc"] < 0.9  # memorises; raw test is not the rule
    result = interp.analyze(run, "filtration").to_dict()
    assert result["rows"]["f^G"]["test_acc"] >= 0.99 and result["noise_detection"]["auroc"] >= 0.99


def test_nanda_s5_noisy_is_nanda_noisy_59_on_s5_at_a_60_percent_split():
    preset, base = PRESETS["nanda-s5-noisy"], PRESETS["nanda-noisy-59"].spec
    spec, text = preset.spec, preset.description
    assert (spec.task.group, spec.task.p, spec.task.train_fraction) == ("S5", 120, 0.6)
    assert spec.model == base.model and spec.model.arch == "transformer"
    assert spec.noise == base.noise and spec.noise.rate == 0.1
    assert spec.train == replace(base.train, eval_every=100)
    for phrase in (f"S5 ({spec.task.p} elements, {spec.task.p ** 2:,} pairs)", f"{spec.noise.rate:.0%} wrong labels",
                   f"{spec.task.train_fraction:.0%} of pairs", f"lr {spec.train.lr:g} wd {spec.train.weight_decay:g}",
                   f"{spec.train.steps} steps"):
        assert phrase in text, phrase


def test_the_model_card_of_a_group_run_names_the_element_of_each_token():
    from interp.core.groups import group
    from interp.core.specs import NoiseSpec, RunSpec, TaskSpec, TrainSpec, TwoLayerSpec
    from interp.training.release import model_card
    from interp.training.train import train

    spec = RunSpec(TaskSpec(group="D4", train_fraction=0.5), NoiseSpec(rate=0.2), TwoLayerSpec(width=16),
                   TrainSpec(steps=2, eval_every=2))
    card = model_card(train(spec, progress=False), "d4", "", None)
    names = group("D4").elements
    assert f"token i is element i of D4 (8 elements; 0 = {names[0]}, 1 = {names[1]}," in card
    assert 'interp.core.groups.group("D4").elements' in card
