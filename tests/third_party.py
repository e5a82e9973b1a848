"""A model family and an analysis written outside interp, as a third party would: one module,
nothing in interp edited. The tests register them (`registered`); `test_plugins` installs this
module as a package whose entry points (`interp.families`, `interp.analyses`) name them.

The family is Chughtai et al.'s embedding MLP, logits = ReLU([W_x[a]; W_y[b]]·W)·W_U with no
biases: its state dict is the `embed-mlp` checkpoint format, and its neurons have honest maps
over the residues (neuron n's pre-activation on (a, b) is (W_x·W[:e])[a, n] + (W_y·W[e:])[b, n]).
The analysis counts the readout neurons that fire on some pair."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

import interp
from interp.analysis.registry import ANALYSES, Analysis, Result, add_analysis
from interp.core.specs import check_integer, check_seed
from interp.families import Capability, ModelFamily, register, replaced_parameters, unregister
from interp.families.two_layer import TwoLayerNet


@dataclass(frozen=True)
class EmbedMLPSpec:
    arch = "embed_mlp_test"
    embed: int = 8
    hidden: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        check_integer("model.embed", self.embed, 1)
        check_integer("model.hidden", self.hidden, 1)
        check_seed("model.seed", self.seed)


class EmbedMLP(HookedRootModule):
    def __init__(self, spec: EmbedMLPSpec, p: int):
        super().__init__()
        self.spec, self.p = spec, p
        gen = torch.Generator().manual_seed(spec.seed)
        e, h = spec.embed, spec.hidden
        self.W_x = nn.Parameter(torch.randn(p, e, generator=gen) / e**0.5)
        self.W_y = nn.Parameter(torch.randn(p, e, generator=gen) / e**0.5)
        self.W = nn.Parameter(torch.randn(2 * e, h, generator=gen) / (2 * e) ** 0.5)
        self.W_U = nn.Parameter(torch.randn(h, p, generator=gen) / h**0.5)
        self.hook_pre, self.hook_post, self.hook_logits = HookPoint(), HookPoint(), HookPoint()
        self.setup()

    def forward(self, pairs: Tensor) -> Tensor:
        pre = self.hook_pre(torch.cat([self.W_x[pairs[:, 0]], self.W_y[pairs[:, 1]]], 1) @ self.W)
        return self.hook_logits(self.hook_post(F.relu(pre)) @ self.W_U)


class EmbedMLPFamily(ModelFamily):
    name = EmbedMLPSpec.arch
    spec_type = EmbedMLPSpec
    provides = frozenset({Capability.NEURON_MAPS})

    def owns(self, model):
        return isinstance(model, EmbedMLP)

    def build(self, spec, p):
        return EmbedMLP(spec, p)

    def spec(self, model):
        return model.spec

    def memory_bytes(self, spec, p):
        params = 2 * p * spec.embed + 2 * spec.embed * spec.hidden + spec.hidden * p
        return params * 4 * 4 + p * p * spec.hidden * 4 * 3

    def readout_hook(self, model):
        return "hook_post"

    def unit_to_logit(self, model):
        return model.W_U.detach()

    def embedding(self, model):
        return model.W_x.detach()

    def unembedding(self, model):
        return model.W_U.detach()

    def with_residue_weights(self, model, embedding=None, unembedding=None):
        values = {"W_x": embedding} if embedding is not None else {}
        if unembedding is not None:
            values["W_U"] = unembedding
        return replaced_parameters(model, values).eval()

    def neuron_maps(self, model):
        e = model.spec.embed
        return {"u": (model.W_x @ model.W[:e]).detach().T, "v": (model.W_y @ model.W[e:]).detach().T,
                "w": model.W_U.detach()}

    def neuron_activation(self, model):
        return "relu"

    def with_neuron_maps(self, model, u, v, w, act=None):
        # edited maps need not factor through an embedding: the two-layer net computes them exactly
        net = TwoLayerNet(interp.TwoLayerSpec(width=u.shape[0], act=act or "relu", bias=False), model.p)
        with torch.no_grad():
            net.U.copy_(u), net.V.copy_(v), net.W.copy_(w.T)
        return net.eval()


@dataclass(repr=False)
class NeuronCount(Result):
    """How many readout neurons ever fire on the run's own pairs."""

    alive: int
    total: int

    def to_dict(self):
        return {"alive": self.alive, "total": self.total}

    def summary(self):
        return f"{self.alive} of {self.total} readout neurons fire on some pair."


def count_neurons(run) -> NeuronCount:
    family = interp.families.family_of(run.model)
    hook = family.readout_hook(run.model)
    _, cache = family.run_with_cache(run.model, run.dataset.inputs, names_filter=hook)
    return NeuronCount(int((cache[hook] > 0).any(0).sum()), cache[hook].shape[1])


#: the analysis, not yet registered: registering is the entry point's (or `registered`'s) job.
#: It reads activations only, so it applies to any family and to tasks over groups.
NEURON_COUNT = Analysis("neuron_count", "Live neurons", count_neurons, order=95, groups=True)


FAMILY = EmbedMLPFamily()


@contextlib.contextmanager
def registered():
    """The family and the analysis registered while the block runs, then taken back."""
    register(FAMILY), add_analysis(NEURON_COUNT)
    try:
        yield FAMILY, NEURON_COUNT
    finally:
        unregister(FAMILY.name)
        ANALYSES.pop(NEURON_COUNT.name)
