"""The one place that touches TransformerLens's model-building API (TransformerLens 4.x).

A release of TransformerLens that renames `boot_native` or its config fields changes this file
and nothing else. The config is kept as a JSON-safe dict (`cfg.to_dict()` is not JSON-safe), so
a checkpoint's `config.json` can rebuild the model without importing `interp`.
"""

from __future__ import annotations

from typing import Any

from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from .specs import TransformerSpec

N_CTX = 3  # tokens `a b =`


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
    """A randomly initialised (seeded) native TransformerBridge built from `bridge_config`."""
    return TransformerBridge.boot_native(TransformerBridgeConfig(**config))


def is_transformer(model: object) -> bool:
    return isinstance(model, TransformerBridge)


def equals_token(model: TransformerBridge) -> int:
    return model.cfg.d_vocab - 1
