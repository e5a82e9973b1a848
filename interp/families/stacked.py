"""The training computation of two-layer networks, by hand: loss and gradients of K networks
of the same shapes stacked along a leading dimension (K = 1 for `train`, K > 1 for
`batched.train_many`).

Autograd through `TwoLayerNet.forward` gives the same numbers (tests/test_stacked.py); this
path is shaped for the CPU, where the step is bound by passes over the [examples × width]
hidden layer and by skinny products (one side is p):
- both first-layer lookups are one `embedding_bag` over a [2p, width] table (one pass), and
  the table's gradient is one sparse (CSR) product: each table row sums the gradients of the
  examples that read it (`Lookup`, built once per batch);
- ReLU runs in place, and its backward is one `threshold_backward` on the saved output;
- the readout is padded to a multiple of 16 classes (zero rows of W; for cross-entropy a −∞
  bias, so the padded classes get probability 0): at p = 59, padding to 64 made the readout
  product 1.8 → 1.2 ms (benchmarks/kernels.py); the backward products read the p real classes;
- the softmax gradient is formed in place, and nothing is copied for autograd.
Other activations differentiate through autograd on the hidden layer alone.
"""

from __future__ import annotations

from ..core.metrics import check_loss

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from ..core.runtime import exp_floored_
from ..core.specs import TwoLayerSpec
from .activations import ACT_FNS

_CLASS_MULTIPLE = 16


def _table(params: dict[str, Tensor], tied: bool) -> Tensor:
    """[K·2p, width], contiguous: network j's columns of U at rows 2pj…, of V at 2pj + p…"""
    u = params["U"].transpose(1, 2)
    return torch.cat([u, u if tied else params["V"].transpose(1, 2)], 1).flatten(0, 1)


@dataclass(frozen=True)
class Lookup:
    """Which rows of the stacked [K·2p, width] first-layer table each example reads (network
    j's a at row 2pj + a, its b at 2pj + p + b), in the two forms the step uses: `index`
    [K·batch, 2] for the gather, with `offsets`, where each example's pair starts in
    `index.flatten()` (both int32, as `embedding_bag` takes them without building offsets or
    converting on every call), and `scatter`, the sparse (CSR) [K·2p, K·batch] 0/1 matrix whose
    product with the pre-activations' gradient is the table's gradient. Build it once per batch
    with `lookup`."""

    index: Int[Tensor, "K*batch 2"]
    offsets: Int[Tensor, " K*batch"]
    scatter: Tensor


def lookup(inputs: Int[Tensor, "K batch 2"], p: int, dtype: torch.dtype = torch.float32) -> Lookup:
    """The `Lookup` of a batch of (a, b) pairs per network; `dtype` is the parameters' (the
    sparse product takes operands of one dtype)."""
    k = inputs.shape[0]
    nets = torch.arange(k, device=inputs.device)[:, None, None] * 2 * p
    index = (inputs + nets + torch.tensor([0, p], device=inputs.device)).flatten(0, 1)
    rows = index.flatten()
    # CSR by table row; a stable sort keeps each row's examples in order, so every row sums its
    # examples in the order index_add_ would (the same numbers, bit for bit)
    order = torch.argsort(rows, stable=True)
    counts = torch.bincount(rows, minlength=k * 2 * p)
    crow = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    with warnings.catch_warnings():  # torch calls its sparse CSR support beta; these products are tested
        warnings.simplefilter("ignore", UserWarning)
        # int32 indices, which MKL's sparse product takes as they are: int64 ones it converts on
        # every call (benchmarks/kernels.py)
        scatter = torch.sparse_csr_tensor(crow.int(), (order // 2).int(),
                                          torch.ones(len(rows), dtype=dtype, device=inputs.device),
                                          size=(k * 2 * p, len(index)))
    offsets = torch.arange(0, len(rows), 2, dtype=torch.int32, device=inputs.device)
    return Lookup(index.int(), offsets, scatter)


def loss_and_grads(
    params: dict[str, Float[Tensor, "K ..."]],
    spec: TwoLayerSpec,
    p: int,
    rows: Lookup,
    labels: Int[Tensor, "K batch"],
    loss: str,
) -> tuple[Float[Tensor, " K"], dict[str, Tensor]]:
    """Each network's mean loss (`metrics.loss_fn`: "ce" or "mse") on its own examples (given
    as `lookup(inputs, p)`), and the gradients of those losses for every entry of
    `params` (U, V unless tied, W, mu when `spec.bias`), each shaped like its parameter."""
    check_loss(loss)
    k, n = labels.shape
    width = params["U"].shape[1]
    table = _table(params, spec.tied).detach()
    pre = F.embedding_bag(rows.index.flatten(), table, rows.offsets, mode="sum").view(k, n, width)
    if spec.act == "relu":
        hidden = pre.relu_()
    else:
        pre.requires_grad_()
        with torch.enable_grad():
            hidden = ACT_FNS[spec.act](pre)

    classes = -(-p // _CLASS_MULTIPLE) * _CLASS_MULTIPLE
    w = F.pad(params["W"].detach(), (0, 0, 0, classes - p))
    bias = params["mu"].detach() if spec.bias else w.new_zeros(k, p)
    bias = F.pad(bias, (0, classes - p), value=float("-inf") if loss == "ce" else 0.0)
    logits = torch.baddbmm(bias[:, None, :], hidden.detach(), w.transpose(1, 2))

    # each example's label as a position in the flattened logits: `take` and `index_add_` there
    # cost about half what gather / scatter_add_ along the short class dimension do in the step
    picked = torch.arange(0, k * n * classes, classes, device=labels.device) + labels.flatten()
    minus_one = logits.new_tensor(-1.0).expand(picked.shape)
    if loss == "ce":
        log_probs = logits.log_softmax(-1)
        losses = -log_probs.take(picked).view(k, n).mean(-1)
        grad = exp_floored_(log_probs)
        grad.view(-1).index_add_(0, picked, minus_one)
    else:  # padded classes have logit 0 and target 0: no loss, no gradient
        grad = logits
        grad.view(-1).index_add_(0, picked, minus_one)
        losses = grad.square().sum(-1).mean(-1)
        grad.mul_(2)
    grad.div_(n)

    # the two backward products read the p real classes alone (the padded ones only met W's
    # zero rows or were sliced off): 8% fewer FLOPs at p = 59, and the gradients the padded
    # products gave, bit for bit (every file of short runs of each two-layer preset and of a
    # stack compared: docs/performance.md)
    real = grad[..., :p]
    grads = {"W": torch.bmm(real.transpose(1, 2), hidden.detach())}
    if spec.bias:  # the padded columns stay in the sum: a strided view's sum rounds differently
        grads["mu"] = grad.sum(1)[:, :p].contiguous()
    grad_hidden = torch.bmm(real, params["W"].detach())
    if spec.act == "relu":
        # in place: a fresh [examples × width] buffer costs more than the pass itself
        grad_pre = torch.ops.aten.threshold_backward.grad_input(grad_hidden, hidden, 0.0, grad_input=grad_hidden)
    else:
        (grad_pre,) = torch.autograd.grad(hidden, pre, grad_hidden)
    grad_pre = grad_pre.flatten(0, 1)
    grad_table = (rows.scatter @ grad_pre).view(k, 2 * p, width)
    grad_u, grad_v = grad_table[:, :p], grad_table[:, p:]
    # every gradient is contiguous, like its parameter: torch's fused optimizers assume a
    # gradient laid out like its parameter, and silently compute wrong updates otherwise
    if spec.tied:
        grads["U"] = (grad_u + grad_v).transpose(1, 2).contiguous()
    else:
        grads["U"] = grad_u.transpose(1, 2).contiguous()
        grads["V"] = grad_v.transpose(1, 2).contiguous()
    return losses, grads
