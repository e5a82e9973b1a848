import json
import os

import pytest
import torch
from conftest import small_transformer, small_two_layer

import interp
from interp import CheckpointError, load_run, train

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "two_layer": train(small_two_layer(steps=20), root / "two_layer", progress=False),
        "transformer": train(small_transformer(steps=4), root / "transformer", progress=False),
    }


@pytest.mark.parametrize("kind", ["two_layer", "transformer"])
def test_round_trip_exact(runs, kind):
    run = runs[kind]
    loaded = load_run(run.path)
    assert loaded.spec == run.spec and loaded.step == run.step and loaded.history == run.history
    for k, v in run.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v)
    x = run.dataset.inputs
    assert torch.equal(interp.logits(loaded.model, x), interp.logits(run.model, x))


def test_trajectory_checkpoints_load(runs):
    run = runs["two_layer"]
    early = load_run(run.path, step=10)
    assert early.step == 10 and early.history[-1]["step"] == 10
    assert not torch.equal(early.model.U, run.model.U)


def test_config_is_plain_json_with_versions(runs):
    config = json.loads((runs["transformer"].path / "config.json").read_text())
    assert config["format"] == "interp.run"
    assert config["spec"]["model"]["arch"] == "transformer"
    assert set(config["versions"]) >= {"torch", "transformer-lens", "interp"}
    assert config["transformer_lens_config"]["normalization_type"] is None


def copy_run(run, tmp_path):
    import shutil
    dest = tmp_path / "copy"
    shutil.copytree(run.path, dest)
    return dest


def test_truncated_weights_refused(runs, tmp_path):
    d = copy_run(runs["two_layer"], tmp_path)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_run(d)


def test_garbage_weights_refused(runs, tmp_path):
    d = copy_run(runs["transformer"], tmp_path)
    (d / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_run(d)


def test_truncated_config_refused(runs, tmp_path):
    d = copy_run(runs["two_layer"], tmp_path)
    text = (d / "config.json").read_text()
    (d / "config.json").write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="config.json is truncated or corrupted"):
        load_run(d)
    reseal(d, "config.json")  # past the manifest, the parser names the problem too
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_run(d)


def test_config_that_does_not_match_weights_names_the_tensors(runs, tmp_path):
    d = copy_run(runs["two_layer"], tmp_path)
    config = json.loads((d / "config.json").read_text())
    config["spec"]["model"]["width"] += 1
    config["spec"]["model"]["tied"] = True
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="config.json is truncated or corrupted .or was edited"):
        load_run(d)  # an edited config is refused by the manifest
    reseal(d, "config.json")  # an edit made on purpose, manifest updated: the shapes are still checked
    with pytest.raises(CheckpointError) as err:
        load_run(d)
    for fragment in ["unexpected V (65, 17)", "U has shape (65, 17), config says (66, 17)",
                     "W has shape (17, 65), config says (17, 66)"]:
        assert fragment in str(err.value)


def reseal(d, *names):
    """Record the digests of files edited on purpose, as a tool that edits a run would."""
    from interp.training.rundir import sha256, update_manifest

    update_manifest(d, {name: sha256(d / name) for name in names})


def test_missing_run_dir(tmp_path):
    with pytest.raises(CheckpointError, match="not a run directory"):
        load_run(tmp_path / "nothing")


def test_weights_load_with_weights_only_torch_tools(runs):
    # safetensors all the way down: no pickle anywhere in the run directory
    for path in runs["two_layer"].path.rglob("*"):
        if path.is_file():
            assert path.suffix in (".json", ".safetensors"), path


def test_bit_flipped_weights_refused_with_one_line_naming_the_file(runs, tmp_path, capsys):
    d = copy_run(runs["two_layer"], tmp_path)
    data = bytearray((d / "model.safetensors").read_bytes())
    for i in range(len(data) - 64, len(data)):  # 64 bytes inside the last tensor: still a valid file
        data[i] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors is truncated or corrupted"):
        load_run(d)
    from interp.cli import main

    assert main(["analyze", str(d), "--analysis", "fourier"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(d / "model.safetensors") in err


def test_files_get_the_process_permissions_not_0600(runs, tmp_path):
    umask = os.umask(0o022)
    try:
        d = copy_run(runs["two_layer"], tmp_path)
        interp.training.rundir.save_run(d, load_run(d))
    finally:
        os.umask(umask)
    for name in ("config.json", "model.safetensors", "dataset.safetensors", "history.json"):
        assert (d / name).stat().st_mode & 0o777 == 0o644, name


def test_dataset_file_holds_split_and_noise_and_is_checked(runs, tmp_path):
    from safetensors.torch import load_file, save_file

    d = copy_run(runs["two_layer"], tmp_path)
    run = load_run(d)
    stored = load_file(d / "dataset.safetensors")
    ds = run.dataset
    assert torch.equal(stored["observed_labels"], ds.labels) and torch.equal(stored["noisy_mask"], ds.noisy_mask)
    assert torch.equal(stored["true_labels"][stored["noisy_mask"]] != stored["observed_labels"][stored["noisy_mask"]],
                       torch.ones(int(ds.noisy_mask.sum()), dtype=torch.bool))
    config = json.loads((d / "config.json").read_text())
    digest = config["sha256"].pop("dataset.safetensors")
    (d / "config.json").write_text(json.dumps(config))
    reseal(d, "config.json")
    with pytest.raises(CheckpointError, match="no SHA-256 for dataset.safetensors"):
        load_run(d)  # a missing checksum is an error, not a skip
    # edited with its checksum updated to match: the masks must still agree with the labels
    from interp.training.rundir import sha256

    stored["noisy_mask"] = ~stored["noisy_mask"]
    save_file(stored, d / "dataset.safetensors")
    config["sha256"]["dataset.safetensors"] = sha256(d / "dataset.safetensors")
    (d / "config.json").write_text(json.dumps(config))
    reseal(d, "config.json", "dataset.safetensors")
    assert digest != config["sha256"]["dataset.safetensors"]
    with pytest.raises(CheckpointError, match="noisy_mask"):
        load_run(d)
    # a relabelled dataset of a spec-drawn run is not what its spec draws: refused, never swapped
    stored["noisy_mask"] = ~stored["noisy_mask"]
    stored["observed_labels"][0] = (stored["observed_labels"][0] + 1) % run.spec.task.p
    stored["train_mask"][0], stored["noisy_mask"][0] = True, True
    stored["clean_mask"][0], stored["test_mask"][0] = False, False
    stored["noisy_mask"][0] = bool(stored["observed_labels"][0] != stored["true_labels"][0])
    stored["clean_mask"][0] = not bool(stored["noisy_mask"][0])
    save_file(stored, d / "dataset.safetensors")
    config["sha256"]["dataset.safetensors"] = sha256(d / "dataset.safetensors")
    (d / "config.json").write_text(json.dumps(config))
    reseal(d, "config.json", "dataset.safetensors")
    with pytest.raises(CheckpointError, match="differs from the dataset that the run's spec generates"):
        load_run(d)
