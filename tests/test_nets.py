import pytest
import torch
import torch.nn.functional as F

from interp import TwoLayerNet, TwoLayerSpec, build_model, logits
from interp.families.base import training_logits
from interp.core.specs import TransformerSpec

P = 17


@pytest.mark.parametrize("act", ["relu", "quadratic", "gelu", "abs"])
@pytest.mark.parametrize("tied,bias", [(False, True), (True, False)])
def test_two_layer_matches_one_hot_formula(act, tied, bias):
    net = TwoLayerNet(TwoLayerSpec(width=40, act=act, tied=tied, bias=bias), P)
    inputs = torch.cartesian_prod(torch.arange(P), torch.arange(P))
    e_a, e_b = F.one_hot(inputs[:, 0], P).float(), F.one_hot(inputs[:, 1], P).float()
    V = net.U if tied else net.V
    phi = {"relu": torch.relu, "quadratic": torch.square, "gelu": F.gelu, "abs": torch.abs}[act]
    expected = phi(e_a @ net.U.T + e_b @ V.T) @ net.W.T
    if bias:
        expected = expected + net.mu
    torch.testing.assert_close(net(inputs), expected)
    assert ("V" in dict(net.named_parameters())) == (not tied)
    assert ("mu" in dict(net.named_parameters())) == bias


def test_two_layer_hooks_in_run_with_cache():
    net = TwoLayerNet(TwoLayerSpec(width=24), P)
    inputs = torch.tensor([[1, 2], [3, 4]])
    out, cache = net.run_with_cache(inputs)
    assert set(cache.keys()) == {"hook_embed_a", "hook_embed_b", "hook_pre", "hook_post", "hook_logits"}
    assert cache["hook_pre"].shape == (2, 24) and cache["hook_logits"].shape == (2, P)
    torch.testing.assert_close(cache["hook_post"], torch.relu(cache["hook_pre"]))
    torch.testing.assert_close(cache["hook_logits"], out)


def test_two_layer_run_with_hooks_changes_output():
    net = TwoLayerNet(TwoLayerSpec(width=24, bias=True), P)
    inputs = torch.tensor([[1, 2]])

    def zero(post, hook):
        return torch.zeros_like(post)

    out = net.run_with_hooks(inputs, fwd_hooks=[("hook_post", zero)])
    torch.testing.assert_close(out[0], net.mu)


def test_doshi_init_scale():
    width = 500
    net = TwoLayerNet(TwoLayerSpec(width=width, init="doshi", bias=False, act="quadratic"), 97)
    sigma = 0.5 / (2 * width) ** (1 / 3)
    for w in (net.U.detach(), net.V.detach(), net.W.detach()):
        assert abs(float(w.std()) / sigma - 1) < 0.02
        assert abs(float(w.mean())) < 0.05 * sigma


def test_init_is_seeded():
    a = TwoLayerNet(TwoLayerSpec(width=8, seed=1), P)
    b = TwoLayerNet(TwoLayerSpec(width=8, seed=1), P)
    c = TwoLayerNet(TwoLayerSpec(width=8, seed=2), P)
    assert torch.equal(a.U, b.U) and not torch.equal(a.U, c.U)


def test_transformer_shapes_hooks_and_seed():
    spec = TransformerSpec(d_model=32, n_heads=2, d_head=16, d_mlp=64)
    model = build_model(spec, P)
    assert model.cfg.normalization_type is None
    assert (model.cfg.d_vocab, model.cfg.d_vocab_out, model.cfg.n_ctx) == (P + 1, P, 3)
    inputs = torch.tensor([[1, 2], [5, 9]])
    out = logits(model, inputs)
    assert out.shape == (2, P)
    tokens = torch.tensor([[1, 2, P], [5, 9, P]])
    full, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(full[:, -1], out)
    for name in ["hook_embed", "hook_pos_embed", "blocks.0.attn.hook_pattern", "blocks.0.mlp.hook_post",
                 "blocks.0.hook_resid_post"]:
        assert name in cache
    assert cache["blocks.0.mlp.hook_post"].shape == (2, 3, 64)
    again = build_model(spec, P)
    torch.testing.assert_close(logits(again, inputs), out)


def test_transformer_n_layers():
    model = build_model(TransformerSpec(n_layers=2, d_model=32, n_heads=2, d_head=16, d_mlp=64), P)
    _, cache = model.run_with_cache(torch.tensor([[1, 2, P]]))
    assert "blocks.1.mlp.hook_post" in cache


@pytest.mark.parametrize("n_layers,act", [(1, "relu"), (2, "gelu")])
def test_transformer_training_path_matches_hooked_forward(n_layers, act):
    model = build_model(TransformerSpec(n_layers=n_layers, act=act, d_model=32, n_heads=4, d_head=8, d_mlp=64), P)
    with torch.no_grad():  # nonzero biases, so every term of the forward is exercised
        for name, value in model.state_dict(keep_vars=True).items():
            if name.endswith("bias") and value.requires_grad:
                value.normal_(0, 0.1)
    inputs = torch.cartesian_prod(torch.arange(P), torch.arange(P))
    torch.testing.assert_close(training_logits(model, inputs), logits(model, inputs), rtol=1e-5, atol=1e-5)
    two_layer = build_model(TwoLayerSpec(width=16), P)
    torch.testing.assert_close(training_logits(two_layer, inputs), logits(two_layer, inputs))


@pytest.mark.parametrize("n_layers", [1, 2])
def test_transformer_forward_runs_the_last_mlp_at_the_last_position_alone(n_layers):
    """The family's forward skips the last MLP at the other positions: the same logits bit for
    bit, with and without a hook before it; a hook on the MLP itself sees every position."""
    from interp.analysis.ablation import ablation_hook
    from interp.families.base import FORWARD_CHUNK, ModelFamily, family_of

    model = build_model(TransformerSpec(n_layers=n_layers, d_model=32, n_heads=4, d_head=8, d_mlp=64), P)
    family = family_of(model)
    inputs = torch.cartesian_prod(torch.arange(P), torch.arange(P)).repeat(FORWARD_CHUNK // P**2 + 1, 1)  # > one chunk
    positions = []
    model.blocks[-1].mlp.register_forward_hook(lambda module, args, out: positions.append(out.shape[1]))
    head = [ablation_hook(model, f"blocks.{n_layers - 1}.attn.hook_z", [1, 3], "mean", 0)]
    with torch.no_grad():
        for hooks in ([], head):
            positions.clear()
            fast = family.forward(model, inputs, hooks)
            assert set(positions) == {1}
            assert torch.equal(fast, ModelFamily.forward(family, model, inputs, hooks))
        positions.clear()
        late = [ablation_hook(model, family.readout_hook(model), [0, 5], "zero", 0)]
        family.forward(model, inputs, late)
        assert set(positions) == {3}
        # the cache, read at the last position, is the same too, and no hook is left behind
        positions.clear()
        out, cache = family.run_with_cache(model, inputs[:P])
        full_out, full_cache = ModelFamily.run_with_cache(family, model, inputs[:P])
        assert positions == [1, 3] and torch.equal(out, full_out) and cache.keys() == full_cache.keys()
        assert all(torch.equal(cache[name], full_cache[name]) for name in full_cache)
        assert not any(point._forward_hooks for point in model.hook_dict.values())


def test_a_hook_the_caller_added_on_the_last_mlp_sees_every_position():
    """A hook put on the last MLP outside `fwd_hooks` (`model.hooks`) turns the slicing off: it
    sees three positions and writes where it means to, in `forward` and in `run_with_cache`."""
    from interp.families.base import ModelFamily, family_of

    model = build_model(TransformerSpec(d_model=32, n_heads=4, d_head=8, d_mlp=64), P)
    family, inputs, seen = family_of(model), torch.cartesian_prod(torch.arange(P), torch.arange(P)), []

    def zero_first_position(value, hook):
        seen.append(value.shape[1])
        value[:, -1, :8] = 0.0
        return value

    with torch.no_grad(), model.hooks(fwd_hooks=[("blocks.0.mlp.hook_post", zero_first_position)]):
        out = family.forward(model, inputs)
        reference = ModelFamily.forward(family, model, inputs)
        cached, _ = family.run_with_cache(model, inputs)
    assert set(seen) == {3} and torch.equal(out, reference) and torch.equal(cached, reference)
    assert not torch.equal(out, family.forward(model, inputs))  # the hook did change the logits
