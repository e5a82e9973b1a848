"""CPU runtime settings: flush-to-zero must survive a training context on the calling thread."""

import pytest
import torch

from interp.runtime import FLUSH_BY_DEFAULT, flush_denormals


@pytest.mark.skipif(not FLUSH_BY_DEFAULT, reason="INTERP_KEEP_DENORMALS is set")
def test_denormals_stay_flushed_after_a_flush_denormals_block():
    tiny = torch.tensor([1e-30])
    with flush_denormals():
        assert (tiny * 1e-10).item() == 0.0
    # after training (which runs in this block), analyses on this thread still flush
    assert (tiny * 1e-10).item() == 0.0
