"""Nanda et al.'s one-layer transformer on tokens `a b =`, a TransformerLens 4.x `TransformerBridge`.

The one module that knows TransformerLens's model-building API, its weight names
(`embed.weight`, `blocks.0.mlp.out.weight`, …), its hook names and its `cfg` fields: a release
of TransformerLens that renames any of them changes this file and nothing else. The config is
kept as a JSON-safe dict (`cfg.to_dict()` is not JSON-safe), so a checkpoint's `config.json` can
rebuild the model without importing `interp`.

Models built here refuse inputs that are not `a b =` token rows (a forward given the bare pairs
would silently compute logits for the wrong positions): use `FAMILY.tokens(model, pairs)`,
`interp.tokens(model, pairs)` or the pair-taking API (`interp.logits`, `Run.run_with_cache`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable

import einops

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

# `transformer_lens.model_bridge` pulls in Hugging Face's model zoo (about 3 s of imports): it is
# imported when a transformer is first built, so two-layer work and the CLI start without it.
_BRIDGE_MODULE = "transformer_lens.model_bridge"

from ..core.specs import TransformerSpec
from .base import (FORWARD_CHUNK, Capability, ModelFamily, block_patch_hooks, device_of, register,
                   replaced_parameters)

N_CTX = 3  # tokens `a b =`

# --- the legacy HookedTransformer layout ↔ the bridge's names -----------------------------------
# Older published models (and interp's planted transformers) are written as HookedTransformer
# state dicts: per-head weights W_Q/W_K/W_V [head, d_model, d_head], W_O [head, d_head, d_model],
# MLP and unembedding maps as [in, out]. The bridge holds nn.Linear weights [out, in] whose
# head-side index is head·d_head + i. Each entry: (bridge name, legacy → bridge, bridge → legacy).


def _heads_in(w: Tensor, n_heads: int = 0) -> Tensor:
    return einops.rearrange(w, "head d_model d_head -> (head d_head) d_model")


def _heads_in_back(w: Tensor, n_heads: int) -> Tensor:
    return einops.rearrange(w, "(head d_head) d_model -> head d_model d_head", head=n_heads)


def _heads_out(w: Tensor, n_heads: int = 0) -> Tensor:
    return einops.rearrange(w, "head d_head d_model -> d_model (head d_head)")


def _heads_out_back(w: Tensor, n_heads: int) -> Tensor:
    return einops.rearrange(w, "d_model (head d_head) -> head d_head d_model", head=n_heads)


def _head_bias(b: Tensor, n_heads: int = 0) -> Tensor:
    return einops.rearrange(b, "head d_head -> (head d_head)")


def _head_bias_back(b: Tensor, n_heads: int) -> Tensor:
    return einops.rearrange(b, "(head d_head) -> head d_head", head=n_heads)


def _transposed(t: Tensor, n_heads: int = 0) -> Tensor:
    return t.T


def _same(t: Tensor, n_heads: int = 0) -> Tensor:
    return t


#: legacy name in a block → (bridge name, legacy → bridge, bridge → legacy (given n_heads))
BLOCK_NAMES: dict[str, tuple[str, Callable, Callable]] = {
    "attn.W_Q": ("attn.q.weight", _heads_in, _heads_in_back),
    "attn.W_K": ("attn.k.weight", _heads_in, _heads_in_back),
    "attn.W_V": ("attn.v.weight", _heads_in, _heads_in_back),
    "attn.b_Q": ("attn.q.bias", _head_bias, _head_bias_back),
    "attn.b_K": ("attn.k.bias", _head_bias, _head_bias_back),
    "attn.b_V": ("attn.v.bias", _head_bias, _head_bias_back),
    "attn.W_O": ("attn.o.weight", _heads_out, _heads_out_back),
    "attn.b_O": ("attn.o.bias", _same, _same),
    "mlp.W_in": ("mlp.in.weight", _transposed, _transposed),
    "mlp.b_in": ("mlp.in.bias", _same, _same),
    "mlp.W_out": ("mlp.out.weight", _transposed, _transposed),
    "mlp.b_out": ("mlp.out.bias", _same, _same),
}
#: names outside the blocks (W_U's `=` column, when present, is dropped on the way in)
TOP_NAMES: dict[str, tuple[str, Callable, Callable]] = {
    "embed.W_E": ("embed.weight", _same, _same),
    "pos_embed.W_pos": ("pos_embed.weight", _same, _same),
    "unembed.W_U": ("unembed.weight", _transposed, _transposed),
    "unembed.b_U": ("unembed.bias", _same, _same),
}
_ACTS = {"relu": F.relu_, "gelu": F.gelu}  # in place: the product feeding it is not needed again


def bridge_config(spec: TransformerSpec, p: int) -> dict[str, Any]:
    """TransformerBridgeConfig keyword arguments (JSON-safe) for Nanda et al.'s model over Z_p."""
    return {
        "d_model": spec.d_model,
        "d_head": spec.d_head,
        "n_heads": spec.n_heads,
        "n_layers": spec.n_layers,
        "d_mlp": spec.d_mlp,
        "n_ctx": N_CTX,
        "d_vocab": p + 1,  # residues 0..p-1 and the `=` token p
        "d_vocab_out": p,
        "act_fn": spec.act,
        "normalization_type": None,
        "seed": spec.seed,
    }


def boot(config: dict[str, Any]) -> TransformerBridge:
    """A randomly initialised (seeded) native TransformerBridge built from `bridge_config`,
    which refuses inputs other than `a b =` token rows."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    model = TransformerBridge.boot_native(TransformerBridgeConfig(**config))
    model.__class__ = _guarded_class(TransformerBridge)
    return model


_GUARDED: dict[type, type] = {}


def _guarded_class(bridge: type) -> type:
    """A subclass of the bridge whose forward checks its tokens. A subclass, not a wrapper or a
    hook: `run_with_cache` and `run_with_hooks` call `self.forward` directly, and deep copies
    (the filtered models of the analyses) keep the check."""
    if bridge not in _GUARDED:
        def forward(self, input, *args, **kwargs):
            if torch.is_tensor(input):
                check_tokens(input, self.cfg.d_vocab - 1)
            return bridge.forward(self, input, *args, **kwargs)

        _GUARDED[bridge] = type("ModularArithmeticBridge", (bridge,), {"forward": forward, "__module__": __name__})
    return _GUARDED[bridge]


def check_tokens(tokens: Tensor, equals: int) -> None:
    """Raise unless `tokens` are rows `a b =` (a, b residues, `=` the token `equals`)."""
    ok = (tokens.dim() == 2 and tokens.shape[1] == N_CTX and not tokens.is_floating_point()
          and bool((tokens[:, -1] == equals).all()) and bool((tokens[:, :-1] < equals).all()))
    if not ok:
        shape = tuple(tokens.shape)
        raise ValueError(
            f"this transformer reads token rows `a b =` of shape [batch, {N_CTX}] ending in the `=` token "
            f"{equals}; got shape {shape}. For (a, b) pairs use interp.tokens(model, pairs), or the API that "
            "takes pairs: interp.logits(model, pairs), run.run_with_cache(pairs)")


def _last_position(value: Tensor, hook: Any) -> Tensor:
    return value[:, -1:]


def _slicing_hook(model: TransformerBridge, hooks: list) -> tuple[str, Callable] | None:
    """The hook that cuts the residual to the last position at the last block's MLP input, or
    None where it must not: a model without that point, or a hook on the last block's MLP, the
    residual after it, the final norm or the unembedding (aliases included: hook points are
    compared as objects) — one of `hooks`, or one the caller added before (`model.hooks(...)`,
    `add_hook`); it would see one position."""
    last = f"blocks.{model.cfg.n_layers - 1}."
    if last + "ln2.hook_in" not in model.hook_dict:
        return None
    late = {id(point): point for name, point in model.hook_dict.items()
            if name.startswith((last + "mlp.", last + "ln2.hook_out", last + "hook_out", "ln_final.", "unembed."))}
    if any(point._forward_hooks for point in late.values()) or any(
            not isinstance(name, str) or name not in model.hook_dict or id(model.hook_dict[name]) in late
            for name, _ in hooks):
        return None
    return last + "ln2.hook_in", _last_position


def is_transformer(model: object) -> bool:
    bridge = sys.modules.get(_BRIDGE_MODULE)  # not imported yet: no bridge can exist
    return bridge is not None and isinstance(model, bridge.TransformerBridge)


def equals_token(model: TransformerBridge) -> int:
    return model.cfg.d_vocab - 1


def last_position_logits(model: TransformerBridge, tokens: Tensor) -> Tensor:
    """The bridge's logits at the last position, computed from its own parameters in plain
    PyTorch: no hook points, and the last layer computes attention queries and the MLP for the
    last position only. For training; analyses use the hooked forward. Same function as the
    bridge for this model family (no LayerNorm, causal attention, learned positions)."""
    cfg = model.cfg
    w = model.state_dict(keep_vars=True)
    n_heads, d_head = cfg.n_heads, cfg.d_head
    scale = cfg.attn_scale if cfg.use_attn_scale and cfg.attn_scale > 0 else d_head**0.5
    seq = tokens.shape[1]
    # The first layer reads tokens through projected tables (`project_embeddings`), so the
    # residual stream needs every position only when a later layer attends over it.
    first = 0 if cfg.n_layers > 1 else seq - 1
    x = _gather_rows(w["embed.weight"], tokens[:, first:]) + w["pos_embed.weight"][first:seq]
    causal = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=tokens.device), diagonal=1)
    for layer in range(cfg.n_layers):
        prefix = f"blocks.{layer}."
        last = layer == cfg.n_layers - 1

        def linear(name: str, t: Tensor) -> Tensor:
            return F.linear(t, w[prefix + name + ".weight"], w[prefix + name + ".bias"])

        if layer == 0:  # inputs are token+position embeddings: project the p+1 rows, then gather
            q = project_embeddings(w, prefix + "attn.q", tokens[:, -1:] if last else tokens, seq)
            k, v = (project_embeddings(w, prefix + name, tokens, seq) for name in ("attn.k", "attn.v"))
        else:
            q, k, v = linear("attn.q", x[:, -1:] if last else x), linear("attn.k", x), linear("attn.v", x)
        # [batch, pos, n_heads·d_head] -> [batch, pos, head, d_head], a view
        q, k, v = (t.unflatten(-1, (n_heads, d_head)) for t in (q, k, v))
        if last:  # one query, which sees every position: broadcast products beat tiny bmm's
            pattern = ((q * k).sum(-1, keepdim=True) / scale).softmax(1)  # [batch, pos, head, 1]
            z = (pattern * v).sum(1)
            x = x[:, -1]  # from here on [batch, d_model]: the last position alone
        else:
            scores = (q.transpose(1, 2) @ k.permute(0, 2, 3, 1) / scale).masked_fill(causal, float("-inf"))
            z = (scores.softmax(-1) @ v.transpose(1, 2)).transpose(1, 2)
        resid = x + linear("attn.o", z.flatten(-2))
        hidden = _ACTS[cfg.act_fn](linear("mlp.in", resid))
        x = resid + linear("mlp.out", hidden)
    logits = x @ w["unembed.weight"].T
    bias = w.get("unembed.bias")
    return logits if bias is None else logits + bias


def stacked_last_position_logits(w: dict[str, Tensor], spec: TransformerSpec, tokens: Tensor) -> Tensor:
    """`last_position_logits` of K one-layer models at once: `w` maps each state-dict name to
    the K models' tensors stacked on a leading axis, `tokens` is [K, batch, 3]; returns
    [K, batch, p]. Every product is one batched matmul over the K models."""
    if spec.n_layers != 1:
        raise ValueError("stacked training is for one-layer transformers")
    n_heads, d_head = spec.n_heads, spec.d_head
    embed, pos = w["embed.weight"], w["pos_embed.weight"]  # [K, vocab, d], [K, 3, d]
    K, vocab, _ = embed.shape
    seq = tokens.shape[-1]

    def linear(name: str, t: Tensor) -> Tensor:  # t [K, ..., d_in] -> [K, ..., d_out]
        out = t.flatten(1, -2) @ w[f"blocks.0.{name}.weight"].transpose(1, 2) + w[f"blocks.0.{name}.bias"][:, None]
        return out.view(*t.shape[:-1], -1)

    rows = embed[:, None] + pos[:, :, None]  # [K, position, vocab, d]: every (position, token) input
    n = tokens.shape[1]
    net = torch.arange(K, device=tokens.device)[:, None, None]
    # row of (net, position, token) in a [K·position·vocab, e] table, and of (net, token) in [K·vocab, e]
    at = ((net * seq + torch.arange(seq, device=tokens.device)) * vocab + tokens).flatten()
    at_last = (net[:, :, 0] * vocab + tokens[:, :, -1]).flatten()

    def gathered(table: Tensor) -> Tensor:  # table [K, position, vocab, e] -> [K, batch, position, e]
        return _gather_rows(table.flatten(0, 2), at).view(K, n, seq, -1)

    def last(table: Tensor) -> Tensor:  # table [K, vocab, e] at the last tokens -> [K, batch, e]
        return _gather_rows(table.flatten(0, 1), at_last).view(K, n, -1)

    q = last(linear("attn.q", rows[:, -1]))  # the last position's query only
    k, v = gathered(linear("attn.k", rows)), gathered(linear("attn.v", rows))
    q, k, v = q.unflatten(-1, (n_heads, d_head)), k.unflatten(-1, (n_heads, d_head)), v.unflatten(-1, (n_heads, d_head))
    pattern = ((q[:, :, None] * k).sum(-1) / d_head**0.5).softmax(2)  # [K, batch, position, head]
    z = (pattern[..., None] * v).sum(2).flatten(-2)  # [K, batch, head·d_head]
    x = last(rows[:, -1])  # the last position's residual stream
    resid = x + linear("attn.o", z)
    hidden = _ACTS[spec.act](linear("mlp.in", resid))
    out = resid + linear("mlp.out", hidden)
    logits = out @ w["unembed.weight"].transpose(1, 2)
    return logits + w["unembed.bias"][:, None] if "unembed.bias" in w else logits


def project_embeddings(w: dict[str, Tensor], name: str, tokens: Tensor, seq: int) -> Tensor:
    """F.linear(embed[tokens] + pos_embed[positions], W, b) where `tokens` fill the last
    positions of a length-`seq` sequence: computed on the [positions, d_vocab] table, then
    gathered, since d_vocab is far smaller than the batch."""
    embed, pos = w["embed.weight"], w["pos_embed.weight"]
    n = tokens.shape[1]
    table = F.linear(embed[None] + pos[seq - n : seq, None], w[name + ".weight"], w[name + ".bias"])
    offsets = torch.arange(n, device=tokens.device) * embed.shape[0]
    return _gather_rows(table.flatten(0, 1), tokens + offsets)


def _gather_rows(table: Tensor, index: Tensor) -> Tensor:
    """table[index], whose backward is an `index_add_` (faster here than F.embedding's)."""
    return _GatherRows.apply(table, index)


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.rows = table.shape[0]
        return table.index_select(0, index.flatten()).view(*index.shape, table.shape[1])

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        table_grad = grad.new_zeros(ctx.rows, grad.shape[-1])
        return table_grad.index_add_(0, index.flatten(), grad.reshape(-1, grad.shape[-1])), None


class TransformerFamily(ModelFamily):
    name = "transformer"
    spec_type = TransformerSpec
    provides = frozenset({Capability.HEADS, Capability.POSITIONS, Capability.STACKED, Capability.READOUT_MAP})
    # one step is already matmul-bound: stacked, 8 runs went 1.22x faster but 4 runs 0.87x
    # (docs/performance.md), so sweeps train transformers one by one
    stacking_pays = False

    def owns(self, model) -> bool:
        return is_transformer(model)

    def capabilities(self, model: TransformerBridge) -> frozenset[Capability]:
        # the stacked step is written for one layer
        return self.provides if model.cfg.n_layers == 1 else self.provides - {Capability.STACKED}

    def build(self, spec: TransformerSpec, p: int) -> TransformerBridge:
        return boot(bridge_config(spec, p))

    def spec(self, model: TransformerBridge) -> TransformerSpec:
        cfg = model.cfg
        return TransformerSpec(n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_head=cfg.d_head,
                               d_mlp=cfg.d_mlp, act=cfg.act_fn, seed=cfg.seed or 0)

    def memory_bytes(self, spec: TransformerSpec, p: int) -> int:
        m = spec
        params = (p + 1) * m.d_model + 3 * m.d_model + m.d_model * p + m.n_layers * (
            4 * m.d_model * m.n_heads * m.d_head + 2 * m.d_model * m.d_mlp)
        acts = m.n_layers * p * p * 3 * (4 * m.d_model + 3 * m.n_heads * m.d_head + 2 * m.d_mlp + 9 * m.n_heads) * 4
        return acts + params * 4 * 4  # weights, gradients, two moments

    def config(self, model: TransformerBridge) -> dict[str, Any]:
        return {"transformer_lens_config": bridge_config(self.spec(model), model.cfg.d_vocab_out)}

    def tokens(self, model: TransformerBridge, pairs: Tensor) -> Tensor:
        if pairs.dim() != 2 or pairs.shape[1] != 2:
            raise ValueError(f"expected (a, b) pairs of shape [batch, 2], got {tuple(pairs.shape)}")
        pairs = pairs.to(device_of(model))
        return torch.cat([pairs, torch.full_like(pairs[:, :1], equals_token(model))], dim=1)

    def predicting(self, value: Tensor) -> Tensor:
        return value[:, -1]

    def forward(self, model: TransformerBridge, pairs: Tensor, fwd_hooks=()) -> Tensor:
        """`ModelFamily.forward`, with the last block's MLP run at the last position alone: past
        the last attention no position reads another, and only the last one's logits are
        returned, so the other two positions' MLP (two thirds of a one-layer model's work) is
        skipped — the same logits bit for bit (tests/test_nets.py). Not where a hook reads or
        writes the last MLP, the residual after it or the unembedding: it would see one position."""
        hooks = list(fwd_hooks)
        cut = _slicing_hook(model, hooks)
        if cut is None:
            return super().forward(model, pairs, hooks)
        tokens = self.tokens(model, pairs)
        chunks = tokens.split(FORWARD_CHUNK) if not hooks else [tokens]  # a hook may read the batch
        return torch.cat([self.predicting(model.run_with_hooks(chunk, fwd_hooks=[*hooks, cut]))
                          for chunk in chunks]).to(pairs.device)

    def run_with_cache(self, model: TransformerBridge, pairs: Tensor, names_filter=None
                       ) -> tuple[Tensor, dict[str, Tensor]]:
        """`ModelFamily.run_with_cache`, whose activations are read at the last position alone:
        so with the last MLP run there alone, as in `forward` (the same values bit for bit)."""
        cut = _slicing_hook(model, [])
        if cut is None:
            return super().run_with_cache(model, pairs, names_filter)
        with model.hooks(fwd_hooks=[cut]):
            return super().run_with_cache(model, pairs, names_filter)

    def unembedding_input(self, model: TransformerBridge, pairs: Tensor) -> tuple[Tensor, torch.device]:
        _, cache = model.run_with_cache(self.tokens(model, pairs), names_filter="unembed.hook_in")
        return cache["unembed.hook_in"], pairs.device  # the residual stream at every position

    def unembed(self, model: TransformerBridge, unembedding_input: tuple[Tensor, torch.device]) -> Tensor:
        hidden, device = unembedding_input
        return self.predicting(model.unembed(hidden)).to(device)  # the bridge's own last step

    def training_logits(self, model: TransformerBridge, pairs: Tensor) -> Tensor:
        return last_position_logits(model, self.tokens(model, pairs))  # on the model's device (training)

    def readout_hook(self, model: TransformerBridge) -> str:
        return f"blocks.{model.cfg.n_layers - 1}.mlp.hook_post"

    def unit_to_logit(self, model: TransformerBridge) -> Tensor:
        w = model.state_dict()
        return w[f"blocks.{model.cfg.n_layers - 1}.mlp.out.weight"].T @ w["unembed.weight"].T

    def embedding(self, model: TransformerBridge) -> Tensor:
        return model.state_dict()["embed.weight"][: model.cfg.d_vocab_out]  # without the `=` row

    def unembedding(self, model: TransformerBridge) -> Tensor:
        return model.state_dict()["unembed.weight"].T

    def with_residue_weights(self, model: TransformerBridge, embedding: Tensor | None = None,
                             unembedding: Tensor | None = None) -> TransformerBridge:
        values = {}
        if embedding is not None:
            full = model.state_dict()["embed.weight"].clone()
            full[: len(embedding)] = embedding
            values["embed.weight"] = full
        if unembedding is not None:
            values["unembed.weight"] = unembedding.T
        return replaced_parameters(model, values)

    def with_unit_to_logit(self, model: TransformerBridge, to_logit: Tensor) -> TransformerBridge:
        # the last MLP layer writes only into the residual the unembedding reads, so a change of
        # its neurons' pushes is a change of W_out through the unembedding's pseudo-inverse:
        # exact when W_U [d_model, classes] has full column rank (checked: refused otherwise)
        name = f"blocks.{model.cfg.n_layers - 1}.mlp.out.weight"
        w_out, w_u = model.state_dict()[name].double(), self.unembedding(model).double()
        if torch.linalg.matrix_rank(w_u) < w_u.shape[1]:
            raise ValueError("the unembedding has rank below the number of classes: a readout map "
                             "cannot be rewritten through it exactly")
        delta = (to_logit.double() - self.unit_to_logit(model).double()) @ torch.linalg.pinv(w_u)
        return replaced_parameters(model, {name: (w_out + delta.T).to(w_out.dtype)})

    def batchable(self, spec: TransformerSpec) -> bool:
        return spec.n_layers == 1

    def stacked_batch(self, spec: TransformerSpec, p: int, pairs: Tensor, labels: Tensor) -> Any:
        return torch.cat([pairs, torch.full_like(pairs[..., :1], p)], dim=-1), labels

    def stacked_loss_and_grads(self, params: dict[str, Tensor], spec: TransformerSpec, p: int, batch: Any, loss: str):
        from ..core.metrics import loss_fn

        tokens, labels = batch
        leaves = {name: t.detach().requires_grad_(t.requires_grad) for name, t in params.items()}
        logits = stacked_last_position_logits(leaves, spec, tokens)
        losses = torch.stack([loss_fn(loss, out, y) for out, y in zip(logits, labels)])
        # the networks share no parameter, so the gradient of the sum is each one's own
        trained = [name for name, t in leaves.items() if t.requires_grad]
        grads = torch.autograd.grad(losses.sum(), [leaves[n] for n in trained])
        return losses.detach(), dict(zip(trained, grads))

    def head_hooks(self, model: TransformerBridge) -> dict[str, int]:
        return {f"blocks.{layer}.attn.hook_z": model.cfg.n_heads for layer in range(model.cfg.n_layers)}

    def head_value_hooks(self, model: TransformerBridge) -> dict[str, str]:
        return {f"blocks.{layer}.attn.hook_z": f"blocks.{layer}.attn.hook_v" for layer in range(model.cfg.n_layers)}

    def head_to_logit(self, model: TransformerBridge) -> dict[str, Tensor]:
        w, cfg = model.state_dict(), model.cfg
        out = {}
        for layer in range(cfg.n_layers):
            o = _heads_out_back(w[f"blocks.{layer}.attn.o.weight"], cfg.n_heads)  # [head, d_head, d_model]
            out[f"blocks.{layer}.attn.hook_z"] = o @ w["unembed.weight"].T  # [head, d_head, p]
        return out

    def attention_patterns(self, model: TransformerBridge, pairs: Tensor) -> dict[str, Tensor]:
        names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
        _, cache = model.run_with_cache(self.tokens(model, pairs), names_filter=lambda n: n in names)
        return {name: cache[name][:, :, -1].to(pairs.device) for name in names}  # [batch, head, key]

    def unit_axis(self, model: TransformerBridge, hook: str) -> int:
        # [batch, position, head, d_head] at q, k, v, z; [batch, head, query, key] at the pattern
        if hook.endswith(("hook_q", "hook_k", "hook_v", "hook_z")):
            return -2
        if hook.endswith("hook_pattern"):
            return 1
        if hook.endswith("hook_attn_scores"):
            # the bridge's attention has consumed the scores by the time this hook fires
            raise ValueError(f"{hook}: TransformerLens's bridge discards edits of the attention scores; ablate a "
                             "head at hook_q, hook_k, hook_v, hook_pattern or hook_z")
        return -1

    def n_positions(self, model: TransformerBridge) -> int:
        return N_CTX

    def patch_hooks(self, model: TransformerBridge) -> list[str]:
        return block_patch_hooks(model.cfg.n_layers)

    def probe_hooks(self, model: TransformerBridge) -> list[str]:
        last = model.cfg.n_layers - 1
        return [f"blocks.{last}.hook_resid_post", f"blocks.{last}.hook_attn_out", f"blocks.{last}.mlp.hook_post"]


FAMILY = register(TransformerFamily())
