"""The single-operation timings behind the design choices in docs/performance.md, each beside
its alternative, at liu-lu-80's shapes (2,785 training pairs, 3,481 pairs in all, width 513,
p = 59).

    python benchmarks/kernels.py

Each time is the best of five blocks, ours and its alternative timed in turn. Run it on an
idle machine.
"""

from __future__ import annotations

import platform

import torch
import torch.nn.functional as F
from train_step import best_interleaved

import interp
from interp.core.runtime import exp_floored_, fast_cpu_process
from interp.families.stacked import lookup


def row(label: str, ours, theirs, what: str, calls: int = 50) -> None:
    """Print the milliseconds per call of `ours` and of its alternative `theirs`: the best of
    five blocks of `calls` calls each, the two timed in turn."""
    ours(), theirs()  # warm-up

    def block(fn):
        return lambda: [fn() for _ in range(calls)]

    mine, other = (t / calls * 1e3 for t in best_interleaved([block(ours), block(theirs)], repeats=5))
    print(f"{label:<44}{mine:9.3f} ms   {what:<28}{other:9.3f} ms")


@torch.no_grad()
def main() -> None:
    fast_cpu_process()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}\n")
    print(f"{'operation (ours)':<44}{'time':>12}   {'alternative':<28}{'time':>12}")
    run = interp.load("liu-lu-80")
    model, pairs = run.model, run.dataset.inputs
    train = pairs[run.dataset.train_mask]
    n, width, p = len(train), model.spec.width, model.p

    row("gather of U's rows, contiguous table", lambda: F.embedding(pairs[:, 0], model.U.T.contiguous()),
        lambda: F.embedding(pairs[:, 0], model.U.T), "strided (transposed view)")

    hidden, grad = torch.rand(n, width), torch.randn(n, 64)
    w64, w59 = torch.randn(64, width), torch.randn(p, width)
    row("readout product, classes padded to 64", lambda: hidden @ w64.T,
        lambda: hidden @ w59.T, "p = 59 classes")
    row("W gradient, p = 59 classes", lambda: grad[:, :p].T @ hidden,
        lambda: grad.T @ hidden, "classes padded to 64")
    row("hidden layer's gradient, p = 59 classes", lambda: grad[:, :p] @ w59,
        lambda: grad @ w64, "classes padded to 64")

    low = torch.full((8, 769, 32), -100.0)
    rows = lookup(train[None], p)
    grad_pre = torch.randn(n, width)
    index = rows.index.long()  # index_add_'s usual index dtype

    def two_index_adds():
        table = grad_pre.new_zeros(2 * p, width)
        return table.index_add_(0, index[:, 0], grad_pre).index_add_(0, index[:, 1], grad_pre)

    row("U, V gradient table, sparse product", lambda: rows.scatter @ grad_pre,
        two_index_adds, "two index_add_")
    scatter = rows.scatter
    scatter64 = torch.sparse_csr_tensor(scatter.crow_indices().long(), scatter.col_indices().long(), scatter.values(),
                                        scatter.shape)
    row("  same, int32 indices", lambda: scatter @ grad_pre,
        lambda: scatter64 @ grad_pre, "int64 indices")
    stack = lookup(torch.randint(0, 31, (8, 770, 2)), 31)  # K = 8 nets of the width sweep's size
    grad_stack = torch.randn(8 * 770, 65)
    index_stack = stack.index.long()

    def two_index_adds_stack():
        table = grad_stack.new_zeros(8 * 62, 65)
        return table.index_add_(0, index_stack[:, 0], grad_stack).index_add_(0, index_stack[:, 1], grad_stack)

    row("  same, 8 nets, p = 31, width 65", lambda: stack.scatter @ grad_stack,
        two_index_adds_stack, "two index_add_")
    table = torch.randn(8 * 62, 65)
    row("pre-activations, 8 nets: int32 and offsets",
        lambda: F.embedding_bag(stack.index.flatten(), table, stack.offsets, mode="sum"),
        lambda: F.embedding_bag(index_stack, table, mode="sum"), "[pairs, 2] int64 index")

    logits = torch.randn(8, 769, 32) * 5  # K = 8 nets, p = 31 padded to 32 classes
    labels = torch.randint(0, 31, (8, 769))
    flat = torch.arange(0, logits.numel(), 32) + labels.flatten()
    minus_one = torch.tensor(-1.0)

    def cross_entropy_flat():  # as interp.families.stacked.loss_and_grads
        log_probs = logits.log_softmax(-1)
        loss = -log_probs.take(flat)
        return loss, exp_floored_(log_probs).view(-1).index_add_(0, flat, minus_one.expand(flat.shape))

    def cross_entropy_along_classes():
        log_probs = logits.log_softmax(-1)
        loss = -log_probs.gather(-1, labels[..., None])
        return loss, exp_floored_(log_probs).scatter_add_(-1, labels[..., None], minus_one.expand(labels[..., None].shape))

    row("cross-entropy gradient, 8 nets: labels flat", cross_entropy_flat, cross_entropy_along_classes,
        "gather, scatter_add_")

    row("exp of values at -100, floored first", lambda: exp_floored_(low.clone()),
        lambda: low.clone().exp_(), "plain exp_")
    at_inf = torch.full((8, 769, 32), float("-inf"))
    row("exp of -inf, floored first", lambda: exp_floored_(at_inf.clone()),
        lambda: at_inf.clone().exp_(), "plain exp_")

    def adamw_step(**kind):
        params = [torch.nn.Parameter(t.detach().clone()) for t in model.parameters()]
        for param in params:
            param.grad = torch.randn_like(param) * 1e-3
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1, **kind)
        return lambda: opt.step()

    row("AdamW step, fused", adamw_step(fused=True), adamw_step(foreach=False), "for-loop")

    classes_first = torch.randn(16, p, len(pairs))  # one chunk of the scan: 16 units
    classes_last = classes_first.transpose(1, 2).contiguous()
    row("scan: max over classes, [unit, class, pair]", lambda: classes_first.amax(1),
        lambda: classes_last.max(-1), "[unit, pair, class], argmax", calls=10)


if __name__ == "__main__":
    main()
