import torch

from interp import NoiseSpec, TaskSpec, build_model, logits, make_dataset
from interp.analysis.filtration import compare_extractions, detect_noise, excluded_logits, filter_residue_weights, key_frequency_filter, restricted_logits, resynthesize, rule_directions, swap_activation
from interp.analysis.neurons import dominant_split
from interp.planted import gromov_solution

P = 31


def planted_memoriser(seed=0, noise_scale=0.3):
    """Gromov's generalising solution plus dense random weights: the structure f^G must find."""
    net, truth = gromov_solution(P, 200, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in (net.U, net.V, net.W):
            w.add_(torch.randn(w.shape, generator=gen) * noise_scale * w.abs().max())
    return net, truth


def grid():
    return make_dataset(TaskSpec(p=P, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.5, seed=2))


def test_split_of_a_pure_solution_is_the_solution():
    net, _ = gromov_solution(P, 100, seed=3)
    g, r = dominant_split(net, "add")
    x = grid().inputs
    torch.testing.assert_close(logits(g, x), logits(net, x), atol=1e-5, rtol=1e-4)
    assert max(float(w.detach().abs().max()) for w in (r.U, r.V, r.W)) < 1e-5


def test_split_parts_add_up_and_f_g_recovers_the_planted_rule():
    net, truth = planted_memoriser()
    g, r = dominant_split(net, "add")
    for name in ("U", "V", "W"):
        torch.testing.assert_close(getattr(g, name) + getattr(r, name), getattr(net, name))
    ds = grid()
    assert (logits(g, ds.inputs).argmax(-1) == ds.true_labels).double().mean() > 0.99


def test_resynthesis_of_a_pure_solution_is_exact():
    net, _ = gromov_solution(P, 100, seed=4)
    x = grid().inputs
    torch.testing.assert_close(logits(resynthesize(net, "add"), x), logits(net, x), atol=1e-5, rtol=1e-4)


def test_key_frequency_filter():
    net, truth = gromov_solution(P, 90, n_freqs=3, seed=5)
    freqs = sorted(set(truth["freq"].tolist()))
    x = grid().inputs
    torch.testing.assert_close(logits(key_frequency_filter(net, "add", freqs), x), logits(net, x),
                               atol=1e-5, rtol=1e-4)
    removed = key_frequency_filter(net, "add", freqs[:1])
    assert float(removed.U.detach()[truth["freq"] != freqs[0]].abs().max()) < 1e-5


def test_swap_activation():
    net, _ = gromov_solution(P, 50, seed=6)
    x = grid().inputs
    torch.testing.assert_close(logits(swap_activation(net, "quadratic"), x), logits(net, x))
    assert not torch.allclose(logits(swap_activation(net, "abs"), x), logits(net, x))


def test_detect_noise_finds_a_planted_mask():
    ds = grid()
    perfect = torch.nn.functional.one_hot(ds.true_labels, P).float() * 10
    found = detect_noise(perfect, ds)
    assert found["auroc"] == 1.0 and found["precision"] == 1.0 and found["recall"] == 1.0
    assert found["n_noisy"] == int(ds.noisy_mask.sum())
    random = detect_noise(torch.randn(len(ds.inputs), P, generator=torch.Generator().manual_seed(0)), ds)
    assert 0.4 < random["auroc"] < 0.6


def test_compare_extractions_on_a_planted_two_layer_net():
    net, _ = planted_memoriser(seed=1)
    result = compare_extractions(net, grid())
    assert {"raw", "f^G", "f^R", "resynthesized"} <= set(result.rows)
    assert result.rows["resynthesized"]["test_acc"] == 1.0
    assert result.noise_detection["auroc"] == 1.0
    table = result.tables()[0]
    assert table.header[:5] == ["method", "clean", "noisy vs observed", "noisy vs true", "test"]
    assert [row[0] for row in table.rows] == list(result.rows)
    assert dict((row[0], row[4]) for row in table.rows)["resynthesized"] == "100.0%"


def test_transformer_restricted_and_excluded(transformer_spec):
    model = build_model(transformer_spec.model, transformer_spec.task.p)
    ds = make_dataset(transformer_spec.task, transformer_spec.noise)
    q = rule_directions(ds, [1, 2])
    excluded = excluded_logits(model, ds, [1, 2]).double()
    assert (q.T @ excluded).abs().max() < 1e-4
    every = list(range(1, ds.p // 2 + 1))
    torch.testing.assert_close(excluded_logits(model, ds, []), logits(model, ds.inputs))  # nothing excluded
    restricted = restricted_logits(model, ds, every)
    assert restricted.shape == (len(ds.inputs), ds.p)
    filtered = filter_residue_weights(model, "add", every, ("W_E", "W_U"))  # every frequency: unchanged
    torch.testing.assert_close(logits(filtered, ds.inputs), logits(model, ds.inputs), atol=1e-5, rtol=1e-4)
    result = compare_extractions(model, ds)
    assert {"raw", "restricted", "excluded", "W_U filter"} <= set(result.rows)


def test_unembedding_swaps_need_no_forward_and_change_no_bit(transformer_spec, two_layer_spec):
    """compare_extractions scores its W_U-only filters from one forward of the original model
    (`unembedding_input`, then `unembed` per filtered copy): bit for bit each copy's own forward.
    The raw logits and the excluded and diagonal filters from the raw table are bit for bit the
    same as computed from the model."""
    from interp.analysis.filtration import diagonal_filter_logits
    from interp.families.base import family_of

    for spec in (transformer_spec, two_layer_spec):
        model = build_model(spec.model, spec.task.p)
        ds = make_dataset(spec.task, spec.noise)
        family = family_of(model)
        with torch.no_grad():
            shared = family.unembedding_input(model, ds.inputs)
            raw = logits(model, ds.inputs)
            assert torch.equal(family.unembed(model, shared), raw)
            for freqs in ([1], [2, 5], list(range(1, ds.p // 2 + 1))):
                filtered = filter_residue_weights(model, "add", freqs, ("W_U",))
                assert torch.equal(family.unembed(filtered, shared), logits(filtered, ds.inputs))
                assert not torch.equal(family.unembed(filtered, shared), raw) or len(freqs) == ds.p // 2
            assert torch.equal(excluded_logits(model, ds, [1, 2], raw), excluded_logits(model, ds, [1, 2]))
            assert torch.equal(diagonal_filter_logits(model, ds, [1, 2], raw), diagonal_filter_logits(model, ds, [1, 2]))


def test_function_space_filter_recovers_the_rule_under_planted_spikes():
    """A logit table made of the rule at two frequencies, cos(2πk(a+b−c)/p), plus large spikes
    that move 15% of the pairs to a wrong class: the 8 components of those frequencies carry the
    most energy, and keeping them gives back a + b on every pair."""
    from interp.analysis.filtration import function_space_filter

    p = 23
    a, b = torch.arange(p).repeat_interleave(p), torch.arange(p).repeat(p)
    c = torch.arange(p)
    table = sum(torch.cos(2 * torch.pi * k * ((a + b)[:, None] - c[None]) / p) for k in (3, 7))
    gen = torch.Generator().manual_seed(0)
    spiked = torch.randperm(p * p, generator=gen)[: int(0.15 * p * p)]
    wrong = ((a + b)[spiked] + 1 + torch.randint(0, p - 1, (len(spiked),), generator=gen)) % p
    table[spiked, wrong] += 4.0
    assert not torch.equal(table.argmax(-1), (a + b) % p)  # the spikes win on their pairs
    assert torch.equal(function_space_filter(table, p, 8).argmax(-1), (a + b) % p)


def test_diagonal_blocks_hold_every_function_of_a_plus_or_minus_b():
    from interp.core import fourier

    p = 13
    a, b = torch.arange(p).repeat_interleave(p), torch.arange(p).repeat(p)
    every = list(range(1, p // 2 + 1))
    g = torch.randn(p, 2, dtype=torch.float64)
    table = torch.stack([g[(a + b) % p, 0], g[(a - b) % p, 1]], 1)
    assert torch.allclose(fourier.project_grid(table, p, fourier.grid_blocks(p, every, cross=False)), table)
    # a function of a alone lives off the diagonal: only its mean survives
    alone = g[a, :1]
    kept = fourier.project_grid(alone, p, fourier.grid_blocks(p, every, cross=False))
    assert torch.allclose(kept, alone.mean().expand_as(kept))


def test_diagonal_filter_extracts_the_planted_transformer_rule():
    """The union of the closed-form rule transformer (frequencies 2, 5, 9) and lookups that
    store 20% wrong labels: keeping the logits' (k, k) blocks at the rule's frequencies gives back
    a + b everywhere, with no memorised label left, and flags exactly the noisy pairs."""
    from interp.analysis.filtration import detect_noise, diagonal_filter_logits
    from interp.core.metrics import subset_metrics
    from interp.planted import planted_transformer

    ds = make_dataset(TaskSpec(p=23, train_fraction=0.6), NoiseSpec(kind="wrong", rate=0.2, seed=4))
    built = planted_transformer(ds)
    assert subset_metrics(logits(built.model, ds.inputs), ds)["noisy_observed_acc"] == 1.0
    filtered = diagonal_filter_logits(built.model, ds, [2, 5, 9])
    m = subset_metrics(filtered, ds)
    assert m["test_acc"] == 1.0 and m["noisy_true_acc"] == 1.0 and m["noisy_observed_acc"] == 0.0
    assert detect_noise(filtered, ds)["auroc"] == 1.0
    # keeping frequencies the rule does not use loses it
    assert subset_metrics(diagonal_filter_logits(built.model, ds, [3, 4, 6]), ds)["test_acc"] < 0.5


def test_the_label_free_row_is_the_label_free_extraction():
    """compare_extractions' label-free row (the method `label_free()` names, and its scores) is
    `label_free_logits` scored alone, bit for bit, on each of its four cases: two-layer on Z_p
    (re-synthesis) and on a group (f^G), transformer on the (a, b) grid (diagonal filter) and on
    a group (W_E+W_U filter). The model cards' test reads the cheaper one."""
    from interp import RunSpec, TrainSpec, TransformerSpec, TwoLayerSpec, subset_metrics
    from interp.analysis.filtration import LABEL_FREE, label_free_logits

    small = TransformerSpec(d_model=16, n_heads=2, d_head=8, d_mlp=32)
    cases = [(TaskSpec(p=7, train_fraction=0.5), TwoLayerSpec(width=16)),
             (TaskSpec(group="S3", train_fraction=0.5), TwoLayerSpec(width=16)),
             (TaskSpec(p=7, train_fraction=0.5), small),
             (TaskSpec(group="S3", train_fraction=0.5), small)]
    methods = []
    for task, model_spec in cases:
        spec = RunSpec(task, NoiseSpec(kind="wrong", rate=0.3, seed=1), model_spec, TrainSpec())
        model, ds = build_model(spec.model, spec.task.p), make_dataset(spec.task, spec.noise)
        with torch.no_grad():
            method, extracted = label_free_logits(model, ds)
        result = compare_extractions(model, ds)
        assert result.label_free()[0] == method and result.rows[method] == subset_metrics(extracted, ds, "ce")
        methods.append(method)
    assert methods == [LABEL_FREE[0], LABEL_FREE[3], LABEL_FREE[1], LABEL_FREE[2]]
