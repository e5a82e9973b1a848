"""Circuit views of a model with attention heads: where it looks, what each head and each
frequency cluster of readout neurons pushes the logits towards on each subset, what example
neurons compute over the (a, b) grid, and — over a checkpoint trajectory — Nanda et al.'s
progress measures.

- Attention: the predicting position's mean attention over the key positions, per head.
- Direct logit attribution, per subset: each unit's direct push on the logits (a head's output
  through W_O·W_U; a readout neuron's through its unit-to-logit map) as a margin, the pushed
  label's logit minus the mean logit, averaged over the subset's pairs, against the labels the
  subset is scored on (the observed labels on `noisy_observed`: memorisation; the true ones
  elsewhere). Readout neurons are summed per cluster: the frequency holding more than
  CLUSTER_SHARE of a neuron's non-constant activation power over (a, b)
  (`spectra.neuron_clusters`), or `unclustered`.
- Example neurons: the three readout neurons with the largest test-set attribution, their
  activation over (a, b) and its 2-D Fourier power.
- Progress measures: at each trajectory checkpoint, the test loss of the restricted and the
  excluded logits over the final model's key frequencies (`interp.core.key_frequencies`), beside the
  plain train and test loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import einops
import torch

from ..core.runtime import progress_bar
from ..core.tasks import SUBSET_TABLE, SUBSETS
from ..families.base import Capability, family_of
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure, Table
    from ..training.rundir import Run


@dataclass(repr=False)
class CircuitViews(Result):
    attention: dict[str, list[list[float]]]  # hook -> [head][key position]
    head_attribution: dict[str, dict[str, float | None]]  # "layer.head" -> subset -> mean margin push
    cluster_attribution: dict[str, dict[str, float | None]]  # "k=5" / "unclustered" -> subset -> push
    cluster_sizes: dict[str, int]
    example_neurons: list[int]
    example_maps: list[list[list[float]]]  # [neuron][a][b]
    progress: dict[str, list[float]] = field(default_factory=dict)  # step, train/test/restricted/excluded loss

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def summary(self) -> str:
        def best(table: dict[str, dict[str, float | None]], subset: str) -> str:
            scored = {k: v[subset] for k, v in table.items() if v.get(subset) is not None}
            return max(scored, key=scored.get) if scored else "none"

        line = (f"The head pushing hardest towards the true label on test pairs is {best(self.head_attribution, 'test')}; "
                f"the neuron cluster doing so is {best(self.cluster_attribution, 'test')}")
        if any(v.get("noisy_observed") is not None for v in self.cluster_attribution.values()):
            line += (f"; towards the memorised wrong labels: head {best(self.head_attribution, 'noisy_observed')}, "
                     f"cluster {best(self.cluster_attribution, 'noisy_observed')}")
        if self.progress:
            line += (f". Over {len(self.progress['step'])} checkpoints the restricted test loss went from "
                     f"{self.progress['restricted_test_loss'][0]:.3g} to {self.progress['restricted_test_loss'][-1]:.3g} "
                     f"and the excluded one from {self.progress['excluded_test_loss'][0]:.3g} to "
                     f"{self.progress['excluded_test_loss'][-1]:.3g}")
        return line + "."

    def tables(self) -> list[Table]:
        from ..core.document import Table

        subsets = list(SUBSETS)

        def rows(table: dict[str, dict[str, float | None]], extra=lambda name: []) -> list[list[str]]:
            return [[name, *extra(name), *("—" if v.get(s) is None else f"{v[s]:.3g}" for s in subsets)]
                    for name, v in table.items()]

        header = [SUBSET_TABLE[s].short for s in subsets]
        return [Table(["head", *header], rows(self.head_attribution),
                      caption="direct push of each head towards the subset's labels (mean logit margin)"),
                Table(["neuron cluster", "neurons", *header],
                      rows(self.cluster_attribution, lambda name: [str(self.cluster_sizes[name])]),
                      caption="summed direct push of the readout neurons of each frequency cluster")]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure
        from .plots import plot_circuit

        return [Figure(path, caption) for path, caption in plot_circuit(self, Path(out_dir), stem)]


@torch.no_grad()
def circuit_views(run: Run) -> CircuitViews:
    from ..core.metrics import subset_metrics
    from .filtration import excluded_logits, restricted_logits
    from .readout import contribution_push, margin_push
    from .spectra import cluster_order, neuron_clusters, transformer_key_frequencies

    model, ds = run.model, run.dataset
    family = family_of(model)
    p = ds.p
    subsets = {name: (mask, labels) for name, (mask, labels) in ds.subsets().items() if mask.any()}

    attention = {hook: pattern.double().mean(0).tolist()
                 for hook, pattern in family.attention_patterns(model, ds.inputs).items()}
    head_to_logit = family.head_to_logit(model)
    _, cache = family.run_with_cache(model, ds.inputs, names_filter=lambda n: n in head_to_logit)
    head_attribution: dict[str, dict[str, float | None]] = {}
    for layer, (hook, to_logit) in enumerate(head_to_logit.items()):
        contributions = torch.einsum("bhd,hdc->bhc", cache[hook].double(), to_logit.double())
        for name, (mask, labels) in subsets.items():
            pushes = contribution_push(contributions[mask], labels[mask])
            for head, value in enumerate(pushes.tolist()):
                head_attribution.setdefault(f"L{layer}H{head}", {})[name] = value

    hook = family.readout_hook(model)
    _, cache = family.run_with_cache(model, ds.inputs, names_filter=hook)
    acts, to_logit = cache[hook].double(), family.unit_to_logit(model).double()
    grid = ds.sum_grid
    if grid:
        cluster = neuron_clusters(einops.rearrange(acts, "(a b) unit -> a b unit", a=p))
    else:
        cluster = ["all"] * acts.shape[1]
    names = sorted(set(cluster), key=cluster_order)
    members = {c: torch.tensor([x == c for x in cluster]) for c in names}
    cluster_attribution: dict[str, dict[str, float | None]] = {c: {} for c in names}
    for name, (mask, labels) in subsets.items():
        per_neuron = margin_push(acts[mask], to_logit, labels[mask])
        for c in names:
            cluster_attribution[c][name] = float(per_neuron[members[c]].sum())
    test_push = margin_push(acts[ds.test_mask], to_logit, ds.true_labels[ds.test_mask]) \
        if ds.test_mask.any() else acts.abs().mean(0)
    examples = torch.argsort(test_push, descending=True)[:3].tolist()
    maps = einops.rearrange(acts[:, examples], "(a b) unit -> unit a b", a=p).tolist() if grid else []

    progress: dict[str, list[float]] = {}
    from ..training.rundir import load_run, trajectory_steps

    steps = trajectory_steps(run.path) if run.path is not None else []
    if steps and grid:
        keys = transformer_key_frequencies(model, ds.task.op)
        loss = run.spec.train.loss
        for step in progress_bar(steps, "circuit: checkpoints"):
            m = load_run(run.path, step).model
            row = {"step": float(step), **{f"{k}_loss": subset_metrics(family.forward(m, ds.inputs), ds, loss)[f"{k}_loss"]
                                           for k in ("train", "test")},
                   "restricted_test_loss": subset_metrics(restricted_logits(m, ds, keys), ds, loss)["test_loss"],
                   "excluded_test_loss": subset_metrics(excluded_logits(m, ds, keys), ds, loss)["test_loss"]}
            for key, value in row.items():
                progress.setdefault(key, []).append(value)
    return CircuitViews(attention, head_attribution, cluster_attribution,
                        {c: int(m.sum()) for c, m in members.items()}, examples, maps, progress)


CIRCUIT: Analysis[CircuitViews] = register_analysis("circuit", "Circuit views", circuit_views, needs=(Capability.HEADS,), order=40)
