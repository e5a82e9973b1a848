"""The label-free noise score (`noise_scores`) on a planted MLP whose trajectory is known by
construction: step 1 the rule alone, step 2 and the final step the net that memorises every
noisy label. There the class-subspace doubt (the score before it, ten directions per class) is
at chance and the early trajectory separates the noise exactly; each part is recomputed here
from plain tensors."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import interp
from interp.analysis.class_subspaces import NO_NETWORK, class_subspace_readout
from interp.analysis.feature_edit import chosen_checkpoint
from interp.analysis.noise_scores import PARTS, auroc, noise_score
from interp.core.class_structure import class_subspaces, label_doubt
from interp.planted import planted_feature_mlp
from planted_runs import write_planted_feature_run


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    dataset, model, memory = planted_feature_mlp()
    out = write_planted_feature_run(tmp_path_factory.mktemp("planted") / "run", dataset, model, memory,
                                    memorising_steps=1)
    return interp.load_run(out)


def relu_mlp(state: dict, x: torch.Tensor) -> list[torch.Tensor]:
    """The hidden layers and the logits of the MLP with these weights, written out in float64."""
    x, outputs = x.double(), []
    for i in range(2):
        x = torch.relu(x @ state[f"blocks.{i}.linear.weight"].double().T + state[f"blocks.{i}.linear.bias"].double())
        outputs.append(x)
    return outputs + [x @ state["unembed.weight"].double().T + state["unembed.bias"].double()]


def test_the_score_is_the_three_doubts_and_the_trajectory_finds_the_noise_the_subspaces_miss(planted_run):
    run = planted_run
    ds = run.dataset
    train = ds.train_mask
    x, observed, noisy = ds.inputs[train], ds.labels[train], ds.noisy_mask[train]
    result = noise_score(run)
    # the checkpoints up to the feature edit's label-free choice (tests/test_feature_edit.py)
    chosen, _ = chosen_checkpoint(run)
    assert result.steps == [s for s in (1, 2) if s <= chosen] and result.steps
    # the trajectory: mean softmax of those checkpoints at the observed label
    probs = [F.softmax(relu_mlp(interp.load_run(run.path, s).model.state_dict(), x)[-1], -1) for s in result.steps]
    trajectory = 1 - (sum(probs) / len(probs)).gather(1, observed[:, None]).squeeze(1)
    torch.testing.assert_close(result.trajectory, trajectory)
    # step 1 is the rule alone (the true class), step 2 the memory (the observed one): a noisy
    # label is doubted by step 1's share of the trajectory, a clean one not at all
    share = 1 / len(result.steps)
    assert float(result.trajectory[noisy].min()) > share - 1e-6
    assert float(result.trajectory[~noisy].max()) < 1e-6
    # the neighbours: the observed labels of the 10 nearest other training inputs by cosine
    unit = F.normalize(x.double(), dim=1)
    similarity = unit @ unit.T - 3 * torch.eye(len(x), dtype=torch.float64)
    nearest = similarity.topk(10, dim=1).indices
    votes = 1 - (observed[nearest] == observed[:, None]).double().mean(1)
    torch.testing.assert_close(result.votes, votes)
    # the class structure: the final model's first layer, ten directions per observed class
    first = relu_mlp(run.model.state_dict(), x)[0]
    subspace = label_doubt(first, observed, class_subspaces(first, observed, ds.p, 10))
    torch.testing.assert_close(result.subspace, subspace)
    torch.testing.assert_close(result.score, subspace + trajectory + votes)
    # the score before it is at chance here; the new one finds the noise
    assert auroc(subspace, noisy) < 0.6 and auroc(votes, noisy) < 0.6
    assert auroc(trajectory, noisy) == 1.0 and auroc(result.score, noisy) > 0.99


def test_the_score_reads_no_true_label(planted_run):
    """With every true label shifted and the noise mask inverted, the score is bit-identical."""
    run = planted_run
    ds = run.dataset
    shifted = dataclasses.replace(ds, true_labels=(ds.true_labels + 1) % ds.p,
                                  noisy_mask=ds.train_mask & ~ds.noisy_mask)
    blind = interp.Run(run.spec, run.model, run.history, run.step, run.path, shifted)
    assert torch.equal(noise_score(blind).score, noise_score(run).score)


def test_the_readout_reports_the_score_and_falls_back_without_a_trajectory(planted_run):
    run = planted_run
    result = class_subspace_readout(run)
    noisy = run.dataset.noisy_mask[run.dataset.train_mask]
    score = noise_score(run)
    assert result.noise_score_auroc == auroc(score.score, noisy) and result.noise_score_steps == score.steps
    assert result.noise_detection() == (f"the label-free noise score ({PARTS})", result.noise_score_auroc)
    # its control reads no network: the raw inputs' class-subspace doubt plus the neighbour vote
    ds = run.dataset
    x, observed = ds.inputs[ds.train_mask], ds.labels[ds.train_mask]
    raw = label_doubt(x, observed, class_subspaces(x, observed, ds.p, 10))
    assert result.noise_control() == (NO_NETWORK, auroc(raw + score.votes, noisy))
    assert f"with no network ({NO_NETWORK}): {result.noise_control_auroc:.3f}" in result.summary()
    assert f"checkpoints up to step {score.steps[-1]}): AUROC {result.noise_score_auroc:.3f}" in result.summary()
    # a model in memory has no checkpoints: the headline falls back to the first layer's doubt
    alone = class_subspace_readout(interp.Run(run.spec, run.model, [], 0, None, run.dataset))
    first = alone.label_free()
    assert alone.noise_score_auroc is None and "trajectory" in alone.noise_score_missing
    assert alone.noise_detection() == (f"label doubt at {first.where}", first.noise_auroc)
    assert "is not read: it reads the early trajectory" in alone.summary()
    with pytest.raises(ValueError, match="needs a run directory with a checkpoint before the final step"):
        noise_score(interp.Run(run.spec, run.model, [], 0, None, run.dataset))
