"""Figures for results. One colour per subset everywhere; every axis labelled."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from ..core.document import plural
from ..core.key_frequencies import CLUSTER_SHARE
from ..core.tasks import SUBSET_TABLE

SUBSET_COLORS = {
    "clean": "#1f77b4",
    "noisy_observed": "#d62728",
    "noisy_true": "#2ca02c",
    "test": "#9467bd",
}
SUBSET_LABELS = {name: SUBSET_TABLE[name].label for name in SUBSET_COLORS}


DPI = 120


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)  # the figure's own DPI: the text tight_layout laid out is reused
    return path


def _subplots(*grid: int, figsize: tuple[float, float], **kwargs):
    """A figure and its axes without pyplot: no global backend is chosen or changed, and
    nothing is kept in pyplot's figure registry (the caller's notebook stays as it was)."""
    fig = Figure(figsize=figsize, dpi=DPI)
    return fig, fig.subplots(*grid, **kwargs)


def plot_history(history: list[dict], path: Path, title: str = "") -> Path:
    steps = [row["step"] for row in history]
    fig, ax = _subplots(figsize=(7, 4))
    for name, color in SUBSET_COLORS.items():
        values = [row.get(f"{name}_acc") for row in history]
        if any(v is not None for v in values):
            ax.plot(steps, [v if v is not None else float("nan") for v in values], color=color,
                    label=SUBSET_LABELS[name])
    ax.set(xlabel="step", ylabel="accuracy", ylim=(-0.02, 1.02), title=title or "training curves")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _irrep_names(spectra) -> list[str] | None:
    """On a group, the irreps' readable names (`core.unit_labels`); None for Z_p (numbered ticks)."""
    if spectra.irreps is None:
        return None
    return spectra.labels or spectra.irreps


def _name_units(ax, names: list[str] | None, axis: str = "x", first: int = 0) -> None:
    """On a group, tick the unit axis with the irreps' names (unit `first` at position `first`)."""
    if names is not None:
        ticks = range(first, len(names))
        (ax.set_xticks if axis == "x" else ax.set_yticks)(list(ticks), [names[u] for u in ticks],
                                                          fontsize=7, rotation=90 if axis == "x" else 0)


def plot_neuron_spectra(spectra, path: Path) -> Path:
    """Per-neuron power over frequencies (irreps, on a group; sorted by the dominant one), the
    count of neurons per dominant frequency, and the IPR histogram."""
    unit = "frequency k" if spectra.irreps is None else "irrep"
    power = spectra.power[:, 1:]
    order = torch.argsort(spectra.freq * 10 + (1 - spectra.energy_frac))
    normed = power[order] / power[order].sum(1, keepdim=True).clamp_min(1e-30)
    fig, axes = _subplots(1, 3, figsize=(15, 4.2))
    im = axes[0].imshow(normed.T.numpy(), aspect="auto", origin="lower", cmap="viridis",
                        extent=(0, len(order), 0.5, power.shape[1] + 0.5))
    axes[0].set(xlabel=f"neuron (sorted by dominant {unit.split()[0]})", ylabel=unit,
                title="share of each neuron's power (u+v+w)")
    _name_units(axes[0], _irrep_names(spectra), "y", first=1)
    fig.colorbar(im, ax=axes[0])
    counts = torch.bincount(spectra.freq, minlength=power.shape[1] + 1)[1:]
    axes[1].bar(range(1, len(counts) + 1), counts.numpy(), color="#555555")
    axes[1].set(xlabel=f"dominant {unit}", ylabel="neurons", title=f"dominant {plural(unit.split()[0])}")
    _name_units(axes[1], _irrep_names(spectra), first=1)
    axes[2].hist(spectra.ipr.numpy(), bins=40, color="#555555")
    axes[2].set(xlabel="IPR (mean over u, v, w; r = 2)", ylabel="neurons", title="neuron IPR")
    return _save(fig, path)


def plot_transformer_spectra(spectra, path: Path) -> Path:
    unit = "frequency k" if spectra.irreps is None else "irrep"
    names = [n for n in spectra.power if n in ("W_E", "W_U")]
    layers = [n for n in spectra.power if n.endswith("W_out_U")]
    extra = spectra.neuron_freq is not None
    fig, axes = _subplots(1, len(names) + 1 + extra, figsize=(5 * (len(names) + 1 + extra), 4))
    if extra:
        counts = torch.bincount(spectra.neuron_freq[spectra.neuron_share > CLUSTER_SHARE], minlength=spectra.p // 2 + 1)
        axes[-1].bar(range(len(counts)), counts.numpy(), color="#555555")
        axes[-1].set(xlabel="frequency k", ylabel="MLP neurons",
                     title=f"neurons with > {CLUSTER_SHARE:.0%} of their activation power at k")
        axes = axes[:-1]
    for ax, name in zip(axes, names):
        total = spectra.power[name].sum(0)
        ax.bar(range(len(total)), total.numpy(), color="#555555")
        ax.set(xlabel=f"{unit} (0 = constant)" if spectra.irreps is None else unit, ylabel="power",
               title=f"{name} power per {unit.split()[0]}")
        _name_units(ax, _irrep_names(spectra))
    last = spectra.power[layers[-1]]
    normed = last / last.sum(1, keepdim=True).clamp_min(1e-30)
    order = torch.argsort(normed[:, 1:].argmax(1))
    axes[-1].imshow(normed[order].T.numpy(), aspect="auto", origin="lower", cmap="viridis")
    axes[-1].set(xlabel="neuron (sorted)", ylabel=unit, title=f"{layers[-1]}: neuron-to-logit power")
    _name_units(axes[-1], _irrep_names(spectra), "y")
    return _save(fig, path)


def plot_extraction(extraction, path: Path) -> Path:
    """Accuracy of each extraction method on the four subsets, as grouped bars."""
    methods = list(extraction.rows)
    fig, ax = _subplots(figsize=(max(8, 1.1 * len(methods)), 4.5))
    width = 0.2
    for i, (name, color) in enumerate(SUBSET_COLORS.items()):
        values = [extraction.rows[m][f"{name}_acc"] or 0 for m in methods]
        ax.bar([j + (i - 1.5) * width for j in range(len(methods))], values, width, color=color,
               label=SUBSET_LABELS[name])
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="accuracy", ylim=(0, 1.05), title="extracted networks on the four subsets")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def plot_noise_detection(detection: dict, path: Path) -> Path:
    """ROC curve of the noise detector and histograms of its score on clean and noisy examples."""
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    axes[0].plot(detection["roc"]["fpr"], detection["roc"]["tpr"], color=SUBSET_COLORS["noisy_observed"])
    axes[0].plot([0, 1], [0, 1], color="#bbbbbb", linestyle="--", label="chance")
    axes[0].set(xlabel="false-positive rate (clean flagged)", ylabel="true-positive rate (noisy flagged)",
                title=f"ROC, AUROC {detection['auroc']:.4f}")
    axes[0].legend(fontsize=8)
    edges = detection["histogram"]["edges"]
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    width = edges[1] - edges[0]
    for name, color in (("clean", SUBSET_COLORS["clean"]), ("noisy", SUBSET_COLORS["noisy_observed"])):
        axes[1].bar(centres, detection["histogram"][name], width, color=color, alpha=0.6, label=f"{name} training examples")
    axes[1].set(yscale="log", xlabel="log p(top class) − log p(observed label)", ylabel="examples",
                title="disagreement with the observed label")
    axes[1].legend(fontsize=8)
    return _save(fig, path)


def plot_pruning(curves, path: Path) -> Path:
    """Test and memorised accuracy as units are removed, one line per order."""
    fig, axes = _subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, (key, title) in zip(axes, [("test_acc", "test"), ("noisy_observed_acc", SUBSET_LABELS["noisy_observed"])]):
        for i, curve in enumerate(curves):
            random = curve.label.startswith("random")
            ax.plot(curve.fractions, [v if v is not None else float("nan") for v in curve.metrics[key]],
                    color="#999999" if random else f"C{i}", lw=1 if random else 2,
                    label=None if random and not curve.label.endswith("0)") else
                    ("random order (each seed)" if random else curve.label))
        ax.set(xlabel="fraction of neurons removed", title=title, ylim=(-0.02, 1.02))
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=7)
    return _save(fig, path)


def plot_head_scan(rows: list[dict], path: Path) -> Path:
    """Per head, what ablating it alone costs the test margin and the memorised margin (rows of
    `AblationReport.head_costs`)."""
    fig, ax = _subplots(figsize=(max(5, 1.2 * len(rows) + 2), 4))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["gen"] for r in rows], 0.4, color=SUBSET_COLORS["test"], label="test margin")
    if any(r["mem"] is not None for r in rows):
        ax.bar([i + 0.2 for i in x], [r["mem"] or 0.0 for r in rows], 0.4, color=SUBSET_COLORS["noisy_observed"],
               label="memorised (observed − true) margin")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xticks(list(x), [r["head"] for r in rows])
    ax.set(xlabel="head ablated (zero)", ylabel="margin lost (logits)", title="head scan")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_partition(sweeps, path: Path) -> Path:
    """Per score: test accuracy of f^G_part, of its frequency filtration, and the memorised
    accuracy of the memorisation part, against the fraction of neurons kept."""
    fig, axes = _subplots(1, len(sweeps), figsize=(5 * len(sweeps), 4), sharey=True, squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        ax.plot(sweep.fractions, sweep.generalisation["test_acc"], color=SUBSET_COLORS["test"], label="f^G_part: test")
        ax.plot(sweep.fractions, sweep.filtered_generalisation["test_acc"], color=SUBSET_COLORS["test"], ls="--",
                label="f^G_part filtered: test")
        ax.plot(sweep.fractions, sweep.memorisation["noisy_observed_acc"], color=SUBSET_COLORS["noisy_observed"],
                label="rest: memorised")
        ax.axhline(sweep.filtered_whole["test_acc"], color="#555555", lw=1, ls=":", label="whole net filtered: test")
        ax.set(xlabel="γ_G (fraction of neurons kept, top by score)", title=f"score: {sweep.score}", ylim=(-0.02, 1.02))
    axes[0][0].set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def plot_localization(loc, path: Path) -> Path:
    """Each component's generalisation score against its memorisation score, coloured by label
    (scores as defined in interp.analysis.localize: pushes on the two margins for neurons, their parts
    and clusters; what ablating them costs in the same margins for heads and frequencies)."""
    colors = {"generalising": SUBSET_COLORS["test"], "memorising": SUBSET_COLORS["noisy_observed"],
              "mixed": "#ff7f0e", "inert": "#bbbbbb"}
    kinds = sorted({r["kind"] for r in loc.rows})
    fig, axes = _subplots(1, len(kinds), figsize=(5 * len(kinds), 4.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        rows = [r for r in loc.rows if r["kind"] == kind]
        for name, color in colors.items():
            pts = [(r["gen_score"], r["mem_score"] or 0.0) for r in rows if r["label"] == name]
            if pts:
                xs, ys = zip(*pts)
                ax.scatter(xs, ys, s=12, color=color, label=f"{name} ({len(pts)})")
        push = kind in ("neuron", "neuron part", "neuron cluster")
        ax.set(xlabel="push to the true label on test pairs" if push else "test margin lost when ablated",
               ylabel="push to the wrong label on noisy pairs" if push else "memorised margin lost when ablated",
               title=plural(kind))
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_probe_curves(curves: dict, path: Path) -> Path:
    """Probe accuracy against the number of clean probe-training examples: one panel per
    feature source, the subsets in their usual colours (test; noisy examples vs true labels)."""
    fig, axes = _subplots(1, len(curves), figsize=(4.5 * len(curves), 3.8), sharey=True, squeeze=False)
    for ax, (source, curve) in zip(axes[0], curves.items()):
        sizes = sorted(curve)
        for subset in ("test", "noisy_true"):
            values = [curve[n][subset] for n in sizes]
            ax.plot(sizes, [float("nan") if v is None else v for v in values], color=SUBSET_COLORS[subset],
                    marker="o", label=SUBSET_LABELS[subset])
        ax.set(xscale="log", xlabel="clean probe-training examples", ylim=(-0.02, 1.02), title=f"features: {source}")
    axes[0][0].set_ylabel("probe accuracy (true label)")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_fit_speed(speed, path: Path) -> Path:
    """Fraction of clean and of noisy examples fitted (against the labels trained on) per step."""
    fig, ax = _subplots(figsize=(7, 4))
    ax.plot(speed.steps, speed.clean_acc, color=SUBSET_COLORS["clean"], label=SUBSET_LABELS["clean"])
    if any(v is not None for v in speed.noisy_acc):
        ax.plot(speed.steps, [v if v is not None else float("nan") for v in speed.noisy_acc],
                color=SUBSET_COLORS["noisy_observed"], label=SUBSET_LABELS["noisy_observed"])
    ax.set(xscale="symlog", xlabel="step", ylabel="fraction fitted", ylim=(-0.02, 1.02), title="which labels are fitted first")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_sweep(summary, path: Path) -> Path:
    """Test, memorised and extracted accuracy against the first grid axis, one line per value
    of the other axes."""
    first, rest = summary.axes[0], summary.axes[1:]
    lines: dict[tuple, list[dict]] = {}
    for row in summary.rows:
        lines.setdefault(tuple(row[a] for a in rest), []).append(row)
    panels = [("test_acc", "test accuracy (raw model)"), ("noisy_observed_acc", "noisy labels memorised"),
              ("extracted_test_acc", "test accuracy, extracted (label-free)")]
    fig, axes = _subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for ax, (key, title) in zip(axes, panels):
        for values, rows in lines.items():
            xs = [r[first] for r in rows]
            ys = [float("nan") if r[key] is None else r[key] for r in rows]
            label = ", ".join(f"{a}={v}" for a, v in zip(rest, values)) or None
            ax.plot(xs, ys, marker="o", label=label)
        numeric = all(isinstance(r[first], (int, float)) for r in summary.rows)
        if numeric and min(r[first] for r in summary.rows) > 0 and max(r[first] for r in summary.rows) / min(
                r[first] for r in summary.rows) > 8:
            ax.set_xscale("log", base=2)
        ax.set(xlabel=first, title=title, ylim=(-0.02, 1.02))
    axes[0].set_ylabel("accuracy")
    if rest:
        axes[-1].legend(fontsize=8)
    return _save(fig, path)


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


def plot_patching(sweep, path: Path) -> Path:
    """Accuracy per subset after patching each (hook, position), one heat map per subset."""
    subsets = [s for s in SUBSET_COLORS if sweep.baseline.get(f"{s}_acc") is not None]
    hooks = list(sweep.metrics)
    fig, axes = _subplots(1, len(subsets), figsize=(4.2 * len(subsets), 0.5 * len(hooks) + 2.2), squeeze=False)
    for ax, subset in zip(axes[0], subsets):
        grid = torch.tensor([[sweep.metrics[h][p][f"{subset}_acc"] for p in sweep.positions] for h in hooks])
        im = ax.imshow(grid.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        fig.colorbar(im, ax=ax, label="accuracy")
        ax.set(xticks=range(len(sweep.positions)), xticklabels=["a", "b", "="][: len(sweep.positions)],
               yticks=range(len(hooks)), xlabel="position patched",
               title=f"{SUBSET_LABELS[subset]}\n(unpatched {sweep.baseline[f'{subset}_acc']:.0%})")
        ax.set_yticklabels(hooks, fontsize=7)
    return _save(fig, path)


def plot_rule_memory_patching(result, path: Path) -> Path:
    """Per kind of component, what patching each one takes from the memorised margin (memory)
    and from the test margin (rule), in logits."""
    kinds = [k for k in ("head output", "head input", "neuron cluster", "path") if any(r["kind"] == k for r in result.rows)]
    fig, axes = _subplots(1, max(1, len(kinds)), figsize=(4.5 * max(1, len(kinds)), 4.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        rows = [r for r in result.rows if r["kind"] == kind]
        names = [r["index"] + ("" if kind != "head input" else f" @{r['position']}") for r in rows]
        x = range(len(rows))
        for offset, score, color, label in ((-0.2, "memory", SUBSET_COLORS["noisy_observed"], "memorised margin lost"),
                                            (0.2, "rule", SUBSET_COLORS["test"], "test margin lost")):
            if any(r[score] is not None for r in rows):
                ax.bar([i + offset for i in x], [r[score] or 0.0 for r in rows], 0.4, color=color, label=label)
        ax.set_xticks(list(x), names, rotation=60, ha="right", fontsize=6)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set(ylabel="logits", title=kind)
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_patching_over_training(result, path: Path) -> Path:
    """Per subset, the final model's accuracy against the checkpoint each hook was patched from,
    one line per hook, the unpatched accuracy dashed."""
    subsets = [s for s in SUBSET_COLORS if result.baseline.get(f"{s}_acc") is not None]
    fig, axes = _subplots(1, len(subsets), figsize=(4.2 * len(subsets), 3.4), squeeze=False)
    for ax, subset in zip(axes[0], subsets):
        for hook, by_name in result.metrics.items():
            ax.plot(result.steps, by_name[f"{subset}_acc"], marker="o", markersize=3, label=hook)
        ax.axhline(result.baseline[f"{subset}_acc"], color="grey", linestyle="--", linewidth=1)
        ax.set(xlabel="checkpoint patched from (step)", ylabel="accuracy", ylim=(-0.02, 1.02),
               title=SUBSET_LABELS[subset])
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_edit_pareto(search, path: Path) -> Path:
    """Memorised (left) and test accuracy (right) against the edit's size, one line per method;
    the random control as its mean with the range over seeds; the chosen edit starred."""
    fig, axes = _subplots(1, 2, figsize=(12, 4.2))
    methods = list(dict.fromkeys(pt.method for pt in search.points))
    for ax, key in zip(axes, ("noisy_observed_acc", "test_acc")):
        if search.baseline[key] is None:  # a clean dataset: nothing memorised to plot
            ax.text(0.5, 0.5, "no noisy training labels", ha="center", va="center", transform=ax.transAxes)
            continue
        for method in methods:
            curve = search.curve(method)
            sizes = sorted({pt.size if method != "random" else round(pt.parameter, 6) for pt in curve})
            if method == "random":
                by = {s: [pt.metrics[key] for pt in curve if round(pt.parameter, 6) == s] for s in sizes}
                mean = [sum(v) / len(v) for v in by.values()]
                ax.fill_between(sizes, [min(v) for v in by.values()], [max(v) for v in by.values()], color="#bbbbbb", alpha=0.4)
                ax.plot(sizes, mean, color="#888888", linestyle="--", label="random parts")
            else:
                curve = sorted(curve, key=lambda pt: pt.size)
                ax.plot([pt.size for pt in curve], [pt.metrics[key] for pt in curve], marker="o", markersize=3, label=method)
        ax.axhline(search.baseline[key], color="black", linewidth=0.8, linestyle=":", label="unedited model")
        chosen = search.edit
        ax.plot([chosen.size], [chosen.metrics[key]], marker="*", markersize=14, color="gold", markeredgecolor="black",
                linestyle="none", label="chosen edit")
        ax.set(xscale="log", xlabel="edit size (share of the readout map's squared norm removed)",
               ylabel=SUBSET_LABELS["noisy_observed" if key == "noisy_observed_acc" else "test"], ylim=(-0.02, 1.02))
    axes[0].set_title("memorisation left after the edit")
    axes[1].set_title("test accuracy after the edit")
    axes[1].legend(fontsize=7, loc="lower left")
    return _save(fig, path)
