"""The library leaves its caller's process alone: importing `interp`, analysing and training
change neither flush-to-zero, glibc's malloc thresholds nor matplotlib's backend."""

import os
import subprocess
import sys
import textwrap

import torch

from interp.core.runtime import denormals_flushed, flush_denormals

# Run in a fresh interpreter, so nothing imported or set by other tests can hide a change.
_PROBE = textwrap.dedent("""
    import re, threading
    import matplotlib
    import torch

    def heap_grows():
        # glibc serves a 64 MB block with mmap unless M_MMAP_THRESHOLD was raised above it
        def heap():
            for line in open("/proc/self/maps"):
                if line.rstrip().endswith("[heap]"):
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    return hi - lo
            return 0
        before = heap(); block = torch.empty(64 << 20, dtype=torch.uint8); block.fill_(1)
        return heap() - before > (32 << 20)

    def flushed_in_new_thread():
        out = []
        t = threading.Thread(target=lambda: out.append((torch.tensor(1e-30) * 1e-10).item() == 0.0))
        t.start(); t.join()
        return out[0]

    def state():
        return ((torch.tensor(1e-30) * 1e-10).item() == 0.0, flushed_in_new_thread(), heap_grows(),
                matplotlib.get_backend())

    before = state()
    import interp
    from interp.reporting.report import analyze
    spec = interp.get_preset("liu-lu-80").spec.with_overrides(["p=11", "width=17", "steps=20", "eval_every=10"])
    run = interp.train(spec, progress=False)
    analyze(run, "fourier"); analyze(run, "ablation")
    from interp.analysis.plots import plot_history
    import tempfile, pathlib
    plot_history(run.history, pathlib.Path(tempfile.mkdtemp()) / "h.png")
    after = state()
    print(before, after)
    assert before == after, (before, after)
""")


def test_import_analysis_and_training_change_nothing_process_wide():
    # a backend other than the headless default, so that a switch to Agg would show
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]


def test_flush_denormals_is_scoped_to_its_block():
    before = denormals_flushed()
    tiny = torch.tensor([1e-30])
    with flush_denormals():
        assert (tiny * 1e-10).item() == 0.0
    assert denormals_flushed() == before
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            pass
        assert denormals_flushed()  # a caller's own flush-to-zero survives the block too
    finally:
        torch.set_flush_denormal(before)
