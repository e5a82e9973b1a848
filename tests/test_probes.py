import pytest
import torch

import interp
from interp import NoiseSpec, TaskSpec, build_model, make_dataset
from interp.planted import gromov_solution
from interp.analysis.probes import cache_activations, learning_curve, probe
from interp.core.fourier import grid_fourier_projection

P = 23


@pytest.fixture(scope="module")
def gromov():
    net, _ = gromov_solution(P, 120, seed=0)
    ds = make_dataset(TaskSpec(p=P, train_fraction=0.7), NoiseSpec(kind="wrong", rate=0.3, seed=0))
    return net, ds


def test_true_label_is_decodable_from_the_rule_neurons_and_controls_are_not(gromov):
    net, ds = gromov
    result = probe(net, ds, "hook_post")
    assert result.accuracy["test"] > 0.9 and result.accuracy["noisy_true"] > 0.9
    assert result.model_accuracy["test"] == 1.0
    assert result.controls["shuffled labels"]["test"] < 0.2
    # pre-activations are linear in the one-hot inputs: (a + b) mod p is not linearly readable
    assert probe(net, ds, "hook_pre", controls=False).accuracy["test"] < 0.2


def test_learning_curve_grows(gromov):
    net, ds = gromov
    curve = learning_curve(net, ds, "hook_post", [30, 300])
    assert curve[300]["test"] > curve[30]["test"]
    # each point is the probe fitted on that many clean examples
    assert curve[30] == probe(net, ds, "hook_post", n_train=30, controls=False).accuracy


def test_fourier_projection_keeps_rule_features(gromov):
    net, ds = gromov
    acts = cache_activations(net, ds.inputs, "hook_post")
    everything = list(range(1, P // 2 + 1))
    torch.testing.assert_close(grid_fourier_projection(acts, ds, everything), acts, atol=1e-4, rtol=1e-4)
    assert probe(net, ds, "hook_post", "fourier", key_frequencies=everything, controls=False).accuracy["test"] > 0.9


def test_transformer_probe_runs_on_the_residual_stream(transformer_spec):
    model = build_model(transformer_spec.model, transformer_spec.task.p)
    ds = make_dataset(transformer_spec.task, transformer_spec.noise)
    result = probe(model, ds, "blocks.0.hook_resid_post", n_train=40)
    assert result.n_train == 40 and set(result.controls) >= {"shuffled labels", "random features"}


def test_bad_feature_source():
    with pytest.raises(ValueError, match="unknown features"):
        probe(None, None, "hook_post", "pca")


def test_the_report_fits_side_by_side_what_probe_and_learning_curve_fit_alone(gromov):
    """probe_report's one pool of fits gives each probe and curve point what the functions
    called alone give (its bookkeeping of which score is whose)."""
    from interp.analysis.probes import probe_report
    from interp.core.specs import RunSpec, TrainSpec, TwoLayerSpec
    from interp.training.rundir import Run

    net, ds = gromov
    spec = RunSpec(task=ds.task, noise=NoiseSpec(kind="wrong", rate=0.3, seed=0),
                   model=TwoLayerSpec(width=net.U.shape[0], act="quadratic"), train=TrainSpec())
    report = probe_report(Run(spec, net, [], 0, dataset=ds))
    checked = [r for r in report.probes if r.features != "fourier"]  # fourier reads the report's key set
    assert len(checked) >= 3 and any(r.controls for r in checked)
    for r in checked:
        alone = probe(net, ds, r.hook, r.features, controls=bool(r.controls))
        assert (r.accuracy, r.controls) == (alone.accuracy, alone.controls)
    sizes = [n for n in report.curves["raw"] if n < int(ds.clean_mask.sum())]
    assert {n: report.curves["raw"][n] for n in sizes} == learning_curve(net, ds, "hook_post", sizes)


def test_a_probe_on_features_that_never_vary_scores_chance_instead_of_failing():
    import numpy as np

    from interp.analysis.probes import _fit_scores

    labels = np.arange(40) % 3
    train = np.arange(40) < 30
    (score,) = _fit_scores([(np.zeros((40, 5)), labels, train, {"test": (~train, labels)}, 0)])
    assert 0 <= score["test"] <= 0.5


def _xor_run(nuisance: int = 6, n: int = 600):
    """A task over features whose true label, (x0 > 0) xor (x1 > 0), no linear map of the inputs
    reads, and a planted MLP whose first layer makes it linear: |x0 − x1| − |x0 + x1| has the
    label's sign, and layer 0 holds relu(±(x0 + x1)), relu(±(x0 − x1)). Layer 1 copies them."""
    from interp.core.specs import RunSpec
    from interp.families.mlp import MLPNet, MLPSpec

    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(n, 2, generator=gen) * 2 - 1, torch.randn(n, nuisance, generator=gen)], 1)
    truth = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    observed = truth.clone()
    observed[torch.arange(n)[: n // 2][torch.randperm(n // 2, generator=gen)[: n // 10]]] ^= 1  # 20% of train noisy
    train = torch.arange(n) < n // 2
    ds = interp.Dataset.from_tensors(TaskSpec(op="classify", data="planted", p=2), x, observed, train, truth)
    model = MLPNet(MLPSpec(d_in=2 + nuisance, widths=(4, 4)), 2)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.blocks[0].linear.weight[:, :2] = torch.tensor([[1.0, 1], [-1, -1], [1, -1], [-1, 1]])
        model.blocks[1].linear.weight.copy_(torch.eye(4))
        model.unembed.weight[1] = torch.tensor([-1.0, -1, 1, 1])
    return interp.Run(RunSpec(task=ds.task, model=model.spec), model.eval(), [], 0, None, ds)


def test_a_layer_that_makes_the_label_linear_beats_the_raw_inputs_and_an_untrained_net():
    """On a task over features the probes read the raw inputs too (the control), and each
    layer beside an untrained net of its shape: the planted layers hold the XOR label linearly,
    the inputs and the untrained net do not."""
    from interp.core.class_structure import INPUT

    run = _xor_run()
    report = interp.analyze(run, "probes")
    rows = {r.hook: r for r in report.probes}
    assert list(rows) == [INPUT, "blocks.0.hook_post", "blocks.1.hook_post"]
    assert rows[INPUT].accuracy["test"] < 0.7 and not rows[INPUT].controls  # XOR: no linear readout of the inputs
    for hook in ("blocks.0.hook_post", "blocks.1.hook_post"):
        assert rows[hook].accuracy["test"] > 0.95
        assert rows[hook].controls["random features"]["test"] < 0.8  # the untrained net of the same shape
    assert rows["blocks.0.hook_post"].model_accuracy["test"] == 1.0
    assert "Beyond both controls" in report.verdict() and "`blocks.1.hook_post`" in report.verdict()
    assert "the raw inputs" in report.summary()


def _probe_row(hook: str, test: float, untrained: float | None = None):
    from interp.analysis.probes import ProbeResult

    controls = {} if untrained is None else {"random features": {"test": untrained}, "shuffled labels": {"test": 0.5}}
    return ProbeResult(hook, "raw", 100, {"test": test, "noisy_true": test}, {"test": 0.5, "noisy_true": 0.5}, controls)


@pytest.mark.parametrize("inputs, layer, untrained, beyond", [
    (0.80, 0.90, 0.70, True), (0.80, 0.90, 0.89, False),  # the untrained net reads as much
    (0.89, 0.90, 0.70, False),  # the inputs read as much
    (0.80, 0.821, 0.80, True), (0.80, 0.819, 0.80, False)])  # the 2-point band
def test_a_layer_holds_the_label_only_beyond_both_controls_and_the_band(inputs, layer, untrained, beyond):
    from interp.analysis.probes import ProbeReport
    from interp.core.class_structure import INPUT

    report = ProbeReport([_probe_row(INPUT, inputs), _probe_row("blocks.0.hook_post", layer, untrained)], {})
    assert ("`blocks.0.hook_post`" in report.verdict()) == beyond


def test_a_probe_of_the_inputs_needs_a_task_over_features(gromov):
    from interp.core.class_structure import INPUT

    net, ds = gromov
    with pytest.raises(ValueError, match="task over features"):
        probe(net, ds, INPUT)



def test_the_report_reads_every_hook_of_a_model_from_one_forward_with_the_same_values():
    """The probes of a report share one forward per feature source (the model, the untrained net)
    for all their hooks: each hook's activations are those of a forward of its own, bit for bit."""
    from interp.analysis.probes import _memo_activations
    from interp.families.mlp import MLPNet, MLPSpec

    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0))
    net = MLPNet(MLPSpec(d_in=6, widths=(32, 16)), 3)
    hooks = ["blocks.0.hook_post", "blocks.1.hook_post"]
    memo = {"hooks": hooks}
    for hook in [*hooks, "blocks.1.hook_pre"]:  # the last one is not in the memo's list: its own forward
        assert torch.equal(_memo_activations(memo, net, x, hook), cache_activations(net, x, hook))
    assert len([k for k in memo if isinstance(k, tuple) and k[0] == "activations"]) == 1
    expected = torch.relu(x @ net.blocks[0].linear.weight.T + net.blocks[0].linear.bias)
    torch.testing.assert_close(memo["activations", id(net)][1]["blocks.0.hook_post"], expected)
