"""Each neuron's dominant part against its residual (`interp.analysis.part_split`), pinned on
`interp.planted.within_neuron_net`: an exact net whose rule is every neuron's dominant-frequency
part and whose memory is every neuron's residual."""

import pytest
import torch
import torch.nn.functional as F

from interp import NoiseSpec, TaskSpec, make_dataset
from interp.analysis.neurons import dominant_split
from interp.analysis.part_split import part_check
from interp.core.metrics import VERDICT_BAND, subset_metrics
from interp.families.base import logits
from interp.planted import within_neuron_net

P = 23


@pytest.fixture(scope="module")
def planted():
    ds = make_dataset(TaskSpec(p=P, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    return within_neuron_net(ds), ds


@torch.no_grad()
def test_f_g_is_the_rule_and_the_net_is_f_g_plus_f_r(planted):
    net, ds = planted
    full = logits(net, ds.inputs).double()
    f_g, f_r = (logits(m, ds.inputs).double() for m in dominant_split(net, ds.task))
    # Σ_{k=1}^{(p−1)/2} cos(2πk x/p) is (p − 1)/2 at x = 0 and −1/2 elsewhere, x = a + b − c
    rule = (P * F.one_hot(ds.true_labels, P).double() - 1) / 2
    torch.testing.assert_close(f_g, rule, atol=1e-4, rtol=0)
    torch.testing.assert_close(full, f_g + f_r, atol=1e-3, rtol=0)  # logits up to 47: float32 sums
    accuracy = subset_metrics(full, ds)
    assert (accuracy["noisy_observed_acc"], accuracy["clean_acc"], accuracy["test_acc"]) == (1.0, 1.0, 1.0)


def test_part_check_puts_the_rule_in_the_dominant_parts_and_the_memory_in_the_residuals(planted):
    check = part_check(*planted)
    f_g, f_r = check.row("residuals removed"), check.row("dominant parts removed")
    assert (f_g.extraction, f_g.outcome, f_r.extraction, f_r.outcome) == ("f^G", "memorising", "f^R", "generalising")
    assert check.separates
    # f^G forgets every noisy label and keeps the rule; f^R keeps every noisy label and loses the rule
    assert (f_g.metrics["noisy_observed_acc"], f_g.metrics["test_acc"]) == (0.0, 1.0)
    assert f_r.metrics["noisy_observed_acc"] == 1.0 and f_r.metrics["test_acc"] < 0.1
    # each beyond its control (a random other frequency at the dominant part's norm) by more than the band
    assert f_g.metrics["noisy_observed_acc"] + VERDICT_BAND < f_g.control["noisy_observed_acc"]
    assert f_g.metrics["test_acc"] > f_g.control["test_acc"] + VERDICT_BAND
    assert f_r.metrics["noisy_observed_acc"] > f_r.control["noisy_observed_acc"] + VERDICT_BAND
    assert f_r.metrics["test_acc"] + VERDICT_BAND < f_r.control["test_acc"]


def test_within_neuron_net_refuses_what_it_cannot_build():
    clean = make_dataset(TaskSpec(p=P, train_fraction=0.5), NoiseSpec())
    with pytest.raises(ValueError, match="needs noisy training pairs"):
        within_neuron_net(clean)
    sub = make_dataset(TaskSpec(op="sub", p=P, train_fraction=0.5), NoiseSpec(kind="wrong", rate=0.2, seed=1))
    with pytest.raises(ValueError, match="builds a \\+ b mod p"):
        within_neuron_net(sub)
