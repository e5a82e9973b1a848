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
