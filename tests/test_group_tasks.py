"""Tasks over finite groups: specs, datasets, the CLI and the trainer, as on Z_p."""

import json

import pytest
import torch

from interp.cli import main
from interp.core.groups import Group, dihedral, symmetric
from interp.core.specs import NoiseSpec, RunSpec, SpecError, TaskSpec
from interp.core.tasks import SUBSETS, Dataset, make_dataset
from interp.training.rundir import load_run


def test_a_built_in_group_sets_p_to_its_order_and_round_trips():
    spec = RunSpec().with_overrides(["task.group=S4", "noise.rate=0.25"])
    assert spec.task.p == 24 and spec.task.describe() == "S4 (a∘b)"
    assert spec.to_dict()["task"] == {"op": "add", "p": 24, "train_fraction": 0.3, "seed": 0, "group": "S4"}
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_a_group_task_refuses_a_p_that_is_not_its_order():
    """p=113 (the Z_p default) given with a group is refused, not taken for "p not given"."""
    for p in (113, 7):
        with pytest.raises(SpecError, match="S5 has 120 elements") as err:
            TaskSpec(group="S5", p=p)
        assert "\n" not in str(err.value)
    assert TaskSpec(group="S5").p == TaskSpec(group="S5", p=120).p == 120  # left out, or |G|
    assert TaskSpec().p == TaskSpec(p=113).p == 113
    assert type(RunSpec().to_dict()["task"]["p"]) is int and RunSpec().with_overrides({"p": 59}).task.p == 59
    data = RunSpec(task=TaskSpec(group="S5")).to_dict()  # a saved config holds p = |G|, and loads
    assert data["task"]["p"] == 120 and RunSpec.from_dict(data).task.p == 120


def test_a_z_p_spec_serialises_as_before_groups():
    """Configs written before groups existed hold no group fields, and read back as Z_p."""
    data = RunSpec().to_dict()
    assert set(data["task"]) == {"op", "p", "train_fraction", "seed"}
    assert RunSpec.from_dict(data).task.group == ""


@pytest.mark.parametrize("overrides, message", [
    (["task.group=Q8"], "unknown group 'Q8'"),
    (["task.group=S7"], "n ≤ 5"),
    (["task.group=S4", "task.op=mul"], "not a group operation"),
    (["task.group=S4", "task.p=7"], "S4 has 24 elements"),
    (["task.group=S3", "noise.kind=symmetric", "noise.rate=0.1"], "commutative"),
])
def test_bad_groups_are_refused_in_one_line(overrides, message):
    with pytest.raises(SpecError, match=message) as err:
        RunSpec().with_overrides(overrides)
    assert "\n" not in str(err.value)


def test_labels_are_the_cayley_table_and_noise_keeps_its_four_subsets():
    ds = make_dataset(TaskSpec(group="D5", train_fraction=0.5), NoiseSpec(rate=0.3, seed=1))
    table = dihedral(5).table
    assert len(ds.inputs) == 100 and torch.equal(ds.true_labels, table[ds.inputs[:, 0], ds.inputs[:, 1]])
    assert int(ds.noisy_mask.sum()) == round(0.3 * 50) and bool((ds.labels != ds.true_labels)[ds.noisy_mask].all())
    assert set(ds.subsets()) == set(SUBSETS)
    inverse = make_dataset(TaskSpec(group="D5", op="sub")).true_labels
    assert torch.equal(table[inverse.view(10, 10), torch.arange(10)], torch.arange(10)[:, None].expand(10, 10))


def test_a_users_table_in_its_own_order_is_the_task(tmp_path):
    """A relabelled S3 (another element order) is stored in the spec, from the API or a file."""
    s3 = symmetric(3)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])  # new index of each old element
    table = torch.empty_like(s3.table)
    table[perm[:, None], perm[None, :]] = perm[s3.table]
    names = tuple(s3.elements[i] for i in torch.argsort(perm))
    mine = Group.from_table("myS3", table, names)
    task = TaskSpec.from_group(mine)
    assert task.p == 6 and task.table == tuple(map(tuple, table.tolist())) and task.elements == names
    ds = make_dataset(task)
    assert torch.equal(ds.true_labels, table.flatten())
    path = tmp_path / "myS3.json"
    path.write_text(json.dumps({"table": table.tolist(), "elements": list(names)}))
    spec = RunSpec().with_overrides([f"task.group={path}"])
    assert spec.task == task
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))).task == task
    path.write_text(json.dumps({"table": [[0, 1], [0, 1]]}))
    with pytest.raises(SpecError, match="not a Latin square"):
        RunSpec().with_overrides([f"task.group={path}"])


def test_a_users_dataset_of_a_group_is_checked_against_its_table():
    task = TaskSpec(group="S3")
    ds = make_dataset(task)
    wrong = ds.true_labels.clone()
    wrong[~ds.train_mask] = (wrong[~ds.train_mask] + 1) % 6
    with pytest.raises(ValueError, match="test pairs"):
        Dataset.from_tensors(task, ds.inputs, wrong, ds.train_mask)


def test_cli_trains_a_noisy_group_task_and_the_run_reloads(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code = main(["train", "--preset", "liu-lu-80", "--out", str(out_dir), "--no-progress", "--set", "task.group=S3",
                 "--set", "width=24", "--set", "steps=10", "--set", "noise.rate=0.2", "--set", "train_fraction=0.5"])
    assert code == 0 and "noisy_true" in capsys.readouterr().out
    config = json.loads((out_dir / "config.json").read_text())
    assert config["spec"]["task"]["group"] == "S3" and config["spec"]["task"]["p"] == 6
    run = load_run(out_dir)
    assert run.dataset.task.group == "S3" and run.dataset.noisy_mask.sum() == round(0.2 * 18)


def test_the_s5_presets_are_s5_and_train_from_the_cli(tmp_path, capsys):
    """The group presets name S5 (p = 120 from the group); a tiny override trains end to end."""
    from interp.training.presets import PRESETS

    names = [name for name in PRESETS if name.startswith("s5-")]
    assert "s5-clean" in names
    for name in names:
        spec = PRESETS[name].spec
        assert spec.task.group == "S5" and spec.task.p == 120 and spec.model.act == "quadratic"
        assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    out_dir = tmp_path / "run"
    assert main(["train", "--preset", "s5-clean", "--out", str(out_dir), "--no-progress",
                 "--set", "width=16", "--set", "steps=5"]) == 0
    assert "test" in capsys.readouterr().out
    assert json.loads((out_dir / "config.json").read_text())["spec"]["task"]["p"] == 120
