"""`interp` console script: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import errno
import sys
import time
from pathlib import Path

from .analysis.registry import ANALYSES
from .families.base import family_of
from .core.specs import SpecError
from .core.tasks import SUBSETS
from .training.presets import PRESETS, get_preset
from .training.rundir import CheckpointError, RunDirectoryLocked
from .training.train import RunDirectoryInUse, TrainingDiverged, started, train


def format_metrics(row: dict) -> str:
    """The four subsets' accuracies as a small table."""
    lines = [f"{'subset':<16}{'accuracy':>10}{'loss':>12}"]
    for name in SUBSETS:
        acc, loss = row.get(f"{name}_acc"), row.get(f"{name}_loss")
        if acc is None:
            lines.append(f"{name:<16}{'(empty)':>10}")
        else:
            lines.append(f"{name:<16}{acc:>10.2%}{loss:>12.4f}")
    return "\n".join(lines)


def _cmd_presets(args) -> int:
    if args.name:
        import json

        preset = get_preset(args.name)
        print(f"{preset.name}\n    {preset.description}\n\n{json.dumps(preset.spec.to_dict(), indent=2)}")
        return 0
    for preset in PRESETS.values():
        print(f"{preset.name}\n    {preset.description}\n")
    return 0


def _cmd_train(args) -> int:
    preset = get_preset(args.preset)
    spec = preset.spec.with_overrides(args.set or [])
    out = Path(args.out or f"runs/{preset.name}")
    print(f"training {preset.name} -> {out}")
    start = time.perf_counter()
    run = train(spec, out, resume=args.resume, progress=not args.no_progress, device=args.device)
    seconds = time.perf_counter() - start
    print(f"\nstep {run.step} ({seconds:.1f} s)\n{format_metrics(run.final_metrics)}")
    if args.report:  # the run's own report folder: a newer run replaces an older run's report
        _report(run, out / "report", not args.no_progress, replace=True)
    return 0


def _cmd_analyze(args) -> int:
    from .reporting.report import analyze, write_analysis
    from .training.release import load, resolve
    from .training.rundir import load_run

    run = load(args.run_dir) if args.step is None else load_run(resolve(args.run_dir), step=args.step)
    # a released model's own folder is not written to: its analyses go under reports/NAME
    base = Path(args.run_dir) / "analysis" if Path(args.run_dir).is_dir() else Path("reports") / args.run_dir / "analysis"
    out_dir = Path(args.out) if args.out else base / f"step_{args.step}" if args.step is not None else base
    for name in args.analysis:
        result = analyze(run, name)
        paths = write_analysis(run, name, result, out_dir)
        print(f"{name}: {result.summary()}\n  wrote {', '.join(str(p) for p in paths)}")
    return 0


def format_headline(data: dict) -> str:
    """The first screen of a report: raw vs. extracted accuracy, then the headline's claims in
    plain words (where the rule and the memory live, the edit; `interp.reporting.headline`)."""
    from .reporting.report import headline_rows

    h = data["headline"]
    pct = lambda x: "—" if x is None else f"{x:.1%}"  # noqa: E731
    rows = headline_rows(h)
    lines = [h["model"].replace("`", ""), f"phase: {h['phase']}", "",
             f"{rows[0][0] + ', test accuracy':<52}{pct(rows[0][1]):>8}",
             f"{'noisy training labels memorised':<52}{pct(h['memorised_acc']):>8}",
             *(f"{name + ', test':<52}{pct(acc):>8}" for name, acc in rows[1:])]
    if h["noise_auroc"] is not None:
        lines.append(f"{'noisy labels found without labels, AUROC':<52}{h['noise_auroc']:>8.4f}")
        control = h.get("noise_control")
        if control and control[1] is not None:
            lines.append(f"{'  control with no network, AUROC':<52}{control[1]:>8.4f}")
        lines.append(f"  (by {h['noise_method']}" + (f"; the control: {control[0]})" if control and control[1] is not None
                                                     else ")"))
    lines.append("")
    lines += [f"{claim['topic']}: {claim['text']}" for claim in h.get("claims", [])]
    return "\n".join(lines)


def _report(run, out: Path, progress: bool, replace: bool = False) -> None:
    from .reporting.report import write_report

    data = write_report(run, out, progress=progress, replace=replace)
    print(f"\n{format_headline(data)}\n\nwrote {out / 'report.html'}, {out / 'report.md'}, {out / 'results.json'}")


def _cmd_report(args) -> int:
    from .training.release import load, resolve
    from .training.rundir import load_run

    run = load(args.run_dir) if args.step is None else load_run(resolve(args.run_dir), step=args.step)
    default = Path(args.run_dir) / "report" if Path(args.run_dir).is_dir() else Path("reports") / args.run_dir
    _report(run, Path(args.out or default), not args.no_progress, replace=args.replace)
    return 0


def _cmd_demo(args) -> int:
    from .training.release import load

    if args.train:
        preset = get_preset(args.model)
        out = Path(f"runs/{preset.name}")
        resume = started(out)
        print(f"training {preset.name} -> {out}" + (" (resuming)" if resume else ""))
        run = train(preset.spec, out, resume=resume, progress=not args.no_progress)
    else:
        run = load(args.model)
        print(f"released model {args.model} ({run.path}); --train retrains it")
    _report(run, Path(args.out or f"reports/{args.model}"), not args.no_progress, replace=args.replace)
    return 0


def _cmd_sweep(args) -> int:
    from .sweep import Grid, run_sweep

    out = Path(args.out)
    summary = run_sweep(Grid.from_toml(args.grid), out, backend=args.backend, ray_address=args.ray_address,
                        progress=not args.no_progress, device=args.device)
    print(f"{summary.table()}\n\nwrote {out / 'summary.md'}, {out / 'summary.json'}, {out / 'summary.png'}")
    return 0


def _cmd_export(args) -> int:
    from .training.release import export

    if args.format:
        return _export_state_dict(args)
    dest = export(Path(args.run_dir), Path(args.to), args.command or "", args.trajectory_every, replace=args.replace,
                  trajectory_steps=args.trajectory_steps)
    if args.checks:  # the card's intervention table and edit come from the reporting layer
        from .reporting.cards import refresh_card

        refresh_card(dest)
    print(f"exported {args.run_dir} -> {dest}")
    return 0


def _export_state_dict(args) -> int:
    """`interp export RUN --format F --to FILE.pt`: the final model as another library's state dict."""
    import torch

    from .families.importers import export_state
    from .training.release import load

    run = load(args.run_dir)
    state = export_state(run.model, args.format)
    dest = Path(args.to)
    if dest.exists() and not args.replace:
        raise ValueError(f"{dest} exists; pass --replace to replace it")
    tmp = dest.with_name(dest.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(dest)  # atomic: a reader sees the old file or the whole new one
    print(f"exported {args.run_dir} -> {dest} ({args.format} state dict; torch.load(..., weights_only=True))")
    return 0


def _pair_edit(run):
    from .analysis.edit import chosen_model, edit_search, provenance

    search = edit_search(run.model, run.dataset)
    return search, chosen_model(run.model, run.dataset, search), provenance(search), 0  # masks: no update


def _feature_edit(run):
    from .analysis.feature_edit import forget_noise, provenance

    result, model = forget_noise(run)
    return result, model, provenance(result), result.steps


#: the weight edits `interp edit` writes, by the analysis that reports each, in the order tried:
#: the first whose analysis applies to the run (what its family and dataset support) is written.
#: Each returns (result, model, provenance, the optimiser updates it added to the run's weights)
EDITS = {"edit": _pair_edit, "feature_edit": _feature_edit}


def edit_for(run) -> str:
    """The name of the edit that applies to `run`, or a one-line error with each one's reason."""
    reasons = {name: ANALYSES[name].skip_reason(run) for name in EDITS}
    applies = [name for name, reason in reasons.items() if reason is None]
    if not applies:
        # the edits the model's family can compute first: their reason is the run's, the others' its architecture
        family = family_of(run.model)
        first = sorted(reasons, key=lambda name: family.lacks(run.model, ANALYSES[name].needs) is not None)
        raise ValueError("no weight edit applies to this run: " + "; ".join(
            f"{name}: {reasons[name]}" for name in first))
    return applies[0]


def _cmd_edit(args) -> int:
    from .reporting.report import write_analysis
    from .training.derived import refuse_filled, save_derived_run
    from .training.release import load

    refuse_filled(args.out)
    run = load(args.run_dir)
    name = edit_for(run)
    result, model, provenance, updates = EDITS[name](run)
    edited = save_derived_run(run, model, args.out, "edited_from", provenance, updates)
    paths = write_analysis(edited, name, result, Path(args.out) / "analysis")
    print(f"{result.summary()}\nwrote the edited run {args.out} (same architecture; config.json → edited_from), "
          f"and {', '.join(str(p) for p in paths)}\n{format_metrics(edited.final_metrics)}")
    return 0


def _cmd_import(args) -> int:
    from .training.importing import import_checkpoint

    steps = [step for step, _ in args.checkpoint or []]
    if len(set(steps)) < len(steps):
        raise ValueError(f"--checkpoint gives step {next(s for s in steps if steps.count(s) > 1)} twice: "
                         "one file per step")
    run = import_checkpoint(args.source, args.format, args.task, args.p, group=args.group, dataset=args.dataset,
                            train_fraction=args.train_fraction, split_seed=args.split_seed, act=args.act,
                            loss=args.loss, out=Path(args.out), data=args.data,
                            checkpoints=dict(args.checkpoint or []), step=args.step)
    print(f"imported {args.source} ({args.format}) -> {args.out}: {run.spec.model.arch} network, "
          f"{run.spec.task.describe()}, {run.dataset!r}\n{format_metrics(run.final_metrics)}")
    return 0


def _steps(text: str) -> list[int]:
    """`--trajectory-steps 25,50`: positive step numbers, comma-separated."""
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        steps = []
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"expected positive step numbers separated by commas, got {text!r}")
    return steps


def _step_file(text: str) -> tuple[int, str]:
    """`--checkpoint 500=ckpt_500.pt`: a step and the file of the model at that step."""
    step, _, path = text.partition("=")
    if not step.strip().isdigit() or not path:
        raise argparse.ArgumentTypeError(f"expected STEP=FILE, e.g. 500=ckpt_500.pt, got {text!r}")
    return int(step), path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interp", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the full traceback instead of a one-line error")
    sub = parser.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("presets", help="list the presets and what each reproduces; with NAME, its full spec")
    pr.add_argument("name", nargs="?", help="a preset whose full spec to print")
    pr.set_defaults(func=_cmd_presets)
    p = sub.add_parser("train", help="train a preset and write its run directory")
    p.add_argument("--preset", required=True, help=f"one of: {', '.join(PRESETS)}")
    p.add_argument("--out", help="run directory (default runs/PRESET)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a spec field (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true",
                   help="then write the full report to OUT/report, as `interp report OUT` would")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.set_defaults(func=_cmd_train)
    a = sub.add_parser("analyze", help="run analyses on a run directory; writes RUN_DIR/analysis/")
    a.add_argument("run_dir")
    a.add_argument("--analysis", action="append", choices=list(ANALYSES), required=True,
                   help="analysis to run (repeatable)")
    a.add_argument("--step", type=int, help="analyse the trajectory checkpoint at this step")
    a.add_argument("--out", help="output folder (default RUN_DIR/analysis)")
    a.set_defaults(func=_cmd_analyze)
    r = sub.add_parser("report", help="every analysis as report.html, report.md and results.json")
    r.add_argument("run_dir", help="a run directory or a released model's name")
    r.add_argument("--out", help="output folder (default RUN_DIR/report, or reports/NAME for a released model)")
    r.add_argument("--step", type=int, help="report on the trajectory checkpoint at this step")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--replace", action="store_true", help="replace a non-empty output folder (atomically)")
    r.set_defaults(func=_cmd_report)
    d = sub.add_parser("demo", help="the full report on a network trained with 80%% wrong labels")
    d.add_argument("--model", default="liu-lu-80", help="released model (or, with --train, preset) to report on")
    d.add_argument("--train", action="store_true", help="retrain it (runs/MODEL, resumed if interrupted)")
    d.add_argument("--out", help="output folder (default reports/MODEL)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.add_argument("--replace", action="store_true", help="replace a non-empty output folder (atomically)")
    d.set_defaults(func=_cmd_demo)
    w = sub.add_parser("sweep", help="train a grid of runs (skipping finished ones) and summarise them")
    w.add_argument("grid", help="grid file (TOML): preset, set = {...}, [grid] axes")
    w.add_argument("--out", required=True, help="sweep folder: one run directory per grid point")
    w.add_argument("--backend", default="local", choices=["local", "ray"], help="where runs train")
    w.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.add_argument("--device", default="cpu", help="torch device for training, e.g. cuda")
    w.set_defaults(func=_cmd_sweep)
    from .core.specs import ACTIVATIONS, LOSSES, OPS
    from .families.importers import EXPORT_FORMATS, FORMATS

    i = sub.add_parser("import", help="bring another project's checkpoint in as a run directory")
    i.add_argument("source", help="checkpoint file (.pt, .pth or .safetensors)")
    i.add_argument("--format", required=True, choices=list(FORMATS), help="its layout (docs/checkpoints.md)")
    i.add_argument("--task", choices=list(OPS),
                   help="the operation a model over (a, b) pairs computes (default add; with --group, add is a∘b and "
                        "sub a∘b⁻¹); a model over feature vectors classifies, and takes none")
    i.add_argument("--p", type=int, help="the modulus (read from the checkpoint; checked when given)")
    i.add_argument("--group", metavar="G", help="a model trained on a finite group: a built-in (S5, A5, D59, C3xC3) or "
                                                "a JSON Cayley table file, as task.group takes; its tokens are the "
                                                "elements in the table's order")
    i.add_argument("--data", help="a model over feature vectors (torch-mlp): the built-in data set it classifies "
                                  "(digits, mnist5k, mnist1d), split per class by --train-fraction and --split-seed "
                                  "and scaled as interp loads it; this assumes the model was trained on that very "
                                  "split and scaling (else its test set holds its training examples): a model "
                                  "trained on any other split needs --dataset instead")
    i.add_argument("--dataset", help="the dataset it was trained on: inputs, observed_labels, train_mask "
                                     "[, true_labels] as in a run's dataset.safetensors")
    i.add_argument("--train-fraction", type=float, default=0.3, help="without --dataset: the split's train share")
    i.add_argument("--split-seed", type=int, default=0, help="without --dataset: the split's seed")
    i.add_argument("--act", default="relu", choices=list(ACTIVATIONS), help="MLP activation (default relu)")
    i.add_argument("--loss", default="ce", choices=list(LOSSES), help="the loss it was trained with (default ce)")
    i.add_argument("--checkpoint", action="append", type=_step_file, metavar="STEP=FILE",
                   help="an earlier checkpoint of the same model, in the same format (repeatable): written as the "
                        "run's trajectory, which load_run(step=), layer_rewind and interp edit read; needs --step")
    i.add_argument("--step", type=int, help="the training step of SOURCE (with --checkpoint: after each of theirs; "
                                            "default 0)")
    i.add_argument("--out", required=True, help="run directory to write")
    i.set_defaults(func=_cmd_import)
    ed = sub.add_parser("edit", help="the weight edit that forgets the noise, found without labels, as a new run directory")
    ed.add_argument("run_dir", help="a run directory or a release name")
    ed.add_argument("--out", required=True, help="the edited run directory to write (new or empty)")
    ed.set_defaults(func=_cmd_edit)
    e = sub.add_parser("export", help="copy a run's final model to a release folder with a model card")
    e.add_argument("run_dir")
    e.add_argument("--to", required=True, help="release folder, e.g. models/liu-lu-80 (with --format: a .pt file)")
    e.add_argument("--format", choices=list(EXPORT_FORMATS),
                   help="write the final model as a plain state dict in this layout instead of a release folder "
                        "(torch-mlp: an nn.Sequential of Linear layers)")
    e.add_argument("--command", help="the command that trained it, for the model card")
    e.add_argument("--trajectory-every", type=int, metavar="N",
                   help="also release the weights of the trajectory checkpoints at multiples of N steps")
    e.add_argument("--trajectory-steps", type=_steps, metavar="S,S,...",
                   help="instead, release the weights of these trajectory checkpoints (e.g. 50, or 25,50)")
    e.add_argument("--replace", action="store_true",
                   help="replace a non-empty release folder (atomically; never merged with the old one)")
    e.add_argument("--checks", action="store_true",
                   help="also put the localisation's intervention table and the label-free edit in the model card "
                        "(on a run over features, the analyses that apply to it; computed from the release; slow on a "
                        "transformer over pairs)")
    e.set_defaults(func=_cmd_export)
    return parser


#: errors the CLI reports in one line (exit status 2); anything else is a bug and keeps its traceback
USER_ERRORS = (SpecError, KeyError, ValueError, TypeError, CheckpointError, RunDirectoryInUse, RunDirectoryLocked,
               ImportError, OSError, ConnectionError)


def one_line(err: BaseException) -> str:
    """The error as one line: its message (a KeyError's without quotes), else its type; an
    OSError names the file and the reason (a full disk: ENOSPC)."""
    if isinstance(err, KeyError) and err.args:
        message = str(err.args[0])
    elif isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        message = f"{where}{err.strerror}" + (" (the disk is full)" if err.errno == errno.ENOSPC else "")
    else:
        message = str(err) or type(err).__name__
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt as err:
        if debug:
            raise
        print(f"\ninterp: {one_line(err) if str(err) else 'interrupted'}", file=sys.stderr)
        return 130
    except TrainingDiverged as err:
        if debug:
            raise
        print(f"interp: training diverged: {one_line(err)}", file=sys.stderr)
        return 1
    except USER_ERRORS + (_safetensor_error(),) as err:
        if debug:
            raise
        print(f"interp: error: {one_line(err)}", file=sys.stderr)
        return 2


def _safetensor_error() -> type:
    """safetensors' own error (raised, e.g., when a write fails part-way), a one-line error too."""
    from safetensors import SafetensorError

    return SafetensorError


def console() -> None:
    """The `interp` console script: it owns its process, so it takes the process-wide CPU speed
    settings that the library never makes on import (`interp.core.runtime.fast_cpu_process`)."""
    from .core.runtime import fast_cpu_process

    try:
        fast_cpu_process()
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C during start-up, before main's own handler
        print("\ninterp: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    console()
