"""Does a release's report depend on the CPU it runs on? Every analysis that `interp report` runs
on a release, computed in fresh one-thread processes — with this CPU's own kernels, then with
others (`interp.testing`: `AVX2_KERNELS`, an AVX-512 CPU computing as an AVX2 one does;
`GEMM_KERNELS`, other matrix kernels in MKL and OpenBLAS; `NARROW_KERNELS`, both and torch's own
kernels without SIMD) — and compared value for value (`interp.testing.result_differences`: how many
values differ beyond 1e-7, float64's rounding, and how many beyond 1e-5, float32's).

    python analyses/same_on_every_cpu.py [NAME ...] [--kernels avx2 gemm narrow] [--out runs/same-on-every-cpu]

NAME: releases in models/ (default: all). Each process's results are kept in
OUT/CODE/NAME/KERNELS.json, CODE a hash of interp's source, written when complete: an
interrupted run picks up where it stopped, and a change to the code starts afresh. The table goes
to the terminal and OUT/CODE/summary.md. Two processes run at once (one per core).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from interp.testing import AVX2_KERNELS, GEMM_KERNELS, NARROW_KERNELS, ONE_THREAD, result_differences

ROOT = Path(__file__).resolve().parent.parent
KERNELS = {"own": ONE_THREAD, "avx2": AVX2_KERNELS, "gemm": GEMM_KERNELS, "narrow": NARROW_KERNELS}


def code_hash() -> str:
    """A short hash of the source files of the interp package that compute results (all but
    interp/testing.py, which compares them)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in (ROOT / "interp").rglob("*.py") if p.name != "testing.py"):
        digest.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def worker(release: str, out: Path) -> None:
    """Every analysis the report runs on `release`, as JSON at `out` (written whole, then renamed)."""
    import interp
    from interp.analysis.registry import ANALYSES, analyze, in_report_order

    run = interp.load_run(release)
    results = {name: analyze(run, name).to_dict() for name in in_report_order() if not ANALYSES[name].skip_reason(run)}
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps(results, default=str, sort_keys=True))
    os.replace(partial, out)


def computed(release: Path, kernels: str, out: Path) -> Path:
    """The results of `release` with `kernels` (kept from an earlier run of the same code)."""
    path = out / release.name / f"{kernels}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, __file__, "--worker", str(release), str(path)],
                              env={**os.environ, **KERNELS[kernels]}, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{release.name} with {kernels} kernels failed:\n{done.stderr[-3000:]}")
    return path


def leaves(value) -> int:
    """How many values a JSON result holds."""
    if isinstance(value, dict):
        return sum(map(leaves, value.values()))
    return sum(map(leaves, value)) if isinstance(value, list) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--kernels", nargs="+", default=["avx2", "gemm"], choices=["avx2", "gemm", "narrow"])
    parser.add_argument("--out", type=Path, default=Path("runs/same-on-every-cpu"))
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], Path(args.worker[1]))
    models = ROOT / "models"
    releases = [models / n for n in args.names] or sorted(p for p in models.iterdir() if (p / "manifest.json").exists())
    missing = [r.name for r in releases if not (r / "manifest.json").exists()]
    if missing:
        raise SystemExit(f"not a release in models/: {', '.join(missing)}")
    out = args.out / code_hash()
    jobs = [(release, kernels) for release in releases for kernels in ["own", *args.kernels]]
    with ThreadPoolExecutor(2) as pool:
        paths = dict(zip(jobs, pool.map(lambda job: computed(*job, out), jobs)))
    lines = ["| release | kernels | values compared | differing beyond 1e-7 | beyond 1e-5 | first beyond 1e-5 |",
             "|---|---|---|---|---|---|"]
    for release in releases:
        own = json.loads(paths[release, "own"].read_text())
        for kernels in args.kernels:
            other = json.loads(paths[release, kernels].read_text())
            close, far = result_differences(own, other), result_differences(own, other, rel_tol=1e-5)
            lines.append(f"| {release.name} | {kernels} | {leaves(own)} | {len(close)} | {len(far)} | "
                         f"{far[0] if far else ''} |")
            print(lines[-1], flush=True)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"written: {out / 'summary.md'}")


if __name__ == "__main__":
    main()
