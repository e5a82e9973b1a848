"""The suspect-unit ablation's head rows on a token transformer whose memory sits in one head by
construction (the lookups of `interp.planted.planted_feature_mlp`'s data, moved by head L1H0)."""

import pytest
import torch

import interp
from interp.core.specs import RunSpec
from interp.families.token_transformer import TokenTransformer, TokenTransformerSpec
from interp.planted import planted_feature_mlp

BIG = 30.0  # query·key of a head that attends to one position only (softmax weight 1 − e^−225)


def planted_head_transformer(threshold: float = 0.8):
    """Two blocks over one feature token and the readout token, d_model in blocks of the residual:
    FX (the features, at the feature token), X (a tenth of them at the readout token), R (rule units),
    M (lookups), OUT (what the unembedding reads), and two flags (feature token, readout token).
    L0H0 copies the features to the readout token; MLP 0 there computes the planted MLP's rule
    units relu(200·X_c) into R and one lookup per noisy training example into M (its observed
    label, 5·(1 − threshold) on that example alone); in block 1, L1H0 reads M and L1H1 reads R,
    both writing OUT; the other heads write nothing. So L1H0 alone holds the memory."""
    dataset, _, memory = planted_feature_mlp()
    x, classes = dataset.inputs, dataset.p
    d = x.shape[1]
    fx, xr, r, m, out = (torch.arange(d) + 0, torch.arange(d) + d, torch.arange(classes) + 2 * d,
                         torch.arange(classes) + 2 * d + classes, torch.arange(classes) + 2 * d + 2 * classes)
    fflag, rflag = 2 * d + 3 * classes, 2 * d + 3 * classes + 1
    chosen = torch.nonzero(dataset.noisy_mask).flatten()
    spec = TokenTransformerSpec(d_in=d, n_tokens=1, d_model=rflag + 1, n_heads=8, d_head=d,
                                d_mlp=classes + len(chosen), n_layers=2)
    model = TokenTransformer(spec, classes)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.W_E[:, fx] = torch.eye(d)
        model.b_E[fflag] = 1.0
        model.readout_token[rflag] = 1.0
        copy, late = model.blocks[0], model.blocks[1]
        copy.attn.W_Q[0, rflag, 0] = copy.attn.W_K[0, fflag, 0] = BIG  # the readout attends to the features
        copy.attn.W_V[0, fx] = torch.eye(d)
        copy.attn.W_O[0][:, xr] = 0.1 * torch.eye(d)
        copy.mlp.W_in[xr[:classes], :classes] = 200 * torch.eye(classes)
        copy.mlp.W_out[:classes, r] = torch.eye(classes)
        keys = x[chosen] / x[chosen].square().sum(1, keepdim=True)  # ⟨key, x_i⟩ = 1
        copy.mlp.W_in[xr, classes:] = 50 * keys.T  # X is a tenth of x
        copy.mlp.b_in[classes:] = -5 * threshold
        copy.mlp.W_out[classes + torch.arange(len(chosen)), m[dataset.labels[chosen]]] = 1.0
        for head, source, scale in ((0, m, 300.0), (1, r, 1 / 60)):  # memory, rule
            late.attn.W_Q[head, rflag, 0] = late.attn.W_K[head, rflag, 0] = BIG  # the readout attends to itself
            late.attn.W_V[head][source, :classes] = torch.eye(classes)
            late.attn.W_O[head][:classes, out] = scale * torch.eye(classes)
        model.W_U[out] = torch.eye(classes)
    run = interp.Run(RunSpec(task=dataset.task, model=spec), model.eval(), [], 0, None, dataset)
    return run, memory


@pytest.fixture(scope="module")
def result():
    from interp.analysis.suspect_neurons import suspect_neurons

    return suspect_neurons(planted_head_transformer()[0], directions=1)


def test_the_planted_transformer_memorises_every_wrong_label_and_keeps_the_rule(result):
    assert (result.final_memorised, result.final_test) == (1.0, 1.0)


def test_the_memory_head_ranks_first_and_ablating_it_forgets_the_noise_beyond_random(result):
    late = [r for r in result.rows if r.layer == "blocks.1.attn.hook_z" and r.kind == "heads"]
    first = late[0]  # the most suspect head, ranked by label doubt alone
    assert first.names == ["L1H0"] and (first.memorised, first.test) == (0.0, 1.0)
    assert first.random_memorised == 7 / 8 and first.verdict == "memorising"  # each of the 8 heads alone, averaged
    rule = next(r for r in late if r.names == ["L1H1"])  # the rule head: test falls, the memory stays
    assert rule.memorised == 1.0 and rule.test < 0.5 and rule.verdict == "generalising"


def test_a_whole_attention_layer_is_scored_beside_as_many_random_heads_of_the_model(result):
    rows = {r.layer: r for r in result.rows if r.kind == "attention"}
    assert rows["blocks.0.attn.hook_z"].units == 8 and rows["blocks.0.attn.hook_z"].test < 0.5  # the copy is gone
    late = rows["blocks.1.attn.hook_z"]  # nothing reaches the logits: every class ties (memorised: observed 0)
    assert (late.memorised, late.test) == (pytest.approx(0.222, abs=1e-3), 0.25) and late.random_test > 0.4
    assert "all 8 heads" in result.tables()[0].rows[-1][1]


def test_each_mlp_is_ranked_neuron_by_neuron_and_ablated_whole_beside_random_mlp_neurons():
    """MLP 0 holds 4 rule units and one lookup per noisy example: its most suspect neurons, as
    many as the lookups, are the lookups (memorised 0, test kept; as many random neurons of it
    hit the rule). MLP 1 writes nothing: ablating it whole changes nothing, and its control draws
    from both MLPs."""
    from interp.analysis.suspect_neurons import suspect_neurons

    run, memory = planted_head_transformer()
    width = 4 + len(memory)
    result = suspect_neurons(run, shares=(len(memory) / width,), directions=1)
    lookups = next(r for r in result.rows if r.layer == "blocks.0.mlp.hook_post" and r.kind == "neurons")
    assert (lookups.units, lookups.memorised, lookups.test) == (len(memory), 0.0, 1.0)
    assert lookups.random_test < 0.9 and lookups.verdict == "memorising"
    whole = {r.layer: r for r in result.rows if r.kind == "MLP"}
    assert (whole["blocks.1.mlp.hook_post"].memorised, whole["blocks.1.mlp.hook_post"].test) == (1.0, 1.0)
    first = whole["blocks.0.mlp.hook_post"]  # no rule unit and no lookup left: every class ties
    assert (first.memorised, first.test) == (pytest.approx(0.222, abs=1e-3), 0.25) and first.random_test > 0.5


def test_a_rewound_layer_is_named_by_the_module_its_weights_share():
    """The token transformer's first group is the embedding with block 0 (not `W_E`), its last the
    unembedding; an MLP's groups keep their module names."""
    from interp.analysis.layer_rewind import layer_names
    from interp.families.mlp import MLPNet, MLPSpec

    for model, names in ((planted_head_transformer()[0].model, ["embed + blocks.0", "blocks.1", "unembed"]),
                         (MLPNet(MLPSpec(d_in=4, widths=(3, 3)), 2), ["blocks.0.linear", "blocks.1.linear", "unembed"])):
        assert layer_names(interp.families.family_of(model).layer_parameters(model)) == names
