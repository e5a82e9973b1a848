"""A new family and a new analysis, defined outside interp (tests/third_party.py), work
everywhere: both pass the conformance suites (`interp.testing`) as a third party runs them; the
family trains, saves, loads and runs every analysis that applies (the others are skipped, with
the reason said in words); the analysis appears in `interp.analyze`, `interp analyze` and the
report. Nothing in interp is edited for either."""

from __future__ import annotations

import json

import pytest
import torch
from third_party import FAMILY, NEURON_COUNT, EmbedMLP, EmbedMLPSpec, NeuronCount, registered

import interp
from interp.analysis.registry import ANALYSES
from interp.cli import main
from interp.reporting.report import write_report
from interp.testing import parametrize_with_checks

P = 11
pytestmark = pytest.mark.xdist_group("third_party")  # the module's registration and runs, on one worker


@pytest.fixture(scope="module", autouse=True)
def extended():
    """Register the family and the analysis for this module's tests, and take them back after."""
    with registered() as both:
        yield both


# the conformance suites, as a third party runs them on its own family (its state dict is the
# embed-mlp checkpoint format, so the importer's round trip is checked too) and analysis
@parametrize_with_checks([(FAMILY, EmbedMLPSpec(hidden=24), "embed-mlp"), NEURON_COUNT])
def test_the_family_and_the_analysis_conform(subject, check):
    check(subject)


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


def test_the_analyses_that_need_what_the_family_lacks_say_why(run_dir):
    run = interp.load_run(run_dir)
    skipped = {name: a.skip_reason(run) for name, a in ANALYSES.items() if a.skip_reason(run)}
    assert set(skipped) == {"circuit", "patching", "patching_over_training", "edit", "feature_edit", "class_subspaces",
                            "layer_rewind", "suspect_neurons", "example_flips"}
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
