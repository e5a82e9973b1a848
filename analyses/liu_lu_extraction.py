"""Liu & Lu 2026 at 80% wrong labels: extraction, activation swap, partition vs. filtration,
noisy-first fitting.

    python analyses/liu_lu_extraction.py [--run RUN_DIR_OR_RELEASED_NAME] [--out DIR]

Default: the released `liu-lu-80` network (models/liu-lu-80). A run directory with a checkpoint
trajectory (`interp train --preset liu-lu-80 --out runs/liu-lu-80`) adds the per-example
first-fit steps. Writes the full report (`interp report`) to --out and prints the numbers that
docs/reproductions.md quotes.
"""

from __future__ import annotations

import argparse
import time

import interp
from interp.reporting.report import write_report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default="liu-lu-80")
    parser.add_argument("--out", default="reports/liu-lu-80-reproduction")
    args = parser.parse_args()
    start = time.perf_counter()
    run = interp.load(args.run)
    data = write_report(run, args.out)
    rows = data["analyses"]["filtration"]["rows"]
    print("extraction (test accuracy; memorised = noisy examples vs. their observed labels)")
    for method, m in rows.items():
        print(f"  {method:<26} test {m['test_acc']:6.1%}   memorised {m['noisy_observed_acc']:6.1%}   "
              f"noisy vs true {m['noisy_true_acc']:6.1%}")
    detection = data["analyses"]["filtration"]["noise_detection"]
    print(f"noise detection ({detection['method']}): AUROC {detection['auroc']:.4f}, precision "
          f"{detection['precision']:.3f}, recall {detection['recall']:.3f}")
    print("partition vs. filtration (test accuracy)")
    for score, sweep in data["analyses"]["partition"].items():
        best = max(range(len(sweep["fractions"])), key=lambda i: sweep["filtered_generalisation"]["test_acc"][i])
        print(f"  {score:<12} f^G_part alone best {max(sweep['generalisation']['test_acc']):.1%}; filtered f^G_part "
              f"{sweep['filtered_generalisation']['test_acc'][best]:.1%} at γ_G={sweep['fractions'][best]}; "
              f"whole-network filtration {sweep['filtered_whole']['test_acc']:.1%}")
    fit = data["analyses"]["dynamics"]
    first = next(i for i, s in enumerate(fit["steps"]) if s > 0)
    print(f"noisy-first fitting: at step {fit['steps'][first]}, {fit['noisy_acc'][first]:.1%} of noisy vs "
          f"{fit['clean_acc'][first]:.1%} of clean examples fit their training label; ≥50% fitted at step "
          f"clean {fit['half_fitted']['clean']}, noisy {fit['half_fitted']['noisy']}")
    if not fit["checkpoint_steps"]:
        print("  (no trajectory: per-example first-fit steps need a run directory from interp train)")
    print(f"{time.perf_counter() - start:.0f} s; report in {args.out}/report.html")


if __name__ == "__main__":
    main()
