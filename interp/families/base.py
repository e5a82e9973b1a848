"""Model families: one interface that every analysis is written against, one module per family.

A family answers, for a model of its kind, every question an analysis asks: how (a, b) pairs
become the model's inputs, the logits at the position that predicts a∘b, the readout hook (the
units whose effect on the logits is linear) and its unit-to-logit map, the residue-indexed
embedding and unembedding weights, the attention heads, where probes read, and the spec that
builds the model. Analyses call `family_of(model)` and never test a model's class; a new family
is one module plus `register(...)`.

What goes beyond every family's core (readout, residue weights, forward) is a *capability*
(`Capability`): per-neuron maps over the residues, attention heads, positions to patch, a stacked
training step. A family states which it has (`capabilities`); an analysis states which it needs
(`interp.analysis.registry.register_analysis(..., needs=...)`), and the report and CLI skip it,
with the reason said in words, on a model whose family lacks one.

Shapes: `pairs` [batch, 2] of residues; logits [batch, p]; cached activations are those at the
predicting position ([batch, units] for a neuron hook).
"""

from __future__ import annotations

import copy
import weakref
from abc import ABC, abstractmethod
from enum import Enum
from typing import Any, Callable, Iterable

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..core.specs import MODEL_MEMORY, MODEL_SPECS, SpecError

Hook = tuple[str, Callable[..., Any]]


class Capability(str, Enum):
    """What a family can do beyond the core interface; each names the methods it brings."""

    #: every readout neuron reads a and b through maps over the residues and writes an output
    #: map over the classes: `neuron_maps`, `neuron_activation`, `with_neuron_maps`
    NEURON_MAPS = "neuron_maps"
    #: attention heads: `head_hooks`, `head_value_hooks`, `head_to_logit`, `attention_patterns`, `unit_axis`
    HEADS = "heads"
    #: hook points with a position axis: `patch_hooks`, `n_positions`, `all_positions`
    POSITIONS = "positions"
    #: K models trained as one computation: `stacked_batch`, `stacked_loss_and_grads`
    STACKED = "stacked"
    #: the readout units' output map can be rewritten as weights: `with_unit_to_logit`
    READOUT_MAP = "readout_map"
    #: inputs that are (a, b) pairs of residues, read through embedding weights by residue: what
    #: every analysis of a composition task assumes (families whose `inputs` are "pairs" have it)
    PAIRS = "pairs"
    #: hidden layers in order, each a hook and its parameters: `layer_hooks`, `layer_parameters`
    LAYERS = "layers"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


FORWARD_CHUNK = 4096  # pairs per hook-free forward (`ModelFamily.forward`)

_DESCRIPTIONS = {
    Capability.NEURON_MAPS: "per-neuron maps over the residues (each neuron's u, v and w)",
    Capability.HEADS: "attention heads",
    Capability.POSITIONS: "hook points with a position axis",
    Capability.STACKED: "a stacked training step",
    Capability.READOUT_MAP: "a readout map that can be rewritten as weights",
    Capability.PAIRS: "(a, b) pairs of residues as inputs",
    Capability.LAYERS: "a stack of hidden layers",
}


class ModelFamily(ABC):
    """The interface. Subclasses set `name` and `spec_type` and implement the abstract methods;
    the others have defaults that fit any `HookedRootModule` taking the pairs themselves."""

    name: str
    spec_type: type

    #: The capabilities every model of the family has (see `Capability`).
    provides: frozenset[Capability] = frozenset()

    #: What the model reads: "pairs" (a, b) of residues (then it has `Capability.PAIRS`), or
    #: "features", the vectors of a classification task (`TaskSpec(op="classify")`).
    inputs = "pairs"

    #: Whether sweeps should stack this family's runs (`interp.sweep`): only where one stacked
    #: step beats K single steps on this CPU.
    stacking_pays = False

    def capabilities(self, model: nn.Module) -> frozenset[Capability]:
        """What this model can do (`provides`, unless a family narrows it per model)."""
        return self.provides

    def has(self, model: nn.Module, capability: Capability) -> bool:
        if capability is Capability.PAIRS:  # from `inputs`, so a family written before it has it
            return self.inputs == "pairs"
        return capability in self.capabilities(model)

    def lacks(self, model: nn.Module, needs: Iterable[Capability]) -> str | None:
        """Why a model cannot serve an analysis that needs `needs`, in words, or None."""
        missing = [c for c in needs if not self.has(model, c)]
        if not missing:
            return None
        return (f"it needs {' and '.join(c.description for c in missing)}, which a model of the "
                f"{self.name} family does not have")

    def _unsupported(self, capability: Capability) -> TypeError:
        return TypeError(f"a model of the {self.name} family has no {capability.description}")

    def batchable(self, spec: Any) -> bool:
        """Whether `interp.training.batched.train_many` can stack models of `spec` into one computation
        (then `stacked_batch` and `stacked_loss_and_grads` are implemented)."""
        return Capability.STACKED in self.provides

    # --- building ----------------------------------------------------------------------------
    @abstractmethod
    def owns(self, model: nn.Module) -> bool:
        """Whether `model` is of this family: an answer that stays the same while the model lives
        (`family_of` asks once per model)."""

    @abstractmethod
    def build(self, spec: Any, p: int) -> nn.Module:
        """A freshly initialised model for `spec` over Z_p (seeded by `spec.seed`)."""

    @abstractmethod
    def spec(self, model: nn.Module) -> Any:
        """The spec that builds a model of the same shape as `model`."""

    def memory_bytes(self, spec: Any, p: int) -> int:
        """A rough upper estimate of what a model of `spec` over p residues takes in full-batch
        training beyond the dataset and the logits (`RunSpec.memory_bytes` adds those): its
        activations on all p² pairs, its parameters with their gradients and two optimizer
        moments. A spec over the limit is refused before anything is built; 0: no estimate."""
        return 0

    def config(self, model: nn.Module) -> dict[str, Any]:
        """Extra entries for a checkpoint's config.json (e.g. the TransformerLens config)."""
        return {}

    # --- running ------------------------------------------------------------------------------
    def checked_inputs(self, inputs: Any) -> Tensor:
        """A batch as this family's forward takes it. Over features: a float32 tensor [batch,
        d_in]; a float64 tensor or a numpy array of floats is converted to float32, as
        `Dataset.from_tensors` converts a dataset's inputs; integers or another type are a
        one-line ValueError. Pairs are passed as they are."""
        if self.inputs != "features":
            return inputs
        found = f"{inputs.dtype}" if hasattr(inputs, "dtype") else type(inputs).__name__
        try:
            x = torch.as_tensor(inputs) if not torch.is_tensor(inputs) and hasattr(inputs, "dtype") else inputs
        except (TypeError, RuntimeError):
            x = None
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise ValueError(f"a model of the {self.name} family takes feature vectors as a float32 tensor [batch, "
                             f"d_in] (float64 tensors and numpy arrays of floats are converted), got {found}")
        return x.float()

    def tokens(self, model: nn.Module, pairs: Int[Tensor, "batch 2"]) -> Tensor:
        """What the model's own forward takes for each (a, b) pair, on the model's device."""
        return pairs.to(device_of(model))

    def model_inputs(self, model: nn.Module, pairs: Any) -> Tensor:
        """`tokens` of the checked inputs; feature vectors in the model's float type (a float64
        copy, `in_float64`, takes float64), whatever a family's own `tokens` does."""
        tokens = self.tokens(model, self.checked_inputs(pairs))
        return tokens.to(next(model.parameters()).dtype) if self.inputs == "features" else tokens

    def predicting(self, value: Tensor) -> Tensor:
        """`value` (a forward's output or a cached activation) at the position that predicts a∘b."""
        return value

    def forward(self, model: nn.Module, pairs: Int[Tensor, "batch 2"], fwd_hooks: Iterable[Hook] = ()
                ) -> Float[Tensor, "batch p"]:
        """Mod-p logits for each pair through the hooked forward, with `fwd_hooks` applied.
        Without hooks, FORWARD_CHUNK pairs at a time: the same logits, and a chunk's activations
        stay in the CPU's cache (S5's 14,400 pairs: 2.5× faster for a two-layer net, 1.5× for
        the transformer). With hooks, one batch: a hook may read the batch (mean, resample)."""
        pairs = self.checked_inputs(pairs)
        tokens = self.model_inputs(model, pairs)
        if fwd_hooks:
            return self.predicting(model.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks))).to(pairs.device)
        if len(tokens) <= FORWARD_CHUNK:
            return self.predicting(model(tokens)).to(pairs.device)
        return torch.cat([self.predicting(model(chunk)) for chunk in tokens.split(FORWARD_CHUNK)]).to(pairs.device)

    def run_with_cache(self, model: nn.Module, pairs: Int[Tensor, "batch 2"], names_filter=None
                       ) -> tuple[Float[Tensor, "batch p"], dict[str, Tensor]]:
        """Logits and the cached activations (at the predicting position) for each pair."""
        pairs = self.checked_inputs(pairs)
        out, cache = model.run_with_cache(self.model_inputs(model, pairs), names_filter=names_filter)
        # back on the device of the pairs (and of the dataset's labels and masks)
        return (self.predicting(out).to(pairs.device),
                {name: self.predicting(value).to(pairs.device) for name, value in cache.items()})

    def unembedding_input(self, model: nn.Module, pairs: Int[Tensor, "batch 2"]) -> Any:
        """What the unembedding reads for each pair, for `unembed`: with it, the logits of copies
        of `model` that differ from it only in the unembedding (`with_residue_weights(model,
        unembedding=…)`) take no forward each. By default the pairs (`unembed` runs the forward)."""
        return pairs

    def unembed(self, model: nn.Module, unembedding_input: Any) -> Float[Tensor, "batch p"]:
        """`forward(model, pairs)`, bit for bit, from `unembedding_input(original, pairs)` of a
        model `original` that `model` differs from at most in the unembedding."""
        return self.forward(model, unembedding_input)

    def training_logits(self, model: nn.Module, pairs: Int[Tensor, "batch 2"]) -> Float[Tensor, "batch p"]:
        """The values of `forward`, by the cheapest path (no hook points); for training."""
        return self.forward(model, pairs)

    def readout_logits(self, model: nn.Module, pairs: Int[Tensor, "batch 2"]) -> Float[Tensor, "batch p"]:
        """The values of `training_logits`, computing only what the logits read (a transformer's
        last block at the predicting position alone, where that is cheaper). The same function, but
        other matrix shapes round float32 otherwise, so training keeps `training_logits` (a run
        retrains bit for bit) and this serves float64 work (the feature edit's fine-tune)."""
        return self.training_logits(model, pairs)

    # --- views of the weights -----------------------------------------------------------------
    @abstractmethod
    def readout_hook(self, model: nn.Module) -> str:
        """The hook whose units act on the logits linearly (through `unit_to_logit`)."""

    @abstractmethod
    def unit_to_logit(self, model: nn.Module) -> Float[Tensor, "unit p"]:
        """The linear map from the readout hook's units to the logits."""

    @abstractmethod
    def embedding(self, model: nn.Module) -> Float[Tensor, "p d"]:
        """The input weights indexed by residue (one row per residue 0..p-1)."""

    @abstractmethod
    def unembedding(self, model: nn.Module) -> Float[Tensor, "d p"]:
        """The output weights indexed by residue (one column per class)."""

    @abstractmethod
    def with_residue_weights(self, model: nn.Module, embedding: Tensor | None = None,
                             unembedding: Tensor | None = None) -> nn.Module:
        """A copy of `model` with its `embedding` and/or `unembedding` replaced."""

    def with_unit_to_logit(self, model: nn.Module, to_logit: Float[Tensor, "unit p"]) -> nn.Module:
        """A copy of `model` of the same architecture whose readout units push the logits by
        `to_logit` (their activations unchanged): a weight edit of the readout's output side."""
        raise self._unsupported(Capability.READOUT_MAP)

    def probe_hooks(self, model: nn.Module) -> list[str]:
        """Where linear probes read, the main one first."""
        return [self.readout_hook(model)]

    def unit_axis(self, model: nn.Module, hook: str) -> int:
        """The axis of `hook`'s activations (every position) that indexes its units — neurons,
        or heads at a head hook — for ablating some of them."""
        return -1

    # --- Capability.NEURON_MAPS ---------------------------------------------------------------
    def neuron_maps(self, model: nn.Module) -> dict[str, Float[Tensor, "neuron p"]]:
        """Per readout neuron, its input maps from a and b (`u`, `v`) and its output map to the
        classes (`w`), each over the residues: neuron n's pre-activation on (a, b) is
        u[n, a] + v[n, b] and its push on class c is act · w[n, c]."""
        raise self._unsupported(Capability.NEURON_MAPS)

    def neuron_activation(self, model: nn.Module) -> str:
        """The neurons' activation function, by its name in `specs.ACTIVATIONS`."""
        raise self._unsupported(Capability.NEURON_MAPS)

    def with_neuron_maps(self, model: nn.Module, u: Tensor, v: Tensor, w: Tensor, act: str | None = None) -> nn.Module:
        """A model computing what `model` computes with its neuron maps replaced by u, v, w (and
        its activation by `act`); the model may be of another family (the two-layer net), as
        long as its logits are exactly those of the edited neurons."""
        raise self._unsupported(Capability.NEURON_MAPS)

    # --- Capability.HEADS ---------------------------------------------------------------------
    def head_hooks(self, model: nn.Module) -> dict[str, int]:
        """Hook name → number of heads, for each attention layer's per-head output (`hook_z`)."""
        raise self._unsupported(Capability.HEADS)

    def head_value_hooks(self, model: nn.Module) -> dict[str, str]:
        """For each of `head_hooks`, the hook of the same layer's per-head values at every
        position ([batch, position, head, d_head]): what each head reads from each position."""
        raise self._unsupported(Capability.HEADS)

    def head_to_logit(self, model: nn.Module) -> dict[str, Float[Tensor, "head d_head p"]]:
        """For each of `head_hooks`, the direct map from each head's output to the logits
        (through the residual stream alone)."""
        raise self._unsupported(Capability.HEADS)

    def attention_patterns(self, model: nn.Module, pairs: Int[Tensor, "batch 2"]) -> dict[str, Tensor]:
        """For each attention layer, the predicting position's attention over the key positions,
        [batch, head, position]."""
        raise self._unsupported(Capability.HEADS)

    # --- Capability.POSITIONS -----------------------------------------------------------------
    def patch_hooks(self, model: nn.Module) -> list[str]:
        """Hooks whose activations are [batch, position, ...], in the order information flows:
        the ones activation patching walks."""
        raise self._unsupported(Capability.POSITIONS)

    def n_positions(self, model: nn.Module) -> int:
        """Length of the position axis of `patch_hooks`."""
        raise self._unsupported(Capability.POSITIONS)

    def all_positions(self, model: nn.Module, pairs: Int[Tensor, "batch 2"], hooks: Iterable[str]) -> dict[str, Tensor]:
        """The activations of `hooks` at every position, [batch, position, ...], on the pairs' device."""
        hooks = set(hooks)
        _, cache = model.run_with_cache(self.tokens(model, pairs), names_filter=lambda n: n in hooks)
        return {name: value.to(pairs.device) for name, value in cache.items()}

    # --- Capability.LAYERS --------------------------------------------------------------------
    def layer_hooks(self, model: nn.Module) -> list[str]:
        """Each hidden layer's output hook ([batch, units]), input side first."""
        raise self._unsupported(Capability.LAYERS)

    def layer_parameters(self, model: nn.Module) -> list[list[str]]:
        """The parameter names of each layer, input side first, the readout's last (one more
        entry than `layer_hooks`): what rewinding a layer restores."""
        raise self._unsupported(Capability.LAYERS)

    # --- training -----------------------------------------------------------------------------
    def training_batch(self, model: nn.Module, pairs: Tensor, labels: Tensor) -> Any:
        """The examples in whatever form `loss_and_backward` takes them (prepared once for
        full-batch training)."""
        return pairs, labels

    def loss_and_backward(self, model: nn.Module, params: dict[str, nn.Parameter], loss: str, batch: Any) -> float:
        """The mean loss on `batch`; the gradients of `params` (the trainable parameters, by name)
        replace their `.grad`, so no zero_grad is needed."""
        from ..core.metrics import loss_fn

        pairs, labels = batch
        value = loss_fn(loss, self.training_logits(model, pairs), labels)
        # parameters the loss does not reach keep no gradient, as after zero_grad and backward
        grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
        for param, grad in zip(params.values(), grads):
            # contiguous: torch's fused optimizers misread a non-contiguous gradient's strides
            param.grad = None if grad is None else grad.contiguous()
        return value.item()

    # --- Capability.STACKED --------------------------------------------------------------------
    def stacked_batch(self, spec: Any, p: int, pairs: Int[Tensor, "K batch 2"], labels: Int[Tensor, "K batch"]) -> Any:
        """K networks' training examples, prepared once for `stacked_loss_and_grads`."""
        raise self._unsupported(Capability.STACKED)

    def stacked_loss_and_grads(self, params: dict[str, Tensor], spec: Any, p: int, batch: Any, loss: str
                               ) -> tuple[Float[Tensor, " K"], dict[str, Tensor]]:
        """Each network's mean loss and the gradients of it, for K networks whose parameters
        are stacked along a leading axis (`params`, keyed by state-dict name)."""
        raise self._unsupported(Capability.STACKED)

    def __repr__(self) -> str:
        return f"<model family {self.name!r}>"


FAMILIES: dict[str, ModelFamily] = {}

#: Each model's family, found once by `family_of` and kept while the model lives (held beside the
#: model, not on it: its attributes, state dict, copies and pickles are untouched); emptied when
#: the registry changes, since a family may come or go.
_RESOLVED: weakref.WeakKeyDictionary[nn.Module, ModelFamily] = weakref.WeakKeyDictionary()


def register(family: ModelFamily) -> ModelFamily:
    """Add `family` (its spec type becomes buildable and loadable by `model.arch`, and its
    memory estimate is checked before training)."""
    _RESOLVED.clear()
    FAMILIES[family.name] = family
    MODEL_SPECS[family.name] = family.spec_type
    MODEL_MEMORY[family.name] = family.memory_bytes
    return family


def unregister(name: str) -> None:
    """Take back the family registered as `name` (e.g. at the end of a test)."""
    _RESOLVED.clear()
    for table in (FAMILIES, MODEL_SPECS, MODEL_MEMORY):
        table.pop(name, None)


def family_of(model: nn.Module) -> ModelFamily:
    """The registered family that owns `model` (the first, in registration order). Asked of the
    registry once per model: an analysis and every helper it calls get the answer found first."""
    try:
        return _RESOLVED[model]
    except KeyError:
        pass
    except TypeError:  # a model that cannot be weakly referenced: asked each time
        return _owner(model)
    _RESOLVED[model] = family = _owner(model)
    return family


def _owner(model: nn.Module) -> ModelFamily:
    for family in FAMILIES.values():
        if family.owns(model):
            return family
    raise TypeError(f"{type(model).__name__} belongs to no registered model family ({', '.join(FAMILIES)}): a plain "
                    "torch MLP (nn.Sequential of Linear layers) comes in as "
                    "interp.import_checkpoint(FILE, 'torch-mlp', dataset=...) on its saved state dict "
                    "(docs/checkpoints.md); another architecture is a family of its own, registered with "
                    "interp.families.register")


def family_for_spec(spec: Any) -> ModelFamily:
    arch = getattr(spec, "arch", None)
    if arch not in FAMILIES:
        raise SpecError(f"no model family for spec {spec!r}; registered: {', '.join(FAMILIES)}")
    return FAMILIES[arch]


def build_model(spec: Any, p: int) -> nn.Module:
    """A freshly initialised model for `spec` over Z_p."""
    return family_for_spec(spec).build(spec, p)


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def replaced_parameters(model: nn.Module, values: dict[str, Tensor]) -> nn.Module:
    """A deep copy of `model` with the named parameters set to `values`."""
    # a forward can leave transient graph tensors on modules (TransformerLens's captured
    # residual), which deepcopy refuses: the copy gets None in their place
    transient = {id(v): None for m in model.modules() for v in vars(m).values()
                 if torch.is_tensor(v) and v.grad_fn is not None}
    new = copy.deepcopy(model, transient)
    state = new.state_dict()
    with torch.no_grad():
        for name, value in values.items():
            state[name].copy_(value)
    return new


def in_float64(model: nn.Module) -> nn.Module:
    """A float64 copy of `model`, for what must not turn on float32's last digits: another CPU
    (AVX2 or AVX-512) or thread count sums a float32 forward in another order, and a ranking, a
    fit that stops at a tolerance or an Adam step (which divides a gradient by its own size) can
    turn that into another answer; in float64 the rounding is some 1e9 times smaller."""
    return replaced_parameters(model, {}).double()


# --- any model, through its family -------------------------------------------------------


def mlp_hooks(model: nn.Module) -> list[str]:
    """The MLP neurons of each block of a TransformerLens-style stack: the `mlp.hook_post` among
    the hooks patching walks (`Capability.POSITIONS`); none on a model without positions."""
    family = family_of(model)
    if not family.has(model, Capability.POSITIONS):
        return []
    return [hook for hook in family.patch_hooks(model) if hook.endswith("mlp.hook_post")]


def block_patch_hooks(n_layers: int) -> list[str]:
    """The hook points activation patching walks in a TransformerLens-style stack of `n_layers`
    attention + MLP blocks: the embedding, then each block's heads, attention output, MLP
    neurons and residual stream."""
    out = ["hook_embed"]
    for layer in range(n_layers):
        out += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.mlp.hook_post",
                f"blocks.{layer}.hook_resid_post"]
    return out


def head_name(layer: int, head: int) -> str:
    """A head's name in every table, summary and figure: `L0H2` is head 2 of layer 0 (the
    layer's place in `head_hooks`)."""
    return f"L{layer}H{head}"


def heads(model: nn.Module) -> list[tuple[str, int, str]]:
    """(hook, head, name) of every attention head, layer by layer (`head_hooks`, `head_name`)."""
    hooks = family_of(model).head_hooks(model)
    return [(hook, h, head_name(layer, h)) for layer, (hook, n) in enumerate(hooks.items()) for h in range(n)]


def tokens(model: nn.Module, pairs: Int[Tensor, "batch 2"]) -> Tensor:
    """What `model`'s own forward takes for each (a, b) pair: the pairs themselves for the
    two-layer net, the token rows `a b =` for the transformer."""
    return family_of(model).tokens(model, pairs)


def logits(model: nn.Module, pairs: Int[Tensor, "batch 2"]) -> Float[Tensor, "batch p"]:
    """Mod-p logits for each pair (a, b), for any model family (hooked forward)."""
    return family_of(model).forward(model, pairs)


def training_logits(model: nn.Module, pairs: Int[Tensor, "batch 2"]) -> Float[Tensor, "batch p"]:
    """The values of `logits`, computed by the cheapest path and without hook points (the
    transformer computes only the last position). For training; analyses use `logits`."""
    return family_of(model).training_logits(model, pairs)


__all__ = ["Capability", "FAMILIES", "Hook", "ModelFamily", "build_model", "device_of", "family_for_spec", "family_of",
           "head_name", "heads", "in_float64", "logits",
           "register", "replaced_parameters", "tokens", "training_logits", "unregister"]
