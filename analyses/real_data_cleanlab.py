"""Real data with noisy labels (issue 29): the memorising net read out without labels, beside
confident learning (cleanlab) on the same splits.

    OMP_NUM_THREADS=1 python analyses/real_data_cleanlab.py [--data digits] [--kind symmetric]
        [--rates 0.2 0.4 0.6 0.8] [--out runs/real-data-cleanlab]

For each noise rate (of `--kind`: symmetric, or pair_flip, each class to the next): trains the
preset (`digits-40`, `mnist5k-40` or `mnist1d-tt-40` with that noise; a finished run directory
is reused), then reads it with the `class_subspaces` analysis (the label-free class-subspace
readout per layer, its raw-input control, noise AUROC from the first layer's label doubt and from
the label-free noise score, `interp.analysis.noise_scores`, which the report's headline gives).
On the same split and the same observed labels, cleanlab 2.x: out-of-sample probabilities from
5-fold `cross_val_predict` of scikit-learn's MLP (256 hidden units), `get_label_quality_scores`
for the AUROC, `find_label_issues` for the flagged examples, and the same MLP retrained on the
examples it keeps. The clean-label ceiling is the preset trained with no noise. Needs `pip
install cleanlab` (the `benchmark` extra). Writes `<out>/<data>.md` and prints every number it
writes (`<out>/<data>-pair_flip.md` for pair-flip noise).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

import interp
from interp.analysis.class_subspaces import INPUT, class_subspace_readout
from interp.training.train import started

PRESET = {"digits": "digits-40", "mnist5k": "mnist5k-40", "mnist1d": "mnist1d-tt-40"}


def trained(spec, out: Path):
    """The run at `out`: loaded when finished, else trained (resumed when interrupted)."""
    if (out / "model.safetensors").exists():
        return interp.load_run(out)
    return interp.train(spec, out, resume=started(out), progress=False)


def cleanlab_row(ds, seed: int = 0) -> dict:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.neural_network import MLPClassifier

    def mlp():
        return MLPClassifier(hidden_layer_sizes=(256,), max_iter=300, random_state=seed)

    x = ds.inputs.numpy()
    train, test = ds.train_mask.numpy(), ds.test_mask.numpy()
    observed, truth, noisy = ds.labels.numpy(), ds.true_labels.numpy(), ds.noisy_mask.numpy()
    probs = cross_val_predict(mlp(), x[train], observed[train], cv=5, method="predict_proba")
    quality = get_label_quality_scores(observed[train], probs)
    issues = find_label_issues(observed[train], probs)
    keep = ~issues
    on_noisy = mlp().fit(x[train], observed[train]).predict(x[test])
    on_kept = mlp().fit(x[train][keep], observed[train][keep]).predict(x[test])
    flagged_noisy = issues & noisy[train]
    return {"auroc": float(roc_auc_score(noisy[train], -quality)) if noisy[train].any() else None,
            "precision": float(flagged_noisy.sum() / max(1, issues.sum())),
            "recall": float(flagged_noisy.sum() / max(1, noisy[train].sum())),
            "test_noisy": float((on_noisy == truth[test]).mean()), "test_kept": float((on_kept == truth[test]).mean())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="digits", choices=list(PRESET))
    parser.add_argument("--kind", default="symmetric", choices=["symmetric", "pair_flip"])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8])
    parser.add_argument("--out", default="runs/real-data-cleanlab")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread per process: several times faster on a loaded 2-core machine
    out = Path(args.out)
    base = interp.get_preset(PRESET[args.data]).spec
    start = time.perf_counter()
    clean_run = trained(replace(base, noise=replace(base.noise, rate=0.0)), out / f"{args.data}-clean")
    ceiling = clean_run.final_metrics
    depth = len(interp.families.family_of(clean_run.model).layer_hooks(clean_run.model))
    layer_names = " / ".join(f"layer {i + 1}" for i in range(depth))
    lines = [f"clean-label ceiling ({PRESET[args.data]} with no noise): test {ceiling['test_acc']:.1%}; "
             f"{args.kind} noise", "",
             f"| noise | memorised | final test | best test (step) | readout {layer_names} (raw inputs) | "
             "noise AUROC, label doubt at layer 1 | noise AUROC, label-free noise score | "
             "its control with no network (raw-input doubt + neighbour vote) | cleanlab AUROC | "
             "cleanlab precision / recall | cleanlab test, noisy → kept | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    print(lines[0])
    for rate in args.rates:
        t0 = time.perf_counter()
        kind = "" if args.kind == "symmetric" else f"{args.kind}-"
        run = trained(replace(base, noise=replace(base.noise, kind=args.kind, rate=rate)),
                      out / f"{args.data}-{kind}{rate:g}")
        m = run.final_metrics
        best = max(run.history, key=lambda row: (row["test_acc"], -row["step"]))
        readout = class_subspace_readout(run)
        layers = [row for row in readout.layers if row.where != INPUT]  # input side first
        ours = time.perf_counter() - t0
        clean = cleanlab_row(run.dataset)
        theirs = time.perf_counter() - t0 - ours
        line = (f"| {rate:.0%} | {m['noisy_observed_acc']:.1%} | {m['test_acc']:.1%} | {best['test_acc']:.1%} "
                f"({best['step']}) | {' / '.join(f'{row.test_acc:.1%}' for row in layers)} "
                f"({readout.control().test_acc:.1%}) | {layers[0].noise_auroc:.3f} | {readout.noise_score_auroc:.3f} | "
                f"{readout.noise_control_auroc:.3f} | "
                f"{clean['auroc']:.3f} | "
                f"{clean['precision']:.2f} / {clean['recall']:.2f} | "
                f"{clean['test_noisy']:.1%} → {clean['test_kept']:.1%} | {ours:.0f} + {theirs:.0f} |")
        lines.append(line)
        print(line, flush=True)
    lines += ["", f"total {time.perf_counter() - start:.0f} s (seconds column: interp's training and analysis + "
                  "cleanlab's six fits)"]
    out.mkdir(parents=True, exist_ok=True)
    name = f"{args.data}.md" if args.kind == "symmetric" else f"{args.data}-{args.kind}.md"
    (out / name).write_text("\n".join(lines) + "\n")
    print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
