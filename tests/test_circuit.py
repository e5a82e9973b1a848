"""Circuit views on analytic transformers whose attention and logit paths are known by
construction (interp.planted): the lookup transformer, and the union of a rule transformer with
a lookup transformer, where the circuit view, the localisation and the ablation head scan must
give one answer."""

import math

import pytest
import torch

import interp
from interp.analysis import circuit
from interp.analysis.ablation import AblationReport, scan_heads
from interp.analysis.circuit import CircuitViews, circuit_views
from interp.analysis.localize import localize
from interp.core.fourier import frequency_power_2d
from interp.core.specs import NoiseSpec, RunSpec, TaskSpec
from interp.families.base import family_of, heads
from interp.planted import lookup_transformer
from interp.training.rundir import Run


def as_run(model, ds) -> Run:
    return Run(RunSpec(task=ds.task, noise=NoiseSpec(kind="wrong", rate=0.1, seed=7),
                       model=family_of(model).spec(model)), model, [], 0, None)


def test_circuit_views_read_the_lookup_transformer_as_built():
    spec = RunSpec(task=TaskSpec(p=13, train_fraction=0.6), noise=NoiseSpec(kind="wrong", rate=0.3, seed=2))
    ds = interp.make_dataset(spec.task, spec.noise)
    model, _ = lookup_transformer(ds, d_head=8)
    run = Run(RunSpec(task=spec.task, noise=spec.noise, model=family_of(model).spec(model)), model, [], 0, None)
    views = circuit_views(run)
    # head A reads position 0 (token a), head B position 1 (token b), each alone
    attention = torch.tensor(views.attention["blocks.0.attn.hook_pattern"], dtype=torch.float64)
    torch.testing.assert_close(attention, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=torch.float64), atol=1e-6,
                               rtol=0)
    # the heads write only to the copy slots, which the unembedding never reads: no direct push
    assert all(abs(v[k]) < 1e-9 for v in views.heads.values() for k in ("direct_gen", "direct_mem"))
    # the lookup neurons push the observed wrong label over the true one on the noisy pairs, and
    # nothing on the test pairs
    assert sum(c["mem"] for c in views.clusters.values()) > 0.9
    assert abs(sum(c["gen"] for c in views.clusters.values())) < 1e-9
    assert views.progress == {}  # no trajectory


def test_circuit_view_localisation_and_head_scan_agree_on_the_planted_union(planted_union):
    """The heads of both sides write nothing to the logits directly (only through the MLP), so the
    direct push the circuit view used to rank heads by is zero for all four, and it named L0H0 —
    a rule head — as pushing hardest towards the memorised labels. The localisation's scores
    (what ablating a head costs the two margins) and the ablation scan name the lookup heads."""
    model, ds, built = planted_union
    run = as_run(model, ds)
    views = circuit_views(run)
    rows = {r.name: r for r in localize(model, ds, kinds=("neuron cluster", "head"), check=False).rows}
    scans = scan_heads(model, ds)
    scan = {r["head"]: r for r in AblationReport(scans, [], {hook: [n for h, _, n in heads(model) if h == hook]
                                                           for hook in scans}).head_costs()}
    assert list(views.heads) == list(scan) == ["L0H0", "L0H1", "L0H2", "L0H3"]
    for name, head in views.heads.items():
        assert head["gen"] == pytest.approx(rows[name].gen_score) == pytest.approx(scan[name]["gen"])
        assert head["mem"] == pytest.approx(rows[name].mem_score) == pytest.approx(scan[name]["mem"])
        assert head["label"] == rows[name].label
        assert abs(head["direct_gen"]) < 1e-9
    for name, cluster in views.clusters.items():
        assert (cluster["gen"], cluster["mem"], cluster["label"]) == pytest.approx(
            (rows[name].gen_score, rows[name].mem_score, rows[name].label))
    # one answer, and the one built in: the memory in the lookup heads and neurons, the rule elsewhere
    by = {name: label for name, label in zip(views.heads, built.head_labels)}
    assert by[max(views.heads, key=lambda h: views.heads[h]["mem"])] == "memorising"
    assert by[max(views.heads, key=lambda h: views.heads[h]["gen"])] == "generalising"
    assert max(views.clusters, key=lambda c: views.clusters[c]["mem"]) == "unclustered"
    assert max(views.clusters, key=lambda c: views.clusters[c]["gen"]) in ("k=2", "k=5")
    memory = views.summary().split("memorised margin (push")[1]
    assert "head L0H2" in memory and "cluster unclustered" in memory and "L0H0" not in memory


def test_frequency_power_2d_has_one_cell_per_frequency_pair():
    p = 11
    a = torch.arange(p, dtype=torch.float64)
    grid = torch.cos(2 * math.pi * 5 * a)[:, None] * torch.sin(2 * math.pi * 3 * a / p)[None, :] \
        + torch.cos(2 * math.pi * 5 * a[:, None] / p) * torch.cos(2 * math.pi * 4 * a[None, :] / p)
    power = frequency_power_2d(grid)
    assert power.shape == (p // 2 + 1, p // 2 + 1)
    torch.testing.assert_close(power.sum(), grid.square().sum())  # Parseval
    # cos 5a·cos 4b (norm² p²/4) sits in cell (5, 4); the first term is constant in a (cos 2π·5a = 1)
    assert power[5, 4] == pytest.approx(p * p / 4) and power[0, 3] == pytest.approx(p * p / 2)


def test_example_neuron_figure_shows_every_frequency(tmp_path, monkeypatch):
    """A neuron at k = 27 of p = 59: the figure used to show the first 25 basis components of each
    axis (frequencies up to 12), so its peak was cropped away."""
    p, k = 59, 27
    a = torch.arange(p, dtype=torch.float64)
    grid = torch.relu(torch.cos(2 * math.pi * k * a / p)[:, None] + torch.cos(2 * math.pi * k * a / p)[None, :])
    views = CircuitViews({}, {"L0H0": {"gen": 1.0, "mem": 0.0, "label": "generalising", "direct_gen": 0.0,
                                       "direct_mem": 0.0}},
                         {"k=27": {"gen": 1.0, "mem": 0.0, "label": "generalising", "neurons": 1}},
                         (1.0, 1.0), [0], [grid.tolist()])
    saved = {}
    monkeypatch.setattr(circuit, "_save", lambda fig, path: saved.setdefault(path.name, fig) and path)
    circuit.plot_circuit(views, tmp_path, "c")
    spectrum = [ax for ax in saved["c_neurons.png"].axes if ax.get_title().startswith("power per frequency")]
    shown = torch.tensor(spectrum[0].images[0].get_array())  # the data the panel draws
    assert shown.shape == (p // 2 + 1, p // 2 + 1)
    peak = divmod(int(shown.argmax()), shown.shape[1])
    assert peak in {(k, k), (k, 0), (0, k)} and shown[k, k] > 0.1 * shown.max()
