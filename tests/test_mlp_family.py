"""The deep MLP over features: hook names, training on a feature task, the run directory, the
capability skip of pair-only analyses, and plain-PyTorch MLPs in and out."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import interp
from interp.analysis.class_subspaces import NO_NETWORK
from interp.reporting.report import headline_rows
from interp.cli import main
from interp.core.specs import NoiseSpec, RunSpec, SpecError, TaskSpec, TrainSpec
from interp.families.base import Capability, family_of
from interp.families.mlp import MLPSpec

DIGITS = TaskSpec(op="classify", data="digits", train_fraction=0.7)


def plain_mlp(sizes=(6, 8, 5, 3), seed=0) -> nn.Sequential:
    """A torch MLP built here, weights from a seeded generator (no global RNG)."""
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        linear = nn.Linear(a, b)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(b, a, generator=gen))
            linear.bias.copy_(torch.randn(b, generator=gen))
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def test_hooks_are_named_per_layer_and_cached():
    model = interp.build_model(MLPSpec(d_in=6, widths=(8, 5, 4)), 3)
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(1))
    logits, cache = model.run_with_cache(x)
    assert [k for k in cache.keys()] == [f"blocks.{i}.hook_{s}" for i in range(3) for s in ("pre", "post")] + [
        "hook_logits"]
    assert cache["blocks.2.hook_post"].shape == (7, 4) and torch.equal(cache["hook_logits"], logits)
    first = model.blocks[0].linear
    torch.testing.assert_close(cache["blocks.0.hook_pre"], x @ first.weight.detach().T + first.bias.detach())
    assert torch.equal(cache["blocks.0.hook_post"], torch.relu(cache["blocks.0.hook_pre"]))
    family = family_of(model)
    assert family.layer_hooks(model) == ["blocks.0.hook_post", "blocks.1.hook_post", "blocks.2.hook_post"]
    assert family.has(model, Capability.LAYERS) and not family.has(model, Capability.PAIRS)
    with pytest.raises(ValueError, match="feature vectors of shape \\[batch, 6\\]"):
        model(torch.randn(2, 5))


@pytest.mark.parametrize("widths, message", [("", "one or more"), ((8, 0), "≥ 1"), ("8,x", "comma-separated")])
def test_bad_widths_are_one_line(widths, message):
    with pytest.raises(SpecError, match=message):
        MLPSpec(widths=widths)


def test_a_feature_run_trains_saves_loads_and_skips_pair_analyses(tmp_path):
    spec = RunSpec(task=DIGITS, noise=NoiseSpec("symmetric", 0.4), model=MLPSpec(d_in=64, widths=(32,)),
                   train=TrainSpec(steps=40, optimizer="adam", lr=3e-3, eval_every=20, checkpoint_every=20))
    assert spec.with_overrides(["model.widths=16,8"]).model.widths == (16, 8)
    run = interp.train(spec, tmp_path / "run", progress=False)
    assert run.final_metrics["clean_acc"] > 0.6  # it learns the digits
    back = interp.load_run(tmp_path / "run")
    assert back.dataset.same_as(run.dataset) and back.spec == spec
    assert torch.equal(interp.logits(back.model, back.dataset.inputs), interp.logits(run.model, run.dataset.inputs))
    with pytest.raises(ValueError, match="it needs \\(a, b\\) pairs of residues as inputs, which a model of the mlp"):
        interp.analyze(run, "fourier")


def test_a_torch_mlp_imports_with_its_own_logits_and_exports_back(tmp_path):
    seq = plain_mlp()
    torch.save(seq.state_dict(), tmp_path / "mlp.pt")
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(40, 6, generator=gen)
    truth = torch.arange(40) % 3
    save_file({"inputs": x, "observed_labels": truth, "train_mask": torch.arange(40) < 30},
              str(tmp_path / "data.safetensors"))
    assert main(["import", str(tmp_path / "mlp.pt"), "--format", "torch-mlp", "--dataset",
                 str(tmp_path / "data.safetensors"), "--out", str(tmp_path / "run")]) == 0
    run = interp.load_run(tmp_path / "run")
    assert run.spec.model == MLPSpec(d_in=6, widths=(8, 5)) and run.spec.task.features
    mine = interp.Dataset.from_tensors(TaskSpec(op="classify", data="mine", p=3), x, truth, torch.arange(40) < 30)
    again = interp.import_checkpoint(tmp_path / "mlp.pt", "torch-mlp", dataset=mine)  # a Dataset, in Python
    assert again.spec.task.describe() == "classify mine" and again.dataset.same_as(mine)
    with torch.no_grad():
        expected = seq(x)
    torch.testing.assert_close(interp.logits(run.model, x), expected, rtol=0, atol=1e-6)
    assert main(["export", str(tmp_path / "run"), "--format", "torch-mlp", "--to", str(tmp_path / "out.pt")]) == 0
    fresh = plain_mlp(seed=9)
    fresh.load_state_dict(torch.load(tmp_path / "out.pt", weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), expected, rtol=0, atol=1e-6)


def test_a_torch_mlp_with_mismatched_layers_is_refused_in_one_line(tmp_path):
    state = plain_mlp().state_dict()
    state["2.weight"] = torch.zeros(5, 7)
    torch.save(state, tmp_path / "bad.pt")
    assert main(["import", str(tmp_path / "bad.pt"), "--format", "torch-mlp", "--data", "digits",
                 "--out", str(tmp_path / "run")]) == 2


def test_the_report_on_a_feature_run_names_the_class_readout_and_skips_the_rest(tmp_path, capsys):
    spec = RunSpec(task=DIGITS, noise=NoiseSpec("symmetric", 0.4), model=MLPSpec(d_in=64, widths=(32, 16)),
                   train=TrainSpec(steps=40, optimizer="adam", lr=3e-3, eval_every=20, checkpoint_every=20))
    interp.train(spec, tmp_path / "run", progress=False)
    assert main(["report", str(tmp_path / "run"), "--no-progress"]) == 0
    import json

    data = json.loads((tmp_path / "run" / "report" / "results.json").read_text())
    headline = data["headline"]
    readout = data["analyses"]["class_subspaces"]["layers"][1]
    assert headline["label_free_method"] == "class subspaces, blocks.0.hook_post"
    assert headline["label_free_test_acc"] == readout["test_acc"]
    # noise detection: the label-free noise score, which reads the run's checkpoints (step 20 here)
    subspaces = data["analyses"]["class_subspaces"]
    assert subspaces["noise_score_steps"] == [20] and headline["noise_auroc"] == subspaces["noise_score_auroc"]
    assert headline["noise_method"].startswith("the label-free noise score")
    assert [c["topic"] for c in headline["claims"]] == ["The rule", "The memory",
                                                         "The edit (fine-tuned toward a label-free teacher)"]
    edit = data["analyses"]["feature_edit"]["rows"]
    assert f"memorised {edit[0]['memorised']:.1%} → {edit[3]['memorised']:.1%}" in headline["claims"][2]["text"]
    assert "raw inputs" in headline["claims"][0]["text"] and "random" in headline["claims"][1]["text"]
    # each extraction beside its controls; no row twice (the best layer is the first here or another)
    rows = dict(headline["rows"])
    layers = data["analyses"]["class_subspaces"]["layers"]
    assert rows["control: the same readout, raw inputs"] == layers[0]["test_acc"]
    assert rows["control: the same readout, an untrained net"] == readout["untrained_test_acc"]
    flagged = next(r for r in edit if r["name"].startswith("control: observed labels, the examples"))
    assert rows["control: the same steps, flagged examples left out"] == flagged["test"]
    assert f"left out instead, {flagged['memorised']:.1%}, {flagged['test']:.1%}" in headline["claims"][2]["text"]
    assert (headline["best_method"] == headline["label_free_method"]) == (
        not any(name.startswith("best extraction") for name in (r[0] for r in headline_rows(headline))))
    # the noise score's control reads no network: the raw inputs' doubt plus the neighbour vote
    assert headline["noise_control"] == [NO_NETWORK, subspaces["noise_control_auroc"]]
    assert {"class_subspaces", "layer_rewind", "suspect_neurons", "dynamics", "feature_edit"} <= set(data["analyses"])
    assert "pairs of residues" in data["skipped"]["fourier"]
    assert "class subspaces, blocks.0.hook_post" in capsys.readouterr().out
