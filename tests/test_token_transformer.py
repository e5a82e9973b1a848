"""The transformer over tokens cut from feature vectors: its logits against a forward written
here from its weights alone, its hook names, and its one-line refusals (the rest of its contract
is checked by `interp.testing.check_family` in test_conformance.py)."""

import json
import math

import pytest
import torch

import interp
from interp.core.specs import SpecError
from interp.families.token_transformer import TokenTransformerSpec

SPEC = TokenTransformerSpec(d_in=12, n_tokens=3, d_model=8, n_heads=2, d_head=4, d_mlp=16, n_layers=2, act="gelu")
#: overlapping windows: 6 features every 4, the last reading 4 features and 2 zeros
WINDOWED = TokenTransformerSpec(d_in=12, n_tokens=3, d_model=8, n_heads=2, d_head=4, d_mlp=16, n_layers=2, act="gelu",
                                window=6)


def independent_forward(w: dict, x: torch.Tensor, spec: TokenTransformerSpec) -> torch.Tensor:
    """Logits at the readout token, from the state dict, one example at a time in plain loops."""
    out = []
    width = spec.window or 4
    for row in x:
        windows = [torch.cat([row[i * 4:i * 4 + width], torch.zeros(max(0, i * 4 + width - 12))]) for i in range(3)]
        tokens = [piece @ w["W_E"] + w["b_E"] for piece in windows] + [w["readout_token"]]
        resid = torch.stack(tokens) + w["W_pos"]
        for layer in range(spec.n_layers):
            b = f"blocks.{layer}."
            attn = torch.zeros_like(resid)
            for h in range(spec.n_heads):
                q, k, v = (resid @ w[b + f"attn.W_{m}"][h] for m in "QKV")
                weights = torch.softmax(q @ k.T / math.sqrt(spec.d_head), dim=-1)  # every token sees every token
                attn = attn + weights @ v @ w[b + "attn.W_O"][h]
            resid = resid + attn + w[b + "attn.b_O"]
            hidden = torch.nn.functional.gelu(resid @ w[b + "mlp.W_in"] + w[b + "mlp.b_in"])
            resid = resid + hidden @ w[b + "mlp.W_out"] + w[b + "mlp.b_out"]
        out.append(resid[-1] @ w["W_U"] + w["b_U"])
    return torch.stack(out)


@pytest.mark.parametrize("spec", [SPEC, WINDOWED], ids=["pieces", "windows"])
def test_the_logits_are_those_of_a_forward_written_from_the_weights(spec):
    model = interp.build_model(spec, 5)
    with torch.no_grad():  # nonzero biases, so each one is checked
        for name, param in model.named_parameters():
            if name.split(".")[-1].startswith("b_"):
                param.copy_(torch.linspace(-0.5, 0.5, param.numel()).reshape(param.shape))
    x = torch.randn(6, 12, generator=torch.Generator().manual_seed(1))
    expected = independent_forward({k: v.detach() for k, v in model.state_dict().items()}, x, spec)
    torch.testing.assert_close(interp.logits(model, x), expected, atol=1e-5, rtol=1e-5)
    # the path that runs the last block at the readout token alone (the feature edit's fine-tune,
    # in float64): the same function, to float64's rounding
    wide = interp.families.in_float64(model)
    readout = interp.families.family_of(wide).readout_logits(wide, x)
    assert readout.dtype == torch.float64
    torch.testing.assert_close(readout, independent_forward({k: v.detach() for k, v in wide.state_dict().items()},
                                                            x.double(), spec), atol=1e-12, rtol=1e-12)


def test_hooks_carry_transformer_lens_names_and_the_readout_token_is_last():
    model = interp.build_model(SPEC, 5)
    x = torch.randn(4, 12, generator=torch.Generator().manual_seed(2))
    logits, cache = model.run_with_cache(x)
    assert logits.shape == (4, SPEC.n_tokens + 1, 5)
    assert {"hook_embed", "hook_pos_embed", "blocks.1.attn.hook_pattern", "blocks.1.attn.hook_z",
            "blocks.0.mlp.hook_post", "blocks.1.hook_resid_post", "hook_logits"} <= set(cache.keys())
    assert cache["blocks.0.attn.hook_pattern"].shape == (4, 2, 4, 4)
    # the family reads the readout token: the last position, the unembedding of its residual stream
    torch.testing.assert_close(interp.logits(model, x), logits[:, -1])
    torch.testing.assert_close(cache["blocks.1.hook_resid_post"][:, -1] @ model.W_U + model.b_U, logits[:, -1])


def test_the_window_is_written_only_when_set_and_reads_back():
    """A spec without a window serialises as before it existed (released configs stay as they are)."""
    assert "window" not in SPEC.to_dict() and WINDOWED.to_dict()["window"] == 6
    for spec in (SPEC, WINDOWED):
        assert TokenTransformerSpec(**json.loads(json.dumps(spec.to_dict()))) == spec


def test_bad_shapes_are_refused_in_one_line():
    with pytest.raises(SpecError, match="does not divide"):
        TokenTransformerSpec(d_in=10, n_tokens=3)
    for window in (3, 13):  # shorter than the stride 4 would skip features; longer than the input
        with pytest.raises(SpecError, match="model.window"):
            TokenTransformerSpec(d_in=12, n_tokens=3, window=window)
    model = interp.build_model(SPEC, 5)
    with pytest.raises(ValueError, match=r"feature vectors of shape \[batch, 12\]"):
        model(torch.zeros(2, 13))


def test_the_plain_torch_snippet_reads_overlapping_windows(tmp_path):
    """docs/checkpoints.md's loading snippet (no interp inside it) gives the family's logits on a
    run whose tokens are overlapping windows (the released digits-tt-40 checks the pieces)."""
    from test_docs import snippet

    from interp.core.specs import NoiseSpec, RunSpec, TaskSpec, TrainSpec

    spec = RunSpec(task=TaskSpec(op="classify", data="digits", train_fraction=0.5), noise=NoiseSpec("symmetric", 0.4),
                   model=TokenTransformerSpec(d_in=64, n_tokens=8, d_model=8, n_heads=2, d_head=4, d_mlp=16,
                                              window=13),
                   train=TrainSpec(steps=2, optimizer="adam", lr=1e-2, eval_every=1, checkpoint_every=2))
    run = interp.train(spec, tmp_path / "run", progress=False)
    namespace: dict = {}
    exec(compile(snippet("token_transformer").replace('"models/digits-tt-40"', repr(str(run.path))), "snippet", "exec"),
         namespace)
    torch.testing.assert_close(namespace["logits"], run.logits(run.dataset.inputs), rtol=1e-5, atol=1e-5)
