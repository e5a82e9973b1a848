import pytest
import torch
from conftest import small_transformer, small_two_layer

import interp
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
    # the margins moved in closed form equal the hooked passes' too
    assert batched.margin_baseline == pytest.approx(hooked.margin_baseline)
    for key in ("test", "memorised"):
        assert batched.margins[key] == pytest.approx(hooked.margins[key], rel=1e-5, abs=1e-5), key


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


def forward_with_head_removed(model, pairs, head: int, at: str):
    """The one-layer bridge's logits at the last position, written here from its state dict (no
    LayerNorm, causal attention, learned positions, ReLU MLP), with `head`'s values zeroed
    (`at="v"`: its output is then zero) or its queries zeroed (`at="q"`: it attends uniformly over
    the positions it may see); every other head as it is."""
    w, cfg = model.state_dict(), model.cfg
    tokens = interp.tokens(model, pairs)
    x = w["embed.weight"][tokens] + w["pos_embed.weight"][: tokens.shape[1]]

    def linear(name, t):
        return t @ w[f"blocks.0.{name}.weight"].T + w[f"blocks.0.{name}.bias"]

    q, k, v = (linear(f"attn.{n}", x).unflatten(-1, (cfg.n_heads, cfg.d_head)) for n in "qkv")
    if at in ("q", "v"):
        (v if at == "v" else q)[:, :, head] = 0
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / cfg.d_head**0.5
    causal = torch.triu(torch.ones(3, 3, dtype=torch.bool), 1)
    z = torch.einsum("bhqk,bkhd->bqhd", scores.masked_fill(causal, float("-inf")).softmax(-1), v)
    resid = x + linear("attn.o", z.flatten(-2))
    out = resid + linear("mlp.out", torch.relu(linear("mlp.in", resid)))
    return (out @ w["unembed.weight"].T + w["unembed.bias"])[:, -1]


def test_head_ablation_removes_one_head_at_every_head_hook(trained_transformer):
    """At hook_q, hook_k and hook_v the head axis is the second last: zeroing `units` along the
    last axis there (as ablation once did) zeroes one dimension of every head instead."""
    model, ds = trained_transformer.model, trained_transformer.dataset
    pairs = ds.inputs[:64]
    with torch.no_grad():
        torch.testing.assert_close(forward_with_head_removed(model, pairs, 0, "none"), logits(model, pairs),
                                   atol=1e-4, rtol=1e-4)  # the forward written here is the model's
        for head in range(model.cfg.n_heads):
            removed = forward_with_head_removed(model, pairs, head, "v")
            for hook in ("hook_v", "hook_z", "hook_pattern"):
                torch.testing.assert_close(ablated_logits(model, pairs, f"blocks.0.attn.{hook}", [head]), removed,
                                           atol=1e-4, rtol=1e-4, msg=hook)
            uniform = forward_with_head_removed(model, pairs, head, "q")
            torch.testing.assert_close(ablated_logits(model, pairs, "blocks.0.attn.hook_q", [head]), uniform,
                                       atol=1e-4, rtol=1e-4)
            # a zero key gives every position the same score, as a zero query does
            torch.testing.assert_close(ablated_logits(model, pairs, "blocks.0.attn.hook_k", [head]), uniform,
                                       atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="discards edits"):
        ablated_logits(model, pairs, "blocks.0.attn.hook_attn_scores", [0])


def test_ablation_report_summarises_its_head_scan(trained_transformer, tmp_path):
    from interp.analysis.ablation import ablation_report
    from interp.analysis.readout import margins

    model, ds = trained_transformer.model, trained_transformer.dataset
    report = ablation_report(trained_transformer, seeds=(0,))
    rows = report.head_costs()
    assert [r["head"] for r in rows] == ["L0H0", "L0H1"]
    gen0, mem0 = margins(logits(model, ds.inputs), ds)
    for h, row in enumerate(rows):  # each head's costs, from its own ablated forward
        gen, mem = margins(ablated_logits(model, ds.inputs, "blocks.0.attn.hook_z", [h]), ds)
        assert (row["gen"], row["mem"]) == pytest.approx((gen0 - gen, mem0 - mem), abs=1e-6)
    table = report.tables()[1]
    assert len(table.rows) == 3 and table.rows[1][1] == f"{rows[0]['gen']:.3g}"
    summary = report.summary()
    most = max(rows, key=lambda r: r["gen"])
    assert f"the test margin needs {most['head']} most (cost {most['gen']:.3g}" in summary
    assert f"test margin is {gen0:.3g}" in summary
    figures = report.figures(tmp_path, "ablation")
    assert len(figures) == 2 and all(f.path.exists() for f in figures)
