"""The label-free edit that forgets the noise on a model over features (`feature_edit`), on a
planted MLP whose memory (lookups in layer 1) and rule (layer 0) are known by construction, its
teacher's parts in closed form, and `interp edit`'s choice of edit by what a run supports."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import interp
from interp.analysis.feature_edit import (
    CHECKPOINT, EDIT, FLAGGED, OBSERVED, RAW, RELABELLED, chosen_checkpoint, fine_tuned, forget_noise, hidden_votes,
    most_agreeing_checkpoint, nearest_neighbours, neighbour_votes, relabelled_at_random, teacher_classes)
from interp.analysis.layer_rewind import readout_classes
from interp.cli import edit_for, main
from interp.core.specs import NoiseSpec, TaskSpec
from interp.core.tasks import Dataset, make_dataset
from interp.planted import planted_feature_mlp
from planted_runs import write_planted_feature_run


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    """A run directory whose trajectory is: step 1, the planted net without its lookups (the rule
    alone); step 2 and the final step 3, the planted net that memorises every noisy label. Its
    nuisance inputs are N(0, 1): 91% of an example's ten nearest neighbours are of its class."""
    dataset, model, memory = planted_feature_mlp(spread=1.0)
    return write_planted_feature_run(tmp_path_factory.mktemp("planted") / "run", dataset, model, memory,
                                     memorising_steps=1)


def test_the_edit_starts_from_the_rule_only_checkpoint_and_so_removes_the_memory(planted_run):
    """The teacher takes the rule-only checkpoint (it agrees most with the neighbours' class;
    the memorising one at step 2 agrees with the observed labels) and names no wrong observed
    label. The edit starts from that checkpoint's
    weights, which already agree with the teacher: no step is taken and the edited net is the
    checkpoint, every lookup's readout weight zero — the memory removed from the weights. The same
    teacher fine-tuned from the final weights would forget the lookups too, but only by outvoting
    them: their readout weights stay near 300."""
    run = interp.load_run(planted_run)
    _, _, memory = planted_feature_mlp(spread=1.0)
    result, edited = forget_noise(run)
    assert (result.checkpoint, result.checkpoints) == (1, [1])
    assert result.teacher_memorised == 0.0 and result.teacher_recovered == 1.0
    assert result.relabelled == pytest.approx(float(run.dataset.noise_rate))  # exactly the noisy examples
    raw, rewound, edit = result.row(RAW), result.row(CHECKPOINT), result.row(EDIT)
    assert raw.memorised == 1.0 and raw.test == 1.0
    assert result.steps == 0 and edit.memorised == 0.0 and edit.test == 1.0
    checkpoint = interp.load_run(planted_run, 1).model.state_dict()
    assert all(torch.equal(edited.state_dict()[name], checkpoint[name]) for name in checkpoint)
    assert float(edited.unembed.weight[:, memory].detach().abs().max()) == 0.0
    ds = run.dataset
    from_final, _ = fine_tuned(run.model, ds.inputs[ds.train_mask], ds.true_labels[ds.train_mask])
    assert float(from_final.unembed.weight[:, memory].detach().abs().amax(0).min()) > 299
    # the controls take the same (no) steps from the same checkpoint: each is the rewind alone
    assert all(result.row(name).memorised == rewound.memorised == 0.0 for name in (OBSERVED, FLAGGED, RELABELLED))
    assert type(edited) is type(run.model) and edited.spec == run.model.spec
    assert "memorised 100.0% → 0.0%" in result.summary() and "weights of step 1" in result.edit_line()
    assert len(result.tables()[0].rows) == 6


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A small real run that memorises part of its noise: digits-40 with 30% of the examples for
    training, two hidden layers of 64, lr 1e-2 for 60 steps, a checkpoint every 10. Its best
    evaluation (step 20) is not the checkpoint the teacher takes (step 50)."""
    spec = interp.get_preset("digits-40").spec.with_overrides(
        ["task.train_fraction=0.3", "model.widths=64,64", "train.lr=0.01", "train.steps=60", "train.eval_every=10",
         "train.checkpoint_every=10"])
    return interp.train(spec, tmp_path_factory.mktemp("digits") / "run", progress=False)


def scrambled(ds):
    """Two copies of `ds`, each with what the edit must not read replaced: (1) every true label and
    every test label shifted by one class, the noise mask inverted on the training examples; (2)
    the test inputs replaced by copies of training inputs (exact nearest neighbours), their labels
    shifted by one class."""
    train, test = ds.train_mask, ~ds.train_mask
    shifted = dataclasses.replace(ds, labels=torch.where(test, (ds.labels + 1) % ds.p, ds.labels),
                                  true_labels=(ds.true_labels + 1) % ds.p, noisy_mask=train & ~ds.noisy_mask)
    rows = train.nonzero().squeeze(1)
    copies = rows[torch.arange(int(test.sum())) % len(rows)]
    inputs, labels = ds.inputs.clone(), ds.labels.clone()
    inputs[test], labels[test] = ds.inputs[copies], (ds.labels[copies] + 1) % ds.p
    return [shifted, dataclasses.replace(ds, inputs=inputs, labels=labels, true_labels=labels)]


def test_the_edit_reads_no_true_label_noise_mask_or_test_example(digits_run, monkeypatch):
    """Label-free by test: with the true labels, the noise mask, the test labels and the test
    inputs scrambled, the teacher, the chosen checkpoint, the step count and the edited weights
    are bit-identical (the scores, which read the truth afterwards, are not)."""
    from interp.analysis import feature_edit

    teachers = []
    original = feature_edit.teacher_classes
    monkeypatch.setattr(feature_edit, "teacher_classes", lambda *a: teachers.append(original(*a)) or teachers[-1])
    ds = digits_run.dataset
    shifted, copied = scrambled(ds)
    test = ~ds.train_mask
    assert bool((shifted.true_labels != ds.true_labels).all()) and bool((shifted.labels != ds.labels)[test].all())
    assert bool((copied.inputs[test] != ds.inputs[test]).any(1).all())
    outcomes = []
    for dataset in (ds, shifted, copied):
        run = interp.Run(digits_run.spec, digits_run.model, digits_run.history, digits_run.step, digits_run.path,
                         dataset)
        result, edited = forget_noise(run)
        outcomes.append((result, edited.state_dict(), teachers[:]))  # the vote's classes, then the teacher's
        teachers.clear()
    (real, weights, classes), *blind = outcomes
    for result, blind_weights, blind_classes in blind:
        assert len(blind_classes) == len(classes) == 2
        assert all(torch.equal(a, b) for a, b in zip(classes, blind_classes))
        assert (real.checkpoint, real.checkpoints, real.steps, real.relabelled) == \
            (result.checkpoint, result.checkpoints, result.steps, result.relabelled)
        assert all(torch.equal(weights[name], blind_weights[name]) for name in weights)
    assert real.row(EDIT).test != blind[0][0].row(EDIT).test  # the scores do read the (scrambled) truth


def test_the_edit_runs_on_a_users_data_without_true_labels(digits_run):
    """`Dataset.from_tensors` without true labels marks no label wrong: the edit still applies
    (it never asks), writes the same weights as with the truth, and leaves memorisation unscored."""
    ds = digits_run.dataset
    user = Dataset.from_tensors(ds.task, ds.inputs, ds.labels, ds.train_mask)
    assert not user.noisy_mask.any()
    history = [{k: v for k, v in row.items() if not k.startswith("noisy")} for row in digits_run.history]
    run = interp.Run(digits_run.spec, digits_run.model, history, digits_run.step, digits_run.path, user)
    assert edit_for(run) == "feature_edit"
    result, edited = forget_noise(run)
    _, with_truth = forget_noise(digits_run)
    assert all(torch.equal(edited.state_dict()[k], with_truth.state_dict()[k]) for k in edited.state_dict())
    assert result.teacher_memorised is None and all(r.memorised is None for r in result.rows)
    assert result.row(EDIT).test > result.row(RAW).test  # the test labels are the user's own, scored
    assert "no true labels" in result.summary() and "memorised" not in result.edit_line().split(":")[1]
    assert result.tables()[0].rows[0][1] == "–"
    json.dumps(result.to_dict(), allow_nan=False)


def test_the_checkpoint_is_the_neighbour_votes_not_the_class_subspace_readouts(planted_run):
    """The rule the choice replaced, the checkpoint that agrees most with the class-subspace
    readout of layer 1 (ten directions per class), takes the memorising checkpoint here: the
    planted noise sends every class to the next, so each observed class's directions span the
    class unit its wrong labels came from and the readout sides with the observed label on most
    noisy examples. The neighbours' class names the true label of 91% of the training examples
    and agrees most with the rule-only checkpoint, which the edit takes."""
    run = interp.load_run(planted_run)
    ds = run.dataset
    train = ds.train_mask
    assert most_agreeing_checkpoint(run, readout_classes(run)) == (2, pytest.approx(0.97))
    votes = neighbour_votes(ds.inputs[train], ds.labels[train], ds.p)
    named = teacher_classes(torch.zeros_like(votes), votes)
    assert float((named == ds.true_labels[train]).double().mean()) == pytest.approx(0.91)
    assert chosen_checkpoint(run) == chosen_checkpoint(run, votes) == (1, pytest.approx(0.91))
    # the agreement is the share of training examples the checkpoint predicts as the vote's class
    early = interp.load_run(planted_run, 1).model
    assert chosen_checkpoint(run)[1] == float((interp.logits(early, ds.inputs[train]).argmax(-1) == named)
                                              .double().mean())
    result, _ = forget_noise(run)
    assert (result.checkpoint, result.agreement) == chosen_checkpoint(run)
    assert result.row(EDIT).memorised == 0.0 and result.row(EDIT).test == 1.0


def test_neighbour_votes_and_the_teacher_in_closed_form(monkeypatch):
    # four directions on the circle: 0° and 10° are each other's nearest, 90° and 100° too;
    # the second neighbour of 0° is 90° (at 90°), of 90° it is 10° (at 80°)
    angles = torch.tensor([0.0, 10.0, 90.0, 100.0]).deg2rad()
    inputs = torch.stack([angles.cos(), angles.sin()], 1) * torch.tensor([[1.0], [3.0], [0.5], [2.0]])
    labels = torch.tensor([0, 1, 2, 2])
    votes = neighbour_votes(inputs, labels, 3, k=2)
    expected = torch.tensor([[0, 0.5, 0.5], [0.5, 0, 0.5], [0, 0.5, 0.5], [0, 0.5, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(votes, expected)
    indices, cosines = nearest_neighbours(inputs, k=2)  # nearest first, the cosine of the angle between
    assert indices.tolist() == [[1, 2], [0, 2], [3, 1], [2, 1]]
    torch.testing.assert_close(cosines, torch.tensor([[10.0, 90], [10, 80], [10, 80], [10, 90]]).deg2rad().cos()
                               .double(), atol=1e-6, rtol=0)  # float32 inputs
    from interp.analysis import feature_edit

    monkeypatch.setattr(feature_edit, "NEIGHBOUR_CHUNK", 3)  # rows in two chunks: the same votes
    torch.testing.assert_close(neighbour_votes(inputs, labels, 3, k=2), expected)
    monkeypatch.undo()
    # the same angle twice: a tie goes to the smaller index
    tied = neighbour_votes(torch.tensor([[1.0, 0], [1.0, 0], [2.0, 0], [0, 1.0]]), torch.tensor([0, 1, 2, 0]), 3, k=1)
    assert tied.argmax(1).tolist() == [1, 0, 0, 0]
    trajectory = torch.tensor([[0.6, 0.4, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    near = torch.tensor([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]], dtype=torch.float64)
    assert teacher_classes(trajectory, near).tolist() == [1, 2]  # 0.6 < 0.9; 1.0 beats 0.7
    assert teacher_classes(torch.tensor([[0.5, 0.5]], dtype=torch.float64),
                           torch.zeros(1, 2, dtype=torch.float64)).tolist() == [0]  # a tie: the smaller class
    with pytest.raises(ValueError, match="more than 2 training examples"):
        neighbour_votes(inputs[:2], labels[:2], 3, k=2)


def test_the_neighbours_vote_in_the_first_hidden_layer_too(tmp_path, monkeypatch):
    """Where the inputs' geometry groups no class (the planted net's nuisance inputs at spread 5:
    an example's nearest neighbours by cosine are of any class), the first hidden layer's does
    (its rule units read the class coordinate ×20). `hidden_votes` is the neighbour vote of that
    layer, written out here as relu(W x + b); its class names the true label of 92% of the
    training examples, the raw inputs' of 35%. The edit's teacher reads both: on a run whose
    rule-only checkpoint is unsure (its readout scaled by 0.01, softmax near uniform) the votes
    decide, and the teacher names the true label of 94% of the noisy examples, against 53% with
    the raw inputs' vote alone (the teacher until the two spaces)."""
    ds, model, memory = planted_feature_mlp(spread=5.0)
    train = ds.train_mask
    inputs, observed, truth = ds.inputs[train], ds.labels[train], ds.true_labels[train]
    first = torch.relu(model.blocks[0].linear(inputs)).detach()
    torch.testing.assert_close(hidden_votes(model, inputs, observed, ds.p), neighbour_votes(first, observed, ds.p))

    def named(votes):
        return float((teacher_classes(torch.zeros_like(votes), votes) == truth).double().mean())

    assert named(hidden_votes(model, inputs, observed, ds.p)) == pytest.approx(0.92)
    assert named(neighbour_votes(inputs, observed, ds.p)) == pytest.approx(0.353, abs=1e-3)
    with torch.no_grad():
        model.unembed.weight[:, :ds.p] *= 0.01
    run = interp.load_run(write_planted_feature_run(tmp_path / "run", ds, model, memory, memorising_steps=1))
    result, _ = forget_noise(run)
    assert result.checkpoint == 1 and result.teacher_recovered == pytest.approx(0.944, abs=1e-3)
    assert result.row(EDIT).test == 1.0
    from interp.analysis import feature_edit

    monkeypatch.setattr(feature_edit, "hidden_votes", lambda model, inputs, labels, classes: neighbour_votes(
        inputs, labels, classes))
    assert forget_noise(run)[0].teacher_recovered == pytest.approx(0.533, abs=1e-3)


def test_the_layers_vote_reads_the_chosen_checkpoint(planted_run, monkeypatch):
    """The layer whose neighbours vote is the chosen checkpoint's (the rule-only step 1), not the
    final memorising model's — whose block 1 and readout differ — and the edited run's provenance
    says which spaces voted."""
    from interp.analysis import feature_edit

    run = interp.load_run(planted_run)
    seen = []
    monkeypatch.setattr(feature_edit, "hidden_votes", lambda model, *args: seen.append(model) or hidden_votes(
        model, *args))
    result, _ = forget_noise(run)
    checkpoint = interp.load_run(planted_run, result.checkpoint).model.state_dict()
    assert len(seen) == 1 and all(torch.equal(seen[0].state_dict()[n], checkpoint[n]) for n in checkpoint)
    assert not all(torch.equal(run.model.state_dict()[n], checkpoint[n]) for n in checkpoint)
    assert feature_edit.provenance(result)["neighbour spaces"] == ["inputs", "the start's first hidden layer"]


def test_a_checkpoints_logits_are_computed_once_per_run_and_dataset(planted_run):
    """The noise score and the edit read the same checkpoints: their float64 logits are kept on
    the Run (`Run.memo`) — and recomputed for another dataset set on it, never served stale."""
    from interp.analysis.feature_edit import checkpoint_logits

    run = interp.load_run(planted_run)
    first = checkpoint_logits(run, 1)
    assert checkpoint_logits(run, 1) is first and first.dtype == torch.float64
    expected = interp.logits(interp.families.in_float64(interp.load_run(planted_run, 1).model),
                             run.dataset.inputs[run.dataset.train_mask])
    assert torch.equal(first, expected)
    run.dataset = dataclasses.replace(run.dataset, inputs=run.dataset.inputs * 2)
    again = checkpoint_logits(run, 1)
    assert again is not first and not torch.equal(again, first)
    assert dataclasses.replace(run).memo == {}  # a new Run starts its own


def test_the_fine_tune_toward_soft_targets_ends_at_their_distributions():
    """The cross-entropy to a distribution is least at that distribution: fitted long enough
    from distinct inputs, the softmax reaches the soft targets (the hard ones would drive it to
    one class)."""
    from interp.families.mlp import MLPNet, MLPSpec

    inputs = torch.eye(4)
    soft = torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]], dtype=torch.float64)
    model = MLPNet(MLPSpec(d_in=4, widths=(16,)), 2)
    tuned, steps = fine_tuned(model, inputs, soft.argmax(1), max_steps=1500, stop_at=None, soft=soft)
    assert steps == 1500
    torch.testing.assert_close(interp.logits(tuned, inputs).detach().double().softmax(1), soft, atol=0.02, rtol=0)
    hard, _ = fine_tuned(model, inputs, soft.argmax(1), max_steps=1500, stop_at=None)
    assert float(interp.logits(hard, inputs).detach().softmax(1).max(1).values.min()) > 0.99


def test_the_teachers_choices_do_not_turn_on_the_last_digits():
    """Another CPU or thread count sums in another order and moves a float's last digits: a
    difference that small must not pick a neighbour or the teacher's class. Here a neighbour at a
    cosine 2e-10 below the exact duplicate's, and a class 1e-13 ahead, are ties (rounded to 1e-9),
    decided by the smaller index and the smaller class."""
    inputs = torch.tensor([[1.0, 0.0], [1.0, 2e-5], [2.0, 0.0], [0.0, 1.0]])
    votes = neighbour_votes(inputs, torch.tensor([0, 1, 2, 0]), 3, k=1)
    assert votes[0].argmax().item() == 1  # not 2, whose cosine is 1 exactly
    nearly = torch.tensor([[0.5, 0.5 + 1e-13]], dtype=torch.float64)
    assert teacher_classes(nearly, torch.zeros(1, 2, dtype=torch.float64)).tolist() == [0]


def test_the_fine_tune_does_not_turn_on_the_summation_order(digits_run):
    """Another CPU (AVX2 or AVX-512) or thread count sums the full batch's gradient in another
    order. Here the order is changed by permuting the training examples: the fine-tune (100
    steps toward the observed labels) ends at the same predictions and, rounded to the model's
    float32, the same weights bit for bit. (Fine-tuned in float32, the weights here parted by up
    to 2e-7, and on the released digits-tt-40 an AVX2 CPU moved a control's scores.)"""
    ds, model = digits_run.dataset, digits_run.model
    inputs, target = ds.inputs[ds.train_mask], ds.labels[ds.train_mask]
    order = torch.randperm(len(target), generator=torch.Generator().manual_seed(0))
    one, _ = fine_tuned(model, inputs, target, max_steps=100, stop_at=None)
    other, _ = fine_tuned(model, inputs[order], target[order], max_steps=100, stop_at=None)
    assert next(one.parameters()).dtype == torch.float32  # written back in the model's own type
    for (name, a), b in zip(one.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), (name, float((a - b).abs().max()))


def test_the_random_control_does_not_relabel_the_noise_drawn_with_the_same_seed():
    """Label noise is drawn by randperm with seed 0; the control's draw with seed 0 must not be
    the same one (it would relabel exactly the noisy examples). Each one drawn gets another class."""
    ds = make_dataset(TaskSpec(op="classify", data="digits", train_fraction=0.7), NoiseSpec("symmetric", 0.4))
    noisy, observed = ds.noisy_mask[ds.train_mask], ds.labels[ds.train_mask]
    relabelled = relabelled_at_random(observed, int(noisy.sum()), ds.p)
    changed = relabelled != observed
    assert int(changed.sum()) == int(noisy.sum()) and 0 <= int(relabelled.min()) and int(relabelled.max()) < ds.p
    assert 0.3 <= float(noisy[changed].double().mean()) <= 0.5  # about the noise rate, not all of them
    assert len(set(((relabelled - observed) % ds.p)[changed].tolist())) == ds.p - 1  # every other class


def plain_forward(state: dict, x: torch.Tensor) -> torch.Tensor:
    """The written weights in a plain nn.Sequential, loaded by name without interp."""
    hidden = sorted({int(k.split(".")[1]) for k in state if k.startswith("blocks.")})
    linears = []
    for name in [f"blocks.{i}.linear" for i in hidden] + ["unembed"]:
        layer = nn.Linear(state[f"{name}.weight"].shape[1], state[f"{name}.weight"].shape[0])
        layer.load_state_dict({"weight": state[f"{name}.weight"], "bias": state[f"{name}.bias"]})
        linears += [layer, nn.ReLU()]
    with torch.no_grad():
        return nn.Sequential(*linears[:-1])(x)


def test_interp_edit_writes_the_feature_edit_that_loads_in_plain_torch(planted_run, tmp_path, capsys):
    out = tmp_path / "edited"
    assert main(["edit", str(planted_run), "--out", str(out)]) == 0
    edited = interp.load_run(out)
    config = json.loads((out / "config.json").read_text())
    assert config["edited_from"]["run"] == str(planted_run) and "no true label" in config["edited_from"]["reads"]
    # `step` is the number of updates behind the weights: the source's 3 and the fine-tune's (none:
    # the rule-only checkpoint already agrees with the teacher)
    assert config["edited_from"]["start"] == 1 and edited.step == 3 + config["edited_from"]["steps"]
    # the CLI writes `forget_noise`'s edit: the same weights, bit for bit
    _, expected = forget_noise(interp.load_run(planted_run))
    assert all(torch.equal(edited.model.state_dict()[k], v) for k, v in expected.state_dict().items())
    assert edited.final_metrics["test_acc"] == 1.0
    # its report says it is an edit, and of which run
    from interp.reporting.report import _headline

    assert f"3 steps, edited from {planted_run}" in _headline(edited, {})["model"]
    x = edited.dataset.inputs
    torch.testing.assert_close(plain_forward(load_file(str(out / "model.safetensors")), x),
                               interp.logits(edited.model, x), rtol=0, atol=1e-4)
    assert (out / "analysis" / "feature_edit.json").exists() and "The edit:" in capsys.readouterr().out


def test_interp_edit_refuses_an_out_that_is_a_file(planted_run, tmp_path, capsys):
    (tmp_path / "edited").write_text("x")
    assert main(["edit", str(planted_run), "--out", str(tmp_path / "edited")]) == 2
    assert "edited is a file, not a folder; choose another --out" in capsys.readouterr().err


def test_interp_edit_takes_the_edit_that_the_run_supports(planted_run, capsys):
    pairs = interp.get_preset("liu-lu-80").spec.with_overrides(["p=23"])
    pair_run = interp.Run(pairs, interp.build_model(pairs.model, 23), [], 0, None,
                          make_dataset(pairs.task, pairs.noise))
    assert edit_for(pair_run) == "edit"
    assert edit_for(interp.load_run(planted_run)) == "feature_edit"
    features = interp.load_run(planted_run)
    no_trajectory = interp.Run(features.spec, features.model, [], 3, None, features.dataset)
    with pytest.raises(ValueError, match="no weight edit applies to this run: feature_edit: .*checkpoint before the "
                                         "final step .*--checkpoint STEP=FILE.*; edit: .*pairs"):
        edit_for(no_trajectory)
    with pytest.raises(ValueError, match="the feature edit does not apply to this run: .*checkpoint before"):
        forget_noise(no_trajectory)


@pytest.mark.parametrize("flagged, words", [
    ((0.012, 0.948), "leaving them out does as well on test, so the teacher's flags, more than its new labels, carry "
                     "the forgetting (the new labels forget 0.6 points more)."),
    ((0.001, 0.950), "(the new labels forget 0.5 points less)."),
    ((0.012, 0.940), "left out instead, 1.2%, 94.0%."),  # worse on test: no reading of where the forgetting is
    ((0.020, 0.974), "leaving them out does better on test, so the teacher's flags"),  # 3 points, beyond the band
    ((0.300, 0.974), "leaving them out does better on test but keeps 29.4 points more of the memory."),
])
def test_the_edit_claim_reads_its_flagged_control_both_ways(flagged, words):
    from interp.analysis.feature_edit import EDIT, FLAGGED, OBSERVED, RAW, RELABELLED, FeatureEdit, Scores

    rows = [Scores(RAW, 1.0, 0.0, 1.0, 0.655, True), Scores(EDIT, 0.006, 0.9, 0.979, 0.944, True),
            Scores(OBSERVED, 0.078, 0.8, 0.979, 0.883, True), Scores(FLAGGED, *flagged[:1], 0.9, 0.983, flagged[1], True),
            Scores(RELABELLED, 0.078, 0.7, 0.922, 0.814, True)]
    claim = FeatureEdit(50, [25, 50], 0.9, 0.41, 0.006, 0.9, 32, rows).claim()
    assert words in claim and claim.endswith(".")


def test_the_edit_claim_without_a_known_wrong_label_gives_the_controls_test_and_a_lowered_test():
    """A clean-label ceiling run, or a user's data without true labels: memorisation is not scored,
    but the controls' test is given, and an edit that lowers test says there may be no noise."""
    from interp.analysis.feature_edit import EDIT, FLAGGED, OBSERVED, RAW, RELABELLED, FeatureEdit, Scores

    rows = [Scores(RAW, None, None, 1.0, 0.978, True), Scores(EDIT, None, None, 0.97, 0.955, True),
            Scores(OBSERVED, None, None, 0.99, 0.970, True), Scores(FLAGGED, None, None, 0.99, 0.957, True),
            Scores(RELABELLED, None, None, 0.92, 0.900, True)]
    claim = FeatureEdit(50, [25, 50], 0.9, 0.03, None, None, 12, rows).claim()
    assert "on the observed labels, test 97.0%; with the examples the teacher relabels left out instead, 95.7%" in claim
    assert claim.endswith("the edit lowers test (97.8% → 95.5%): with no label known wrong there may be no noise to "
                          "forget.")
