"""The intervention table: every label set ablated beside random sets of its size, on a planted
net whose labels are known; the closed-form readout ablation equals the hooked one."""

from dataclasses import replace

import pytest
import torch

from interp import NoiseSpec, TaskSpec, make_dataset
from interp.analysis.ablation import ablated_logits
from interp.analysis.interventions import _readout_ablator, check_labels
from interp.analysis.localize import localize
from interp.planted import planted_two_layer

P = 31


@pytest.fixture(scope="module")
def planted():
    ds = make_dataset(TaskSpec(p=P, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    return planted_two_layer(ds, act="relu", seed=2), ds


@pytest.mark.parametrize("mode", ["zero", "mean", "resample"])
def test_closed_form_readout_ablation_equals_the_hooked_one(planted, mode):
    built, ds = planted
    units = [0, 3, 7, 150, 160]
    closed = _readout_ablator(built.model, ds, lambda positions: positions)(units, mode, 5)
    torch.testing.assert_close(closed, ablated_logits(built.model, ds.inputs, "hook_post", units, mode, 5))


def test_planted_label_sets_hold_up_and_shuffled_ones_do_not(planted):
    built, ds = planted
    result = localize(built.model, ds, kinds=("neuron",))
    table = result.interventions
    verdicts = {(r.label, r.mode): table.verdict(r) for r in table.label_rows()}
    assert all(v == "holds" for (name, _), v in verdicts.items() if name in ("memorising", "generalising")), verdicts
    zero = {r.label: r.metrics for r in table.label_rows() if r.mode == "zero"}
    assert zero["memorising"]["noisy_observed_acc"] == 0.0 and zero["memorising"]["test_acc"] > 0.95
    # the check can contradict the labels: swapped, neither set holds
    swap = {"memorising": "generalising", "generalising": "memorising"}
    rows = [replace(r, label=swap.get(r.label, r.label)) for r in result.rows]
    swapped = check_labels(built.model, ds, rows)
    assert all(swapped.verdict(r) == "fails" for r in swapped.label_rows() if r.label in swap)


def test_the_table_is_serialised_shown_and_summarised(planted):
    built, ds = planted
    result = localize(built.model, ds, kinds=("neuron",))
    data = result.to_dict()["interventions"]
    assert {r["label"] for r in data["rows"]} >= {"memorising", "generalising", "inert"}
    assert sum(r["random"] for r in data["rows"]) == 3 * sum(not r["random"] for r in data["rows"])
    assert any(t.header[-1] == "verdict" for t in result.tables())
    assert "Ablating the" in result.summary() and "random:" in result.summary()
