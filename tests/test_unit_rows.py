"""A localisation row (`interp.analysis.unit_rows.UnitRow`): an int index in every kind, checked
when built, and serialised as the rows were when they were dicts, so results.json and the model
cards read the same."""

import json
import re

import pytest

from interp.analysis.unit_rows import UnitRow

SCORES = {"gen_score": 0.5, "mem_score": -0.25, "gen_share": 0.05, "mem_share": -0.125}


@pytest.mark.parametrize("row, written", [
    (UnitRow("neuron", 7, "memorising", **SCORES, freq=3, ipr=0.9, irrep="3a", irrep_label="standard (3)"),
     {"kind": "neuron", "index": 7, "label": "memorising", **SCORES, "freq": 3, "ipr": 0.9, "irrep": "3a",
      "irrep_label": "standard (3)"}),
    (UnitRow("neuron part", 7, "inert", **SCORES, part="residual"),
     {"kind": "neuron part", "index": 7, "label": "inert", **SCORES, "part": "residual"}),
    (UnitRow("neuron cluster", 1, "generalising", **SCORES, name="k=5", members=(2, 4, 9)),
     {"kind": "neuron cluster", "index": "k=5", "label": "generalising", **SCORES, "neurons": 3,
      "members": [2, 4, 9]}),
    (UnitRow("head", 5, "mixed", **SCORES, name="L1H1"),
     {"kind": "head", "index": "L1H1", "label": "mixed", **SCORES}),
    (UnitRow("head frequency", 5, "generalising", **SCORES, name="L1H1", freq=3),
     {"kind": "head frequency", "index": "L1H1 k=3", "label": "generalising", **SCORES, "freq": 3}),
    (UnitRow("irrep", 2, "inert", 0.1, None, 0.01, None, freq=2, irrep="2a", irrep_label="2-dim (2,2)"),
     {"kind": "irrep", "index": 2, "label": "inert", "gen_score": 0.1, "mem_score": None, "gen_share": 0.01,
      "mem_share": None, "freq": 2, "irrep": "2a", "irrep_label": "2-dim (2,2)"}),
])
def test_each_kind_serialises_as_the_dict_rows_did(row, written):
    got = row.to_dict()
    assert got == written and list(got) == list(written)  # the same keys in the same order: the same JSON
    assert json.dumps(got) == json.dumps(written)


@pytest.mark.parametrize("fields, words", [
    ({"kind": "neurons", "index": 0}, "unknown localisation row kind 'neurons'"),
    ({"kind": "neuron", "index": 0, "label": "memorizing"}, "unknown label 'memorizing'"),
    ({"kind": "head", "index": 0}, "a head row needs a name"),
    ({"kind": "neuron", "index": 0, "name": "n0"}, "a neuron row takes no name"),
    ({"kind": "head", "index": "L0H0", "name": "L0H0"}, "a row's index is an int (its unit's place), not 'L0H0'"),
    ({"kind": "neuron", "index": True}, "a row's index is an int"),
    ({"kind": "neuron part", "index": 0}, "a neuron part row's part is one of dominant, residual"),
    ({"kind": "neuron part", "index": 0, "part": "rest"}, "not 'rest'"),
    ({"kind": "neuron", "index": 0, "part": "dominant"}, "a neuron row's part is one of"),
    ({"kind": "neuron cluster", "index": 0, "name": "k=1"}, "a neuron cluster row needs members"),
    ({"kind": "head frequency", "index": 0, "name": "L0H0"}, "a head frequency row needs its frequency"),
])
def test_a_malformed_row_is_refused_in_one_line(fields, words):
    with pytest.raises(ValueError, match=re.escape(words)) as refused:
        UnitRow(**{"label": "inert", **SCORES, **fields})
    assert "\n" not in str(refused.value)
