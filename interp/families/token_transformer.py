"""A small transformer over tokens cut from a feature vector: the 8 rows of an 8×8 digit, say.

The input [batch, d_in] is cut into `n_tokens` consecutive pieces of d_in / n_tokens features
(one per row of an image stored row by row), or, with `window`, into `n_tokens` overlapping
windows of `window` features, one starting every d_in / n_tokens (zeros past the end: a
convolution's patches, for a sequence such as MNIST-1D's); each is embedded by one linear map, a
learned readout token is appended (like the `=` of the composition tasks), and positions are
learned. Attention is bidirectional, with no layer norm, so the readout is linear: the logits
are `unembed` of the readout token's final residual stream. Hook names are TransformerLens's
(`hook_embed`, `blocks.0.attn.hook_pattern`, `blocks.0.attn.hook_z`, `blocks.0.mlp.hook_post`,
`blocks.0.hook_resid_post`, …), as are the per-head weight shapes (`W_Q` [head, d_model,
d_head], `W_O` [head, d_head, d_model], `W_in` [d_model, d_mlp]). The model's own forward
returns logits at every position; the family reads the readout token's (the last).

It reads feature vectors, not (a, b) pairs, so it lacks `Capability.PAIRS`; it has heads,
positions, layers (each block's residual stream at the readout token) and a readout map.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from ..core.specs import ACTIVATIONS, SpecError, check_choice, check_integer, check_seed
from .activations import ACT_FNS
from .base import Capability, ModelFamily, block_patch_hooks, register


@dataclass(frozen=True)
class TokenTransformerSpec:
    """`n_layers` attention + MLP blocks over `n_tokens` pieces of a `d_in`-feature vector."""

    arch = "token_transformer"
    d_in: int = 64
    n_tokens: int = 8
    d_model: int = 64
    n_heads: int = 4
    d_head: int = 16
    d_mlp: int = 256
    n_layers: int = 1
    act: str = "relu"
    seed: int = 0
    #: features each token reads; 0: d_in / n_tokens, pieces that do not overlap
    window: int = 0

    def __post_init__(self) -> None:
        for name in ("d_in", "n_tokens", "d_model", "n_heads", "d_head", "d_mlp", "n_layers"):
            check_integer(f"model.{name}", getattr(self, name), 1)
        check_integer("model.window", self.window, 0)
        check_seed("model.seed", self.seed)
        check_choice("model.act", self.act, ACTIVATIONS)
        if self.d_in % self.n_tokens:
            raise SpecError(f"model.n_tokens={self.n_tokens} does not divide model.d_in={self.d_in} into equal tokens")
        if self.window and not self.stride <= self.window <= self.d_in:
            raise SpecError(f"model.window={self.window} must lie between the stride d_in / n_tokens = {self.stride} "
                            f"(else features are skipped) and d_in = {self.d_in}")

    def to_dict(self) -> dict:
        """The fields as JSON values; `window` only when set (a spec without one serialises as before)."""
        return {k: v for k, v in asdict(self).items() if k != "window" or self.window}

    @property
    def stride(self) -> int:
        """Features between the starts of two tokens."""
        return self.d_in // self.n_tokens

    @property
    def d_token(self) -> int:
        """Features each token reads."""
        return self.window or self.stride


def _init(gen: torch.Generator, *shape: int, fan_in: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape, generator=gen) / math.sqrt(fan_in))


class Attention(nn.Module):
    def __init__(self, spec: TokenTransformerSpec, gen: torch.Generator):
        super().__init__()
        h, d, e = spec.n_heads, spec.d_model, spec.d_head
        self.W_Q, self.W_K, self.W_V = (_init(gen, h, d, e, fan_in=d) for _ in range(3))
        self.W_O = _init(gen, h, e, d, fan_in=h * e)
        self.b_O = nn.Parameter(torch.zeros(d))
        for name in ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z"):
            setattr(self, name, HookPoint())

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        q = self.hook_q(torch.einsum("bpd,hde->bphe", x, self.W_Q))
        k = self.hook_k(torch.einsum("bpd,hde->bphe", x, self.W_K))
        v = self.hook_v(torch.einsum("bpd,hde->bphe", x, self.W_V))
        scores = self.hook_attn_scores(torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(q.shape[-1]))
        pattern = self.hook_pattern(scores.softmax(-1))
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        return torch.einsum("bqhe,hed->bqd", z, self.W_O) + self.b_O


class MLP(nn.Module):
    def __init__(self, spec: TokenTransformerSpec, gen: torch.Generator):
        super().__init__()
        self.W_in = _init(gen, spec.d_model, spec.d_mlp, fan_in=spec.d_model)
        self.b_in = nn.Parameter(torch.zeros(spec.d_mlp))
        self.W_out = _init(gen, spec.d_mlp, spec.d_model, fan_in=spec.d_mlp)
        self.b_out = nn.Parameter(torch.zeros(spec.d_model))
        self.act_fn = ACT_FNS[spec.act]
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_post(self.act_fn(self.hook_pre(x @ self.W_in + self.b_in))) @ self.W_out + self.b_out


class Block(nn.Module):
    def __init__(self, spec: TokenTransformerSpec, gen: torch.Generator):
        super().__init__()
        self.attn, self.mlp = Attention(spec, gen), MLP(spec, gen)
        for name in ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"):
            setattr(self, name, HookPoint())

    def forward(self, resid: Tensor) -> Tensor:
        resid = self.hook_resid_pre(resid)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(resid)))
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(resid)))


class TokenTransformer(HookedRootModule):
    def __init__(self, spec: TokenTransformerSpec, p: int):
        super().__init__()
        self.spec, self.p = spec, p
        gen = torch.Generator().manual_seed(spec.seed)  # no global RNG
        self.W_E = _init(gen, spec.d_token, spec.d_model, fan_in=spec.d_token)
        self.b_E = nn.Parameter(torch.zeros(spec.d_model))
        self.readout_token = _init(gen, spec.d_model, fan_in=spec.d_model)
        self.W_pos = _init(gen, spec.n_tokens + 1, spec.d_model, fan_in=spec.d_model)
        self.blocks = nn.ModuleList(Block(spec, gen) for _ in range(spec.n_layers))
        self.W_U = _init(gen, spec.d_model, p, fan_in=spec.d_model)
        self.b_U = nn.Parameter(torch.zeros(p))
        self.hook_embed, self.hook_pos_embed, self.hook_logits = HookPoint(), HookPoint(), HookPoint()
        self.setup()

    def embed(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch pos d_model"]:
        """The residual stream before the first block: each window's embedding, then the readout
        token, plus the positions."""
        spec = self.spec
        if x.dim() != 2 or x.shape[1] != spec.d_in or not x.is_floating_point():
            raise ValueError(f"this transformer takes feature vectors of shape [batch, {spec.d_in}], got {x.dtype} "
                             f"{tuple(x.shape)}")
        padded = nn.functional.pad(x, (0, spec.d_token - spec.stride))  # the last windows read zeros past the end
        pieces = padded.unfold(1, spec.d_token, spec.stride) @ self.W_E + self.b_E
        embed = self.hook_embed(torch.cat([pieces, self.readout_token.expand(len(x), 1, -1)], 1))
        return embed + self.hook_pos_embed(self.W_pos.expand(len(x), -1, -1))

    def forward(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch pos p"]:
        resid = self.embed(x)
        for block in self.blocks:
            resid = block(resid)
        return self.hook_logits(resid @ self.W_U + self.b_U)


def _last(model: TokenTransformer) -> int:
    return model.spec.n_layers - 1


class TokenTransformerFamily(ModelFamily):
    name = "token_transformer"
    spec_type = TokenTransformerSpec
    inputs = "features"
    provides = frozenset({Capability.HEADS, Capability.POSITIONS, Capability.READOUT_MAP, Capability.LAYERS})

    def owns(self, model: nn.Module) -> bool:
        return isinstance(model, TokenTransformer)

    def build(self, spec: TokenTransformerSpec, p: int) -> TokenTransformer:
        return TokenTransformer(spec, p)

    def spec(self, model: TokenTransformer) -> TokenTransformerSpec:
        return model.spec

    def predicting(self, value: Tensor) -> Tensor:
        return value[:, -1]  # the readout token

    def readout_logits(self, model: TokenTransformer, inputs: Tensor) -> Float[Tensor, "batch p"]:
        """Every block in full but the last, whose query, attention output, MLP and unembedding
        run at the readout token alone (keys and values at every token): on MNIST-1D's 11 tokens
        the feature edit's fine-tunes take a quarter of the time."""
        x = self.model_inputs(model, inputs)
        resid = model.embed(x)
        for block in model.blocks[:-1]:
            resid = block(resid)
        attn, mlp = model.blocks[-1].attn, model.blocks[-1].mlp
        q = torch.einsum("bd,hde->bhe", resid[:, -1], attn.W_Q)
        k = torch.einsum("bpd,hde->bphe", resid, attn.W_K)
        v = torch.einsum("bpd,hde->bphe", resid, attn.W_V)
        pattern = (torch.einsum("bhe,bkhe->bhk", q, k) / math.sqrt(q.shape[-1])).softmax(-1)
        last = resid[:, -1] + torch.einsum("bhk,bkhe,hed->bd", pattern, v, attn.W_O) + attn.b_O
        last = last + mlp.act_fn(last @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out
        return last @ model.W_U + model.b_U

    def readout_hook(self, model: TokenTransformer) -> str:
        return f"blocks.{_last(model)}.hook_resid_post"

    def unit_to_logit(self, model: TokenTransformer) -> Float[Tensor, "d_model p"]:
        return model.W_U.detach()

    def embedding(self, model: TokenTransformer) -> Tensor:
        raise self._unsupported(Capability.PAIRS)

    def unembedding(self, model: TokenTransformer) -> Float[Tensor, "d_model p"]:
        return model.W_U.detach()

    def with_residue_weights(self, model: TokenTransformer, embedding: Tensor | None = None,
                             unembedding: Tensor | None = None) -> TokenTransformer:
        raise self._unsupported(Capability.PAIRS)

    def with_unit_to_logit(self, model: TokenTransformer, to_logit: Float[Tensor, "d_model p"]) -> TokenTransformer:
        new = TokenTransformer(model.spec, model.p)
        new.load_state_dict(model.state_dict())
        with torch.no_grad():
            new.W_U.copy_(to_logit)
        return new.eval()

    def probe_hooks(self, model: TokenTransformer) -> list[str]:
        return self.layer_hooks(model)

    def unit_axis(self, model: TokenTransformer, hook: str) -> int:
        # [batch, position, head, d_head] at q, k, v, z; [batch, head, query, key] at the pattern
        if hook.endswith(("hook_q", "hook_k", "hook_v", "hook_z")):
            return -2
        return 1 if hook.endswith(("hook_pattern", "hook_attn_scores")) else -1

    # --- Capability.HEADS ---
    def head_hooks(self, model: TokenTransformer) -> dict[str, int]:
        return {f"blocks.{i}.attn.hook_z": model.spec.n_heads for i in range(model.spec.n_layers)}

    def head_value_hooks(self, model: TokenTransformer) -> dict[str, str]:
        return {f"blocks.{i}.attn.hook_z": f"blocks.{i}.attn.hook_v" for i in range(model.spec.n_layers)}

    def head_to_logit(self, model: TokenTransformer) -> dict[str, Float[Tensor, "head d_head p"]]:
        return {f"blocks.{i}.attn.hook_z": (block.attn.W_O @ model.W_U).detach()
                for i, block in enumerate(model.blocks)}

    def attention_patterns(self, model: TokenTransformer, inputs: Tensor) -> dict[str, Tensor]:
        hooks = [f"blocks.{i}.attn.hook_pattern" for i in range(model.spec.n_layers)]
        _, cache = model.run_with_cache(self.tokens(model, inputs), names_filter=lambda n: n in hooks)
        return {f"blocks.{i}.attn": cache[hook][:, :, -1].to(inputs.device) for i, hook in enumerate(hooks)}

    # --- Capability.POSITIONS ---
    def patch_hooks(self, model: TokenTransformer) -> list[str]:
        return block_patch_hooks(model.spec.n_layers)

    def n_positions(self, model: TokenTransformer) -> int:
        return model.spec.n_tokens + 1

    # --- Capability.LAYERS ---
    def layer_hooks(self, model: TokenTransformer) -> list[str]:
        """Each block's residual stream (at the readout token, as every cache is read)."""
        return [f"blocks.{i}.hook_resid_post" for i in range(model.spec.n_layers)]

    def layer_parameters(self, model: TokenTransformer) -> list[list[str]]:
        """Each block's weights (the embedding with the first), then the unembedding's."""
        names = [name for name, _ in model.named_parameters()]
        layers = [[n for n in names if n.startswith(f"blocks.{i}.")] for i in range(model.spec.n_layers)]
        layers[0] = ["W_E", "b_E", "readout_token", "W_pos", *layers[0]]
        return layers + [["W_U", "b_U"]]


FAMILY = register(TokenTransformerFamily())
