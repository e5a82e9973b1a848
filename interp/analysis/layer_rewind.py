"""Where the memory lives, layer by layer: rewind one layer's weights to an earlier checkpoint
(Stephenson et al. 2021; Maini et al. 2023), with a random control.

For each trajectory checkpoint and each layer (the hidden layers and the readout, the family's
`layer_parameters`), the final model with that layer's parameters taken from the checkpoint is
scored: memorised (noisy training examples against their observed labels) and test accuracy.
The control rewinds as many individual weights, drawn at random from the whole network
(`CONTROL_SEEDS`, averaged), to the same checkpoint. The verdict follows the one rule every
intervention here uses: *memorising* when the rewind lowers memorisation more and test accuracy
less than the random one does; *generalising* the reverse; *shared* when it lowers both more.
A layer holding more than half the weights (`MAX_SHARE`) gets no verdict: the random weights
would be mostly its own.

The label-free choice (an edit that reads no label): each rewound model's agreement, on the
training examples, with the class-subspace readout of the final model's first hidden layer
(`core.class_structure`, from the observed labels); the rewind that agrees most is the edit
(`label_free()`; `rewound(run, layer, step)` builds it, same architecture). Memorised and test
accuracy only score it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..core.class_structure import DEFAULT_DIRECTIONS, class_subspaces, readout
from ..core.metrics import NO_KNOWN_WRONG, VERDICT_BAND, accuracy_verdict, subset_metrics
from ..families.base import Capability, family_of, replaced_parameters
from ..training.rundir import EARLIER_CHECKPOINT, Run, earlier_steps, load_run
from .noise_scores import narrow_first_layer
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Table

CONTROL_SEEDS = (0, 1)
#: a layer holding more of the net's weights than this has no verdict: as many random weights,
#: drawn from the whole net, would be mostly its own, so the control could not differ from it
MAX_SHARE = 0.5


@dataclass
class Rewind:
    layer: str  # the layer's name (`layer_names`), e.g. blocks.1.linear, unembed or embed + blocks.0
    step: int
    memorised: float
    test: float
    random_memorised: float
    random_test: float
    agreement: float  # with the class-subspace readout on the training examples: label-free
    share: float  # the layer's share of the net's weights (and of the random control's draw)

    @property
    def verdict(self) -> str:
        if self.share > MAX_SHARE:
            return f"no control (the layer is {self.share:.0%} of the weights)"
        return accuracy_verdict(self.memorised, self.test, self.random_memorised, self.random_test)


@dataclass(repr=False)
class LayerRewind(Result):
    final_memorised: float
    final_test: float
    rewinds: list[Rewind]

    def to_dict(self) -> dict:
        return {**asdict(self), "rewinds": [{**asdict(r), "verdict": r.verdict} for r in self.rewinds]}

    def label_free(self) -> Rewind:
        """The rewind whose training predictions agree most with the class-subspace readout
        (ties: the earliest step, then the layer nearest the input)."""
        return max(self.rewinds, key=lambda r: (r.agreement, -r.step, -self.rewinds.index(r)))

    def strongest(self) -> dict[str, Rewind]:
        """Per layer, the rewind that lowers memorisation most (the earliest step on a tie)."""
        out: dict[str, Rewind] = {}
        for r in self.rewinds:
            if r.layer not in out or r.memorised < out[r.layer].memorised:
                out[r.layer] = r
        return out

    def claim(self) -> str:
        """Where the memory lives, in one sentence: the layers whose strongest rewind is
        memorising (with the random control beside it), or that none is."""
        strongest = self.strongest()
        held = [(layer, r) for layer, r in strongest.items() if r.verdict == "memorising"]
        if not held:
            return ("no single-layer rewind separates memory from rule against random weights: "
                    + "; ".join(f"{layer} {r.verdict} (memorised {r.memorised:.1%}, random {r.random_memorised:.1%})"
                                for layer, r in strongest.items()) + ".")
        line = ("rewinding " + "; ".join(
            f"{layer} to step {r.step} takes memorised {self.final_memorised:.1%} → {r.memorised:.1%} (as many random "
            f"weights: {r.random_memorised:.1%}) with test {self.final_test:.1%} → {r.test:.1%} (random "
            f"{r.random_test:.1%})" for layer, r in held))
        # "the memory sits there" only where a rewind takes at least half of it: a verdict can rest
        # on a few examples' worth of memorisation (three of 27 noisy ones passed it)
        least = min(r.memorised for _, r in held)
        line += (": the memory sits there, checked against random weights." if least <= self.final_memorised / 2 else
                 f": a part of the memory sits there, checked against random weights — most of it stays "
                 f"({least:.1%} still memorised).")
        # a layer too large for the control that forgets more must not go unsaid: the sentence above
        # would place the memory where less of it is
        larger = [(layer, r) for layer, r in strongest.items() if r.share > MAX_SHARE and r.memorised < least]
        if larger:
            line += " More of it goes with " + "; ".join(
                f"{layer} ({r.share:.0%} of the weights) rewound to step {r.step}: memorised {r.memorised:.1%}, test "
                f"{r.test:.1%}" for layer, r in larger) + " — a layer too large for a random control, so unchecked."
        return line

    def edit_line(self) -> str:
        r = self.label_free()
        return (f"{r.layer} rewound to step {r.step}, the rewind whose predictions agree most "
                f"({r.agreement:.1%} of the training examples) with the class-subspace readout: memorised {self.final_memorised:.1%} → "
                f"{r.memorised:.1%}, test {self.final_test:.1%} → {r.test:.1%}.")

    def summary(self) -> str:
        parts = [f"{layer} to step {r.step}: memorised {r.memorised:.1%} (random {r.random_memorised:.1%}), test "
                 f"{r.test:.1%} (random {r.random_test:.1%}) — {r.verdict}" for layer, r in self.strongest().items()]
        return (f"Rewinding one layer to an earlier checkpoint (final model: memorised {self.final_memorised:.1%}, "
                f"test {self.final_test:.1%}); per layer, the rewind that lowers memorisation most: "
                + "; ".join(parts) + ". Chosen without labels: " + self.edit_line())

    def tables(self) -> list[Table]:
        from ..core.document import Table

        rows = [[r.layer, str(r.step), f"{r.memorised:.1%}", f"{r.random_memorised:.1%}", f"{r.test:.1%}",
                 f"{r.random_test:.1%}", r.verdict, f"{r.agreement:.1%}"] for r in self.rewinds]
        return [Table(["layer", "rewound to step", "memorised", "random", "test", "random", "verdict",
                       "agrees with the readout (label-free)"], rows,
                      f"one layer rewound; random: as many weights drawn from the whole net, mean of "
                      f"{len(CONTROL_SEEDS)} draws; a verdict needs a lead over random above {VERDICT_BAND * 100:g} points "
                      f"and a layer of at most {MAX_SHARE:.0%} of the weights; 'inert': it lowers neither memorised nor test more than random does "
                      "(it may still lower both as much)")]


def _scores(model, dataset, loss: str) -> tuple[float, float]:
    m = subset_metrics(family_of(model).forward(model, dataset.inputs), dataset, loss)
    return m["noisy_observed_acc"], m["test_acc"]


def layer_names(groups: list[list[str]]) -> list[str]:
    """A name for each of `layer_parameters`' groups: the module its parameters share
    (`blocks.1.linear`, `blocks.0` for an attention + MLP block); parameters of the model itself
    (no module) are the embedding in the first group (`embed + blocks.0`) and the unembedding in
    the last (`unembed`), as the groups run from the input to the readout."""
    names = []
    for i, group in enumerate(groups):
        modules = [name.rsplit(".", 1)[0].split(".") for name in group if "." in name]
        shared = []
        for parts in zip(*modules):
            if len(set(parts)) > 1:
                break
            shared.append(parts[0])
        module = ".".join(shared)
        if len(modules) == len(group):
            names.append(module)
        else:
            end = "embed" if i == 0 else "unembed"
            names.append(f"{end} + {module}" if module else end)
    return names


def rewound(run: Run, layer: str, step: int):
    """The final model with `layer`'s parameters (`layer_names`, e.g. "blocks.0.linear") from
    the checkpoint at `step`: same architecture, loads wherever the run's model does."""
    early = dict(load_run(run.path, step).model.named_parameters())
    groups = family_of(run.model).layer_parameters(run.model)
    group = groups[layer_names(groups).index(layer)]
    return replaced_parameters(run.model, {n: early[n].detach() for n in group})


@torch.no_grad()
def readout_classes(run: Run, directions: int = DEFAULT_DIRECTIONS) -> Tensor:
    """The label-free target of a choice among edits: each training example's class under the
    class-subspace readout of the final model's first hidden layer (from the observed labels)."""
    ds, family = run.dataset, family_of(run.model)
    train, first = ds.train_mask, family.layer_hooks(run.model)[0]
    _, cache = family.run_with_cache(run.model, ds.inputs, names_filter=lambda name: name == first)
    acts = cache[first][train]
    return readout(acts, class_subspaces(acts, ds.labels[train], ds.p, directions))


@torch.no_grad()
def layer_rewind(run: Run, directions: int = DEFAULT_DIRECTIONS) -> LayerRewind:
    model, ds, loss = run.model, run.dataset, run.spec.train.loss
    family = family_of(model)
    groups = family.layer_parameters(model)
    train = ds.train_mask
    target = readout_classes(run, directions)

    def agreement(edited) -> float:
        predicted = family.forward(edited, ds.inputs[train]).argmax(-1)
        return float((predicted == target).double().mean())

    final = {name: p.detach() for name, p in model.named_parameters()}
    sizes = {name: p.numel() for name, p in final.items()}
    memorised, test = _scores(model, ds, loss)
    rewinds = []
    for step in earlier_steps(run):
        early = {name: p.detach() for name, p in load_run(run.path, step).model.named_parameters()}
        for name, group in zip(layer_names(groups), groups):
            edited = replaced_parameters(model, {n: early[n] for n in group})
            mem, acc = _scores(edited, ds, loss)
            count = sum(sizes[n] for n in group)
            controls = [_scores(replaced_parameters(model, _random_rewind(final, early, count, seed)), ds, loss)
                        for seed in CONTROL_SEEDS]
            random_mem, random_acc = (sum(c[i] for c in controls) / len(controls) for i in (0, 1))
            rewinds.append(Rewind(name, step, mem, acc, random_mem, random_acc, agreement(edited),
                                  count / sum(sizes.values())))
    return LayerRewind(memorised, test, rewinds)


def _random_rewind(final: dict, early: dict, count: int, seed: int) -> dict:
    """Every parameter with `count` entries, drawn uniformly over the whole net, from `early`."""
    names = list(final)
    flat_final = torch.cat([final[n].flatten() for n in names])
    flat_early = torch.cat([early[n].flatten() for n in names])
    chosen = torch.randperm(len(flat_final), generator=torch.Generator().manual_seed(seed))[:count]
    flat_final = flat_final.clone()
    flat_final[chosen] = flat_early[chosen]
    out, start = {}, 0
    for n in names:
        out[n] = flat_final[start:start + final[n].numel()].view_as(final[n])
        start += final[n].numel()
    return out


def _needs_trajectory(run: Run) -> str | None:
    if not earlier_steps(run):
        return f"rewinding needs {EARLIER_CHECKPOINT}"
    if not run.dataset.noisy_mask.any():
        return f"{NO_KNOWN_WRONG}: no memory to locate"
    narrow = narrow_first_layer(run)  # its label-free choice reads the first layer's class subspaces
    return f"the label-free choice reads class subspaces: {narrow}" if narrow else None


LAYER_REWIND: Analysis[LayerRewind] = register_analysis(
    "layer_rewind", "Rewinding one layer", layer_rewind, needs=(Capability.LAYERS,), skip_reason=_needs_trajectory,
    order=55, groups=True, features=True)
