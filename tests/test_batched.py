from dataclasses import replace

import pytest
import torch
from conftest import small_transformer, small_two_layer

import interp
from interp.training.batched import batch_key, train_many
from interp.training.rundir import drop_checkpoint


def variants():
    base = small_two_layer(steps=30)
    return [
        base,
        replace(base, model=replace(base.model, seed=5), noise=replace(base.noise, rate=0.2, seed=9)),
        replace(base, train=replace(base.train, weight_decay=1.0), task=replace(base.task, seed=4)),
    ]


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
@pytest.mark.parametrize("shared_decay", [False, True])  # decay per network by hand, or by the optimizer
def test_batched_networks_follow_their_own_runs(optimizer, shared_decay):
    specs = [replace(s, train=replace(s.train, optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 3e-3,
                                      weight_decay=0.3 if shared_decay else s.train.weight_decay))
             for s in variants()]
    batched = train_many(specs, progress=False)
    for spec, run in zip(specs, batched):
        alone = interp.train(spec, None, progress=False)
        init = interp.build_model(spec.model, spec.task.p)
        for name, value in alone.model.state_dict().items():
            torch.testing.assert_close(run.model.state_dict()[name], value, rtol=1e-5, atol=1e-6)
            assert not torch.allclose(value, init.state_dict()[name])  # it did train
        for mine, theirs in zip(run.history, alone.history, strict=True):
            assert mine == pytest.approx(theirs)


def test_batched_run_directories_resume_alone(tmp_path):
    """Each run directory holds its own slice of the optimizer state: deleting the last
    checkpoint and resuming one run with plain train() ends where the batched run ended."""

    specs = variants()
    outs = [tmp_path / str(i) for i in range(len(specs))]
    runs = train_many(specs, outs, progress=False)
    assert interp.load_run(outs[2], step=10).step == 10
    drop_checkpoint(outs[1], 30)
    resumed = interp.train(specs[1], outs[1], resume=True, progress=False)
    for name, value in runs[1].model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-5, atol=1e-6)


def test_only_compatible_specs_batch():
    base = small_two_layer()
    assert batch_key(base) == batch_key(replace(base, noise=replace(base.noise, rate=0.1)))
    assert batch_key(base) != batch_key(replace(base, model=replace(base.model, width=33)))
    assert batch_key(small_transformer()) is not None  # one-layer transformers stack
    deep = small_transformer()
    assert batch_key(replace(deep, model=replace(deep.model, n_layers=2))) is None
    with pytest.raises(ValueError, match="differ only in seeds, noise and weight decay"):
        train_many([base, replace(base, model=replace(base.model, width=33))], progress=False)


def test_batched_resume_continues_together_or_refuses(tmp_path):

    specs = variants()
    outs = [tmp_path / str(i) for i in range(len(specs))]
    finished = train_many(specs, outs, progress=False)
    for out in outs:  # as if interrupted after step 20
        drop_checkpoint(out, 30)
    resumed = train_many(specs, outs, resume=True, progress=False)
    for a, b in zip(finished, resumed):  # a stack resumed as a stack: bit for bit
        assert torch.equal(a.model.state_dict()["W"], b.model.state_dict()["W"])
    # killed between two runs' checkpoints: the stack resumes from the step all of them hold
    drop_checkpoint(outs[0], 30)
    drop_checkpoint(outs[1], 20)
    resumed = train_many(specs, outs, resume=True, progress=False)
    for a, b in zip(finished, resumed):
        assert torch.equal(a.model.state_dict()["W"], b.model.state_dict()["W"])


def transformer_variants():
    base = small_transformer(steps=8, eval_every=4, checkpoint_every=4)
    return [
        base,
        replace(base, model=replace(base.model, seed=3), noise=replace(base.noise, rate=0.4, seed=2)),
        replace(base, train=replace(base.train, weight_decay=0.1), task=replace(base.task, seed=5)),
    ]


def test_batched_transformers_equal_separate_runs_and_resume_alone(tmp_path):

    specs = transformer_variants()
    outs = [tmp_path / str(i) for i in range(len(specs))]
    batched = train_many(specs, outs, progress=False)
    for spec, run in zip(specs, batched):
        alone = interp.train(spec, None, progress=False)
        pairs = run.dataset.inputs
        torch.testing.assert_close(interp.logits(run.model, pairs), interp.logits(alone.model, pairs),
                                   rtol=1e-5, atol=1e-5)
        init = interp.build_model(spec.model, spec.task.p)
        assert not torch.allclose(run.model.state_dict()["blocks.0.mlp.in.weight"],
                                  init.state_dict()["blocks.0.mlp.in.weight"])  # it did train
        for mine, theirs in zip(run.history, alone.history, strict=True):
            assert mine == pytest.approx(theirs, rel=1e-4, abs=1e-5)
    drop_checkpoint(outs[2], 8)  # each run directory resumes on its own
    resumed = interp.train(specs[2], outs[2], resume=True, progress=False)
    torch.testing.assert_close(resumed.logits(resumed.dataset.inputs), batched[2].logits(batched[2].dataset.inputs),
                               rtol=1e-5, atol=1e-5)
