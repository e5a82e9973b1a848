"""Activation patching on the analytic lookup transformer, whose information flow is known:
head B copies b from position 1 at the last position; the embedding of a at position 0 is read
by head A alone."""

import interp
from interp.patching import corrupted_pairs, patch_sweep
from interp.planted import lookup_transformer
from interp.specs import NoiseSpec, TaskSpec


def test_patching_finds_where_b_flows_in_the_lookup_transformer():
    ds = interp.make_dataset(TaskSpec(p=13, train_fraction=0.6), NoiseSpec(kind="wrong", rate=0.3, seed=2))
    model, _ = lookup_transformer(ds, d_head=8)
    sweep = patch_sweep(model, ds)
    assert sweep.baseline["noisy_observed_acc"] == 1.0
    # the corrupted source changes b only: patching a's position changes nothing ...
    assert sweep.metrics["hook_embed"][0]["noisy_observed_acc"] == 1.0
    # ... patching b's embedding, or the attention output at the last position, breaks the lookups
    # (a pair survives only where the corrupted pair is itself stored with the same wrong label)
    assert sweep.metrics["hook_embed"][1]["noisy_observed_acc"] < 0.1
    assert sweep.metrics["blocks.0.hook_attn_out"][2]["noisy_observed_acc"] < 0.1
    # the attention output at positions 0 and 1 is never read by the last position's MLP
    assert sweep.metrics["blocks.0.hook_attn_out"][1]["noisy_observed_acc"] == 1.0


def test_corrupted_pairs_change_b_alone():
    ds = interp.make_dataset(TaskSpec(p=7, train_fraction=0.5), NoiseSpec())
    source = corrupted_pairs(ds.inputs, 7, seed=3)
    assert (source[:, 0] == ds.inputs[:, 0]).all() and (source[:, 1] != ds.inputs[:, 1]).all()
