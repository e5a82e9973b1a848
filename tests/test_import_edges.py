"""The edges a new user's trial of `interp import` found: what an imported run says about where it
came from, which data options go together, a trajectory brought in with the model, and errors
that name the fix."""

import pytest
import torch
from safetensors.torch import save_file

import interp
from interp.cli import main
from interp.families.importers import CheckpointImportError
from test_mlp_family import plain_mlp


def _files(tmp_path):
    """A plain torch MLP (6 features, 3 classes) and its own split, as a user saves them."""
    torch.save(plain_mlp().state_dict(), tmp_path / "mlp.pt")
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(2))
    save_file({"inputs": x, "observed_labels": torch.arange(40) % 3, "train_mask": torch.arange(40) < 30},
              str(tmp_path / "data.safetensors"))
    return tmp_path / "mlp.pt", tmp_path / "data.safetensors"


def test_data_and_dataset_together_are_refused_in_one_line(tmp_path, capsys):
    model, data = _files(tmp_path)
    assert main(["import", str(model), "--format", "torch-mlp", "--data", "digits", "--dataset", str(data),
                 "--out", str(tmp_path / "run")]) == 2
    assert "not both" in capsys.readouterr().err and not (tmp_path / "run").exists()
    with pytest.raises(CheckpointImportError, match="not both"):
        interp.import_checkpoint(model, "torch-mlp", data="digits", dataset=data)
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    assert "trained on any other split needs --dataset" in " ".join(capsys.readouterr().out.split())


def test_an_imported_run_says_where_it_came_from_and_claims_no_training(tmp_path):
    import hashlib
    import json

    model, data = _files(tmp_path)
    assert main(["import", str(model), "--format", "torch-mlp", "--dataset", str(data),
                 "--out", str(tmp_path / "run")]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["spec"]["train"] == {"loss": "ce"} and "noise" not in config["spec"]
    assert "seed" not in config["spec"]["model"]
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert config["imported_from"] == {"file": "mlp.pt", "format": "torch-mlp", "sha256": digest}
    run = interp.load_run(tmp_path / "run")  # the record reads back
    assert run.spec.model.widths == (8, 5) and run.dataset.train_mask.sum() == 30
    assert main(["export", str(tmp_path / "run"), "--to", str(tmp_path / "release")]) == 0
    card = (tmp_path / "release" / "MODEL_CARD.md").read_text()
    assert f"imported from `mlp.pt` (format `torch-mlp`, SHA-256 `{digest}`)" in card
    for claim in ("trained 0 steps", "adamw", '"steps"', '"noise"', "scaled as", "end of training"):
        assert claim not in card, claim
    assert "the user's own features, as the user gave them" in card
