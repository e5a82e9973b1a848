"""Batched single-neuron ablation scan vs. one hooked forward pass per neuron.

    python benchmarks/ablation_scan.py RUN_DIR [--units N]

The hooked scan is timed on the first N units (default 64) and scaled to all of them; both
scans' numbers are checked to agree on those units. Times are the best of three batched and
two hooked scans, as in run_all.py: this VM's speed drifts between seconds.
"""

from __future__ import annotations

import argparse

from train_step import best_block

import interp
from interp.analysis.ablation import scan_units, scan_units_hooked


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--units", type=int, default=64)
    args = parser.parse_args()
    run = interp.load_run(args.run_dir)
    loss = run.spec.train.loss
    batched = scan_units(run.model, run.dataset, loss=loss)  # warm-up: both timings below are of warm code
    t_batched = best_block(lambda: scan_units(run.model, run.dataset, loss=loss), 1, 3)
    n = len(batched.metrics["test_acc"])
    hooked = scan_units_hooked(run.model, run.dataset, batched.hook_name, args.units, loss=loss)
    t_hooked = best_block(lambda: scan_units_hooked(run.model, run.dataset, batched.hook_name, args.units, loss=loss),
                          1, 2) / args.units * n
    worst = max(abs(a - b) for key in ("test_acc", "noisy_observed_acc", "clean_loss")
                for a, b in zip(batched.metrics[key][: args.units], hooked.metrics[key]))
    print(f"{args.run_dir}: {n} units, {len(run.dataset.inputs)} pairs")
    print(f"batched scan        {t_batched:8.2f} s")
    print(f"hooked, per unit    {t_hooked:8.2f} s (extrapolated from {args.units} units)")
    print(f"speed-up            {t_hooked / t_batched:8.1f}x   (largest difference on the shared units: {worst:.2e})")


if __name__ == "__main__":
    from interp.core.runtime import fast_cpu_process

    fast_cpu_process()  # what the `interp` console script does: benchmarks time its settings
    main()
