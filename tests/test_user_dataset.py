"""A run carries its dataset: a researcher's own split and labels are what every analysis scores."""

import pytest
import torch

import interp
from interp import Dataset, TaskSpec
from interp.core.tasks import DatasetError
from interp.training.rundir import CheckpointError, read_json

P = 11


def own_dataset(seed: int = 3) -> Dataset:
    """Every pair of a + b mod 11, half of them for training (a split no spec draws), 40% of the
    training labels shifted by a random non-zero amount."""
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    pairs = torch.stack([a.flatten(), b.flatten()], 1)
    truth = (pairs[:, 0] + pairs[:, 1]) % P
    train = torch.rand(len(pairs), generator=gen) < 0.5
    noisy = train & (torch.rand(len(pairs), generator=gen) < 0.4)
    observed = torch.where(noisy, (truth + torch.randint(1, P, truth.shape, generator=gen)) % P, truth)
    return Dataset.from_tensors(TaskSpec(op="add", p=P), pairs, observed, train)


def subset_accuracies(model, ds: Dataset) -> dict[str, float]:
    """Accuracies computed here, from the masks and labels alone."""
    pred = interp.logits(model, ds.inputs).argmax(-1)
    return {"clean": float((pred == ds.labels)[ds.train_mask & ~ds.noisy_mask].double().mean()),
            "noisy_observed": float((pred == ds.labels)[ds.noisy_mask].double().mean()),
            "noisy_true": float((pred == ds.true_labels)[ds.noisy_mask].double().mean()),
            "test": float((pred == ds.true_labels)[~ds.train_mask].double().mean())}


@pytest.fixture(scope="module")
def spec():
    return interp.get_preset("liu-lu-80").spec.with_overrides(["p=11", "width=48", "steps=150", "lr=0.01"])


def test_a_users_dataset_is_trained_on_stored_and_scored(spec, tmp_path):
    ds = own_dataset()
    drawn = interp.make_dataset(spec.task, spec.noise)
    assert not drawn.same_as(ds)
    run = interp.train(spec, tmp_path / "run", dataset=ds, progress=False)
    assert read_json(tmp_path / "run" / "config.json")["dataset"] == "user"
    loaded = interp.load_run(tmp_path / "run")
    assert loaded.dataset.same_as(ds) and loaded.dataset.noise is None
    expected = subset_accuracies(loaded.model, ds)
    raw = interp.analyze(loaded, "filtration").rows["raw"]
    for subset, acc in expected.items():
        assert raw[f"{subset}_acc"] == pytest.approx(acc, abs=1e-9), subset
    # the history scored the same subsets while training
    assert run.final_metrics["noisy_observed_acc"] == pytest.approx(expected["noisy_observed"], abs=1e-9)
    # a trajectory checkpoint loads with the run's own dataset too
    assert interp.load_run(tmp_path / "run", step=spec.train.steps).dataset.same_as(ds)


def test_wrapping_a_model_keeps_the_users_dataset(spec):
    ds = own_dataset(seed=5)
    model = interp.build_model(spec.model, P)
    run = interp.Run(spec, model, [], 0, dataset=ds)
    raw = interp.analyze(run, "filtration").rows["raw"]
    for subset, acc in subset_accuracies(model, ds).items():
        assert raw[f"{subset}_acc"] == pytest.approx(acc, abs=1e-9), subset
    with pytest.raises(ValueError, match="mod 13"):
        interp.Run(spec.with_overrides(["p=13"]), interp.build_model(spec.model, 13), [], 0, dataset=ds)


def test_resume_refuses_another_dataset(spec, tmp_path):
    interp.train(spec.with_overrides(["steps=20"]), tmp_path / "r", dataset=own_dataset(), progress=False)
    with pytest.raises(interp.training.train.RunDirectoryInUse, match="another dataset"):
        interp.train(spec.with_overrides(["steps=20"]), tmp_path / "r", dataset=own_dataset(seed=9), resume=True,
                     progress=False)


def test_a_partial_dataset_skips_grid_views_but_scores(spec):
    ds = own_dataset()
    keep = torch.arange(len(ds.inputs)) % 3 != 0  # a third of the pairs absent
    part = Dataset.from_tensors(ds.task, ds.inputs[keep], ds.labels[keep], ds.train_mask[keep])
    assert not part.sum_grid
    model = interp.build_model(spec.model, P)
    raw = interp.analyze(interp.Run(spec, model, [], 0, dataset=part), "filtration").rows["raw"]
    assert raw["test_acc"] == pytest.approx(subset_accuracies(model, part)["test"], abs=1e-9)


@pytest.mark.parametrize("change, message", [
    (lambda x, y, t, true: (x.float(), y, t, None), "integer"),
    (lambda x, y, t, true: (x + P, y, t, None), "residues"),
    (lambda x, y, t, true: (torch.cat([x, x[:1]]), torch.cat([y, y[:1]]), torch.cat([t, t[:1]]), None), "repeat"),
    (lambda x, y, t, true: (x, y[:-1], t, None), "shape"),
    (lambda x, y, t, true: (x, y, t.long(), None), "boolean"),
    (lambda x, y, t, true: (x, y, t, (true + 1) % P), "true_labels differ"),
    (lambda x, y, t, true: (x, torch.where(~t, (y + 1) % P, y), t, None), "test pairs"),
    (lambda x, y, t, true: (x, y, torch.ones_like(t), None), "empty"),
])
def test_from_tensors_refuses_what_is_not_a_dataset(change, message):
    ds = own_dataset()
    x, y, t, true = change(ds.inputs, ds.labels, ds.train_mask, ds.true_labels)
    with pytest.raises(DatasetError, match=message):
        Dataset.from_tensors(ds.task, x, y, t, true)


def test_a_stored_user_dataset_is_checked(spec, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    interp.train(spec.with_overrides(["steps=10"]), tmp_path / "r", dataset=own_dataset(), progress=False)
    stored = load_file(tmp_path / "r" / "dataset.safetensors")
    stored["observed_labels"][0] += 1
    save_file(stored, tmp_path / "r" / "dataset.safetensors")
    with pytest.raises(CheckpointError, match="SHA-256"):
        interp.load_run(tmp_path / "r")
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    config["dataset"] = "spec"  # an edited origin: the spec does not draw this dataset
    from interp.training.rundir import sha256

    save_file(load_file(tmp_path / "r" / "dataset.safetensors"), tmp_path / "r" / "dataset.safetensors")
    config["sha256"]["dataset.safetensors"] = sha256(tmp_path / "r" / "dataset.safetensors")
    (tmp_path / "r" / "config.json").write_text(json.dumps(config))
    from interp.training.rundir import update_manifest

    update_manifest(tmp_path / "r", {name: sha256(tmp_path / "r" / name) for name in ("config.json", "dataset.safetensors")})
    with pytest.raises(CheckpointError, match="differs from the dataset"):
        interp.load_run(tmp_path / "r")
