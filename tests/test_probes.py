import pytest
import torch

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
