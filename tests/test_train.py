import json
import os
import signal
import sys
from dataclasses import replace

import pytest
import torch
from conftest import small_transformer, small_two_layer

import interp
from interp.families.base import family_for_spec

train_module = sys.modules["interp.training.train"]  # `interp.train` is the function
from interp import TrainingDiverged, load_run, train
from interp.training.rundir import drop_checkpoint, trajectory_steps
from interp.training.train import RunDirectoryInUse, batch_indices, lr_at


def assert_same_run(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert a.history == b.history


def test_two_layer_memorises_noise(tmp_path):
    run = train(small_two_layer(steps=300), tmp_path / "run", progress=False)
    last = run.final_metrics
    assert last["clean_acc"] == 1.0 and last["noisy_observed_acc"] > 0.95
    assert last["noisy_true_acc"] < 0.2  # fitting wrong labels means missing the true ones
    assert [row["step"] for row in run.history] == list(range(0, 301, 10))


def test_history_rows_have_every_subset(tmp_path):
    run = train(small_two_layer(steps=10), None, progress=False)
    for key in ["clean_acc", "noisy_observed_acc", "noisy_true_acc", "test_acc", "train_loss"]:
        assert isinstance(run.history[-1][key], float)


def test_resume_after_deleting_the_tail_gives_identical_run(tmp_path):
    spec = small_two_layer(steps=40)
    straight = train(spec, tmp_path / "a", progress=False)
    train(spec, tmp_path / "b", progress=False)
    # pretend the run died right after step 20
    for step in (30, 40):
        drop_checkpoint(tmp_path / "b", step)
    os.remove(tmp_path / "b" / "model.safetensors")
    assert trajectory_steps(tmp_path / "b") == [10, 20]
    resumed = train(spec, tmp_path / "b", resume=True, progress=False)
    assert_same_run(straight, resumed)
    assert_same_run(straight, load_run(tmp_path / "b"))


@pytest.mark.parametrize("make", [small_two_layer, small_transformer])
def test_ctrl_c_saves_a_checkpoint_and_resume_matches(tmp_path, monkeypatch, make):
    spec = make(batch_size=7, steps=12, checkpoint_every=100)  # minibatches: order must resume too
    straight = train(spec, tmp_path / "a", progress=False)

    calls = {"n": 0}
    family = family_for_spec(spec.model)
    real_loss = family.loss_and_backward

    def loss_then_ctrl_c(*args):  # the training loss and gradients, computed once per step
        calls["n"] += 1
        if calls["n"] == 5:  # as if the user pressed Ctrl-C during step 5
            signal.raise_signal(signal.SIGINT)
        return real_loss(*args)

    monkeypatch.setattr(family, "loss_and_backward", loss_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt, match="interrupted at step 5"):
        train(spec, tmp_path / "b", progress=False)
    monkeypatch.undo()
    saved = trajectory_steps(tmp_path / "b")
    assert saved == [5]  # the step in flight finished, then its state was saved
    resumed = train(spec, tmp_path / "b", resume=True, progress=False)
    assert_same_run(straight, resumed)


def test_transformer_trains_and_round_trips(tmp_path):
    run = train(small_transformer(), tmp_path / "t", progress=False)
    loaded = load_run(tmp_path / "t")
    x = run.dataset.inputs
    torch.testing.assert_close(interp.logits(loaded.model, x), interp.logits(run.model, x), rtol=0, atol=0)
    assert loaded.history == run.history and loaded.step == 12


def test_non_finite_loss_stops_with_clear_message_and_keeps_files(tmp_path):
    spec = small_two_layer(steps=200, lr=1e25, checkpoint_every=1)
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) at step \d+.*last good checkpoint"):
        train(spec, tmp_path / "d", progress=False)
    steps = trajectory_steps(tmp_path / "d")
    assert steps, "checkpoints written before the divergence are kept"
    history = json.loads((tmp_path / "d" / "history.json").read_text())
    assert history[0]["step"] == 0
    last = load_run(tmp_path / "d", step=steps[-1])
    assert all(torch.isfinite(v).all() for v in last.model.state_dict().values())


def test_refuses_to_overwrite_a_run(tmp_path):
    spec = small_two_layer(steps=10)
    train(spec, tmp_path / "r", progress=False)
    with pytest.raises(RunDirectoryInUse, match="--resume"):
        train(spec, tmp_path / "r", progress=False)
    with pytest.raises(RunDirectoryInUse, match="different spec"):
        train(replace(spec, train=replace(spec.train, lr=0.5)), tmp_path / "r", progress=False)


def test_minibatches_cover_each_epoch_once():
    spec = small_two_layer(batch_size=8).train
    idx = torch.arange(100, 150)
    per_epoch = 7  # ceil(50 / 8)
    epoch = torch.cat([batch_indices(spec, idx, s) for s in range(per_epoch)])
    assert sorted(epoch.tolist()) == list(range(100, 150))
    next_epoch = torch.cat([batch_indices(spec, idx, s) for s in range(per_epoch, 2 * per_epoch)])
    assert not torch.equal(epoch, next_epoch)


def test_schedule():
    spec = small_two_layer(steps=100, warmup_steps=10, schedule="cosine", lr=1.0).train
    assert lr_at(spec, 0) == pytest.approx(0.1) and lr_at(spec, 9) == pytest.approx(1.0)
    assert lr_at(spec, 10) == pytest.approx(1.0) and lr_at(spec, 55) == pytest.approx(0.5)
    assert lr_at(spec, 99) < 0.01


@pytest.mark.parametrize("optimizer,loss", [("adam", "mse"), ("sgd", "ce")])
def test_other_optimizers_and_losses_reduce_loss(optimizer, loss):
    spec = small_two_layer(steps=60, optimizer=optimizer, loss=loss, lr=2.0 if optimizer == "sgd" else 3e-3,
                           momentum=0.9 if optimizer == "sgd" else 0.0, weight_decay=0.0)
    run = train(spec, None, progress=False)
    assert run.history[-1]["train_loss"] < 0.8 * run.history[0]["train_loss"]


@pytest.mark.parametrize("make", [small_two_layer, small_transformer])
def test_training_matches_a_plain_loop(make):
    """`train` sets each step's gradients instead of zeroing and accumulating them, and the
    two-layer step computes them by hand: the result must be what the textbook loop
    (zero_grad, backward through the hooked forward, step) gives, up to float rounding. SGD
    with large steps, so that a gradient kept from an earlier step shows; Adam would also
    blow rounding in near-zero gradients up to whole steps."""
    spec = make(steps=6, eval_every=6, optimizer="sgd", lr=0.5, momentum=0.9)
    trained = train(spec, None, progress=False).model
    data = interp.make_dataset(spec.task, spec.noise)
    model = interp.build_model(spec.model, spec.task.p)
    optimizer = train_module.make_optimizer(spec.train, model.parameters())
    x, y = data.inputs[data.train_mask], data.labels[data.train_mask]
    for step in range(spec.train.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(spec.train, step)
        optimizer.zero_grad()
        interp.core.metrics.loss_fn(spec.train.loss, interp.logits(model, x), y).backward()
        optimizer.step()
    for name, param in model.state_dict().items():
        torch.testing.assert_close(trained.state_dict()[name], param, rtol=1e-5, atol=1e-6, msg=name)
