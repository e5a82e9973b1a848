"""Foreign checkpoints → interp's families: each import must compute the foreign forward,
written here independently in plain torch, on all p² pairs."""

import math

import pytest
import torch

import interp
from interp.families.importers import (FORMATS, CheckpointImportError, from_embed_mlp, from_hooked_transformer,
                                       from_two_layer, import_model, read_state_dict, to_hooked_transformer)

P = 7


def all_pairs(p: int) -> torch.Tensor:
    return torch.cartesian_prod(torch.arange(p), torch.arange(p))


def model_logits(model, p: int = P) -> torch.Tensor:
    with torch.no_grad():
        return interp.logits(model, all_pairs(p))


# --- legacy HookedTransformer -------------------------------------------------------------------


def hooked_state(p=P, n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab_out=None, seed=0,
                 buffers=True) -> dict:
    """Random legacy HookedTransformer weights (names and shapes of TransformerLens ≤ 3)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    d_vocab_out = p if d_vocab_out is None else d_vocab_out
    s = {"embed.W_E": rand(p + 1, d_model), "pos_embed.W_pos": rand(3, d_model)}
    for layer in range(n_layers):
        b = f"blocks.{layer}."
        for n in "QKV":
            s[f"{b}attn.W_{n}"] = rand(n_heads, d_model, d_head, scale=d_model**-0.5)
            s[f"{b}attn.b_{n}"] = rand(n_heads, d_head, scale=0.3)
        s[b + "attn.W_O"] = rand(n_heads, d_head, d_model, scale=d_head**-0.5)
        s[b + "attn.b_O"] = rand(d_model, scale=0.3)
        s[b + "mlp.W_in"] = rand(d_model, d_mlp, scale=d_model**-0.5)
        s[b + "mlp.b_in"] = rand(d_mlp, scale=0.3)
        s[b + "mlp.W_out"] = rand(d_mlp, d_model, scale=d_mlp**-0.5)
        s[b + "mlp.b_out"] = rand(d_model, scale=0.3)
        if buffers:
            s[b + "attn.mask"] = torch.tril(torch.ones(3, 3, dtype=torch.bool))
            s[b + "attn.IGNORE"] = torch.tensor(-1e5)
    s["unembed.W_U"] = rand(d_model, d_vocab_out, scale=d_model**-0.5)
    s["unembed.b_U"] = rand(d_vocab_out, scale=0.3)
    return s


def legacy_forward(s: dict, p: int = P, act=torch.relu) -> torch.Tensor:
    """HookedTransformer's forward (no LayerNorm) at the last position of `a b =`, [p², d_vocab_out]."""
    pairs = all_pairs(p)
    tokens = torch.cat([pairs, torch.full((len(pairs), 1), p)], dim=1)
    x = s["embed.W_E"][tokens] + s["pos_embed.W_pos"][None]  # [batch, pos, d]
    n_layers = len({k.split(".")[1] for k in s if k.startswith("blocks.")})
    causal = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    for layer in range(n_layers):
        w = {k.split(".", 2)[2]: v for k, v in s.items() if k.startswith(f"blocks.{layer}.")}
        q, k, v = (torch.einsum("bpd,hde->bphe", x, w[f"attn.W_{n}"]) + w[f"attn.b_{n}"] for n in "QKV")
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(q.shape[-1])
        pattern = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        z = torch.einsum("bhqk,bkhe->bqhe", pattern, v)
        x = x + torch.einsum("bqhe,hed->bqd", z, w["attn.W_O"]) + w["attn.b_O"]
        x = x + act(x @ w["mlp.W_in"] + w["mlp.b_in"]) @ w["mlp.W_out"] + w["mlp.b_out"]
    return x[:, -1] @ s["unembed.W_U"] + s["unembed.b_U"]


@pytest.mark.parametrize("n_layers,n_heads,d_head", [(1, 2, 8), (2, 4, 4), (2, 3, 5)])
def test_hooked_transformer_matches_legacy_forward(n_layers, n_heads, d_head):
    state = hooked_state(n_layers=n_layers, n_heads=n_heads, d_head=d_head, seed=n_layers)
    model = from_hooked_transformer(state)
    assert model.cfg.n_layers == n_layers and model.cfg.n_heads == n_heads and model.cfg.d_head == d_head
    torch.testing.assert_close(model_logits(model), legacy_forward(state), atol=1e-4, rtol=1e-4)
    # the training path (plain torch, last position only) agrees too
    with torch.no_grad():
        fast = interp.families.training_logits(model, all_pairs(P))
    torch.testing.assert_close(fast, legacy_forward(state), atol=1e-4, rtol=1e-4)


def test_names_agree_with_transformer_lens_own_converter():
    # TransformerLens 4.x ships a legacy → bridge converter; ours must give the same tensors
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    state = hooked_state(n_layers=2, n_heads=4, d_head=4)
    model = from_hooked_transformer(state)
    theirs = convert_tl_checkpoint(state, model.cfg)
    ours = model.state_dict()
    assert set(theirs) == set(ours)
    for key, value in theirs.items():
        assert torch.equal(value, ours[key]), key


def test_b_U_is_kept_though_the_bridge_holds_it_as_a_buffer():
    # the native bridge's unembedding has no bias parameter, only a (normally zero) buffer
    model = from_hooked_transformer(hooked_state())
    assert "unembed.bias" not in dict(model.named_parameters())
    assert torch.equal(model.state_dict()["unembed.bias"], hooked_state()["unembed.b_U"])


def test_hooked_transformer_gelu():
    state = hooked_state(seed=5)
    model = from_hooked_transformer(state, act="gelu")
    torch.testing.assert_close(model_logits(model), legacy_forward(state, act=torch.nn.functional.gelu),
                               atol=1e-4, rtol=1e-4)


def test_a_wrong_mapping_would_be_caught():
    # transposing each head's W_O changes the function: the comparison above can fail
    state = hooked_state(d_head=16)
    wrong = dict(state, **{"blocks.0.attn.W_O": state["blocks.0.attn.W_O"].transpose(1, 2)})
    assert not torch.allclose(model_logits(from_hooked_transformer(wrong)), legacy_forward(state), atol=1e-2)


def test_d_vocab_out_p_plus_1_keeps_the_residue_logits():
    state = hooked_state(d_vocab_out=P + 1, seed=3)
    model = from_hooked_transformer(state)
    assert model.cfg.d_vocab_out == P
    torch.testing.assert_close(model_logits(model), legacy_forward(state)[:, :P], atol=1e-4, rtol=1e-4)


def test_x_embed_y_embed_copies_ignored_and_differing_ones_refused():
    state = hooked_state(seed=4)
    state["x_embed"], state["y_embed"] = state["embed.W_E"].clone(), state["embed.W_E"].clone()
    torch.testing.assert_close(model_logits(from_hooked_transformer(state)), legacy_forward(state), atol=1e-4,
                               rtol=1e-4)
    state["y_embed"] = state["y_embed"] + 1
    with pytest.raises(CheckpointImportError, match="y_embed differs from embed.W_E"):
        from_hooked_transformer(state)


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.update({"blocks.0.ln1.w": torch.ones(16), "blocks.0.ln1.b": torch.zeros(16)}), "blocks.0.ln1.w is a LayerNorm"),
    (lambda s: s.update({"ln_final.w": torch.ones(16)}), "ln_final.w is a LayerNorm"),
    (lambda s: s.pop("blocks.0.attn.b_K"), "missing key blocks.0.attn.b_K"),
    (lambda s: s.update({"blocks.0.attn.W_gate": torch.ones(2)}), "unknown key blocks.0.attn.W_gate"),
    (lambda s: s.update({"pos_embed.W_pos": torch.zeros(4, 16)}), "n_ctx = 4"),
    (lambda s: s.update({"blocks.0.attn.W_K": torch.zeros(2, 16, 4)}), r"blocks.0.attn.W_K has shape \(2, 16, 4\), expected \(2, 16, 8\)"),
    (lambda s: s.update({"unembed.W_U": torch.zeros(16, 5), "unembed.b_U": torch.zeros(5)}), "d_vocab_out = 5"),
    (lambda s: s.update({"blocks.2.attn.W_Q": torch.zeros(2, 16, 8)}), "block indices"),
])
def test_hooked_transformer_refusals(edit, message):
    state = hooked_state()
    edit(state)
    with pytest.raises(CheckpointImportError, match=message) as err:
        from_hooked_transformer(state)
    assert "\n" not in str(err.value)


def test_native_state_dict_is_refused_with_a_hint():
    model = from_hooked_transformer(hooked_state())
    with pytest.raises(CheckpointImportError, match="already a native"):
        from_hooked_transformer(model.state_dict())


@pytest.mark.parametrize("n_layers", [1, 2])
def test_to_hooked_transformer_round_trip(n_layers):
    model = from_hooked_transformer(hooked_state(n_layers=n_layers, n_heads=4, d_head=4, seed=7))
    legacy = to_hooked_transformer(model)
    # legacy names and shapes, with the attention buffers a strict HookedTransformer load wants
    assert legacy["blocks.0.attn.W_Q"].shape == (4, 16, 4) and legacy["blocks.0.attn.W_O"].shape == (4, 4, 16)
    assert legacy["unembed.W_U"].shape == (16, P) and legacy["blocks.0.attn.mask"].dtype == torch.bool
    torch.testing.assert_close(legacy_forward(legacy), model_logits(model), atol=1e-4, rtol=1e-4)
    again = from_hooked_transformer(legacy)
    assert torch.equal(model_logits(again), model_logits(model))


def test_to_hooked_transformer_of_an_interp_built_model():
    from interp.families.transformer import FAMILY
    from interp.core.specs import TransformerSpec

    model = FAMILY.build(TransformerSpec(d_model=16, n_heads=2, d_head=8, d_mlp=32, seed=1), P)
    torch.testing.assert_close(legacy_forward(to_hooked_transformer(model)), model_logits(model), atol=1e-4, rtol=1e-4)


# --- embedding MLP and two-layer --------------------------------------------------------------


def embed_mlp_state(p=P, e=6, h=24, seed=0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"W_x": torch.randn(p, e, generator=gen), "W_y": torch.randn(p, e, generator=gen),
            "W": torch.randn(2 * e, h, generator=gen) / 3, "W_U": torch.randn(h, p, generator=gen) / 5}


def embed_mlp_forward(s: dict, p: int = P) -> torch.Tensor:
    a, b = all_pairs(p).T
    return torch.relu(torch.cat([s["W_x"][a], s["W_y"][b]], dim=1) @ s["W"]) @ s["W_U"]


def test_embed_mlp_folds_exactly():
    state = embed_mlp_state()
    model = from_embed_mlp(state)
    assert model.spec.width == 24 and not model.spec.bias and not model.spec.tied
    torch.testing.assert_close(model_logits(model), embed_mlp_forward(state), atol=1e-4, rtol=1e-4)
    # swapping a's and b's embeddings is a different (non-symmetric) function: the test can fail
    swapped = dict(state, W_x=state["W_y"], W_y=state["W_x"])
    assert not torch.allclose(model_logits(from_embed_mlp(swapped)), embed_mlp_forward(state), atol=1e-2)


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.update({"b": torch.zeros(24)}), "unknown key b"),
    (lambda s: s.pop("W_U"), "missing key W_U"),
    (lambda s: s.update({"W_y": torch.zeros(P, 5)}), r"W_y has shape \(7, 5\), expected \(7, 6\)"),
    (lambda s: s.update({"W": torch.zeros(10, 24)}), r"W has shape \(10, 24\), expected \(12, 24\)"),
])
def test_embed_mlp_refusals(edit, message):
    state = embed_mlp_state()
    edit(state)
    with pytest.raises(CheckpointImportError, match=message):
        from_embed_mlp(state)


def two_layer_forward(s: dict, p: int = P) -> torch.Tensor:
    a, b = all_pairs(p).T
    V = s.get("V", s["U"])
    return torch.relu(s["U"][:, a] + V[:, b]).T @ s["W"].T + s.get("mu", 0)


@pytest.mark.parametrize("keys", [("U", "V", "W", "mu"), ("U", "W"), ("U", "V", "W")])
def test_two_layer(keys):
    gen = torch.Generator().manual_seed(2)
    shapes = {"U": (20, P), "V": (20, P), "W": (P, 20), "mu": (P,)}
    state = {k: torch.randn(shapes[k], generator=gen) for k in keys}
    model = from_two_layer(state)
    assert model.spec.tied == ("V" not in keys) and model.spec.bias == ("mu" in keys)
    torch.testing.assert_close(model_logits(model), two_layer_forward(state), atol=1e-4, rtol=1e-4)


def test_two_layer_refuses_a_mismatched_W():
    with pytest.raises(CheckpointImportError, match=r"W has shape \(20, 7\), expected \(7, 20\)"):
        from_two_layer({"U": torch.zeros(20, P), "W": torch.zeros(20, P)})


# --- files and import_model --------------------------------------------------------------------


def test_import_model_through_pt_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    state = hooked_state(n_layers=2, seed=9)
    torch.save(state, tmp_path / "legacy.pt")
    model = import_model(tmp_path / "legacy.pt", "hooked-transformer", p=P)
    torch.testing.assert_close(model_logits(model), legacy_forward(state), atol=1e-4, rtol=1e-4)

    emb = embed_mlp_state(seed=1)
    save_file(emb, tmp_path / "mlp.safetensors")
    torch.testing.assert_close(model_logits(import_model(tmp_path / "mlp.safetensors", "embed-mlp")),
                               embed_mlp_forward(emb), atol=1e-4, rtol=1e-4)


def test_a_nested_state_dict_is_taken(tmp_path):
    state = {"U": torch.randn(8, P), "V": torch.randn(8, P), "W": torch.randn(P, 8)}
    torch.save({"model": state, "epoch": 3, "config": {"lr": 1e-3}}, tmp_path / "run.pth")
    assert set(read_state_dict(tmp_path / "run.pth")) == {"U", "V", "W"}
    torch.testing.assert_close(model_logits(import_model(tmp_path / "run.pth", "two-layer")), two_layer_forward(state))


class Custom:
    def __init__(self):
        self.weights = torch.zeros(3)


@pytest.mark.parametrize("obj,message", [
    (Custom(), "pickles objects other than tensors"),
    ([torch.zeros(2)], "holds a list, not a state dict"),
    ({"a": {"x": torch.zeros(1)}, "b": {"y": torch.zeros(1)}}, "several state dicts"),
    ({"step": 3}, "neither a state dict"),
])
def test_unreadable_objects_are_refused_in_one_line(tmp_path, obj, message):
    path = tmp_path / "x.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointImportError, match=message) as err:
        import_model(path, "two-layer")
    assert "\n" not in str(err.value) and "x.pt" in str(err.value)


def test_bad_files_and_formats(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    (tmp_path / "junk.safetensors").write_bytes(b"nope")
    (tmp_path / "w.npz").write_bytes(b"")
    for path, message in [("junk.pt", "not a readable torch file"), ("junk.safetensors", "not a readable safetensors"),
                          ("w.npz", "unknown file type"), ("absent.pt", "does not exist")]:
        with pytest.raises(CheckpointImportError, match=message) as err:
            read_state_dict(tmp_path / path)
        assert "\n" not in str(err.value)
    with pytest.raises(CheckpointImportError, match="formats: " + ", ".join(FORMATS)):
        import_model(tmp_path / "junk.pt", "onnx")


def test_p_mismatch_is_refused(tmp_path):
    torch.save(embed_mlp_state(), tmp_path / "m.pt")
    with pytest.raises(CheckpointImportError, match="p = 7 residues, not p = 11"):
        import_model(tmp_path / "m.pt", "embed-mlp", p=11)
