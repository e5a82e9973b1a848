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
    true = torch.arange(40) % 3
    observed = torch.where(torch.arange(40) < 6, (true + 1) % 3, true)  # 6 of the 30 training labels wrong
    save_file({"inputs": x, "observed_labels": observed, "true_labels": true, "train_mask": torch.arange(40) < 30},
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


def test_a_trajectory_comes_in_with_the_model_and_the_edits_read_it(tmp_path, capsys):
    import json

    from interp.analysis.registry import ANALYSES

    model, data = _files(tmp_path)
    for seed in (1, 2):
        torch.save(plain_mlp(seed=seed).state_dict(), tmp_path / f"early{seed}.pt")
    args = ["import", str(model), "--format", "torch-mlp", "--dataset", str(data),
            "--checkpoint", f"10={tmp_path / 'early1.pt'}", "--checkpoint", f"20={tmp_path / 'early2.pt'}"]
    assert main([*args, "--out", str(tmp_path / "nostep")]) == 2
    assert "give --step" in capsys.readouterr().err
    assert main([*args, "--step", "20", "--out", str(tmp_path / "early")]) == 2  # not after every checkpoint
    capsys.readouterr()
    assert main([*args, "--checkpoint", f"10={tmp_path / 'early2.pt'}", "--step", "30",
                 "--out", str(tmp_path / "twice")]) == 2  # one step, two files: refused, not the last kept
    assert "gives step 10 twice" in capsys.readouterr().err and not (tmp_path / "twice").exists()
    assert main([*args, "--step", "30", "--out", str(tmp_path / "run")]) == 0
    x = interp.load_run(tmp_path / "run").dataset.inputs
    for step, seed in ((10, 1), (20, 2), (30, 0)):
        run = interp.load_run(tmp_path / "run", step=None if step == 30 else step)
        with torch.no_grad():
            expected = plain_mlp(seed=seed)(x)
        torch.testing.assert_close(run.logits(x), expected, rtol=0, atol=1e-6)
        test = run.dataset.test_mask
        assert run.final_metrics["step"] == step and run.final_metrics["test_acc"] == pytest.approx(
            (expected[test].argmax(1) == run.dataset.true_labels[test]).double().mean().item())
    assert [row["step"] for row in run.history] == [10, 20, 30]
    origin = json.loads((tmp_path / "run" / "config.json").read_text())["imported_from"]
    assert sorted(origin["checkpoints"]) == ["10", "20"] and origin["checkpoints"]["10"]["file"] == "early1.pt"
    # the trajectory is there (not "rewinding needs a checkpoint"); this MLP's 8-unit first layer is too narrow
    # for the label-free choice's class subspaces
    assert "(blocks.0.hook_post) has 8 units, no more than the 10 directions" in ANALYSES["layer_rewind"].skip_reason(run)
    assert main(["edit", str(tmp_path / "run"), "--out", str(tmp_path / "edited")]) == 0
    edited = json.loads((tmp_path / "edited" / "config.json").read_text())
    assert edited["imported_from"] == origin and "steps" not in edited["spec"]["train"]
    from interp.reporting.report import _headline

    assert _headline(interp.load_run(tmp_path / "run"), {})["model"].endswith("imported (its training not known to interp)")
    # the edit's card does not pass its weights off as the imported file's
    from interp.training.release import model_card

    card = model_card(interp.load_run(tmp_path / "edited"), "edited", "", None)
    assert "not the imported weights but `edited_from` them" in card and "## Accuracy of the edited model" in card
    assert f"`{edited['edited_from']['model_sha256']}`" in card and "as the step" not in card
    assert "## Accuracy of the imported model" in model_card(interp.load_run(tmp_path / "run"), "run", "", None)
    # its report: the layer too narrow for class subspaces reads no noise score, but the wrong labels are known
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "report"), "--no-progress"]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "**Memorised:**" in report and "Noise detection: no score could be read from this run." in report
    assert "no training label is known to be wrong" not in report.lower()
    other = plain_mlp(sizes=(6, 8, 3), seed=1)  # another architecture is no checkpoint of this model
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(CheckpointImportError, match="one architecture"):
        interp.import_checkpoint(model, "torch-mlp", dataset=data, checkpoints={5: tmp_path / "other.pt"}, step=9,
                                 out=tmp_path / "mixed")
    with pytest.raises(CheckpointImportError, match="give --out"):
        interp.import_checkpoint(model, "torch-mlp", dataset=data, checkpoints={5: tmp_path / "early1.pt"}, step=9)


def test_an_edit_of_a_run_without_checkpoints_says_how_to_get_them(tmp_path, capsys):
    model, data = _files(tmp_path)
    assert main(["import", str(model), "--format", "torch-mlp", "--dataset", str(data),
                 "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["edit", str(tmp_path / "run"), "--out", str(tmp_path / "edited")]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint STEP=FILE" in err and err.count("--checkpoint STEP=FILE") == 1  # said once
    # and every analysis that reads the early trajectory says so on its own, in `interp analyze`
    for name in ("layer_rewind", "feature_edit"):
        assert main(["analyze", str(tmp_path / "run"), "--analysis", name]) == 2
        assert "--checkpoint STEP=FILE" in capsys.readouterr().err


def test_errors_at_the_edges_name_the_fix(tmp_path, capsys):
    import numpy as np

    model, data = _files(tmp_path)
    run = interp.import_checkpoint(model, "torch-mlp", dataset=data)
    with pytest.raises(TypeError, match="import_checkpoint\\(FILE, 'torch-mlp'"):
        interp.Run(run.spec, plain_mlp(), [], 0, dataset=run.dataset)
    with pytest.raises(CheckpointImportError, match="Dataset .* or a file's path, not a dict"):
        interp.import_checkpoint(model, "torch-mlp", dataset={"inputs": run.dataset.inputs})
    # float64 and numpy inputs are converted as Dataset.from_tensors converts them; integers are refused
    x = run.dataset.inputs[:5]
    for same in (x.double(), x.numpy(), x.double().numpy()):
        assert torch.equal(run.logits(same), run.logits(x))
        assert torch.equal(run.run_with_cache(same)[0], run.logits(x))
    for bad, named in ((x.long(), "torch.int64"), (x.tolist(), "list"), (np.zeros((5, 6), dtype=np.int64), "int64")):
        with pytest.raises(ValueError, match=f"float32 tensor \\[batch, d_in\\].*got {named}$"):
            run.logits(bad)
        with pytest.raises(ValueError, match="float32 tensor"):
            run.run_with_cache(bad)
    state = plain_mlp().state_dict()
    state["2.weight"][1, 3] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    out = str(tmp_path / "out")
    for args, message in (
            ([str(tmp_path / "nan.pt"), "--dataset", str(data)], "weights contain NaN in 2.weight"),
            ([str(model), "--data", "mnist5k"], "reads 6 features per example but mnist5k has 784: it was not trained "
                                                "on mnist5k; give the dataset it was trained on with --dataset"),
            ([str(model), "--task", "add", "--dataset", str(data)], "--task add is for a model over (a, b) pairs")):
        assert main(["import", *args, "--format", "torch-mlp", "--out", out]) == 2
        err = capsys.readouterr().err
        assert message in err and "\n" not in err.strip(), err
    assert main(["import", str(model), "--format", "torch-mlp", "--dataset", str(data), "--out", out]) == 0
    assert main(["export", out, "--format", "hooked-transformer", "--to", str(tmp_path / "x.pt")]) == 2
    assert "mlp family, which exports to --format torch-mlp" in capsys.readouterr().err
