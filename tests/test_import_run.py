"""`interp import`: a foreign checkpoint becomes a run directory that every command takes, with
the logits of the source forward (written independently in tests/test_importers.py)."""

import pytest
import torch
from safetensors.torch import save_file

import interp
from interp.cli import main
from interp.families.importers import CheckpointImportError
from test_importers import all_pairs, embed_mlp_forward, embed_mlp_state, hooked_state, legacy_forward

P = 7


def test_a_legacy_hooked_transformer_comes_in_and_reports(tmp_path, capsys):
    state = hooked_state(p=P, n_heads=2, d_head=8)
    torch.save(state, tmp_path / "grokked.pt")
    out = tmp_path / "run"
    assert main(["import", str(tmp_path / "grokked.pt"), "--format", "hooked-transformer", "--task", "add",
                 "--p", str(P), "--train-fraction", "0.5", "--out", str(out)]) == 0
    run = interp.load_run(out)
    assert run.spec.model.arch == "transformer" and run.spec.task.train_fraction == 0.5
    with torch.no_grad():
        got = interp.logits(run.model, all_pairs(P))
    torch.testing.assert_close(got, legacy_forward(state, P), atol=1e-4, rtol=0)
    assert interp.load_run(out).final_metrics["test_acc"] == pytest.approx(
        float((got.argmax(-1) == all_pairs(P).sum(1) % P)[~run.dataset.train_mask].double().mean()), abs=1e-9)
    assert main(["report", str(out), "--no-progress"]) == 0
    assert (out / "report" / "report.html").exists()
    assert "imported" in capsys.readouterr().out


def test_an_embedding_mlp_with_its_own_dataset(tmp_path):
    state = embed_mlp_state(p=P)
    torch.save(state, tmp_path / "mlp.pt")
    gen = torch.Generator().manual_seed(1)
    pairs = all_pairs(P)
    truth = pairs.sum(1) % P
    train = torch.rand(len(pairs), generator=gen) < 0.6
    noisy = train & (torch.rand(len(pairs), generator=gen) < 0.5)
    observed = torch.where(noisy, (truth + 1) % P, truth)
    save_file({"inputs": pairs, "observed_labels": observed, "train_mask": train}, tmp_path / "data.safetensors")
    out = tmp_path / "run"
    assert main(["import", str(tmp_path / "mlp.pt"), "--format", "embed-mlp", "--dataset",
                 str(tmp_path / "data.safetensors"), "--out", str(out)]) == 0
    run = interp.load_run(out)
    with torch.no_grad():
        source = embed_mlp_forward(state, P)
        torch.testing.assert_close(interp.logits(run.model, pairs), source, atol=1e-4, rtol=0)
    assert torch.equal(run.dataset.labels, observed) and torch.equal(run.dataset.noisy_mask, noisy)
    pred = source.argmax(-1)
    raw = interp.analyze(run, "filtration").rows["raw"]
    assert raw["noisy_observed_acc"] == pytest.approx(float((pred == observed)[noisy].double().mean()), abs=1e-9)
    assert raw["test_acc"] == pytest.approx(float((pred == truth)[~train].double().mean()), abs=1e-9)
    assert main(["report", str(out), "--no-progress"]) == 0


def test_import_refuses_in_one_line(tmp_path, capsys):
    torch.save(embed_mlp_state(p=P), tmp_path / "mlp.pt")
    run = interp.import_checkpoint(tmp_path / "mlp.pt", "embed-mlp", out=tmp_path / "run")
    assert run.path == tmp_path / "run"
    with pytest.raises(CheckpointImportError, match="already holds a run"):
        interp.import_checkpoint(tmp_path / "mlp.pt", "embed-mlp", out=tmp_path / "run")
    assert main(["import", str(tmp_path / "mlp.pt"), "--format", "embed-mlp", "--p", "11",
                 "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("interp: error:") and "p = 7" in err and "\n" not in err
