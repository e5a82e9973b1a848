"""analyses/verdict_check.py's independent ablation (plain torch hooks, its own scores and rule)
agrees with the localisation's intervention table on a planted net."""

import importlib.util
import itertools
from pathlib import Path

import pytest

from interp import NoiseSpec, TaskSpec, make_dataset
from interp.analysis.localize import localize
from interp.core.metrics import accuracy_verdict
from interp.planted import planted_two_layer


def _script():
    path = Path(__file__).resolve().parents[1] / "analyses" / "verdict_check.py"
    spec = importlib.util.spec_from_file_location("verdict_check", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_independent_ablation_agrees_with_the_table_on_a_planted_net():
    ds = make_dataset(TaskSpec(p=23, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    model = planted_two_layer(ds, seed=2).model
    result = localize(model, ds, kinds=("neuron",))
    script = _script()
    found = script.check(model, ds, result.rows, result.interventions)
    assert [(e["kind"], e["label"]) for e in found] == [("neuron", "memorising"), ("neuron", "generalising")]
    for e in found:
        for side in ("here", "random"):
            assert e[side] == pytest.approx(e["interp"][side], abs=1e-6), (e["label"], side)
        assert e["verdict"] == e["interp"]["verdict"] == e["label"]  # planted: each set is what it is labelled
    # the card's table read back: as rendered, and with one verdict in the words of a failing set;
    # a later table with the same columns is not read
    compact = result.interventions.compact().markdown()
    later = "\n\n| neuron | memorising | 1 | 0% | 0% | 0% | 0% | inert, not memorising |"
    assert script.card_verdicts(f"# card\n\n{compact}{later}") == {(e["kind"], e["label"]): e["verdict"] for e in found}
    failing = compact.replace("holds (3 of 3 modes) |\n| neuron | generalising",
                              "shared, not memorising (holds in 0 of 3 modes) |\n| neuron | generalising")
    assert script.card_verdicts(failing)[("neuron", "memorising")] == "shared"
    # the rule written out in the script is interp's at its boundaries: accuracies just inside and
    # outside the band, ties decided by margins just beyond and within the tie, no noisy labels
    # (random at 0.04: 0.02 and 0.08 lie exactly the band away in floating point)
    accuracies, nudges = (0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.08), (-2e-6, -5e-7, 0.0, 2e-6)
    random = {"memorised": 0.04, "test": 0.04, "mem_margin": 1.0, "gen_margin": 2.0}
    for am, at, mm, mt in itertools.product(accuracies, accuracies, nudges, nudges):
        here = {"memorised": am, "test": at, "mem_margin": 1.0 + mm, "gen_margin": 2.0 + mt}
        theirs = accuracy_verdict(am, at, 0.04, 0.04, margins=(1.0 + mm, 2.0 + mt, 1.0, 2.0))
        assert script.rule(here, random) == theirs, (am, at, mm, mt)
    clean = {"memorised": None, "mem_margin": None}
    assert script.rule({**clean, "test": 0.5, "gen_margin": 1.0}, {**clean, "test": 0.6, "gen_margin": 1.0}) \
        == accuracy_verdict(None, 0.5, None, 0.6) == "generalising"
