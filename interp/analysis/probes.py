"""Linear probes (scikit-learn) on cached activations: is the true label linearly decodable?

A probe is a multinomial logistic regression fitted on the activations of clean training
examples to predict their label, then scored on the test examples and on the noisy training
examples against their true labels — next to the model's own output accuracy on the same
examples. Controls: the same probe fitted on shuffled labels (structure vs. capacity), on the
activations of a freshly initialised model of the same architecture (random features), and a
probe for the observed (noisy) label fitted on a random half of the training examples and
scored on the other half (is the memorised label itself linearly readable?).

On a task over features (a deep MLP on digits, say) the probes read each hidden layer, and one
more row reads the raw inputs (hook `input`): the control a layer must beat, beside the
untrained net of the same shape (the random-feature control), before "the layer holds the true
label" means something training put there.

Feature sources (`features`):
- `raw`: the activations at the hook (last position for transformers; the feature vectors
  themselves at `input`);
- `fourier`: each unit's activation over the full (a, b) grid projected onto the 2-D Fourier
  terms of the key frequencies (Const or k) × (Const or k), k key — only add/sub;
- `f^G`: the activations of the dominant-frequency subnetwork (two-layer nets).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..core.class_structure import INPUT
from ..core.fourier import grid_fourier_projection
from ..core.runtime import progress_bar
from ..core.tasks import Dataset
from ..families.base import Capability, build_model, family_of, logits
from .plots import SUBSET_COLORS, SUBSET_LABELS, _save, _subplots
from .registry import Analysis, Result, register_analysis

if TYPE_CHECKING:
    from ..core.document import Figure, Table
    from ..training.rundir import Run

FEATURES = ("raw", "fourier", "f^G")
#: each probe's controls (`probe`), in the order they are fitted after the probe itself
CONTROLS = ("shuffled labels", "random features", "observed-label probe (held-out half)")


@torch.no_grad()
def cache_activations(model: nn.Module, inputs: Tensor, hook: str) -> Float[Tensor, "batch d"]:
    """Activations at `hook` for each pair (the last position's, for transformers), flattened."""
    return _activations(model, inputs, [hook])[hook]


@torch.no_grad()
def _activations(model: nn.Module, inputs: Tensor, hooks: list[str]) -> dict[str, Float[Tensor, "batch d"]]:
    """`cache_activations` at each of `hooks`, from one forward."""
    _, cache = family_of(model).run_with_cache(model, inputs, names_filter=lambda name: name in hooks)
    return {hook: cache[hook].reshape(len(inputs), -1).float() for hook in hooks}




@dataclass
class ProbeResult:
    hook: str
    features: str
    n_train: int
    accuracy: dict[str, float | None]  # test (true), noisy_true, noisy_observed
    model_accuracy: dict[str, float | None]
    controls: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _fit_score(x: np.ndarray, y: np.ndarray, train: np.ndarray, evals: dict[str, tuple[np.ndarray, np.ndarray]],
               seed: int) -> dict[str, float | None]:
    # scikit-learn: 1.5 s of imports, paid only when a probe is fitted
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    # a feature constant on the training examples gets no weight (no gradient, and the L2
    # penalty keeps it at 0), so leaving it out fits the same probe, with fewer columns
    varies = x[train].std(0) > 0
    x = x[:, varies] if varies.any() else x[:, :1]  # nothing varies: the intercept alone, at chance
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(solver="newton-cg", max_iter=100, C=1.0, random_state=seed)
    clf.fit(scaler.transform(x[train]), y[train])
    out = {}
    for name, (mask, labels) in evals.items():
        out[name] = None if not mask.any() else float((clf.predict(scaler.transform(x[mask])) == labels[mask]).mean())
    return out


def probe_features(model: nn.Module, dataset: Dataset, hook: str, features: str = "raw",
                   key_frequencies: list[int] | None = None, activations=cache_activations) -> np.ndarray:
    """The probe's inputs for every pair: activations at `hook` from the feature source
    `features` (see FEATURES), read by `activations(source, inputs, hook)`."""
    if features not in FEATURES:
        raise ValueError(f"unknown features {features!r}; valid: {', '.join(FEATURES)}")
    if hook == INPUT:
        if not dataset.task.features or features != "raw":
            raise ValueError("a probe of the raw inputs needs a task over features and the raw feature source")
        return dataset.inputs.reshape(len(dataset.inputs), -1).float().numpy()
    source = model
    if features == "f^G":
        if not family_of(model).has(model, Capability.NEURON_MAPS):
            raise ValueError("f^G features need per-neuron residue maps (two-layer nets)")
        from .neurons import dominant_split

        source = dominant_split(model, dataset.task)[0]
    acts = activations(source, dataset.inputs, hook)
    if features == "fourier":
        if key_frequencies is None:
            raise ValueError("fourier features need key_frequencies")
        acts = grid_fourier_projection(acts, dataset, key_frequencies)
    return acts.numpy()


def _evals(dataset: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The subsets a probe of the true label is scored on (the clean ones train it)."""
    return {name: (mask.numpy(), labels.numpy()) for name, (mask, labels) in dataset.subsets().items()
            if name != "clean"}


def _clean_subset(dataset: Dataset, n_train: int | None, rng: np.random.Generator) -> np.ndarray:
    """A mask of (up to `n_train`) clean training examples, drawn by `rng`."""
    clean = dataset.clean_mask.numpy().copy()
    if n_train is not None and n_train < clean.sum():
        idx = np.flatnonzero(clean)
        clean[:] = False
        clean[rng.choice(idx, n_train, replace=False)] = True
    return clean


Fit = tuple  # the arguments of one `_fit_score`
_FITTING = threading.Lock()


def _fit_scores(fits: list[Fit], alone: frozenset[int] = frozenset()) -> list[dict[str, float | None]]:
    """`_fit_score` of each fit, as many at once as there are cores, with one BLAS thread each:
    the fits' matrices are thin and much of a fit is single-threaded numpy, so on two cores two
    fits side by side finish in less than half the time of one after another (four fits on
    s5-noisy: 5.3 → 2.4 s). The fits numbered in `alone` run afterwards, one at a time with
    every BLAS thread: a fit far slower than the rest would otherwise end on one thread alone.
    The scores are those of the fits one by one, up to BLAS's rounding. The BLAS limit and the
    warning filters are process-wide, so one call at a time holds them (`_FITTING`)."""
    from concurrent.futures import ThreadPoolExecutor

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    together = [i for i in range(len(fits)) if i not in alone]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # warning filters are process-wide: set here, around every thread, not inside each fit
    with _FITTING, warnings.catch_warnings():  # newton-cg may stop at max_iter on undecodable targets: that is the finding
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(max(1, min(len(together), cores))) as pool:
            scores = dict(zip(together, progress_bar(pool.map(lambda i: _fit_score(*fits[i]), together), "probes: fits")))
        scores.update({i: _fit_score(*fits[i]) for i in sorted(alone)})
    return [scores[i] for i in range(len(fits))]


def probe(model: nn.Module, dataset: Dataset, hook: str, features: str = "raw", n_train: int | None = None,
          key_frequencies: list[int] | None = None, controls: bool = True, seed: int = 0) -> ProbeResult:
    """Fit a probe for the true label on (up to `n_train`) clean training examples at `hook`."""
    fits, assemble = _probe_fits(model, dataset, hook, features, n_train, key_frequencies, controls, seed)
    return assemble(_fit_scores(fits))


def _probe_fits(model: nn.Module, dataset: Dataset, hook: str, features: str, n_train: int | None,
                key_frequencies: list[int] | None, controls: bool, seed: int, memo: dict | None = None):
    """(the fits of `probe`, a function of their scores that returns its ProbeResult): the
    activations are computed here, in the calling thread, and only the fits run side by side.
    `memo` keeps what several calls on one model share (its predictions, the untrained net, each
    hook's and source's activations): the same values, computed once."""
    memo = {} if memo is None else memo
    x = _memo_features(memo, model, dataset, hook, features, key_frequencies)
    rng = np.random.default_rng(seed)
    clean = _clean_subset(dataset, n_train, rng)
    true, observed = dataset.true_labels.numpy(), dataset.labels.numpy()
    evals = _evals(dataset)
    fits: list[Fit] = [(x, true, clean, evals, seed)]
    pred = _memo(memo, "predictions", lambda: _predictions(model, dataset))
    model_accuracy = {name: None if not m.any() else float((pred[m] == y[m]).mean()) for name, (m, y) in evals.items()}
    names = []
    if controls and hook != INPUT:  # an untrained net's inputs are the inputs: no control to fit
        shuffled = true.copy()
        shuffled[clean] = rng.permutation(true[clean])
        fresh = _memo(memo, "untrained", lambda: build_model(_respec(model), dataset.p))
        random_acts = _memo(memo, ("untrained", hook), lambda: _memo_activations(memo, fresh, dataset.inputs, hook).numpy())
        # observed labels are only learnable by memorising each pair: fit on half of the
        # training examples and score the noisy examples of the other, held-out half
        noisy = dataset.noisy_mask.numpy()
        half = dataset.train_mask.numpy() & (rng.random(len(x)) < 0.5)
        held_out = dataset.train_mask.numpy() & ~half
        names = list(CONTROLS)
        fits += [(x, shuffled, clean, evals, seed), (random_acts, true, clean, evals, seed),
                 (x, observed, half, {"noisy_observed": (held_out & noisy, observed), "clean": (held_out & ~noisy, observed)},
                  seed)]

    def assemble(scores: list[dict[str, float | None]]) -> ProbeResult:
        result = ProbeResult(hook, features, int(clean.sum()), scores[0], model_accuracy)
        result.controls.update(zip(names, scores[1:]))
        return result

    return fits, assemble


def _memo(memo: dict, key, compute):
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _memo_features(memo: dict, model: nn.Module, dataset: Dataset, hook: str, features: str,
                   key_frequencies: list[int] | None) -> np.ndarray:
    return _memo(memo, ("features", hook, features, tuple(key_frequencies or ())),
                 lambda: probe_features(model, dataset, hook, features, key_frequencies,
                                        lambda source, inputs, at: _memo_activations(memo, source, inputs, at)))


def _memo_activations(memo: dict, source: nn.Module, inputs: Tensor, hook: str) -> Tensor:
    """`cache_activations(source, inputs, hook)`; the first call on a source computes every hook in
    `memo["hooks"]` in the same forward (the same values: one forward per source, not one per hook)."""
    key = ("activations", id(source))
    if key not in memo:  # the source is kept with its activations, so that its id is not reused
        memo[key] = source, _activations(source, inputs, list(dict.fromkeys([*memo.get("hooks", []), hook])))
    cached = memo[key][1]
    if hook not in cached:
        cached.update(_activations(source, inputs, [hook]))
    return cached[hook]


@torch.no_grad()
def _predictions(model: nn.Module, dataset: Dataset) -> np.ndarray:
    return logits(model, dataset.inputs).argmax(-1).numpy()


def _respec(model: nn.Module):
    """The model's spec with another init seed (for the random-feature control)."""
    from dataclasses import replace

    spec = family_of(model).spec(model)
    return replace(spec, seed=spec.seed + 1)


def learning_curve(model: nn.Module, dataset: Dataset, hook: str, sizes: list[int], features: str = "raw",
                   key_frequencies: list[int] | None = None, seed: int = 0) -> dict[int, dict[str, float | None]]:
    """Probe accuracy against the number of probe-training (clean) examples: the probe of
    `probe(..., n_train=n, controls=False)` for each n, the features computed once."""
    return dict(zip(sizes, _fit_scores(_curve_fits(model, dataset, hook, sizes, features, key_frequencies, seed))))


def _curve_fits(model: nn.Module, dataset: Dataset, hook: str, sizes: list[int], features: str,
                key_frequencies: list[int] | None, seed: int, memo: dict | None = None) -> list[Fit]:
    memo = {} if memo is None else memo
    x = _memo_features(memo, model, dataset, hook, features, key_frequencies)
    true, evals = dataset.true_labels.numpy(), _evals(dataset)
    return [(x, true, _clean_subset(dataset, n, np.random.default_rng(seed)), evals, seed) for n in sizes]


@dataclass(repr=False)
class ProbeReport(Result):
    """Probes per hook and feature source, with controls on raw features, and a learning
    curve (accuracy against probe-training examples) per feature source at the main hook."""

    probes: list[ProbeResult]
    curves: dict[str, dict[int, dict]]

    def to_dict(self) -> dict:
        return {"probes": [p.to_dict() for p in self.probes],
                "curves": {k: {str(n): v for n, v in c.items()} for k, c in self.curves.items()}}

    def summary(self) -> str:
        from ..core.document import pct

        best = max(self.probes, key=lambda r: r.accuracy["test"] or 0)
        line = (f"Best probe for the true label: {best.features} features at `{best.hook}`, test "
                f"{pct(best.accuracy['test'])}, noisy examples against their true labels {pct(best.accuracy['noisy_true'])} (the model itself: "
                f"{pct(best.model_accuracy['test'])} and {pct(best.model_accuracy['noisy_true'])}).")
        inputs = self.inputs()
        if inputs is not None:
            layers = [r for r in self.probes if r.hook != INPUT and r.features == "raw" and r.controls]
            line += (" Per layer, test (untrained net of the same shape): " + ", ".join(
                f"`{r.hook}` {pct(r.accuracy['test'])} ({pct(r.controls['random features']['test'])})" for r in layers)
                + f"; the raw inputs {pct(inputs.accuracy['test'])}. " + self.verdict())
        return line

    def inputs(self) -> ProbeResult | None:
        """The probe of the raw inputs (tasks over features), or None."""
        return next((r for r in self.probes if r.hook == INPUT), None)

    def verdict(self) -> str:
        """Which layers hold the true label beyond both controls — the raw inputs and an
        untrained net of the same shape — by more than the verdict band (tasks over features)."""
        from ..core.metrics import VERDICT_BAND

        inputs = self.inputs()
        if inputs is None:
            return ""
        beyond = [r.hook for r in self.probes if r.hook != INPUT and r.features == "raw" and r.controls
                  and r.accuracy["test"] - max(inputs.accuracy["test"], r.controls["random features"]["test"])
                  > VERDICT_BAND]
        if not beyond:
            return ("No layer's probe beats both the raw inputs and an untrained net by more than "
                    f"{VERDICT_BAND * 100:g} points: training made the true label no more linearly readable than it was.")
        return (f"Beyond both controls by more than {VERDICT_BAND * 100:g} points: " + ", ".join(f"`{h}`" for h in beyond)
                + " (training put the true label there, linearly readable).")

    def tables(self) -> list[Table]:
        from ..core.document import Table, pct

        rows = []
        for r in self.probes:
            ctl = r.controls
            rows.append([r.hook, r.features, pct(r.accuracy["test"]), pct(r.accuracy["noisy_true"]),
                         pct(r.model_accuracy["test"]), pct(r.model_accuracy["noisy_true"]),
                         pct(ctl["shuffled labels"]["test"]) if ctl else "—",
                         pct(ctl["random features"]["test"]) if ctl else "—"])
        return [Table(["hook", "features", "probe: test", "probe: noisy vs true", "model: test", "model: noisy vs true",
                       "shuffled-label control: test", "random-feature control (untrained net): test"], rows)]

    def figures(self, out_dir: Path, stem: str) -> list[Figure]:
        from ..core.document import Figure

        return [Figure(plot_probe_curves(self.curves, Path(out_dir) / f"{stem}.png"),
                       "probe accuracy against the number of probe-training examples")]


def probe_report(run: Run) -> ProbeReport:
    from .spectra import fourier_analysis

    model, ds = run.model, run.dataset
    op = ds.task.op
    family = family_of(model)
    hooks = family.probe_hooks(model)
    main = hooks[0]
    if ds.task.features:  # no harmonics to project on; the raw inputs are the first control
        keys, sources, hooks = None, ["raw"], [INPUT, *hooks]
    else:
        keys = fourier_analysis(model, ds.task).key_set()
        sources = ["raw", "fourier"] + (["f^G"] if family.has(model, Capability.NEURON_MAPS) else [])
    # the (a, b) grid's 2-D Fourier terms exist for Z_p's add/sub only, and need a key frequency
    if ds.task.group or op not in ("add", "sub") or not keys:
        sources = [s for s in sources if s != "fourier"]
    n_clean = int(ds.clean_mask.sum())
    sizes = [n for n in (50, 100, 200, 400, 800, 1600) if n < n_clean]
    # every fit of the report in one pool (`_fit_scores`): first each probe's, then each curve's
    fits, assemblers, fresh, memo = [], [], [], {"hooks": [h for h in hooks if h != INPUT]}
    for hook, source in progress_bar([(h, s) for h in hooks for s in sources], "probes"):
        probe_fits, assemble = _probe_fits(model, ds, hook, source, None, keys, source == "raw", 0, memo)
        assemblers.append((len(probe_fits), assemble))
        fresh += [len(fits) + 1 + CONTROLS.index("random features")] if len(probe_fits) > 1 else []
        fits += probe_fits
    for source in sources:
        fits += _curve_fits(model, ds, main, sizes, source, keys, 0, memo)
    # a fresh model's collinear features converge slowest (nanda-s5-noisy's MLP: 15–20 s, every
    # other fit ≤ 2 s), so those fits run alone, with every core
    scores = iter(_fit_scores(fits, alone=frozenset(fresh)))
    results = [assemble([next(scores) for _ in range(n)]) for n, assemble in assemblers]
    # each curve ends at all clean examples: the probe fitted above, not fitted again
    on_all = {r.features: r.accuracy for r in results if r.hook == main}
    curves = {source: {**{n: next(scores) for n in sizes}, n_clean: on_all[source]} for source in sources}
    return ProbeReport(results, curves)


PROBES: Analysis[ProbeReport] = register_analysis("probes", "Linear probes", probe_report, order=80, groups=True,
                                                  features=True)


# --- figures ------------------------------------------------------------------------------


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
