"""The model-family interface: a third family, registered from outside the library, runs every
analysis that applies to it; pair inputs cannot silently reach a transformer."""

import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from conftest import small_transformer
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

import interp
from interp.families.base import FAMILIES, ModelFamily, family_of, register, replaced_parameters
from interp.analysis.registry import ANALYSES
from interp.core.specs import MODEL_SPECS, NoiseSpec, RunSpec, TaskSpec, TrainSpec


@dataclass(frozen=True)
class BagSpec:
    arch = "bag"
    d_embed: int = 16
    d_hidden: int = 48
    seed: int = 0


class BagMLP(HookedRootModule):
    """logits = relu((E[a] + E[b]) · W_in) · W_out: one shared embedding, unlike the two-layer net."""

    def __init__(self, spec: BagSpec, p: int):
        super().__init__()
        gen = torch.Generator().manual_seed(spec.seed)
        self.E = nn.Parameter(torch.randn(p, spec.d_embed, generator=gen) / spec.d_embed**0.5)
        self.W_in = nn.Parameter(torch.randn(spec.d_embed, spec.d_hidden, generator=gen) / spec.d_embed**0.5)
        self.W_out = nn.Parameter(torch.randn(spec.d_hidden, p, generator=gen) / spec.d_hidden**0.5)
        self.spec = spec
        self.hook_embed, self.hook_hidden, self.hook_logits = HookPoint(), HookPoint(), HookPoint()
        self.setup()

    def forward(self, pairs):
        embed = self.hook_embed(self.E[pairs].sum(1))
        return self.hook_logits(self.hook_hidden(F.relu(embed @ self.W_in)) @ self.W_out)


class BagFamily(ModelFamily):
    name, spec_type = "bag", BagSpec

    def owns(self, model):
        return isinstance(model, BagMLP)

    def build(self, spec, p):
        return BagMLP(spec, p)

    def spec(self, model):
        return model.spec

    def readout_hook(self, model):
        return "hook_hidden"

    def unit_to_logit(self, model):
        return model.W_out.detach()

    def embedding(self, model):
        return model.E.detach()

    def unembedding(self, model):
        return model.W_out.detach()

    def with_residue_weights(self, model, embedding=None, unembedding=None):
        values = {"E": embedding} if embedding is not None else {}
        if unembedding is not None:
            values["W_out"] = unembedding
        return replaced_parameters(model, values)


@pytest.fixture
def bag_family():
    family = register(BagFamily())
    yield family
    FAMILIES.pop("bag")
    MODEL_SPECS.pop("bag")


def test_a_registered_family_trains_saves_and_runs_every_analysis_that_applies(bag_family, tmp_path):
    spec = RunSpec(task=TaskSpec(op="add", p=11, train_fraction=0.7), noise=NoiseSpec(kind="wrong", rate=0.3),
                   model=BagSpec(), train=TrainSpec(steps=30, lr=1e-2, eval_every=10, checkpoint_every=10))
    run = interp.train(spec, tmp_path / "bag", progress=False)
    loaded = interp.load_run(tmp_path / "bag")
    assert family_of(loaded.model) is bag_family and loaded.spec == spec
    torch.testing.assert_close(loaded.logits(run.dataset.inputs), run.logits(run.dataset.inputs))

    data = interp.report.write_report(loaded, tmp_path / "report", progress=False)
    applies = {name for name, a in ANALYSES.items() if a.skip_reason(loaded) is None}
    # the partition needs per-neuron residue maps, the circuit views heads, patching positions,
    # the edit a readout map it can rewrite as weights
    skipped = {"partition", "circuit", "patching", "patching_over_training", "edit", "class_subspaces", "layer_rewind",
               "suspect_neurons"}
    assert applies == set(ANALYSES) - skipped
    assert set(data["analyses"]) == applies and set(data["skipped"]) == skipped
    json.dumps(data)  # every number serialisable
    # the family's views drive the analyses: the readout scan ablates every hidden unit
    assert len(data["analyses"]["ablation"]["scans"]["neurons"]["metrics"]["test_acc"]) == 48
    assert data["analyses"]["fourier"]["power"]["W_E"] and "hook_hidden.W_out_U" in data["analyses"]["fourier"]["power"]


def test_unknown_model_names_the_registered_families():
    with pytest.raises(TypeError, match="no registered model family"):
        family_of(nn.Linear(2, 2))


def test_transformer_refuses_bare_pairs_and_takes_them_through_the_pair_api(tmp_path):
    run = interp.train(small_transformer(steps=2), progress=False)
    pairs = run.dataset.inputs[:5]
    for call in (lambda: run.model(pairs), lambda: run.model.run_with_cache(pairs),
                 lambda: run.model.run_with_hooks(pairs, fwd_hooks=[])):
        with pytest.raises(ValueError, match="interp.tokens"):
            call()
    tokens = interp.tokens(run.model, pairs)
    assert tokens.shape == (5, 3) and bool((tokens[:, 2] == run.spec.task.p).all())
    logits, cache = run.run_with_cache(pairs)
    assert logits.shape == (5, 3, run.spec.task.p)  # TransformerLens's own output, every position
    torch.testing.assert_close(logits[:, -1], interp.logits(run.model, pairs))
    assert cache["blocks.0.mlp.hook_post"].shape[:2] == (5, 3)


def test_analyses_run_with_the_model_on_an_explicit_device():
    """The family moves the pairs to the model's device and the results back to the pairs' (and
    labels'): run here with `device="cpu"` named explicitly; on a GPU machine the same calls
    take a model trained with `--device cuda`."""
    from conftest import small_two_layer

    run = interp.train(small_two_layer(steps=5), progress=False, device=torch.device("cpu"))
    result = interp.analyze(run, "filtration")
    assert result.rows["raw"]["test_acc"] == pytest.approx(run.final_metrics["test_acc"])
    logits, cache = family_of(run.model).run_with_cache(run.model, run.dataset.inputs, names_filter="hook_post")
    assert logits.device == run.dataset.inputs.device == cache["hook_post"].device
