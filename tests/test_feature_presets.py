"""The MNIST-1D preset's spec (the measured numbers are in docs/results.md from the commands
beside them): digits-tt-40's task split, noise and transformer on MNIST-1D, its tokens windows
that overlap and together read every one of the 40 values."""

import torch

import interp
from interp.core.features import FEATURE_SETS
from interp.training.presets import PRESETS

NAME = "mnist1d-tt-40"


def test_mnist1d_tt_40_is_digits_tt_40_over_overlapping_windows_of_mnist1d():
    spec, digits = PRESETS[NAME].spec, PRESETS["digits-tt-40"].spec
    assert (spec.task.op, spec.task.data, spec.task.p, spec.task.train_fraction) == ("classify", "mnist1d", 10, 0.7)
    assert spec.noise == digits.noise and (spec.noise.kind, spec.noise.rate) == ("symmetric", 0.4)
    model = spec.model
    assert model.arch == "token_transformer" and model.d_in == FEATURE_SETS["mnist1d"][2] == 40
    assert (model.n_tokens, model.window, model.stride) == (10, 8, 4)
    starts = range(0, model.d_in, model.stride)  # the windows overlap and leave no value unread
    assert len(starts) == model.n_tokens and model.window > model.stride
    assert set().union(*(range(s, min(s + model.window, model.d_in)) for s in starts)) == set(range(model.d_in))
    assert model == type(model)(**{**digits.model.to_dict(), "d_in": 40, "n_tokens": 10, "window": 8})
    assert spec.train == type(spec.train)(**{**digits.train.__dict__, "lr": 3e-3, "schedule": "cosine"})
    net = interp.build_model(model, spec.task.p)
    assert interp.logits(net, torch.zeros(3, 40)).shape == (3, 10)


def test_the_description_states_the_spec():
    spec, text = PRESETS[NAME].spec, PRESETS[NAME].description
    for phrase in ("MNIST-1D", f"{spec.task.train_fraction:.0%} of each class", f"{spec.noise.rate:.0%} of the training",
                   f"{spec.model.n_tokens} overlapping windows of {spec.model.window} values, one every "
                   f"{spec.model.stride}", f"lr {spec.train.lr:g} with a {spec.train.schedule} schedule", f"minibatches of {spec.train.batch_size}",
                   f"{spec.train.steps} steps"):
        assert phrase in text, phrase
