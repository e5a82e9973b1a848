"""The library leaves its caller's process alone: importing `interp`, analysing and training
change neither flush-to-zero, glibc's malloc thresholds nor matplotlib's backend."""

import torch

from interp.core.runtime import denormals_flushed, flush_denormals


def test_import_analysis_and_training_change_nothing_process_wide(fresh_interpreter):
    # the probe ran in a fresh interpreter (conftest.py), so nothing imported or set by other
    # tests can hide a change; its matplotlib backend was svg, so that a switch to Agg would show
    assert fresh_interpreter["before"] == fresh_interpreter["after"]
    assert fresh_interpreter["before"][3] == "svg"


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
