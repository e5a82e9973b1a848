"""Turn analysis results into files: JSON with every number, figures, tables, and the full report.

`write_analysis` writes one result under `RUN_DIR/analysis/`; `write_report` runs every
registered analysis that applies to a run (`interp.analysis.registry`) and lays each result's own
summary, tables and figures out as a section, after a headline. Nothing here knows an analysis
by name except the headline, which quotes the extraction, and the localisation and the edit in
plain words (`interp.reporting.headline`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..analysis.feature_edit import EDIT, FLAGGED
from ..core.metrics import NO_KNOWN_WRONG
from ..analysis.registry import ANALYSES, Result, analyze, in_report_order
from ..training import rundir
from ..training.rundir import CheckpointError, Run, write_json
from .headline import claims

__all__ = ["ANALYSES", "analyze", "write_analysis", "write_report"]


def write_analysis(run: Run, name: str, result: Result, out_dir: Path | None = None) -> list[Path]:
    """Write `result` as `<name>.json`, its figures and its tables (`<name>.md`) into `out_dir`
    (default RUN_DIR/analysis). Returns the paths written."""
    return _write_analysis(run, name, result, out_dir)[0]


def _write_analysis(run: Run, name: str, result: Result, out_dir: Path | None = None):
    """`write_analysis`, also returning the figures and tables it wrote, so that the report lays
    them out without drawing every figure a second time."""
    out_dir = Path(out_dir or Path(run.path) / "analysis")
    _refuse_links(out_dir)
    data = {"run": str(run.path), "step": run.step, "analysis": name, "result": result.to_dict()}
    paths = [out_dir / f"{name}.json"]
    write_json(paths[0], data)
    figures = result.figures(out_dir, name)
    paths += [figure.path for figure in figures]
    tables = result.tables()
    if tables:
        paths.append(out_dir / f"{name}.md")
        rundir.write_text(paths[-1], "\n\n".join(t.markdown() for t in tables) + "\n")
    return paths, figures, tables


def _refuse_links(out_dir: Path) -> None:
    """Figures are written by path (matplotlib follows a symlink there): refuse an output
    folder that is, or holds, a symbolic link, so no write lands outside it."""
    if os.path.islink(out_dir):
        raise CheckpointError(f"{out_dir} is a symbolic link; choose a real output folder")
    if out_dir.is_dir():
        for entry in out_dir.iterdir():
            if entry.is_symlink():
                raise CheckpointError(f"{entry} is a symbolic link; refusing to write through it")


def _headline(run: Run, results: dict[str, Result]) -> dict[str, Any]:
    from ..core.metrics import phase

    spec, final = run.spec, run.final_metrics
    extraction = results.get("filtration")
    readout = results.get("class_subspaces")  # a task over features: class structure, not harmonics
    rule_claims = []
    if extraction is not None:
        method, acc = extraction.label_free()
        # restricted and excluded logits know the operation: circuit measures, not extractions
        tested = {k: v["test_acc"] for k, v in extraction.rows.items()
                  if k not in ("raw", "restricted", "excluded") and v["test_acc"] is not None}
        best = max(tested, key=tested.get) if tested else None
        auroc = extraction.noise_detection["auroc"] if extraction.noise_detection else None
        noise_method, noise_control, rows = "the label-free extraction", None, []
    elif readout is not None:
        first, top = readout.label_free(), readout.best()
        method, acc = f"class subspaces, {first.where}", first.test_acc
        noise_method, auroc = readout.noise_detection()
        noise_control = readout.noise_control()
        best, tested = f"class subspaces, {top.where}", {f"class subspaces, {top.where}": top.test_acc}
        # each extraction beside the controls that could contradict it, in the headline's table
        rows = [["control: the same readout, raw inputs", readout.control().test_acc],
                ["control: the same readout, an untrained net", first.untrained_test_acc]]
        rule_claims = [{"topic": "The rule", "text": readout.claim()}]
        if "layer_rewind" in results:
            rule_claims.append({"topic": "The memory", "text": results["layer_rewind"].claim()})
        if "feature_edit" in results:  # the weight edit `interp edit` writes on these runs
            edit = results["feature_edit"]
            rule_claims.append({"topic": "The edit (fine-tuned toward a label-free teacher)", "text": edit.claim()})
            rows += [[f"the label-free edit ({edit.steps} steps from step {edit.checkpoint})", edit.row(EDIT).test],
                     ["control: the same steps, flagged examples left out", edit.row(FLAGGED).test]]
        elif "layer_rewind" in results:
            rule_claims.append({"topic": "The edit (a layer rewound, chosen without labels)",
                                "text": results["layer_rewind"].edit_line()})
    else:
        method, acc, best, tested, auroc, noise_method = "none applies", None, None, {}, None, None
        noise_control, rows = None, []
    size = ", ".join(f"{k} {v}" for k, v in vars(spec.model).items()
                     if k not in ("seed", "init", "n_layers", "d_head") and not isinstance(v, bool))
    trained = (f"{run.step} steps" if rundir.imported_from(run) is None
               else "imported (its training not known to interp)")
    derived = rundir.derived_from(run)
    if derived is not None:  # an edited run is reported as such, with the run it came from
        key, record = derived
        trained += f", {key.removesuffix('_from').replace('_', ' ')} from {record.get('run') or 'a run not on disk'}"
    model = (f"{spec.model.arch.replace('_', '-')} network ({size}), {spec.task.describe(markdown=True)}, "
             f"{run.dataset.describe_noise()}, {trained}")
    return {
        "model": model, "phase": phase(final), "raw_test_acc": final["test_acc"],
        "memorised_acc": final["noisy_observed_acc"], "label_free_method": method, "label_free_test_acc": acc,
        "best_method": best, "best_test_acc": tested.get(best),
        "noise_auroc": auroc, "noise_method": noise_method, "noise_control": noise_control, "rows": rows,
        "components": results["localize"].counts() if "localize" in results else {},
        "neuron_parts": results["localize"].parts_counts() if "localize" in results else {},
        "claims": rule_claims + claims(results.get("localize"), results.get("edit")) + _error_claims(results.get("errors"))
        + _sample_claims(run) + _majority_claims(run),
    }


def _majority_claims(run: Run) -> list[dict[str, str]]:
    """A caution where, for some class, another observed label is at least as common among its
    training examples as the true one: every label-free method here reads the observed labels'
    majority (class subspaces, neighbour votes, the early trajectory) and there it sides with the
    noise. Read from the truth, so only where labels are known wrong."""
    ds = run.dataset
    train = ds.train_mask
    if not ds.noisy_mask[train].any():
        return []
    lost = []
    for c in range(ds.p):
        observed = ds.labels[train][ds.true_labels[train] == c]
        if len(observed):
            counts = torch.bincount(observed, minlength=ds.p)
            if int(counts.max()) > 0 and int(counts[c]) <= int(torch.cat([counts[:c], counts[c + 1:]]).max()):
                lost.append(c)
    if not lost:
        return []
    return [{"topic": "Majority", "text": (
        f"for {len(lost)} of {ds.p} classes ({', '.join(map(str, lost[:10]))}{', …' if len(lost) > 10 else ''}) another "
        "observed label is at least as common among the class's training examples as its own: the label-free "
        "readouts, votes and scores here read the observed labels' majority and side with the noise there.")}]


#: a test set this small or smaller gets a caution: one example is at least a point of accuracy
SMALL_TEST = 100


def _sample_claims(run: Run) -> list[dict[str, str]]:
    """A caution where one test example is worth a point or more: the verdicts' 2-point band is
    then two examples or fewer, and the counts of noisy examples are as small."""
    from ..core.metrics import VERDICT_BAND

    ds = run.dataset
    tests, noisy = int(ds.test_mask.sum()), int(ds.noisy_mask.sum())
    if tests > SMALL_TEST:
        return []
    known = f"{noisy} training examples are known to carry a wrong label" if noisy else NO_KNOWN_WRONG
    return [{"topic": "Sample size", "text": (
        f"{tests} test examples: one is {100 / tests:.1f} points of accuracy, so the {VERDICT_BAND * 100:g}-point "
        f"verdict band is {VERDICT_BAND * tests:.1f} of an example; {known}. Read every verdict here as resting on a "
        "few examples.")}]


def headline_rows(headline: dict[str, Any]) -> list[tuple[str, float | None]]:
    """The headline table's rows (name, test accuracy): the raw model, the label-free extraction,
    the best one where it is another, and each control beside what it checks."""
    rows = [("raw model", headline["raw_test_acc"]),
            (f"extracted without labels ({headline['label_free_method']})", headline["label_free_test_acc"])]
    if headline["best_method"] not in (None, headline["label_free_method"]):
        # picked by its test accuracy: an oracle beside the label-free choice, said so
        rows.append((f"best extraction, by test accuracy ({headline['best_method']})", headline["best_test_acc"]))
    return rows + [tuple(row) for row in headline.get("rows", [])]


def _error_claims(errors: Any) -> list[dict[str, str]]:
    """The test errors that follow the training noise's map (`analysis.errors`), when they do."""
    line = None if errors is None else errors.headline()
    return [{"topic": "Test errors", "text": line}] if line else []


def write_report(run: Run, out_dir: Path | str, progress: bool = True, replace: bool = False) -> dict[str, Any]:
    """Run every registered analysis that applies to `run` and write `report.html`
    (self-contained), `report.md` with its PNG figures, and `results.json` with every number
    into `out_dir`. Returns the contents of `results.json`. Analyses that do not apply are
    listed with the reason. A non-empty `out_dir` is refused unless `replace`; the report is
    assembled in a folder beside it and renamed into place, so it is never half written."""
    out_dir = Path(out_dir)
    rundir.refuse_nonempty(out_dir, replace, "report folder")
    if not run.history:
        raise CheckpointError(f"{run.path}: the run has an empty history; nothing to report")
    scratch = rundir.scratch_beside(out_dir)
    try:
        data = _write_report(run, scratch, progress)
        rundir.replace_folder(scratch, out_dir)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return data


def _write_report(run: Run, out_dir: Path, progress: bool) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from ..analysis.plots import plot_history
    from ..core.document import Figure, Section, Table, pct, write
    from ..core.metrics import PHASE_HIGH, PHASE_LOW
    from ..core.tasks import SUBSETS

    skipped = {name: reason for name, a in ANALYSES.items() if (reason := a.skip_reason(run))}
    results: dict[str, Result] = {}
    sections: dict[str, Section] = {}
    for name in tqdm([n for n in in_report_order() if n not in skipped], desc="report", disable=not progress):
        results[name] = result = analyze(run, name)
        _, figures, tables = _write_analysis(run, name, result, out_dir)
        summary = result.summary()
        blocks: list[Any] = [summary] if summary else []
        sections[name] = Section(ANALYSES[name].title, blocks + tables + figures)

    final, headline = run.final_metrics, _headline(run, results)
    plot_history(run.history, out_dir / "training.png", title=f"training curves — phase: {headline['phase']}")
    data = {"run": str(run.path), "step": run.step, "spec": run.spec.to_dict(), "final_metrics": final,
            "headline": headline, "skipped": skipped,
            "analyses": {name: result.to_dict() for name, result in results.items()}}
    write_json(out_dir / "results.json", data)

    top = [
        Section("Headline", [
            f"**Model:** {headline['model']}. **Phase:** {headline['phase']}.",
            *(f"**{claim['topic']}:** {claim['text']}" for claim in headline["claims"]),
            Table(["", "test accuracy"], [[name, pct(acc)] for name, acc in headline_rows(headline)]),
            (f"**Memorised:** {pct(final['noisy_observed_acc'])} of the noisy training labels are fitted. "
             + (f"Noise detection from {headline['noise_method']}: AUROC {headline['noise_auroc']:.4f}"
                + (f" (control, {headline['noise_control'][0]}: {headline['noise_control'][1]:.4f})."
                   if headline["noise_control"] and headline["noise_control"][1] is not None else ".")
                if headline["noise_auroc"] is not None else "Noise detection: no score could be read from this run.")
             if final.get("noisy_observed_acc") is not None else f"{NO_KNOWN_WRONG[0].upper()}{NO_KNOWN_WRONG[1:]}: no "
             "memory to locate."),
        ]),
        Section("Training", [
            Table(["subset", "accuracy", "loss"], [[s, pct(final.get(f"{s}_acc")),
                  "—" if final.get(f"{s}_loss") is None else f"{final[f'{s}_loss']:.4g}"] for s in SUBSETS]),
            f"Phase rule (after Doshi et al.): test ≥ {PHASE_HIGH:.0%} with memorised ≥ {PHASE_HIGH:.0%} is "
            f"coexistence, with memorised ≤ {PHASE_LOW:.0%} full inversion, otherwise partial inversion; "
            f"test < {PHASE_HIGH:.0%} with memorised ≥ {PHASE_HIGH:.0%} is memorisation, otherwise forgetting.",
            Figure(out_dir / "training.png", "accuracy per subset during training (one colour per subset throughout)"),
        ]),
    ]
    rest = [Section(ANALYSES[name].title, [f"Not computed: {reason}."]) for name, reason in skipped.items()]
    write(out_dir, f"interp report: {Path(str(run.path)).name}", top + list(sections.values()) + rest)
    return data
