"""The drawing helpers every result's figures share: one colour and one label per subset, one
DPI, a figure made without pyplot and saved laid out. Each analysis draws its own figures beside
its result with these; here too are the training curves (the report's) and, until their
analyses are rewritten, the localisation's and the edit's figures.

matplotlib is imported when a figure is made, never when interp is: importing the library
costs a caller nothing it does not draw."""

from __future__ import annotations

from pathlib import Path

from ..core.document import plural
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
    if fig.get_layout_engine() is None:  # a figure made without `_subplots`
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)  # laid out once, while drawn (constrained layout)
    return path


def _subplots(*grid: int, figsize: tuple[float, float], **kwargs):
    """A figure and its axes without pyplot: no global backend is chosen or changed, and
    nothing is kept in pyplot's figure registry (the caller's notebook stays as it was)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
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


def plot_localization(loc, path: Path) -> Path:
    """Each component's generalisation score against its memorisation score, coloured by label
    (scores as defined in interp.analysis.localize: pushes on the two margins for neurons, their parts
    and clusters; what ablating them costs in the same margins for heads and frequencies)."""
    colors = {"generalising": SUBSET_COLORS["test"], "memorising": SUBSET_COLORS["noisy_observed"],
              "mixed": "#ff7f0e", "inert": "#bbbbbb"}
    kinds = sorted({r.kind for r in loc.rows})
    fig, axes = _subplots(1, len(kinds), figsize=(5 * len(kinds), 4.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        rows = [r for r in loc.rows if r.kind == kind]
        for name, color in colors.items():
            pts = [(r.gen_score, r.mem_score or 0.0) for r in rows if r.label == name]
            if pts:
                xs, ys = zip(*pts)
                ax.scatter(xs, ys, s=12, color=color, label=f"{name} ({len(pts)})")
        push = kind in ("neuron", "neuron part", "neuron cluster")
        ax.set(xlabel="push to the true label on test pairs" if push else "test margin lost when ablated",
               ylabel="push to the wrong label on noisy pairs" if push else "memorised margin lost when ablated",
               title=plural(kind))
        ax.legend(fontsize=7)
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
