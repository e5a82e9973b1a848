"""Activation patching on the analytic lookup transformer, whose information flow is known:
head B copies b from position 1 at the last position; the embedding of a at position 0 is read
by head A alone."""

import json

import pytest

import interp
from interp.analysis.patching import corrupted_pairs, patch_sweep
from interp.planted import lookup_transformer
from interp.core.specs import NoiseSpec, TaskSpec


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


def test_patching_over_training_replays_each_checkpoint_into_the_final_model(tmp_path):
    from conftest import small_transformer

    from interp.training.rundir import load_run, trajectory_steps
    from interp.families.base import family_of
    from interp.core.metrics import subset_metrics
    from interp.analysis.patching import patching_over_training
    from interp.training.train import train

    train(small_transformer(), tmp_path, progress=False)
    run = load_run(tmp_path)
    result = interp.analyze(run, "patching_over_training")
    assert result.steps == trajectory_steps(tmp_path) and len(result.steps) >= 3
    # the last checkpoint is the final model: patching from it changes nothing
    for hook, by_name in result.metrics.items():
        assert all(by_name[name][-1] == value for name, value in result.baseline.items()), hook
    # the residual stream after the block decides the logits: patched from the first checkpoint,
    # the final model reads that checkpoint's residual through its own unembedding
    first = load_run(tmp_path, result.steps[0]).model
    family = family_of(run.model)
    _, cache = family.run_with_cache(first, run.dataset.inputs, names_filter="blocks.0.hook_resid_post")
    expected = cache["blocks.0.hook_resid_post"] @ run.model.W_U + run.model.b_U
    assert result.metrics["blocks.0.hook_resid_post"]["test_acc"][0] == subset_metrics(expected, run.dataset)["test_acc"]
    assert patching_over_training(run, hooks=("hook_embed",)).metrics.keys() == {"hook_embed"}
    saved = json.loads(json.dumps(result.to_dict()))
    assert saved["steps"] == result.steps and saved["settled"]["hook_embed"]["test"] == result.settled("hook_embed", "test")
    assert result.summary() and result.tables() and result.figures(tmp_path / "figures", "p")


def test_rule_memory_patching_separates_the_lookups_from_the_rule(planted_union):
    """On the planted union every head and neuron is on one side by construction: the rule heads
    L0H0 (reads a, position 0) and L0H1 (reads b, position 1) feed clusters k=2 and k=5; the lookup
    heads L0H2 (a) and L0H3 (b) feed the lookup neurons (`unclustered`). Corrupting b, as
    `patch_sweep` does, breaks both sides at once; patching between pairs chosen by true label
    parts them."""
    from interp.analysis.patching import label_sources, rule_memory_patching
    from interp.analysis.readout import margins

    model, ds, _ = planted_union
    result = rule_memory_patching(model, ds)
    gen, mem = margins(interp.logits(model, ds.inputs), ds)
    assert result.baseline["test_margin"] == pytest.approx(gen) and result.pairs["memory"] == int(ds.noisy_mask.sum())
    row = {(r["kind"], r["index"], r["position"]): r for r in result.rows}

    def out(head):
        return row[("head output", head, 2)]

    # the memory: a clean pair with the same true label silences a lookup head's pair, and with it
    # the whole memory; a rule head's patch leaves the observed labels winning
    for lookup in ("L0H2", "L0H3"):
        assert out(lookup)["memorised_acc"] == 0 and out(lookup)["memory"] > 0.9 * result.baseline["memorised_margin"]
        assert abs(out(lookup)["rule"]) < 0.05 * gen  # silent on test pairs whatever they read
    for rule in ("L0H0", "L0H1"):
        assert out(rule)["memorised_acc"] == 1 and out(rule)["memory"] < 0.1 * out("L0H2")["memory"]
        assert out(rule)["rule"] > 0.5 * gen
    # per position: each head reads only its own token
    assert row[("head input", "L0H0", 0)]["rule"] > 0.5 * gen and row[("head input", "L0H0", 1)]["rule"] == 0
    assert row[("head input", "L0H3", 1)]["memory"] > 0.9 * result.baseline["memorised_margin"]
    assert row[("head input", "L0H3", 0)]["memory"] == 0
    # clusters, and the path head → cluster → logits: the memory flows L0H2 → unclustered alone
    assert row[("neuron cluster", "unclustered", None)]["rule"] == 0
    assert row[("neuron cluster", "k=2", None)]["rule"] > 0.2 * gen
    assert row[("path", "L0H2 → unclustered", 2)]["memory"] == pytest.approx(out("L0H2")["memory"], rel=1e-4)
    assert abs(row[("path", "L0H2 → k=2", 2)]["memory"]) < 1e-6 and abs(row[("path", "L0H0 → unclustered", 2)]["rule"]) < 1e-6
    assert "head output L0H2" in result.summary().split("; the test margin")[0]
    # the sources: same true label and clean for the memory, another true label for the rule
    noisy = ds.noisy_mask.nonzero().squeeze(1)
    same = label_sources(ds, noisy, same=True)
    assert (ds.true_labels[same] == ds.true_labels[noisy]).all() and not ds.noisy_mask[same].any()
    assert ds.test_mask[same].all()  # a test pair exists for every label here, and is preferred
    test = ds.test_mask.nonzero().squeeze(1)
    other = label_sources(ds, test, same=False)
    assert (ds.true_labels[other] != ds.true_labels[test]).all()
