"""Maini et al.'s count (`example_flips`): the units of a layer whose zero-ablation flips one
training example, on the planted MLP whose memory is one lookup unit per noisy example."""

import pytest
import torch

import interp
from interp.analysis.example_flips import (
    SAMPLE, counted_examples, example_flips, flip_counts, grid, pushes)
from interp.families.base import in_float64
from interp.planted import planted_feature_mlp
from planted_runs import write_planted_feature_run


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    dataset, model, memory = planted_feature_mlp(spread=1.0)
    return write_planted_feature_run(tmp_path_factory.mktemp("flips") / "run", dataset, model, memory), memory


def test_the_grid_of_sizes():
    for width in (1, 2, 10, 64, 512):
        sizes = grid(width)
        assert sizes[0] == 1 and sizes[-1] == width and sizes == sorted(set(sizes))
        assert all(b / a <= 1.5 for a, b in zip(sizes, sizes[1:]) if a >= 4)
    assert grid(10) == [1, 2, 3, 4, 5, 6, 7, 9, 10]


def test_a_memorised_example_flips_with_its_one_lookup_unit(planted_run):
    """Each memorised example of the planted net holds its wrong label in one lookup unit of
    block 1 (5·(1 − 0.8) × 300 on the readout); the rule's unit pushes toward the true class.
    Its push ranks the lookup first, and zeroing it alone flips the prediction: a count of 1 on
    every memorised example, the unit its own lookup; in random order the lookup comes late."""
    path, memory = planted_run
    run = interp.load_run(path)
    ds, model = run.dataset, in_float64(run.model)
    chosen = counted_examples(run)
    memorised = chosen["memorised"]
    assert len(memorised) == min(SAMPLE, int(ds.noisy_mask.sum()))  # every noisy label is memorised
    assert bool((ds.noisy_mask[memorised] & ds.train_mask[memorised]).all())
    assert not bool(ds.noisy_mask[chosen["clean"]].any())
    hook = "blocks.1.hook_post"
    push = pushes(model, ds.inputs[memorised], hook)
    # the readout is linear after block 1: the push is the activation × the readout's difference
    _, cache = interp.families.family_of(model).run_with_cache(model, ds.inputs[memorised])
    top2 = interp.families.family_of(model).forward(model, ds.inputs[memorised]).topk(2, dim=-1).indices
    weight = model.unembed.weight.detach()
    expected = cache[hook] * (weight[top2[:, 0]] - weight[top2[:, 1]])
    torch.testing.assert_close(push, expected, atol=1e-9, rtol=0)
    # the noisy training examples in index order are the lookups in order
    noisy = ds.noisy_mask.nonzero().squeeze(1).tolist()
    lookup = torch.tensor([memory[noisy.index(i)] for i in memorised.tolist()])
    ranked = torch.sort(-push, dim=1, stable=True).indices
    assert torch.equal(ranked[:, 0], lookup)
    assert flip_counts(model, ds.inputs[memorised], hook, ranked) == [1] * len(memorised)
    # two other lookups (silent on this example) first, then its own: exactly three units zeroed
    width = push.shape[1]
    others = [torch.tensor([u for u in memory if u != own][:2]) for own in lookup.tolist()]
    late = torch.stack([torch.cat([o, torch.tensor([own]), torch.tensor([u for u in range(width)
                                                                         if u != own and u not in o.tolist()])])
                        for o, own in zip(others, lookup.tolist())])
    assert flip_counts(model, ds.inputs[memorised], hook, late) == [3] * len(memorised)
    result = example_flips(run)
    layer = next(r for r in result.layers if r.layer == hook)
    assert layer.counts["memorised"]["ranked"] == [1] * len(memorised) and layer.median("memorised") == 1
    assert layer.median("memorised", "random") > 10
    assert "a memorised example flips after a median 1 of" in result.summary()


def test_a_count_is_none_where_the_whole_layer_does_not_flip(planted_run):
    """Zeroing every unit of block 1 leaves the readout's bias alone (zero): every logit ties and
    the prediction is the first class. A clean example of class 0 whose own rule unit (unit 0)
    comes last never flips: each unit before it only lowers another class's logit."""
    path, _ = planted_run
    run = interp.load_run(path)
    ds, model = run.dataset, in_float64(run.model)
    zero = ((ds.true_labels == 0) & ds.train_mask & ~ds.noisy_mask).nonzero().squeeze(1)[:3]
    width = model.unembed.weight.shape[1]
    last = torch.cat([torch.arange(1, width), torch.tensor([0])]).expand(len(zero), -1)
    assert flip_counts(model, ds.inputs[zero], "blocks.1.hook_post", last) == [None] * 3
    first = torch.arange(width).expand(len(zero), -1)  # its rule unit first: another class wins at once
    assert flip_counts(model, ds.inputs[zero], "blocks.1.hook_post", first) == [1] * 3


def test_it_is_skipped_without_noisy_labels(planted_run, tmp_path):
    dataset, model, memory = planted_feature_mlp(spread=1.0, noise_rate=0.0)
    run = interp.load_run(write_planted_feature_run(tmp_path / "clean", dataset, model, memory))
    with pytest.raises(ValueError, match="no training label is known to be wrong"):
        interp.analyze(run, "example_flips")


def flips(memorised, clean, memorised_random, clean_random, width=10):
    from interp.analysis.example_flips import LayerFlips

    return LayerFlips("layer", width, {"memorised": {"ranked": memorised, "random": memorised_random},
                                       "clean": {"ranked": clean, "random": clean_random}})


def test_the_median_is_never_a_mix_of_a_count_and_never():
    """The lower median: with half the examples never flipping it is the largest count, with more
    than half "never" (None) — not the average of a count and the stand-in for never."""
    assert flips([5, 5, None, None], [1], [1], [1]).median("memorised") == 5
    assert flips([5, None, None], [1], [1], [1]).median("memorised") is None
    assert flips([2, 3, 9], [1], [1], [1]).median("memorised") == 3
    assert flips([], [1], [1], [1]).median("memorised") is None


def test_maini_et_al_s_contrast_is_read_against_the_random_order():
    from interp.analysis.example_flips import contrast

    assert "as Maini et al. found" in contrast(flips([2, 2, 2], [4, 4, 4], [8, 8, 8], [8, 8, 8]))
    # fewer by push, and fewer in random order too: memorised predictions move more easily
    assert "but so in random order (5 against 8)" in contrast(flips([2, 2, 2], [4, 4, 4], [5, 5, 5], [8, 8, 8]))
    assert "no fewer for the memorised" in contrast(flips([4, 4, 4], [4, 4, 4], [8, 8, 8], [8, 8, 8]))
    assert "no comparison" in contrast(flips([2], [], [8], []))
    assert "no comparison" in contrast(flips([None, None, 2], [4], [8], [8]))
    # a random order where both need the whole layer cannot tell them apart; one where the clean never flip can
    assert "cannot tell them apart" in contrast(flips([2, 2, 2], [4, 4, 4], [10, 10, 10], [10, 10, 10]))
    assert "but so in random order (5 against never)" in contrast(flips([2, 2, 2], [4, 4, 4], [5, 5, 5], [None] * 3))
    assert "but so in random order (3 against never)" in contrast(flips([2, 2, 2], [None] * 3, [3, 3, 3], [None] * 3))
    assert "no comparison" in contrast(flips([10, 10, 10], [None] * 3, [3, 3, 3], [None] * 3))  # the whole layer


def test_flip_counts_run_on_the_model_in_its_own_type(planted_run):
    """float32 as loaded, float64 as the analysis runs it: the same counts."""
    path, _ = planted_run
    run = interp.load_run(path)
    ds = run.dataset
    chosen = counted_examples(run)["memorised"][:5]
    order = torch.arange(run.model.unembed.weight.shape[1]).expand(len(chosen), -1)
    assert flip_counts(run.model, ds.inputs[chosen], "blocks.1.hook_post", order) == \
        flip_counts(in_float64(run.model), ds.inputs[chosen], "blocks.1.hook_post", order)
