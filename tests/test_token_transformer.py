"""The transformer over tokens cut from feature vectors: its logits against a forward written
here from its weights alone, its hook names, and its one-line refusals (the rest of its contract
is checked by `interp.testing.check_family` in test_conformance.py)."""

import math

import pytest
import torch

import interp
from interp.core.specs import SpecError
from interp.families.token_transformer import TokenTransformerSpec

SPEC = TokenTransformerSpec(d_in=12, n_tokens=3, d_model=8, n_heads=2, d_head=4, d_mlp=16, n_layers=2, act="gelu")


def independent_forward(w: dict, x: torch.Tensor, spec: TokenTransformerSpec) -> torch.Tensor:
    """Logits at the readout token, from the state dict, one example at a time in plain loops."""
    out = []
    for row in x:
        tokens = [row[i * 4:(i + 1) * 4] @ w["W_E"] + w["b_E"] for i in range(spec.n_tokens)] + [w["readout_token"]]
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


def test_the_logits_are_those_of_a_forward_written_from_the_weights():
    model = interp.build_model(SPEC, 5)
    with torch.no_grad():  # nonzero biases, so each one is checked
        for name, param in model.named_parameters():
            if name.split(".")[-1].startswith("b_"):
                param.copy_(torch.linspace(-0.5, 0.5, param.numel()).reshape(param.shape))
    x = torch.randn(6, 12, generator=torch.Generator().manual_seed(1))
    expected = independent_forward({k: v.detach() for k, v in model.state_dict().items()}, x, SPEC)
    torch.testing.assert_close(interp.logits(model, x), expected, atol=1e-5, rtol=1e-5)


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


def test_bad_shapes_are_refused_in_one_line():
    with pytest.raises(SpecError, match="does not divide"):
        TokenTransformerSpec(d_in=10, n_tokens=3)
    model = interp.build_model(SPEC, 5)
    with pytest.raises(ValueError, match=r"feature vectors of shape \[batch, 12\]"):
        model(torch.zeros(2, 13))
