"""Does a release's report depend on the CPU it runs on? Every analysis that `interp report` runs
on a release, computed in fresh processes at one torch thread — with this CPU's own kernels, as
an AVX2 CPU computes (`interp.testing.AVX2_KERNELS`) and with narrower kernels still
(`NARROW_KERNELS`: torch without SIMD, MKL at SSE4.2, OpenBLAS at Nehalem) — and compared value
for value (`interp.testing.result_differences`: floats to 1e-7, so float64's rounding passes and
an accuracy moved by one example does not).

    python analyses/same_on_every_cpu.py [NAME ...] [--kernels avx2 narrow] [--out runs/same-on-every-cpu]

NAME: releases in models/ (default: all). Each process's results are kept in OUT/NAME/KERNELS.json,
written when complete, so an interrupted run picks up where it stopped; the table goes to the
terminal and OUT/summary.md. Two processes run at once (one per core).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from interp.testing import AVX2_KERNELS, NARROW_KERNELS, result_differences

MODELS = Path(__file__).resolve().parent.parent / "models"
KERNELS = {"own": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
           "avx2": AVX2_KERNELS, "narrow": NARROW_KERNELS}


def worker(release: str, out: Path) -> None:
    """Every analysis the report runs on `release`, as JSON at `out` (written whole, then renamed)."""
    import interp
    from interp.analysis.registry import ANALYSES, analyze, in_report_order

    run = interp.load_run(release)
    results = {name: analyze(run, name).to_dict() for name in in_report_order() if not ANALYSES[name].skip_reason(run)}
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps(results, default=str, sort_keys=True))
    os.replace(partial, out)


def computed(release: Path, kernels: str, out: Path) -> tuple[Path, float]:
    """The results of `release` with `kernels` (kept from an earlier run where present)."""
    path = out / release.name / f"{kernels}.json"
    if path.exists():
        return path, 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--worker", str(release), str(path)],
                          env={**os.environ, **KERNELS[kernels]}, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{release.name} with {kernels} kernels failed:\n{done.stderr[-3000:]}")
    return path, time.perf_counter() - start


def leaves(value) -> int:
    """How many values a JSON result holds."""
    if isinstance(value, dict):
        return sum(map(leaves, value.values()))
    return sum(map(leaves, value)) if isinstance(value, list) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--kernels", nargs="+", default=["avx2", "narrow"], choices=["avx2", "narrow"])
    parser.add_argument("--out", type=Path, default=Path("runs/same-on-every-cpu"))
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], Path(args.worker[1]))
    releases = [MODELS / n for n in args.names] or sorted(p for p in MODELS.iterdir() if (p / "manifest.json").exists())
    missing = [r.name for r in releases if not (r / "manifest.json").exists()]
    if missing:
        raise SystemExit(f"not a release in models/: {', '.join(missing)}")
    jobs = [(release, kernels) for release in releases for kernels in ["own", *args.kernels]]
    with ThreadPoolExecutor(2) as pool:
        paths = dict(zip(jobs, pool.map(lambda job: computed(*job, args.out), jobs)))
    lines = ["| release | kernels | values compared | differing | first difference |", "|---|---|---|---|---|"]
    for release in releases:
        own = json.loads(paths[release, "own"][0].read_text())
        values = leaves(own)
        for kernels in args.kernels:
            found = result_differences(own, json.loads(paths[release, kernels][0].read_text()))
            lines.append(f"| {release.name} | {kernels} | {values} | {len(found)} | {found[0] if found else ''} |")
            print(lines[-1], flush=True)
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"written: {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()
