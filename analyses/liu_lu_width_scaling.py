"""Liu & Lu 2026: width scaling under label noise — memorised, test and extracted accuracy
against width at two noise rates, as one sweep (`analyses/width_noise.toml`).

    python analyses/liu_lu_width_scaling.py [--out runs/width-noise] [--backend local|ray]

Finished runs are skipped, so an interrupted sweep continues where it stopped. Prints the
summary table and writes summary.{md,json,png} under --out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from interp.sweep import Grid, run_sweep

GRID = Path(__file__).with_name("width_noise.toml")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/width-noise")
    parser.add_argument("--backend", default="local", choices=["local", "ray"])
    args = parser.parse_args()
    start = time.perf_counter()
    summary = run_sweep(Grid.from_toml(GRID), args.out, backend=args.backend)
    print(summary.table())
    print(f"\n{time.perf_counter() - start:.0f} s; summary in {args.out}/summary.png")


if __name__ == "__main__":
    main()
