"""Circuit views of a model with attention heads: where it looks, what each head and each
frequency cluster of readout neurons gives the rule and the memory, what example neurons compute
over the (a, b) grid, and — over a checkpoint trajectory — Nanda et al.'s progress measures.

- Attention: the predicting position's mean attention over the key positions, per head.
- Rule and memory, per head and per neuron cluster: the localisation's scores and labels
  (`interp.analysis.localize`), in logits of margin — `gen`, what the component gives the mean
  true-label margin on the test pairs, and `mem`, what it gives the mean observed − true margin
  on the noisy pairs (the push to the observed label *minus* the push to the true one). A head's
  scores are what zero-ablating it alone costs (the ablation analysis's head scan,
  `ablation.scan_heads`); a cluster's are its members' summed direct push (exactly what ablating
  the cluster costs: the readout is linear). Clusters: the frequency holding more than
  CLUSTER_SHARE of a neuron's non-constant activation power over (a, b)
  (`spectra.neuron_clusters`), or `unclustered`. Beside each head, its direct path alone (its
  output through W_O·W_U, around the MLP) in the same two scores.
- Example neurons: the three readout neurons with the largest test-set push, their activation
  over (a, b) and its 2-D Fourier power per pair of frequencies, every frequency 1 … ⌊p/2⌋.
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
from ..families.base import Capability, family_of, heads
from .plots import SUBSET_COLORS, _save, _subplots
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure, Table
    from ..training.rundir import Run
    from .unit_rows import UnitRow


@dataclass(repr=False)
class CircuitViews(Result):
    attention: dict[str, list[list[float]]]  # hook -> [head][key position]
    # "L0H1" -> gen, mem (ablation costs, logits), label, direct_gen, direct_mem (direct path alone)
    heads: dict[str, dict[str, Any]]
    clusters: dict[str, dict[str, Any]]  # "k=5" / "unclustered" -> gen, mem (summed pushes), label, neurons
    reference: tuple[float, float]  # (|G|, |M|): the model's own margins, which the labels are shares of
    example_neurons: list[int]
    example_maps: list[list[list[float]]]  # [neuron][a][b]
    progress: dict[str, list[float]] = field(default_factory=dict)  # step, train/test/restricted/excluded loss

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def summary(self) -> str:
        def top(table: dict[str, dict[str, Any]], score: str) -> tuple[str, dict[str, Any]] | None:
            scored = [(k, v) for k, v in table.items() if v.get(score) is not None]
            return max(scored, key=lambda kv: kv[1][score]) if scored else None

        def named(table: dict[str, dict[str, Any]], score: str, what: str) -> str:
            best = top(table, score)
            if best is None:
                return f"no {what}"
            name, row = best
            if score == "mem" and row["mem"] <= 0:
                return f"no {what} (none pushes the observed labels above the true ones; largest {name}, {row['mem']:.3g})"
            return f"{what} {name} ({row[score]:.3g}, {row['label']})"

        g, m = self.reference
        noisy = any(v.get("mem") is not None for v in self.heads.values())
        line = ("In the localisation's scores (logits of margin; a head's by ablating it alone, a neuron cluster's "
                f"by its summed direct push; labels against the model's test margin {g:.3g}"
                + (f" and memorised margin {m:.3g}" if noisy else "") + f"): the test margin (the rule) needs most "
                f"{named(self.heads, 'gen', 'head')}, "
                f"{named(self.clusters, 'gen', 'cluster') if self.clusters else 'no neuron clusters (they need the full grid of an add or sub task)'}")
        if noisy:
            line += (f"; the memorised margin (push to the observed label minus push to the true one) needs most "
                     f"{named(self.heads, 'mem', 'head')}" +
                     (f", {named(self.clusters, 'mem', 'cluster')}" if self.clusters else ""))
        direct = max((abs(v["direct_gen"]) for v in self.heads.values()), default=0.0)
        line += f". The heads' direct path to the logits (around the MLP) gives the test margin at most {direct:.3g}"
        if self.progress:
            line += (f". Over {len(self.progress['step'])} checkpoints the restricted test loss went from "
                     f"{self.progress['restricted_test_loss'][0]:.3g} to {self.progress['restricted_test_loss'][-1]:.3g} "
                     f"and the excluded one from {self.progress['excluded_test_loss'][0]:.3g} to "
                     f"{self.progress['excluded_test_loss'][-1]:.3g}")
        return line + "."

    def tables(self) -> list[Table]:
        from ..core.document import Table

        def cell(value: float | None) -> str:
            return "—" if value is None else f"{value:.3g}"

        return [Table(["head", "label", "rule (test margin lost)", "memory (memorised margin lost)",
                       "direct path: test", "direct path: memorised"],
                      [[name, v["label"], cell(v["gen"]), cell(v["mem"]), cell(v["direct_gen"]), cell(v["direct_mem"])]
                       for name, v in self.heads.items()],
                      caption="each head zero-ablated alone (the localisation's head scores, in logits of margin), and "
                              "its direct path alone (output through W_O·W_U)"),
                Table(["neuron cluster", "neurons", "label", "rule (test push)", "memory (observed − true push)"],
                      [[name, str(v["neurons"]), v["label"], cell(v["gen"]), cell(v["mem"])]
                       for name, v in self.clusters.items()],
                      caption="summed direct push of the readout neurons of each frequency cluster (the localisation's "
                              "cluster scores, in logits of margin)")]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        return [Figure(path, caption) for path, caption in plot_circuit(self, Path(out_dir), stem)]


@torch.no_grad()
def circuit_views(run: Run) -> CircuitViews:
    from ..core.metrics import subset_metrics
    from .filtration import excluded_logits, restricted_logits
    from .localize import localize
    from .readout import contribution_push, linear_readout, push_scores
    from .spectra import transformer_key_frequencies

    model, ds = run.model, run.dataset
    family = family_of(model)
    p = ds.p

    attention = {hook: pattern.double().mean(0).tolist()
                 for hook, pattern in family.attention_patterns(model, ds.inputs).items()}
    located = localize(model, ds, kinds=("neuron cluster", "head"), check=False)

    def scores(row: UnitRow) -> dict[str, Any]:
        return {"gen": row.gen_score, "mem": row.mem_score, "label": row.label}

    clusters = {r.name: {**scores(r), "neurons": r.neurons} for r in located.rows if r.kind == "neuron cluster"}
    head_rows = {r.name: scores(r) for r in located.rows if r.kind == "head"}
    head_to_logit = family.head_to_logit(model)
    _, cache = family.run_with_cache(model, ds.inputs, names_filter=lambda n: n in head_to_logit)
    for hook, head, name in heads(model):
        contributions = torch.einsum("bd,dc->bc", cache[hook][:, head].double(), head_to_logit[hook][head].double())
        noisy = ds.noisy_mask
        head_rows[name]["direct_gen"] = float(contribution_push(contributions[ds.test_mask][:, None],
                                                                ds.true_labels[ds.test_mask]).squeeze())
        head_rows[name]["direct_mem"] = (float((contribution_push(contributions[noisy][:, None], ds.labels[noisy])
                                                - contribution_push(contributions[noisy][:, None], ds.true_labels[noisy]))
                                               .squeeze()) if noisy.any() else None)

    _, acts, to_logit, _ = linear_readout(model, ds.inputs)
    grid = ds.sum_grid
    test_push = push_scores(acts, to_logit, ds)[0] if ds.test_mask.any() else acts.abs().mean(0)
    examples = torch.argsort(test_push, descending=True)[:3].tolist()
    maps = einops.rearrange(acts[:, examples].double(), "(a b) unit -> unit a b", a=p).tolist() if grid else []

    progress: dict[str, list[float]] = {}
    from ..training.rundir import load_run, trajectory_steps

    steps = trajectory_steps(run.path) if run.path is not None else []
    if steps and grid:
        keys = transformer_key_frequencies(model, ds.task)
        loss = run.spec.train.loss
        for step in progress_bar(steps, "circuit: checkpoints"):
            m = load_run(run.path, step).model
            row = {"step": float(step), **{f"{k}_loss": subset_metrics(family.forward(m, ds.inputs), ds, loss)[f"{k}_loss"]
                                           for k in ("train", "test")},
                   "restricted_test_loss": subset_metrics(restricted_logits(m, ds, keys), ds, loss)["test_loss"],
                   "excluded_test_loss": subset_metrics(excluded_logits(m, ds, keys), ds, loss)["test_loss"]}
            for key, value in row.items():
                progress.setdefault(key, []).append(value)
    return CircuitViews(attention, head_rows, clusters, located.reference, examples, maps, progress)


CIRCUIT: Analysis[CircuitViews] = register_analysis("circuit", "Circuit views", circuit_views, needs=(Capability.HEADS,), order=40,
                                                        groups=True)


# --- figures ------------------------------------------------------------------------------


def neuron_spectrum_image(grid: torch.Tensor) -> torch.Tensor:
    """What the example-neuron figure shows of a neuron's activation over (a, b): its power per
    pair of frequencies (k_a, k_b), every k = 0 … ⌊p/2⌋ (cos and sin summed,
    `fourier.frequency_power_2d`), with the constant (0, 0) left out so the mean does not drown
    the rest."""
    from ..core.fourier import frequency_power_2d

    power = frequency_power_2d(grid.double())
    power[0, 0] = 0
    return power


def plot_circuit(views, out_dir: Path, stem: str) -> list[tuple[Path, str]]:
    """The circuit views' figures: attention, the rule and memory scores per head and per neuron
    cluster, example neurons over (a, b) with their 2-D spectra, and progress measures."""
    out = []
    fig, axes = _subplots(1, 3, figsize=(16, 4.2))
    patterns = [torch.tensor(v) for v in views.attention.values()]
    if patterns:
        pattern = torch.cat(patterns)
        im = axes[0].imshow(pattern.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        fig.colorbar(im, ax=axes[0], label="attention")
        axes[0].set(xticks=range(pattern.shape[1]), xticklabels=["a", "b", "="][: pattern.shape[1]],
                    yticks=range(pattern.shape[0]), yticklabels=list(views.heads)[: pattern.shape[0]],
                    xlabel="key position", ylabel="head", title="attention of the predicting position")
    for ax, table, title, ylabel in (
            (axes[1], views.heads, "heads (each zero-ablated alone)", "margin lost (logits)"),
            (axes[2], views.clusters, "readout neurons by frequency cluster", "summed direct push (logits of margin)")):
        names = list(table)
        for offset, score, color, name in ((-0.2, "gen", SUBSET_COLORS["test"], "rule: test true-label margin"),
                                           (0.2, "mem", SUBSET_COLORS["noisy_observed"],
                                            "memory: noisy observed − true margin")):
            if any(table[n].get(score) is not None for n in names):
                ax.bar([j + offset for j in range(len(names))], [table[n].get(score) or 0.0 for n in names], 0.4,
                       color=color, label=name)
        ax.set_xticks(range(len(names)), [f"{n}\n{table[n]['label']}" for n in names], fontsize=7)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set(ylabel=ylabel, title=title)
    if axes[2].get_legend_handles_labels()[0]:  # no clusters (e.g. a group): nothing to name
        axes[2].legend(fontsize=7)
    out.append((_save(fig, out_dir / f"{stem}.png"), "attention, and the rule and memory scores of each head and "
                                                      "neuron cluster (the localisation's)"))

    if views.example_maps:
        maps = torch.tensor(views.example_maps, dtype=torch.float64)
        fig, axes = _subplots(2, len(maps), figsize=(4.2 * len(maps), 7.5), squeeze=False)
        for j, (neuron, grid) in enumerate(zip(views.example_neurons, maps)):
            im = axes[0][j].imshow(grid.numpy(), cmap="RdBu_r", origin="lower")
            fig.colorbar(im, ax=axes[0][j], label="activation")
            axes[0][j].set(xlabel="b", ylabel="a", title=f"neuron {neuron} over (a, b)")
            im = axes[1][j].imshow(neuron_spectrum_image(grid).numpy(), cmap="magma", origin="lower")
            fig.colorbar(im, ax=axes[1][j], label="power (cos + sin; constant left out)")
            axes[1][j].set(xlabel="frequency k of b (0: constant)", ylabel="frequency k of a",
                           title="power per frequency pair")
        out.append((_save(fig, out_dir / f"{stem}_neurons.png"),
                    "example readout neurons (largest push towards the true test labels) and their 2-D spectra"))

    if views.progress:
        fig, ax = _subplots(figsize=(7, 4))
        steps = views.progress["step"]
        for key, label in (("train_loss", "train loss"), ("test_loss", "test loss"),
                           ("restricted_test_loss", "restricted (key frequencies only), test"),
                           ("excluded_test_loss", "excluded (key frequencies removed), test")):
            ax.plot(steps, views.progress[key], marker="o", markersize=3, label=label)
        ax.set(yscale="log", xlabel="step", ylabel="loss", title="progress measures over the trajectory")
        ax.legend(fontsize=8)
        out.append((_save(fig, out_dir / f"{stem}_progress.png"), "restricted and excluded loss over training"))
    return out
