import pytest
import torch
from conftest import small_transformer, small_two_layer

from interp import logits, train
from interp.analysis.ablation import ablated_logits, pruning_curve, scan_units, scan_units_hooked


@pytest.fixture(scope="module")
def trained_two_layer():
    spec = small_two_layer(steps=60)
    return train(spec, None, progress=False)


@pytest.fixture(scope="module")
def trained_transformer():
    return train(small_transformer(steps=8), None, progress=False)


@pytest.mark.parametrize("mode", ["zero", "mean", "resample"])
@pytest.mark.parametrize("which", ["two_layer", "transformer"])
def test_batched_scan_equals_one_hooked_pass_per_unit(trained_two_layer, trained_transformer, mode, which):
    run = trained_two_layer if which == "two_layer" else trained_transformer
    batched = scan_units(run.model, run.dataset, mode=mode, seed=4, chunk=7)
    n_units = len(batched.metrics["test_acc"])
    hooked = scan_units_hooked(run.model, run.dataset, batched.hook_name, n_units, mode=mode, seed=4)
    assert batched.baseline == pytest.approx(hooked.baseline)
    for key in ("clean_acc", "noisy_observed_acc", "noisy_true_acc", "test_acc", "test_loss", "clean_loss"):
        assert batched.metrics[key] == pytest.approx(hooked.metrics[key], rel=1e-5, abs=1e-6), key


def test_zero_ablating_every_hidden_neuron_leaves_the_bias(trained_two_layer):
    net, ds = trained_two_layer.model, trained_two_layer.dataset
    out = ablated_logits(net, ds.inputs, "hook_post", list(range(net.spec.width)))
    torch.testing.assert_close(out, net.mu.detach().expand_as(out))
    curve = pruning_curve(net, ds, torch.arange(net.spec.width), fractions=[0.0, 1.0])
    argmax_of_bias = int(net.mu.argmax())
    expected = float((ds.true_labels[ds.test_mask] == argmax_of_bias).double().mean())
    assert curve.metrics["test_acc"][1] == pytest.approx(expected)
    assert curve.metrics["test_acc"][0] == pytest.approx(scan_units(net, ds).baseline["test_acc"])


def test_pruning_curve_matches_hooked_ablation(trained_two_layer):
    net, ds = trained_two_layer.model, trained_two_layer.dataset
    order = torch.randperm(net.spec.width, generator=torch.Generator().manual_seed(0))
    curve = pruning_curve(net, ds, order, fractions=[0.25, 0.5], mode="mean")
    from interp.core.metrics import subset_metrics
    for f, test_acc in zip(curve.fractions, curve.metrics["test_acc"]):
        removed = order[: round(f * net.spec.width)]
        hooked = subset_metrics(ablated_logits(net, ds.inputs, "hook_post", removed, "mean"), ds)
        assert test_acc == pytest.approx(hooked["test_acc"])


def test_head_ablation_through_hook_z(trained_transformer):
    model, ds = trained_transformer.model, trained_transformer.dataset
    n_heads = model.cfg.n_heads
    raw = logits(model, ds.inputs)
    one = ablated_logits(model, ds.inputs, "blocks.0.attn.hook_z", [0])
    assert not torch.allclose(one, raw)
    scan = scan_units_hooked(model, ds, "blocks.0.attn.hook_z", n_heads)
    assert len(scan.metrics["test_acc"]) == n_heads
    with pytest.raises(ValueError, match="unknown ablation mode"):
        ablated_logits(model, ds.inputs, "blocks.0.attn.hook_z", [0], mode="half")


def test_batched_scan_with_logits_spread_past_the_exp_floor(trained_two_layer):
    """Logits spread by more than 87 make scoring floor exp's inputs (the other branch of the
    scan's bound); the numbers must still match the hooked passes."""
    import copy

    net, ds = copy.deepcopy(trained_two_layer.model), trained_two_layer.dataset
    with torch.no_grad():
        net.W.mul_(60.0)
    spread = logits(net, ds.inputs)
    assert (spread.amax(-1) - spread.amin(-1)).max() > 87
    batched = scan_units(net, ds, chunk=5)
    hooked = scan_units_hooked(net, ds, "hook_post", net.spec.width)
    for key in ("clean_acc", "test_acc", "clean_loss", "test_loss"):
        assert batched.metrics[key] == pytest.approx(hooked.metrics[key], rel=1e-5, abs=1e-6), key
