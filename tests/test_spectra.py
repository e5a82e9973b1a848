import math

import pytest
import torch

from interp import TaskSpec, build_model, logits, make_dataset
from interp.core.fourier import wrap_phase
from interp.families.two_layer import TwoLayerNet
from interp.planted import gromov_solution
from interp.analysis.spectra import embedding_spectra, neuron_spectra, transformer_key_frequencies
from interp.core.fourier import residue_order
from interp.core.specs import TransformerSpec, TwoLayerSpec


@pytest.mark.parametrize("op", ["add", "sub"])
def test_gromov_solution_is_correct_and_read_back_exactly(op):
    p, width = 97, 500
    net, truth = gromov_solution(p, width, seed=1, op=op)
    ds = make_dataset(TaskSpec(op=op, p=p, train_fraction=0.5))
    assert bool((net(ds.inputs).argmax(-1) == ds.true_labels).all()), "classifies every pair untrained"
    s = neuron_spectra(net, op)
    assert torch.equal(s.freq, truth["freq"])
    for name in ("phase_u", "phase_v", "phase_w"):
        assert wrap_phase(getattr(s, name) - truth[name]).abs().max() < 1e-5
    assert s.phase_error.abs().max() < 1e-5
    torch.testing.assert_close(s.amp_u, torch.ones(width, dtype=torch.float64))
    torch.testing.assert_close(s.amp_w, torch.full((width,), 2 / width, dtype=torch.float64))
    assert s.energy_frac.min() > 1 - 1e-6 and s.ipr.min() > 1 - 1e-6


def test_key_frequencies_of_a_sparse_solution():
    net, truth = gromov_solution(31, 60, n_freqs=3, seed=0)
    s = neuron_spectra(net, "add")
    assert sorted(s.key_set()) == sorted(set(truth["freq"].tolist()))


@pytest.mark.parametrize("p", [7, 31, 97])
def test_primitive_root_generates_the_group(p):
    assert sorted(residue_order("mul", p).tolist()) == list(range(1, p))


def test_multiplication_read_in_discrete_log_index():
    p, width, k = 31, 12, 4
    order = residue_order("mul", p)
    net = TwoLayerNet(TwoLayerSpec(width=width, act="quadratic", bias=False), p)
    i = torch.arange(p - 1, dtype=torch.float64)
    phases = torch.linspace(-3, 3, width, dtype=torch.float64)
    with torch.no_grad():
        for param, shift in ((net.U, 0.0), (net.V, 0.5), (net.W, 0.5)):
            vec = torch.zeros(width, p, dtype=torch.float64)
            vec[:, order] = torch.cos(2 * math.pi * k * i / (p - 1) + phases[:, None] * (1 + shift))
            param.copy_(vec.T if param is net.W else vec)
    s = neuron_spectra(net, "mul")
    assert (s.freq == k).all() and s.energy_frac.min() > 1 - 1e-6
    assert neuron_spectra(net, "add").energy_frac.max() < 0.9  # not periodic in the residue order


def test_transformer_spectra_find_planted_embedding_frequencies():
    p = 23
    model = build_model(TransformerSpec(d_model=32, n_heads=2, d_head=16, d_mlp=64), p)
    x = torch.arange(p, dtype=torch.float64)
    planted = torch.stack([torch.cos(2 * math.pi * k * x / p + j) for j, k in enumerate([3, 3, 7, 7])], 1)
    with torch.no_grad():
        w_e = model.state_dict()["embed.weight"]
        w_e[:p] = 0
        w_e[:p, :4] = planted.float()
    spectra = embedding_spectra(model)
    assert spectra["W_E"].shape == (32, p // 2 + 1) and "blocks.0.mlp.hook_post.W_out_U" in spectra
    assert sorted(transformer_key_frequencies(model)) == [3, 7]
    assert logits(model, torch.tensor([[1, 2]])).shape == (1, p)


def test_neuron_frequencies_2d_of_planted_activations():
    from interp.analysis.spectra import neuron_frequencies_2d

    p = 19
    a = torch.arange(p, dtype=torch.float64)
    grid_a, grid_b = a[:, None], a[None, :]
    acts = torch.stack([
        torch.cos(2 * math.pi * 3 * (grid_a + grid_b) / p) + 0.5,       # k = 3, with a constant
        torch.cos(2 * math.pi * 7 * grid_a / p) * torch.sin(2 * math.pi * 7 * grid_b / p),  # k = 7
        torch.cos(2 * math.pi * 2 * grid_a / p) + 0.1 * torch.cos(2 * math.pi * 5 * grid_b / p),
    ], -1)
    freq, share = neuron_frequencies_2d(acts)
    assert freq.tolist() == [3, 7, 2]
    torch.testing.assert_close(share[:2], torch.ones(2, dtype=torch.float64))
    assert 0.9 < share[2] < 1


@pytest.mark.parametrize("sign_power, key", [(3.03, ["1b"]), (2.97, [])])
def test_a_group_embedding_is_read_per_basis_function(sign_power, key):
    """S4's irreps have 1 (trivial, 1b), 4 (2a) and 9 (3a, 3b) basis functions. W_E planted with every
    basis function at power 1, the sign irrep 1b's at `sign_power`: per basis function, 1b holds
    sign_power / (sign_power + 3) of the non-trivial power, against the bar 2 × 1/4, so it is key
    just above power 3 and not just below; read per irrep instead, it would hold about 3/25 and
    the 3-dimensional irreps 9/25, none of them key."""
    from interp.core.groups import symmetric
    from interp.core.irreps import group_fourier_basis, real_irreps, row_irreps
    from interp.families import family_of

    task = TaskSpec(group="S4")
    group = symmetric(4)
    assert [r.name for r in real_irreps(group)] == ["trivial", "1b", "2a", "3a", "3b"]
    basis, _ = group_fourier_basis(group, torch.float64)
    amp = torch.ones(len(basis), dtype=torch.float64)
    amp[row_irreps(group) == 1] = sign_power ** 0.5
    model = build_model(TransformerSpec(d_model=32, n_heads=2, d_head=8, d_mlp=16), task.p)
    w_e = torch.zeros(task.p, 32, dtype=torch.float64)
    w_e[:, :task.p] = (amp[:, None] * basis).T  # direction j: basis function j, scaled
    model = family_of(model).with_residue_weights(model, embedding=w_e.float())
    assert [task.structure.order, *embedding_spectra(model, task)["W_E"].sum(0).round(decimals=4).tolist()] == [
        24, 1.0, round(sign_power, 4), 4.0, 9.0, 9.0]
    assert [real_irreps(group)[k].name for k in transformer_key_frequencies(model, task)] == key

@pytest.mark.parametrize("op", ["add", "sub"])
def test_logit_based_key_frequencies_are_nanda_coefficients(op):
    """The papers' definition on Z_p, against its formula written out here: the cosine of the
    centred logits of all p² pairs with cos(2πk(a∘b − c)/p) over (a, b, c) (Nanda et al.'s
    `calculate_coefficients`, normalised). Gromov's net with 3 frequencies puts weight on exactly
    those: every other frequency's trace tensor is orthogonal to all its terms."""
    from interp.analysis.spectra import fourier_analysis

    p = 31
    net, truth = gromov_solution(p, 60, n_freqs=3, seed=0, op=op)
    result = fourier_analysis(net, op)
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).T
    answer = (a + b if op == "add" else a - b) % p
    table = logits(net, torch.stack([a, b], 1)).detach().double()
    centred = table - table.mean(-1, keepdim=True)
    c = torch.arange(p)
    for k in range(1, p // 2 + 1):
        trace = torch.cos(2 * math.pi * k * (answer[:, None] - c[None, :]).double() / p)
        expected = float((centred * trace).sum() / centred.norm() / trace.norm())
        assert float(result.logit.similarity[k]) == pytest.approx(expected, abs=1e-9)
    planted = set(truth["freq"].tolist())
    assert set(result.logit.key) == planted and min(float(result.logit.similarity[k]) for k in planted) > 0.05
    assert max(abs(float(result.logit.similarity[k])) for k in range(1, p // 2 + 1) if k not in planted) < 1e-6
    saved = result.to_dict()
    assert sorted(saved["key_set"]) == sorted(planted) and saved["key_set_labels"][0].startswith("k = ")
