"""Where the split between rule and memory is (`reporting.headline.split_claim`), pinned on models
whose split is known: across neurons (the planted two-layer net: lookup neurons), inside each
neuron (the a5-noisy release: every neuron carries both, its dominant irrep the rule; the planted
`within_neuron_net`, exactly so), across heads (the planted transformer: lookup heads); and the
one verdict rule at its boundaries."""

import pytest

import interp
from interp import NoiseSpec, TaskSpec, make_dataset
from interp.analysis.localize import localize
from interp.core.metrics import VERDICT_BAND, accuracy_verdict
from interp.planted import planted_two_layer, within_neuron_net
from interp.reporting.headline import separating, split_claim
from interp.training.release import resolve


def test_across_neurons_on_the_planted_net():
    ds = make_dataset(TaskSpec(p=23, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    loc = localize(planted_two_layer(ds, act="relu", seed=2).model, ds)
    assert separating(loc)["neuron"]
    text = split_claim(loc)["text"]
    assert text.startswith("across neurons — 53 of 181 neurons scored memorising: ablated: memorised 100 → 0.0%")
    assert "Coarser units" not in text  # nothing coarser was checked


def test_inside_each_neuron_on_a_release_whose_neurons_share_rule_and_memory():
    run = interp.load_run(resolve("a5-noisy"))
    loc = localize(run.model, run.dataset, kinds=("neuron", "neuron part"))
    assert separating(loc) == {"neuron": False, "neuron part": True}
    f_g, f_r = loc.parts.rows
    assert (f_g.extraction, f_g.outcome, f_r.extraction, f_r.outcome) == ("f^G", "memorising", "f^R", "generalising")
    assert f_g.metrics["noisy_observed_acc"] < 0.01 < 0.95 < f_g.metrics["test_acc"]
    assert f_g.control["test_acc"] < 0.2  # a random other irrep at the same norm keeps no rule
    text = split_claim(loc)["text"]
    assert text.startswith("inside each neuron — keeping only each neuron's dominant irrep (f^G): memorised 100 → 0.0%")
    assert "The rule is in each neuron's dominant irrep, the memory in the rest." in text  # both parts hold
    assert text.endswith("Coarser units checked do not separate them: the neurons (their verdicts are below).")


def _within_neuron(p: int):
    ds = make_dataset(TaskSpec(p=p, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    loc = localize(within_neuron_net(ds), ds)
    neuron_memorising = [loc.interventions.outcome(r) for r in loc.interventions.label_rows()
                         if (r.kind, r.label) == ("neuron", "memorising")]
    return loc, neuron_memorising


def test_inside_each_neuron_on_the_planted_within_neuron_net():
    """Every neuron of `within_neuron_net` carries the rule in its dominant frequency and memory in
    its residual, so the parts separate. Its neurons as sets do not here: ablating some neurons of a
    group leaves the group's cross terms behind, which carry rule and memory alike, so the neurons
    scored memorising are shared in every ablation mode, and those scored generalising are shared
    too when zero-ablated (p = 23: memorised 37.7% against random sets' 66.7%). The coarsest unit
    that separates is then the neurons' parts, and the headline says so."""
    loc, neuron_memorising = _within_neuron(23)
    assert neuron_memorising == ["shared"] * 3
    assert separating(loc) == {"neuron": False, "neuron part": True}
    text = split_claim(loc)["text"]
    assert text.startswith("inside each neuron — keeping only each neuron's dominant frequency (f^G): "
                           "memorised 100 → 0.0%, test 100 → 100.0%")
    assert "The rule is in each neuron's dominant frequency, the memory in the rest." in text  # both parts hold
    assert text.endswith("Coarser units checked do not separate them: the neurons (their verdicts are below).")


def test_across_neurons_where_the_within_neuron_nets_neurons_separate_too():
    """The same construction on another draw (p = 17): the neurons scored generalising hold in every
    ablation mode (the memorising ones are still shared), so the neurons separate as well as their
    parts, and the headline, coarsest unit first, names the neurons: true of this net, whose parts
    separate beside them."""
    loc, neuron_memorising = _within_neuron(17)
    assert neuron_memorising == ["shared"] * 3
    assert separating(loc) == {"neuron": True, "neuron part": True}
    text = split_claim(loc)["text"]
    assert text.startswith("across neurons — 198 of 512 neurons scored memorising: ablated: memorised 100 → 20.7%")
    assert "(shared); 206 of 512 neurons scored generalising: " in text and text.endswith("(generalising).")


def test_a_clean_run_is_asked_where_the_rule_is():
    ds = make_dataset(TaskSpec(p=23, train_fraction=0.5), NoiseSpec())
    loc = localize(planted_two_layer(ds, act="relu", seed=2).model, ds, kinds=("neuron",))
    assert split_claim(loc)["topic"] == "Where the rule is"


def test_across_heads_on_the_planted_transformer():
    from interp.planted import planted_transformer

    ds = make_dataset(TaskSpec(p=13, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    loc = localize(planted_transformer(ds).model, ds, kinds=("head", "neuron"))
    assert separating(loc)["head"]
    assert split_claim(loc)["text"].startswith("across heads — heads L0H2, L0H3 scored memorising: ablated: "
                                               "memorised 100 → 0.0%")


@pytest.mark.parametrize("memorised, test, margins, verdict", [
    (0.5 - VERDICT_BAND * 1.01, 0.5 + VERDICT_BAND * 1.01, None, "memorising"),
    (0.5 - VERDICT_BAND * 1.01, 0.5 - VERDICT_BAND * 1.01, None, "shared"),
    (0.5 + VERDICT_BAND * 1.01, 0.5 - VERDICT_BAND * 1.01, None, "generalising"),
    (0.5 - VERDICT_BAND * 0.99, 0.5, None, "inert"),  # within the band, no margins: not more
    (0.5 - VERDICT_BAND * 0.99, 0.5, (1.0, 5.0, 2.0, 5.0), "memorising"),  # the margins decide the tie
    (0.5, 0.5 - VERDICT_BAND * 0.99, (2.0, 4.0, 2.0, 5.0), "generalising"),
    (0.5 - VERDICT_BAND * 1.01, 0.5, (3.0, 5.0, 2.0, 5.0), "memorising"),  # accuracies first, whatever the margins
])
def test_the_one_verdict_rule_at_its_boundaries(memorised, test, margins, verdict):
    assert accuracy_verdict(memorised, test, 0.5, 0.5, margins=margins) == verdict


def test_without_noisy_labels_a_set_is_generalising_or_inert():
    assert accuracy_verdict(None, 0.1, None, 0.5) == "generalising"
    assert accuracy_verdict(None, 0.5, None, 0.5) == "inert"


def test_the_verdicts_and_the_split_are_the_same_at_any_thread_count():
    """Another thread count sums in another order (as another CPU's vector width does): the same
    outcomes for every set and part, and the same words."""
    import torch

    ds = make_dataset(TaskSpec(p=23, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    model = planted_two_layer(ds, act="relu", seed=2).model
    before = torch.get_num_threads()
    found = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            loc = localize(model, ds)
            found.append(([loc.interventions.outcome(r) for r in loc.interventions.label_rows()],
                          [r.outcome for r in loc.parts.rows], split_claim(loc)["text"]))
    finally:
        torch.set_num_threads(before)
    assert found[0] == found[1]
