"""The analyses on tasks over finite groups: an analytic group-composition network built from
closed-form representations must be read back exactly; for C_p every number is Z_p's."""

import math

import pytest
import torch

from interp.analysis.filtration import (compare_extractions, excluded_logits, filter_residue_weights, label_free_logits,
                                       restricted_logits, rule_directions)
from interp.analysis.registry import ANALYSES, Analysis, analyze
from interp.analysis.spectra import fourier_analysis, neuron_spectra
from interp.core.groups import dihedral, symmetric
from interp.core.harmonics import harmonics_of
from interp.core.irreps import real_irreps
from interp.core.specs import NoiseSpec, RunSpec, TaskSpec, TrainSpec, TransformerSpec, TwoLayerSpec
from interp.core.tasks import make_dataset
from interp.families.base import logits
from interp.planted import gromov_solution, group_composition_net
from interp.training.train import train


def permutation_representations(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """S_n's sign and standard representation in closed form: permutation matrices (e_i ↦ e_{x(i)},
    so P(x)P(y) = P(x∘y)) restricted to the sum-zero subspace, and their determinants."""
    group = symmetric(n)
    perms = torch.tensor([[int(c) for c in name] for name in group.elements])
    matrices = torch.zeros(group.order, n, n, dtype=torch.float64)
    matrices[torch.arange(group.order)[:, None], perms, torch.arange(n)] = 1
    frame, _ = torch.linalg.qr(torch.cat([torch.ones(n, 1, dtype=torch.float64), torch.eye(n, dtype=torch.float64)[:, :-1]], 1))
    sum_zero = frame[:, 1:]
    return torch.linalg.det(matrices).round()[:, None, None], sum_zero.T @ matrices @ sum_zero


def dihedral_representation(n: int, k: int) -> torch.Tensor:
    """D_n's 2-dim irrep k in closed form: r^i ↦ rotation by 2πki/n, s r^i ↦ diag(1, −1)·that."""
    angle = 2 * math.pi * k * (torch.arange(2 * n) % n).double() / n
    rot = torch.stack([torch.stack([angle.cos(), -angle.sin()], -1), torch.stack([angle.sin(), angle.cos()], -1)], -2)
    flip = torch.where(torch.arange(2 * n) >= n, -1.0, 1.0).double()
    return torch.stack([rot[:, 0], flip[:, None] * rot[:, 1]], 1)


def characters(reps: list[torch.Tensor]) -> list[torch.Tensor]:
    return [rho.diagonal(dim1=1, dim2=2).sum(-1) for rho in reps]


def assert_planted_irreps_recovered(task: TaskSpec, reps: list[torch.Tensor]) -> None:
    group = task.structure
    net = group_composition_net(group, reps)
    dataset = make_dataset(task, NoiseSpec(rate=0.2))
    assert bool((logits(net, dataset.inputs).argmax(-1) == dataset.true_labels).all()), "computes a ∘ b exactly"
    spectra = neuron_spectra(net, task)
    found = [real_irreps(group)[k].character for k in spectra.key_set()]
    assert len(found) == len(reps) and all(
        any(torch.allclose(f, chi, atol=1e-9) for f in found) for chi in characters(reps)), "exactly the planted irreps"
    assert spectra.energy_frac.min() > 1 - 1e-9
    result = compare_extractions(net, dataset)
    full, restricted, excluded = (result.rows[m]["test_loss"] for m in ("raw", "restricted", "excluded"))
    assert restricted == pytest.approx(full, abs=1e-4) and full < 1e-3
    assert excluded == pytest.approx(math.log(group.order), rel=1e-4), "nothing left without the key irreps"
    assert result.label_free() == ("f^G", 1.0) and result.noise_detection["auroc"] == 1.0


def test_an_analytic_s4_network_reads_back_sign_and_standard():
    sign, standard = permutation_representations(4)
    assert_planted_irreps_recovered(TaskSpec(group="S4", train_fraction=0.5), [standard, sign])


def test_an_analytic_dihedral_network_reads_back_its_two_irreps():
    n = 7
    reps = [dihedral_representation(n, 1), dihedral_representation(n, 3)]
    group = dihedral(n)
    for rho in reps:  # the closed form is a representation of the library's D_n table
        torch.testing.assert_close(rho[group.table], rho[:, None] @ rho[None, :])
    assert_planted_irreps_recovered(TaskSpec(group=f"D{n}", train_fraction=0.5), reps)


def test_on_the_cyclic_group_every_analysis_is_z_p():
    p = 11
    net, _ = gromov_solution(p, 40, n_freqs=3, seed=0)
    zp, cp = neuron_spectra(net, "add"), neuron_spectra(net, TaskSpec(group=f"C{p}"))
    torch.testing.assert_close(cp.power, zp.power)
    assert torch.equal(cp.freq, zp.freq) and cp.key_set() == zp.key_set()
    ds_zp, ds_cp = make_dataset(TaskSpec(p=p)), make_dataset(TaskSpec(group=f"C{p}"))
    assert torch.equal(ds_zp.labels, ds_cp.labels)
    q_zp, q_cp = rule_directions(ds_zp, [1, 4]), rule_directions(ds_cp, [1, 4])
    torch.testing.assert_close(q_cp @ q_cp.T, q_zp @ q_zp.T)
    for edit in (restricted_logits, excluded_logits):
        torch.testing.assert_close(edit(net, ds_cp, [1, 4]), edit(net, ds_zp, [1, 4]), atol=1e-4, rtol=1e-4)


def test_a_noisy_s4_run_is_analysed_and_z_p_only_analyses_say_why_they_skip(monkeypatch):
    spec = RunSpec(TaskSpec(group="S4", train_fraction=0.5), NoiseSpec(rate=0.2), TwoLayerSpec(width=32),
                   TrainSpec(steps=30, lr=3e-3, eval_every=30))
    run = train(spec, progress=False)
    spectra = analyze(run, "fourier")
    assert spectra.irreps == [irrep.name for irrep in real_irreps(symmetric(4))] and "Key irreps" in spectra.summary()
    extraction = analyze(run, "filtration")
    assert {"f^G", "f^R", "restricted", "excluded"} <= set(extraction.rows) and extraction.label_free()[0] == "f^G"
    assert analyze(run, "localize").rows[0].irrep is not None
    # an analysis written for Z_p alone (registered without groups=True) skips, saying why
    monkeypatch.setitem(ANALYSES, "z_p_only", Analysis("z_p_only", "Z_p only", lambda run: None))
    reason = ANALYSES["z_p_only"].skip_reason(run)
    assert "not yet generalised to a task over a group (S4 (a∘b))" in reason and "\n" not in reason
    with pytest.raises(ValueError, match="does not apply"):
        analyze(run, "z_p_only")


def test_a_group_transformer_gets_key_irreps_and_restricted_and_excluded_losses():
    spec = RunSpec(TaskSpec(group="S3", train_fraction=0.5), NoiseSpec(rate=0.2),
                   TransformerSpec(d_model=16, n_heads=2, d_head=8, d_mlp=32), TrainSpec(steps=5, eval_every=5))
    run = train(spec, progress=False)
    assert run.model.cfg.d_vocab_out == 6
    spectra = fourier_analysis(run.model, run.spec.task)
    assert spectra.irreps is not None and spectra.power["W_E"].shape[-1] == len(real_irreps(symmetric(3)))
    result = compare_extractions(run.model, run.dataset)
    assert {"restricted", "excluded", "W_E filter"} <= set(result.rows)
    # no sum grid on a group: the label-free extraction filters both W_E and W_U to the key irreps
    assert result.label_free()[0] == "W_E+W_U filter" and result.noise_detection["method"] == "W_E+W_U filter"
    method, extracted = label_free_logits(run.model, run.dataset)
    torch.testing.assert_close(extracted, logits(filter_residue_weights(
        run.model, run.spec.task, spectra.key_set(), ("W_E", "W_U")), run.dataset.inputs))
    # with every irrep, the excluded logits hold no function of a∘b but the constant: each class's
    # mean over every fibre {(a, b): a∘b = c} is its overall mean
    excluded = excluded_logits(run.model, run.dataset, list(range(1, len(spectra.irreps)))).double()
    fibres = torch.zeros(6, 6, dtype=torch.float64).index_add_(0, run.dataset.true_labels, excluded) / 6
    torch.testing.assert_close(fibres, excluded.mean(0).expand(6, 6), atol=1e-5, rtol=0)


def test_the_logit_based_key_set_holds_a_sign_part_that_the_weights_leave_out():
    """Chughtai et al.'s S5 MLP in closed form: logits sign(abc⁻¹) + 4χ_standard(abc⁻¹) (times the
    scale), whose sign part is carried by two neurons with a sliver of the weight energy (u, v
    scaled by 1/16 and w by 256: the same logits exactly). The trace tensors are orthogonal with
    equal norms |G|^{3/2}, so the logits' cosine with sign's is 1/√17 and with standard's 4/√17:
    by the logits both are key (above 0.005); by the weights only standard (sign's cluster holds
    about 0.4% of the clustered energy, under half the even share 1/6). Over both, the paper's
    restricted logits are the whole of the centred logits and the excluded ones zero (loss log|G|)."""
    from interp.analysis.logit_spectrum import SIMILARITY, trace_similarity

    sign, standard = permutation_representations(5)
    task = TaskSpec(group="S5", train_fraction=0.5)
    net = group_composition_net(task.structure, [sign, standard])
    with torch.no_grad():  # the sign representation's two neurons come first
        net.U[:2] /= 16
        net.V[:2] /= 16
        net.W[:, :2] *= 256
    dataset = make_dataset(task, NoiseSpec(rate=0.0))
    spectra = fourier_analysis(net, task, dataset)
    labels = spectra.labels
    similarity = spectra.logit.similarity
    expected = torch.zeros(len(labels), dtype=torch.float64)
    expected[labels.index("sign")], expected[labels.index("standard (4)")] = 17 ** -0.5, 4 * 17 ** -0.5
    torch.testing.assert_close(similarity, expected, atol=1e-5, rtol=0)
    assert [labels[u] for u in spectra.logit.key] == ["standard (4)", "sign"]
    assert [labels[u] for u in spectra.key_set()] == ["standard (4)"], "the weights miss the low-energy sign part"
    assert spectra.logit.restricted_loss == pytest.approx(float(torch.nn.functional.cross_entropy(
        logits(net, dataset.inputs).detach().double(), dataset.true_labels)), abs=1e-6)
    assert spectra.logit.excluded_loss == pytest.approx(math.log(120), abs=1e-5)
    saved = spectra.to_dict()
    assert saved["key_set_labels"] == ["standard (4)"] and saved["logit_key_set"]["key_labels"] == ["standard (4)", "sign"]
    assert "the weight-based set leaves out sign" in spectra.summary()
    extraction = compare_extractions(net, dataset)
    assert extraction.to_dict()["logit_key_set"]["key_labels"] == ["standard (4)", "sign"]
    assert extraction.rows["excluded, logit keys"]["test_loss"] == pytest.approx(math.log(120), rel=1e-4)
    # a constant added to every pair's logits (a per-pair offset) leaves the similarities as they are
    table = logits(net, dataset.inputs).detach().double()
    units_similarity = trace_similarity(table + torch.randn(len(table), 1, dtype=torch.float64) * 50,
                                        dataset.true_labels, harmonics_of(task))
    torch.testing.assert_close(units_similarity, expected, atol=1e-5, rtol=0)
    # the bar, at 2.5% either side: sign's output scaled by t gives it similarity t / √(t² + 16)
    for t, key in ((1.025 * 0.02, True), (0.975 * 0.02, False)):
        with torch.no_grad():
            net.W[:, :2] *= t
        similarity = float(fourier_analysis(net, task).logit.similarity[labels.index("sign")])
        assert similarity == pytest.approx(t / math.sqrt(t * t + 16), rel=1e-3)
        assert (labels.index("sign") in fourier_analysis(net, task).logit.key) is key, (t, similarity, SIMILARITY)
        with torch.no_grad():
            net.W[:, :2] /= t
