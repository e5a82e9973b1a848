"""Nanda et al. 2023: the grokked transformer's key frequencies, and restricted / excluded loss
over training.

    python analyses/nanda_key_frequencies.py [--run RUN_DIR] [--every N]

`--run` defaults to runs/nanda-grokking (made by `interp train --preset nanda-grokking --out
runs/nanda-grokking`, ~25 min here); without a trajectory (e.g. `--run nanda-grokking`, the
released model) only the final step is measured. The key frequencies are those of the final
model's embedding, as in the paper; at every checkpoint (every N-th) the script prints the
training loss of the full model, of the restricted logits (MLP activations projected onto the
key-frequency rule directions) and of the excluded logits (those directions removed), and the
test loss. Writes `nanda_key_frequencies.{json,png}` into --out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import interp  # noqa: E402
from interp.training.rundir import trajectory_steps, write_json  # noqa: E402
from interp.analysis.filtration import excluded_logits, restricted_logits  # noqa: E402
from interp.analysis.spectra import transformer_key_frequencies  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default="runs/nanda-grokking")
    parser.add_argument("--every", type=int, default=2, help="use every N-th trajectory checkpoint")
    parser.add_argument("--out", default="reports/nanda-key-frequencies")
    args = parser.parse_args()
    start = time.perf_counter()
    final = interp.load(args.run)
    keys = transformer_key_frequencies(final.model, final.spec.task.op)
    print(f"key frequencies (final W_E): {keys}")
    steps = trajectory_steps(final.path)[:: args.every] if final.path else []
    rows = []
    print(f"{'step':>6} {'train loss':>11} {'restricted':>11} {'excluded':>11} {'test loss':>11}")
    for step in steps + [None]:
        run = final if step is None else interp.load_run(final.path, step=step)
        ds, loss = run.dataset, run.spec.train.loss
        full = interp.subset_metrics(interp.logits(run.model, ds.inputs), ds, loss)
        row = {"step": run.step, "train_loss": full["train_loss"], "test_loss": full["test_loss"],
               "restricted_loss": interp.subset_metrics(restricted_logits(run.model, ds, keys), ds, loss)["train_loss"],
               "excluded_loss": interp.subset_metrics(excluded_logits(run.model, ds, keys), ds, loss)["train_loss"]}
        if rows and rows[-1]["step"] == row["step"]:
            continue
        rows.append(row)
        print(f"{row['step']:>6} {row['train_loss']:>11.4g} {row['restricted_loss']:>11.4g} "
              f"{row['excluded_loss']:>11.4g} {row['test_loss']:>11.4g}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "nanda_key_frequencies.json", {"key_frequencies": keys, "rows": rows})
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in [("train_loss", "train (full)"), ("restricted_loss", "train, restricted"),
                       ("excluded_loss", "train, excluded"), ("test_loss", "test (full)")]:
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], marker="o", label=label)
    ax.set(xlabel="step", ylabel="cross-entropy", yscale="log", title=f"key frequencies {keys}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "nanda_key_frequencies.png", dpi=120)
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
