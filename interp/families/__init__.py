"""Model families: the interface every analysis is written against (`base`), one module per
family (`two_layer`, `transformer`, `mlp`, `token_transformer`), and the importers of other
people's checkpoints (`importers`).

Importing this package registers the built-in families; a new family is one module that
subclasses `ModelFamily`, states its `provides` capabilities and calls `register(...)`.
"""

from . import mlp, token_transformer, transformer, two_layer  # noqa: E402,F401  (each registers itself)
from .base import (
                   FAMILIES,
                   Capability,
                   Hook,
                   ModelFamily,
                   build_model,
                   device_of,
                   family_for_spec,
                   family_of,
                   in_float64,
                   logits,
                   register,
                   replaced_parameters,
                   tokens,
                   training_logits,
                   unregister,
)

__all__ = ["Capability", "FAMILIES", "Hook", "ModelFamily", "build_model", "device_of", "family_for_spec",
           "family_of", "in_float64", "logits", "mlp", "register", "replaced_parameters", "token_transformer", "tokens",
           "training_logits", "transformer", "two_layer", "unregister"]
