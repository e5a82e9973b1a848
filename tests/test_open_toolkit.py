"""A new family and a new analysis, each defined in this file alone, work everywhere: the family
trains, saves, loads and runs every analysis that applies (the others are skipped, with the
reason said in words); the analysis appears in `interp.analyze`, `interp analyze` and the report.
Nothing outside this file is edited for either."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

import interp
from interp.analysis.registry import ANALYSES, Result, register_analysis
from interp.cli import main
from interp.core.specs import MODEL_SPECS
from interp.families import FAMILIES, Capability, ModelFamily, register, replaced_parameters
from interp.families.two_layer import TwoLayerNet
from interp.reporting.report import write_report

P = 11


@dataclass(frozen=True)
class EmbedMLPSpec:
    """Chughtai et al.'s embedding MLP: logits = ReLU([W_x[a]; W_y[b]]·W)·W_U, no biases."""

    arch = "embed_mlp_test"
    embed: int = 8
    hidden: int = 40
    seed: int = 0


class EmbedMLP(HookedRootModule):
    def __init__(self, spec: EmbedMLPSpec, p: int):
        super().__init__()
        self.spec, self.p = spec, p
        gen = torch.Generator().manual_seed(spec.seed)
        e, h = spec.embed, spec.hidden
        self.W_x = nn.Parameter(torch.randn(p, e, generator=gen) / e**0.5)
        self.W_y = nn.Parameter(torch.randn(p, e, generator=gen) / e**0.5)
        self.W = nn.Parameter(torch.randn(2 * e, h, generator=gen) / (2 * e) ** 0.5)
        self.W_U = nn.Parameter(torch.randn(h, p, generator=gen) / h**0.5)
        self.hook_pre, self.hook_post, self.hook_logits = HookPoint(), HookPoint(), HookPoint()
        self.setup()

    def forward(self, pairs: Tensor) -> Tensor:
        pre = self.hook_pre(torch.cat([self.W_x[pairs[:, 0]], self.W_y[pairs[:, 1]]], 1) @ self.W)
        return self.hook_logits(self.hook_post(F.relu(pre)) @ self.W_U)


class EmbedMLPFamily(ModelFamily):
    """Honest neuron maps: neuron n's pre-activation on (a, b) is (W_x·W[:e])[a, n] + (W_y·W[e:])[b, n]."""

    name = EmbedMLPSpec.arch
    spec_type = EmbedMLPSpec
    provides = frozenset({Capability.NEURON_MAPS})

    def owns(self, model):
        return isinstance(model, EmbedMLP)

    def build(self, spec, p):
        return EmbedMLP(spec, p)

    def spec(self, model):
        return model.spec

    def readout_hook(self, model):
        return "hook_post"

    def unit_to_logit(self, model):
        return model.W_U.detach()

    def embedding(self, model):
        return model.W_x.detach()

    def unembedding(self, model):
        return model.W_U.detach()

    def with_residue_weights(self, model, embedding=None, unembedding=None):
        values = {"W_x": embedding} if embedding is not None else {}
        if unembedding is not None:
            values["W_U"] = unembedding
        return replaced_parameters(model, values).eval()

    def neuron_maps(self, model):
        e = model.spec.embed
        return {"u": (model.W_x @ model.W[:e]).detach().T, "v": (model.W_y @ model.W[e:]).detach().T,
                "w": model.W_U.detach()}

    def neuron_activation(self, model):
        return "relu"

    def with_neuron_maps(self, model, u, v, w, act=None):
        # edited maps need not factor through an embedding: the two-layer net computes them exactly
        net = TwoLayerNet(interp.TwoLayerSpec(width=u.shape[0], act=act or "relu", bias=False), model.p)
        with torch.no_grad():
            net.U.copy_(u), net.V.copy_(v), net.W.copy_(w.T)
        return net.eval()


@dataclass(repr=False)
class NeuronCount(Result):
    """The in-test analysis: how many readout neurons ever fire on the run's own pairs."""

    alive: int
    total: int

    def to_dict(self):
        return {"alive": self.alive, "total": self.total}

    def summary(self):
        return f"{self.alive} of {self.total} readout neurons fire on some pair."


def count_neurons(run) -> NeuronCount:
    family = interp.families.family_of(run.model)
    hook = family.readout_hook(run.model)
    _, cache = family.run_with_cache(run.model, run.dataset.inputs, names_filter=hook)
    return NeuronCount(int((cache[hook] > 0).any(0).sum()), cache[hook].shape[1])


@pytest.fixture(scope="module")
def extended():
    """Register the family and the analysis for this module's tests, and take them back after."""
    family = register(EmbedMLPFamily())
    analysis = register_analysis("neuron_count", "Live neurons", count_neurons, order=95)
    yield family, analysis
    FAMILIES.pop(family.name), MODEL_SPECS.pop(family.name), ANALYSES.pop("neuron_count")


@pytest.fixture(scope="module")
def run_dir(extended, tmp_path_factory):
    spec = interp.RunSpec(task=interp.TaskSpec(p=P, train_fraction=0.5), noise=interp.NoiseSpec(rate=0.3),
                          model=EmbedMLPSpec(), train=interp.TrainSpec(steps=150, lr=0.01, eval_every=50,
                                                                        checkpoint_every=50))
    out = tmp_path_factory.mktemp("embed") / "run"
    interp.train(spec, out, progress=False)
    return out


def test_the_family_trains_saves_and_loads(run_dir):
    run = interp.load_run(run_dir)
    assert isinstance(run.model, EmbedMLP) and run.spec.model == EmbedMLPSpec()
    assert json.loads((run_dir / "config.json").read_text())["spec"]["model"]["arch"] == "embed_mlp_test"
    assert run.final_metrics["train_acc"] > 0.9  # it fits its labels, noise included
    # its neuron maps are honest: rebuilt from them, the two-layer net computes its logits
    family = interp.families.family_of(run.model)
    maps = family.neuron_maps(run.model)
    rebuilt = family.with_neuron_maps(run.model, maps["u"], maps["v"], maps["w"])
    torch.testing.assert_close(interp.logits(rebuilt, run.dataset.inputs), interp.logits(run.model, run.dataset.inputs),
                               atol=1e-4, rtol=1e-4)


def test_every_analysis_that_applies_runs_and_the_others_say_why(run_dir):
    run = interp.load_run(run_dir)
    applied, skipped = [], {}
    for name, analysis in ANALYSES.items():
        reason = analysis.skip_reason(run)
        if reason:
            skipped[name] = reason
            continue
        result = interp.analyze(run, name)
        json.dumps(result.to_dict())  # serialises
        applied.append(name)
    assert {"fourier", "filtration", "localize", "ablation", "partition", "probes", "dynamics",
            "neuron_count"} <= set(applied)
    assert set(skipped) == {"circuit", "patching", "patching_over_training", "edit", "class_subspaces", "layer_rewind",
                            "suspect_neurons"}
    assert all("embed_mlp_test family does not have" in reason for reason in skipped.values())
    assert "attention heads" in skipped["circuit"] and "position axis" in skipped["patching"]
    # the neuron-map analyses read this family's maps: f^G + f^R is the whole network's pre-activation
    extraction = interp.analyze(run, "filtration")
    assert extraction.rows["raw"]["train_acc"] == pytest.approx(run.final_metrics["train_acc"], abs=1e-9)


def test_the_analysis_appears_in_the_api_the_cli_and_the_report(extended, run_dir, tmp_path, capsys):
    _, analysis = extended
    run = interp.load_run(run_dir)
    typed = analysis(run)  # the typed handle
    assert isinstance(typed, NeuronCount) and typed.total == EmbedMLPSpec().hidden
    assert interp.analyze(run, "neuron_count").to_dict() == typed.to_dict()
    assert main(["analyze", str(run_dir), "--analysis", "neuron_count", "--out", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "neuron_count.json").read_text())["result"]["alive"] == typed.alive
    assert "readout neurons fire" in capsys.readouterr().out
    data = write_report(run, tmp_path / "report", progress=False)
    assert data["analyses"]["neuron_count"]["alive"] == typed.alive
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Live neurons" in md and f"{typed.alive} of {typed.total} readout neurons" in md
    assert "attention heads" in md  # the skipped analyses say why


def test_built_in_analyses_have_typed_handles(run_dir):
    from interp.analysis.filtration import EXTRACTION, Extraction

    run = interp.load_run(run_dir)
    assert isinstance(EXTRACTION(run), Extraction) and ANALYSES["filtration"] is EXTRACTION
