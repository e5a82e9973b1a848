"""Where a report's time goes on a run over features, and what a cheaper fine-tune would change.

    OMP_NUM_THREADS=1 python benchmarks/feature_edit_readout.py RUN_DIR [--analyses] [--readout]

`--analyses`: every analysis the report runs on RUN_DIR, one after another as `interp report`
runs them, with its wall and CPU seconds (`time.process_time`, one torch thread: the CPU time
moves less than the wall time when other jobs share the cores); then whether the training
examples' logits forwarded alone are the bits of the same rows of the forward over every
example (if so, analyses could share one forward without changing a number).

`--readout` (a token transformer): the feature edit twice, as shipped and with its four
fine-tunes computing only what the logits read — every block in full but the last, whose
query, attention output, MLP and unembedding run at the readout token alone. The same function
in exact arithmetic, but other matrix shapes, so other roundings: the script prints both
runs' CPU seconds and every score of the edit's table that differs between them. A candidate,
not the shipped path: it changes the fine-tuned weights in their last bits.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict

import torch
from torch import Tensor

import interp
from interp.analysis.feature_edit import forget_noise
from interp.analysis.registry import ANALYSES, analyze, in_report_order
from interp.families.token_transformer import TokenTransformer, TokenTransformerFamily


def readout_logits(model: TokenTransformer, x: Tensor) -> Tensor:
    """The logits at the readout token [batch, p], its last block run at that token alone."""
    spec = model.spec
    padded = torch.nn.functional.pad(x, (0, spec.d_token - spec.stride))
    pieces = padded.unfold(1, spec.d_token, spec.stride) @ model.W_E + model.b_E
    resid = torch.cat([pieces, model.readout_token.expand(len(x), 1, -1)], 1) + model.W_pos
    for block in model.blocks[:-1]:
        resid = block(resid)
    attn, mlp = model.blocks[-1].attn, model.blocks[-1].mlp
    q = torch.einsum("bd,hde->bhe", resid[:, -1], attn.W_Q)
    k = torch.einsum("bpd,hde->bphe", resid, attn.W_K)
    v = torch.einsum("bpd,hde->bphe", resid, attn.W_V)
    pattern = (torch.einsum("bhe,bkhe->bhk", q, k) / math.sqrt(q.shape[-1])).softmax(-1)
    z = torch.einsum("bhk,bkhe->bhe", pattern, v)
    last = resid[:, -1] + torch.einsum("bhe,hed->bd", z, attn.W_O) + attn.b_O
    last = last + mlp.act_fn(last @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out
    return last @ model.W_U + model.b_U


def time_analyses(run: interp.Run) -> None:
    total_wall = total_cpu = 0.0
    for name in in_report_order():
        if ANALYSES[name].skip_reason(run):
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        analyze(run, name)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        print(f"{name:18s} {wall:7.1f} s wall {cpu:7.1f} s CPU", flush=True)
    print(f"{'total':18s} {total_wall:7.1f} s wall {total_cpu:7.1f} s CPU")
    inputs, train = run.dataset.inputs, run.dataset.train_mask
    with torch.no_grad():
        gap = float((interp.logits(run.model, inputs[train]) - interp.logits(run.model, inputs)[train]).abs().max())
    print("the training rows forwarded alone and in the forward over every example: "
          + ("the same bits" if gap == 0 else f"differ by up to {gap:.2g}"))


def compare_readout(run: interp.Run) -> None:
    if not isinstance(run.model, TokenTransformer):
        raise SystemExit("--readout: the run's model is not a token transformer")
    with torch.no_grad():  # the same function, to float32's rounding (a memorising net's logits are large)
        torch.testing.assert_close(readout_logits(run.model, run.dataset.inputs),
                                   interp.logits(run.model, run.dataset.inputs), rtol=1e-4, atol=1e-4)
    cpu = time.process_time()
    shipped, _ = forget_noise(run)
    shipped_cpu = time.process_time() - cpu
    original = TokenTransformerFamily.training_logits
    TokenTransformerFamily.training_logits = lambda self, model, x: readout_logits(model, x)
    try:
        cpu = time.process_time()
        candidate, _ = forget_noise(run)
        candidate_cpu = time.process_time() - cpu
    finally:
        TokenTransformerFamily.training_logits = original
    print(f"feature edit as shipped {shipped_cpu:.1f} s CPU; readout-token fine-tunes {candidate_cpu:.1f} s CPU")
    print(f"steps taken: {shipped.steps} and {candidate.steps}")
    differ = 0
    for old, new in zip(shipped.rows, candidate.rows):
        for key, value in asdict(old).items():
            if asdict(new)[key] != value:
                differ += 1
                print(f"  {old.name}: {key} {value} -> {asdict(new)[key]}")
    print(f"{differ} of the table's scores differ" + ("" if differ else " (every one the same)"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--analyses", action="store_true")
    parser.add_argument("--readout", action="store_true")
    args = parser.parse_args()
    run = interp.load_run(args.run_dir)
    if args.analyses:
        time_analyses(run)
    if args.readout:
        compare_readout(run)


if __name__ == "__main__":
    main()
