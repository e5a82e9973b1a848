"""The weight edit that forgets the noise (`interp.analysis.edit`): exact in closed form, written
as a model of the same architecture, found without reading a label, and acting on a planted net
as its construction says it should."""

import pytest
import torch

from interp.analysis.edit import edit_search, edit_space, edited_model
from interp.cli import main
from interp.core.specs import NoiseSpec, TaskSpec, TransformerSpec
from interp.core.tasks import Dataset, make_dataset
from interp.families import build_model, logits
from interp.planted import planted_two_layer
from interp.training.rundir import load_run

P = 23  # the planted search takes half the time of p = 31's, with the same margins


@pytest.fixture(scope="module")
def planted():
    """A ReLU planted net: rule neurons at three frequencies plus one lookup neuron per noisy pair."""
    ds = make_dataset(TaskSpec(p=P, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    return planted_two_layer(ds, act="relu", seed=2).model, ds


@pytest.fixture(scope="module")
def search(planted):
    """With the whole-neuron mask, which must not change the chosen edit (the next test's search
    leaves it out and asks for the same mask)."""
    return edit_search(*planted, comparisons=True)


def _random_keep(space, seed: int = 0):
    keep = (torch.rand(space.share.shape, generator=torch.Generator().manual_seed(seed)) > 0.5).float()
    keep[~space.editable] = 1.0
    return keep


@pytest.mark.parametrize("family", ["two-layer", "transformer"])
def test_an_edit_is_exact_in_closed_form_and_as_weights(planted, family):
    if family == "two-layer":
        model, ds = planted
    else:
        ds = make_dataset(TaskSpec(p=13, train_fraction=0.5), NoiseSpec())
        model = build_model(TransformerSpec(d_model=32, n_heads=2, d_head=16, d_mlp=24), 13)
    space = edit_space(model, ds)
    full = logits(model, ds.inputs)
    torch.testing.assert_close(space.logits(torch.ones_like(space.share)).float(), full, atol=1e-4, rtol=1e-4)
    keep = _random_keep(space)
    edited = edited_model(model, space, keep)
    assert type(edited) is type(model)
    torch.testing.assert_close(logits(edited, ds.inputs), space.logits(keep).float(), atol=2e-4, rtol=1e-4)
    # removing every part but the constant leaves logits that are the rest plus a per-pair constant
    bare = space.logits((~space.editable).float())
    centred = bare - bare.mean(1, keepdim=True)
    torch.testing.assert_close(centred, space.rest - space.rest.mean(1, keepdim=True), atol=1e-4, rtol=1e-4)
    # a part's share is its squared norm over the readout map's: shares of the whole map sum to 1
    assert float(space.share.sum()) == pytest.approx(1.0)


def test_the_edit_forgets_the_planted_lookups_and_keeps_the_rule(search):
    before, after = search.baseline, search.edit.metrics
    assert before["noisy_observed_acc"] > 0.9  # the planted net memorises
    assert after["noisy_observed_acc"] <= 0.1
    # the rule stays as the label-free teacher holds it (the re-synthesized net: 100% test here)
    assert after["test_acc"] >= search.teacher_metrics["test_acc"] - 0.01
    assert search.exactness < 1e-3
    # random parts of about the same size leave most of the memory
    size = min({pt.parameter for pt in search.curve("random")}, key=lambda s: abs(s - search.edit.size))
    random = [pt.metrics["noisy_observed_acc"] for pt in search.curve("random") if pt.parameter == size]
    assert sum(random) / len(random) > after["noisy_observed_acc"] + 0.3
    # one lookup neuron holds each noisy label: it flips after fewer removals than a clean pair
    assert search.flips["median_noisy"] < search.flips["median_clean"]
    # every method has its curve, and the report's pieces are there
    assert {pt.method for pt in search.points} == {"learned mask", "learned neuron mask", "greedy", "flip count", "localisation ranking", "random",
                                                  "toward the teacher's weights", "each neuron's dominant part (f^G)"}
    assert "memorised" in search.summary() and search.tables()[0].rows


def test_the_search_reads_no_label(planted, search):
    """The same pairs with other observed labels, another split and no noise mask give the same edit."""
    model, ds = planted
    generator = torch.Generator().manual_seed(5)
    train = torch.rand(len(ds.inputs), generator=generator) < 0.3
    observed = torch.where(train, torch.randint(0, P, (len(ds.inputs),), generator=generator), ds.true_labels)
    other = Dataset.from_tensors(ds.task, ds.inputs, observed, train)
    assert torch.equal(edit_search(model, other, with_labels=False).keep, search.keep)


def test_interp_edit_writes_a_run_of_the_same_architecture(tmp_path, transformer_spec, capsys):
    import interp

    run = interp.train(transformer_spec, tmp_path / "run")
    out = tmp_path / "edited"
    assert main(["edit", str(tmp_path / "run"), "--out", str(out)]) == 0
    edited = load_run(out)
    assert type(edited.model) is type(run.model) and edited.dataset.same_as(run.dataset)
    assert edited.model.state_dict().keys() == run.model.state_dict().keys()
    written = [k for k in run.model.state_dict() if not torch.equal(run.model.state_dict()[k], edited.model.state_dict()[k])]
    assert written == ["blocks.0.mlp.out.weight"]  # only the readout's output weights change
    import json

    from safetensors.torch import load_file
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    config = json.loads((out / "config.json").read_text())
    # docs/checkpoints.md's TransformerLens snippet: a strict load, and the logits of the edit
    bridge = TransformerBridge.boot_native(TransformerBridgeConfig(**config["transformer_lens_config"]))
    bridge.load_state_dict(load_file(out / "model.safetensors"), strict=True)
    p = run.dataset.p
    tokens = torch.cat([run.dataset.inputs, torch.full((len(run.dataset.inputs), 1), p)], 1)
    with torch.no_grad():
        torch.testing.assert_close(bridge(tokens)[:, -1], logits(edited.model, run.dataset.inputs), atol=1e-4, rtol=1e-4)
    assert config["edited_from"]["teacher"] and "no label" in config["edited_from"]["reads"]
    assert (out / "analysis" / "edit.png").exists()
    capsys.readouterr()
    assert main(["edit", str(tmp_path / "run"), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_a_run_without_wrong_labels_has_nothing_to_forget(planted):
    from interp.analysis.edit import EDIT
    from interp.core.specs import RunSpec, TrainSpec, TwoLayerSpec
    from interp.training.rundir import Run

    model, _ = planted
    clean = make_dataset(TaskSpec(p=P, train_fraction=0.5), NoiseSpec())
    spec = RunSpec(task=clean.task, noise=NoiseSpec(), model=TwoLayerSpec(width=model.U.shape[0]), train=TrainSpec())
    run = Run(spec, model, [], 0, dataset=clean)
    assert "no memory to forget" in EDIT.skip_reason(run)


def test_on_a_large_grid_the_search_reads_batches_of_pairs_and_still_forgets(planted, monkeypatch):
    """Above SEARCH_LOGITS the learned mask's steps and greedy's scores read batches of pairs;
    the chosen edit, scored on every pair, still forgets the planted lookups."""
    import interp.analysis.edit as edit

    model, ds = planted
    n = len(ds.inputs)
    monkeypatch.setattr(edit, "SEARCH_LOGITS", n * P // 4)
    space = edit_space(model, ds)
    assert edit.search_batch(space) == n // 4
    wanted = edit.teacher(model, ds)[1].argmax(1)
    seen, batches = [], []
    hinge, pairs_logits = edit.hinge, edit.EditSpace.logits
    monkeypatch.setattr(edit, "hinge", lambda out, *a: seen.append(out.shape[-2]) or hinge(out, *a))
    monkeypatch.setattr(edit.EditSpace, "logits", lambda self, keep, rows=None: batches.append(rows) or
                        pairs_logits(self, keep, rows))
    masks = edit.learned_masks(space, wanted)
    assert set(seen) == {n // 4}  # every step read one batch, never the whole grid
    # a fresh batch each optimiser step (the polish after each strength reads one fixed sample)
    assert len({tuple(rows.tolist()) for rows in batches}) >= sum(edit.MASK_STEPS) - 1
    points = [edit._point(space, "learned mask", s, keep, wanted, ds) for s, keep in masks]
    agreeing = [pt for pt in points if pt.agreement >= edit.AGREEMENT]
    chosen = min(agreeing, key=lambda pt: pt.size)
    assert chosen.metrics["noisy_observed_acc"] <= 0.1 and chosen.metrics["test_acc"] >= 0.99
    seen.clear()
    batches.clear()
    edit.greedy_masks(space, wanted)
    assert set(seen) == {n // 4}
    assert len({tuple(rows.tolist()) for rows in batches if rows is not None}) == 1  # one sample throughout


def test_a_move_toward_the_teacher_net_is_linear_in_the_weights_and_its_share_is_the_smallest_that_agrees(planted):
    """`toward` moves u, v and w in a straight line (t = 0 the model, 1 the teacher net, the
    midpoint their mean); the bisected share agrees and one bisection step less does not."""
    from interp.analysis.edit import AGREEMENT, BISECT, SHIFTS, shift_share, shifted_edits, toward
    from interp.analysis.filtration import label_free_model
    from interp.analysis.neurons import neuron_uvw

    model, ds = planted
    _, target = label_free_model(model, ds.task)
    torch.testing.assert_close(logits(toward(model, target, 0.0), ds.inputs), logits(model, ds.inputs))
    torch.testing.assert_close(logits(toward(model, target, 1.0), ds.inputs), logits(target, ds.inputs))
    for x, y, mid in zip(neuron_uvw(model), neuron_uvw(target), neuron_uvw(toward(model, target, 0.5))):
        torch.testing.assert_close(mid, (x + y) / 2)
    whole = sum(float((y - x).double().square().sum()) for x, y in zip(neuron_uvw(model), neuron_uvw(target)))
    assert shift_share(model, target) == pytest.approx(whole / sum(float(x.double().square().sum()) for x in neuron_uvw(model)))
    wanted = logits(target, ds.inputs).argmax(1)

    def agreement(t: float) -> float:
        return float((logits(toward(model, target, t).double(), ds.inputs).argmax(1) == wanted).double().mean())

    found = shifted_edits(model, target, ds, wanted)
    assert [t for t, _ in found[: len(SHIFTS)]] == list(SHIFTS)
    t = found[-1][0]
    assert agreement(t) >= AGREEMENT and agreement(t - SHIFTS[0] / 2 ** (BISECT - 1)) < AGREEMENT


def test_the_input_side_is_edited_only_where_no_readout_edit_agrees():
    from interp.analysis.edit import SHIFTED, EditPoint, choose

    def point(method, size, agreement):
        return EditPoint(method, size, size, 1, 0, agreement, {})

    readout_agrees = [point("learned mask", 0.3, 0.996), point(SHIFTED, 0.1, 1.0), point("learned mask", 0.2, 0.99)]
    assert choose(readout_agrees) == 0  # the output side alone forgets: the input side stays as trained
    readout_fails = [point("learned mask", 0.3, 0.9), point(SHIFTED, 0.8, 0.996), point(SHIFTED, 0.9, 1.0)]
    assert choose(readout_fails) == 1  # the smallest agreeing move
    nothing_agrees = [point("learned mask", 0.3, 0.9), point(SHIFTED, 0.8, 0.95)]
    assert choose(nothing_agrees) == 1  # the most agreeing
    # the whole move is the teacher net itself: it agrees by construction and is no edit
    only_the_teacher = [point("learned mask", 0.3, 0.96), point(SHIFTED, 0.9, 0.9), point(SHIFTED, 1.0, 1.0)]
    assert choose(only_the_teacher) == 0


def test_a_random_move_moves_each_neuron_map_as_far_as_the_move_toward_the_teacher(planted):
    from interp.analysis.edit import random_move, toward
    from interp.analysis.neurons import dominant_split, neuron_uvw

    model, ds = planted
    target = dominant_split(model, ds.task)[0]
    before = neuron_uvw(model)
    aimed = [y.double() - x.double() for x, y in zip(before, neuron_uvw(toward(model, target, 0.6)))]
    moves = [[y.double() - x.double() for x, y in zip(before, neuron_uvw(random_move(model, target, 0.6, seed)))]
             for seed in (0, 0, 1)]
    for move in moves:  # every neuron's u, v and w as far as the aimed move, not along it
        for d, a in zip(move, aimed):
            torch.testing.assert_close(d.norm(dim=1), a.norm(dim=1), rtol=1e-4, atol=1e-6)
        assert abs(torch.nn.functional.cosine_similarity(move[0].flatten(), aimed[0].flatten(), dim=0)) < 0.2
    assert all(torch.equal(a, b) for a, b in zip(moves[0], moves[1]))
    assert not torch.allclose(moves[0][0], moves[2][0])


def test_a_move_toward_the_teacher_is_scored_beside_random_moves_of_its_size(planted, monkeypatch):
    """Where the chosen edit is a move of both sides (here forced: the planted net's readout mask
    would win), random moves of the same size are its control, in the summary and the headline."""
    from interp.analysis import edit
    from interp.reporting.headline import edit_claim

    def smallest_agreeing_move(points):  # choose's second pool alone
        moves = [i for i, pt in enumerate(points) if pt.method == edit.SHIFTED and pt.parameter < 1
                 and pt.agreement >= edit.AGREEMENT]
        return min(moves, key=lambda i: points[i].size)

    monkeypatch.setattr(edit, "choose", smallest_agreeing_move)
    search = edit_search(*planted, with_labels=False)
    controls = search.curve(edit.RANDOM_MOVE)
    assert [pt.parameter for pt in controls] == list(map(float, edit.RANDOM_SEEDS))
    assert all(pt.size == search.edit.size for pt in controls)
    _, random = search.random_near(search.edit.size)
    assert random["noisy_observed_acc"] == pytest.approx(sum(pt.metrics["noisy_observed_acc"] for pt in controls) / 3)
    # aimed, the move keeps the rule; the same size at random does not
    assert random["test_acc"] < search.edit.metrics["test_acc"] - 0.3
    assert "Random moves of the same size" in search.summary() and "random moves of the same size" in edit_claim(search)["text"]
