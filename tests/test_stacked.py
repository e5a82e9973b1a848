"""The hand-written training computation equals autograd through the hooked forward."""

import pytest
import torch

from interp.core.metrics import loss_fn
from interp.families.two_layer import TwoLayerNet
from interp.core.specs import TwoLayerSpec
from interp.families.stacked import lookup, loss_and_grads


def autograd_reference(net: TwoLayerNet, inputs, labels, loss):
    net.zero_grad(set_to_none=True)
    value = loss_fn(loss, net(inputs), labels)
    value.backward()
    return value.detach(), {name: param.grad.clone() for name, param in net.named_parameters()}


@pytest.mark.parametrize("act", ["relu", "quadratic", "gelu", "abs"])
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_loss_and_grads_match_autograd(act, tied, bias, loss):
    p, n, k = 23, 90, 3  # p = 23 pads the classes to 32
    nets = [TwoLayerNet(TwoLayerSpec(width=37, act=act, tied=tied, bias=bias, seed=s), p) for s in range(k)]
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, p, (k, n, 2), generator=gen)
    labels = torch.randint(0, p, (k, n), generator=gen)
    params = {name: torch.stack([dict(net.named_parameters())[name].detach() for net in nets])
              for name, _ in nets[0].named_parameters()}
    losses, grads = loss_and_grads(params, nets[0].spec, p, lookup(inputs, p), labels, loss)
    assert set(grads) == set(params)
    for j, net in enumerate(nets):
        value, expected = autograd_reference(net, inputs[j], labels[j], loss)
        torch.testing.assert_close(losses[j], value, rtol=1e-5, atol=1e-6)
        for name, grad in expected.items():
            assert grads[name][j].shape == grad.shape
            assert grads[name].is_contiguous()  # fused optimizers assume the parameter's layout
            torch.testing.assert_close(grads[name][j], grad, rtol=1e-4, atol=1e-6)


def test_repeated_pairs_accumulate():
    """Minibatches and tied nets send one row of U to several examples: gradients must add."""
    net = TwoLayerNet(TwoLayerSpec(width=16, tied=True), 7)
    inputs = torch.tensor([[1, 1], [1, 2], [1, 1], [3, 1]])
    labels = torch.tensor([2, 3, 2, 4])
    params = {name: t.detach()[None] for name, t in net.named_parameters()}
    _, grads = loss_and_grads(params, net.spec, 7, lookup(inputs[None], 7), labels[None], "ce")
    _, expected = autograd_reference(net, inputs, labels, "ce")
    torch.testing.assert_close(grads["U"][0], expected["U"])


def test_unknown_loss_is_refused():
    net = TwoLayerNet(TwoLayerSpec(width=8), 5)
    params = {name: t.detach()[None] for name, t in net.named_parameters()}
    with pytest.raises(ValueError, match="unknown loss"):
        loss_and_grads(params, net.spec, 5, torch.zeros(2, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long), "l1")


def test_lookup_scatter_sums_each_rows_examples_in_order():
    """The sparse product that forms the table's gradient equals index_add_ bit for bit (each
    row sums its examples in order), for K stacked networks with repeated pairs."""
    k, p, n = 3, 11, 40
    inputs = torch.randint(0, p, (k, n, 2), generator=torch.Generator().manual_seed(1))
    rows = lookup(inputs, p)
    grad = torch.randn(k * n, 9, generator=torch.Generator().manual_seed(2))
    expected = grad.new_zeros(k * 2 * p, 9).index_add_(0, rows.index[:, 0], grad).index_add_(0, rows.index[:, 1], grad)
    assert torch.equal(rows.scatter @ grad, expected)
    assert rows.index[:, 0].max() < k * 2 * p and (rows.index[:, 1] % (2 * p) >= p).all()
