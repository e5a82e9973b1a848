"""A deep MLP over feature vectors: input → widths[0] → … → widths[-1] → classes.

A `HookedRootModule` whose hidden layer i computes `blocks.i.hook_pre` (the linear map) and
`blocks.i.hook_post` (after the activation); the logits pass `hook_logits`. Its parameters are
`blocks.i.linear.{weight,bias}` and `unembed.{weight,bias}`: a plain `nn.Sequential` of Linear
and activation layers maps onto them one to one (`sequential_state` / `from_sequential_state`,
what `interp import --format torch-mlp` and the export use).

It reads feature vectors, not (a, b) pairs, so it lacks `Capability.PAIRS`: every analysis
written for composition tasks is skipped on it, with the reason said.
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
from .base import Capability, ModelFamily, register


@dataclass(frozen=True)
class MLPSpec:
    """A deep MLP over `d_in` features: one hidden layer per entry of `widths` (from the CLI,
    `model.widths=512,512`), each followed by `act`; nn.Linear's initialisation, seeded."""

    arch = "mlp"
    d_in: int = 64
    widths: tuple[int, ...] = (512, 512)
    act: str = "relu"
    seed: int = 0

    def __post_init__(self) -> None:
        widths = self.widths
        if isinstance(widths, str):  # `--set model.widths=512,512`
            try:
                widths = tuple(int(w) for w in widths.split(",") if w.strip())
            except ValueError:
                raise SpecError(f"model.widths={self.widths!r} is not a comma-separated list of widths") from None
        if isinstance(widths, int) or not isinstance(widths, (tuple, list)) or not widths:
            raise SpecError(f"model.widths must be one or more layer widths, got {self.widths!r}")
        for w in widths:
            check_integer("model.widths", w, 1)
        object.__setattr__(self, "widths", tuple(widths))
        check_integer("model.d_in", self.d_in, 1)
        check_seed("model.seed", self.seed)
        check_choice("model.act", self.act, ACTIVATIONS)

    def to_dict(self) -> dict:
        """The fields as JSON values (`widths` a list, as it reads back from config.json)."""
        return {**asdict(self), "widths": list(self.widths)}


class MLPBlock(nn.Module):
    """One hidden layer: `hook_pre` = linear(x), `hook_post` = act(hook_pre)."""

    def __init__(self, d_in: int, d_out: int, act: str):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.act_fn = ACT_FNS[act]
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_post(self.act_fn(self.hook_pre(self.linear(x))))


class MLPNet(HookedRootModule):
    def __init__(self, spec: MLPSpec, p: int):
        super().__init__()
        self.spec, self.p = spec, p
        sizes = (spec.d_in, *spec.widths)
        self.blocks = nn.ModuleList(MLPBlock(a, b, spec.act) for a, b in zip(sizes, sizes[1:]))
        self.unembed = nn.Linear(sizes[-1], p)
        self.hook_logits = HookPoint()
        gen = torch.Generator().manual_seed(spec.seed)
        with torch.no_grad():  # nn.Linear's own scale, drawn from the spec's seed (no global RNG)
            for layer in [b.linear for b in self.blocks] + [self.unembed]:
                bound = 1 / math.sqrt(layer.in_features)
                for param in (layer.weight, layer.bias):
                    param.copy_((torch.rand(param.shape, generator=gen) * 2 - 1) * bound)
        self.setup()

    def forward(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch p"]:
        if x.dim() != 2 or x.shape[1] != self.spec.d_in or not x.is_floating_point():
            raise ValueError(f"this MLP takes feature vectors of shape [batch, {self.spec.d_in}], got {x.dtype} "
                             f"{tuple(x.shape)}")
        for block in self.blocks:
            x = block(x)
        return self.hook_logits(self.unembed(x))


def layer_hooks(model: MLPNet) -> list[str]:
    """Each hidden layer's output hook, input side first (`blocks.i.hook_post`)."""
    return [f"blocks.{i}.hook_post" for i in range(len(model.blocks))]


class MLPFamily(ModelFamily):
    name = "mlp"
    spec_type = MLPSpec
    inputs = "features"
    provides = frozenset({Capability.READOUT_MAP, Capability.LAYERS})

    def owns(self, model: nn.Module) -> bool:
        return isinstance(model, MLPNet)

    def build(self, spec: MLPSpec, p: int) -> MLPNet:
        return MLPNet(spec, p)

    def spec(self, model: MLPNet) -> MLPSpec:
        return model.spec

    def readout_hook(self, model: MLPNet) -> str:
        return layer_hooks(model)[-1]

    def unit_to_logit(self, model: MLPNet) -> Float[Tensor, "unit p"]:
        return model.unembed.weight.detach().T

    def embedding(self, model: MLPNet) -> Tensor:
        raise self._unsupported(Capability.PAIRS)

    def unembedding(self, model: MLPNet) -> Float[Tensor, "unit p"]:
        return model.unembed.weight.detach().T

    def with_residue_weights(self, model: MLPNet, embedding: Tensor | None = None,
                             unembedding: Tensor | None = None) -> MLPNet:
        raise self._unsupported(Capability.PAIRS)

    def with_unit_to_logit(self, model: MLPNet, to_logit: Float[Tensor, "unit p"]) -> MLPNet:
        new = MLPNet(model.spec, model.p)
        new.load_state_dict(model.state_dict())
        with torch.no_grad():
            new.unembed.weight.copy_(to_logit.T)
        return new.eval()

    def probe_hooks(self, model: MLPNet) -> list[str]:
        return layer_hooks(model)

    def layer_hooks(self, model: MLPNet) -> list[str]:
        return layer_hooks(model)

    def layer_parameters(self, model: MLPNet) -> list[list[str]]:
        return [[f"blocks.{i}.linear.weight", f"blocks.{i}.linear.bias"] for i in range(len(model.blocks))] + [
            ["unembed.weight", "unembed.bias"]]


# --- plain PyTorch nn.Sequential state dicts -------------------------------------------------


def sequential_state(model: MLPNet) -> dict[str, Tensor]:
    """The state dict of the equivalent `nn.Sequential(Linear, act, Linear, act, …, Linear)`:
    Linear k sits at index 2k."""
    names = [f"blocks.{i}.linear" for i in range(len(model.blocks))] + ["unembed"]
    state = model.state_dict()
    return {f"{2 * k}.{part}": state[f"{name}.{part}"].detach().clone()
            for k, name in enumerate(names) for part in ("weight", "bias")}


def from_sequential_state(state: dict[str, Tensor], act: str = "relu") -> MLPNet:
    """The MLP whose logits are those of the `nn.Sequential` of Linear layers (at any indices,
    in order, each with a bias) and `act` between them, from its state dict."""
    linear: dict[int, dict[str, Tensor]] = {}
    for key, value in state.items():
        index, _, part = key.partition(".")
        if not index.isdigit() or part not in ("weight", "bias"):
            raise ValueError(f"{key!r} is not a parameter of an nn.Sequential of Linear layers (expected 'K.weight', "
                             "'K.bias')")
        linear.setdefault(int(index), {})[part] = value
    layers = [linear[i] for i in sorted(linear)]
    if len(layers) < 2:
        raise ValueError("a torch-mlp state dict needs at least two Linear layers (one hidden layer)")
    for i, layer in zip(sorted(linear), layers):
        weight, bias = layer.get("weight"), layer.get("bias")
        if weight is None or bias is None or weight.dim() != 2 or bias.shape != weight.shape[:1]:
            raise ValueError(f"layer {i} is not a Linear layer with a weight [out, in] and a bias [out]")
    for (i, a), (j, b) in zip(zip(sorted(linear), layers), list(zip(sorted(linear), layers))[1:]):
        if b["weight"].shape[1] != a["weight"].shape[0]:
            raise ValueError(f"layer {j} reads {b['weight'].shape[1]} features but layer {i} writes "
                             f"{a['weight'].shape[0]}")
    spec = MLPSpec(d_in=int(layers[0]["weight"].shape[1]), widths=tuple(int(x["weight"].shape[0]) for x in layers[:-1]),
                   act=act)
    model = MLPNet(spec, int(layers[-1]["weight"].shape[0]))
    with torch.no_grad():
        for target, layer in zip([b.linear for b in model.blocks] + [model.unembed], layers):
            target.weight.copy_(layer["weight"])
            target.bias.copy_(layer["bias"])
    return model.eval()


FAMILY = register(MLPFamily())
