"""`interp train --preset liu-lu-80` as a whole process against a plain autograd loop of the same net.

    python benchmarks/train_overhead.py [--steps 2000] [--pairs 5] [--threads N] [--parts]
                                        [--interp "python -m interp.cli"]

Both sides are fresh processes timed from start to exit, so imports, building the data, the
evaluations every `eval_every` steps, checkpoints and the run directory all count for interp.
The plain loop is written below with torch alone (it imports nothing of interp): the same sizes
(every pair a + b mod 59, 80% of them for training, 80% of those relabelled wrong, width 513,
ReLU, output bias), one-hot inputs through dense products, `F.cross_entropy` and autograd,
full-batch AdamW at the preset's learning rate and weight decay, training and test accuracy
20 times (as often as interp evaluates a run whose steps are overridden), the weights saved at
the end. The two are run in turn (A B A B ...), so a slow
spell of the shared machine falls on both sides of a pair; the ratio printed is interp's wall
time over the plain loop's, per pair, then the median and the spread. `--threads N` gives both
sides N threads (OMP_NUM_THREADS); by default each takes torch's default, one per core. On a
machine shared with other jobs, two threads per process oversubscribe the cores and each
parallel op waits for a descheduled thread, which slows both sides by up to 10x, unevenly;
one thread each keeps the comparison about the work each side does. Beside the wall times it
prints each process's CPU time (user + system, from `getrusage` of the finished child): on a
shared machine a process's wall time also counts the time it waited for a core, its CPU time
does not, so the CPU ratio moves far less with the neighbours' load than the wall ratio.

`--parts` then says where the CPU time goes: each side's fixed cost (a 20-step run's CPU less
its 20 steps) and its CPU per step (from the two run lengths), the start-up's imports in fresh
processes, and the three matrix products of interp's step alone at liu-lu-80's shapes, whose
arithmetic the trained weights depend on bit for bit.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: liu-lu-80's sizes and optimiser (interp/training/presets.py), spelled out for the plain loop
P, TRAIN_FRACTION, NOISE_RATE, WIDTH, LR, WEIGHT_DECAY = 59, 0.8, 0.8, 513, 1e-3, 0.1


def plain_loop(steps: int, out: Path) -> None:
    """What a researcher writes without interp: one-hot inputs, dense products, autograd."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    a, b = torch.cartesian_prod(torch.arange(P), torch.arange(P)).unbind(1)
    labels = (a + b) % P
    order = torch.randperm(P * P, generator=gen)
    train = order[: round(TRAIN_FRACTION * P * P)]
    test = order[len(train):]
    observed = labels.clone()
    wrong = train[: round(NOISE_RATE * len(train))]
    observed[wrong] = (labels[wrong] + torch.randint(1, P, (len(wrong),), generator=gen)) % P
    x = torch.cat([F.one_hot(a, P), F.one_hot(b, P)], 1).float()

    def uniform(*shape: int, fan_in: int) -> torch.nn.Parameter:
        return torch.nn.Parameter((torch.rand(*shape, generator=gen) * 2 - 1) / fan_in**0.5)

    first, readout, bias = uniform(WIDTH, 2 * P, fan_in=2 * P), uniform(P, WIDTH, fan_in=WIDTH), uniform(P, fan_in=WIDTH)
    params = [first, readout, bias]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)

    def logits(inputs: torch.Tensor) -> torch.Tensor:
        return F.relu(inputs @ first.T) @ readout.T + bias

    x_train, y_train = x[train], observed[train]
    eval_every = max(1, steps // 20)
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                correct = logits(x).argmax(1) == observed
                print(step, correct[train].float().mean().item(), correct[test].float().mean().item())
        if step == steps:
            break
        loss = F.cross_entropy(logits(x_train), y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save({"first": first, "readout": readout, "bias": bias}, out / "plain.pt")


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from start to exit of `command`, and the CPU seconds (user + system) it used,
    its children's included (its output discarded; a failure stops the benchmark)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


#: interp's three products per step (interp.families.stacked.loss_and_grads) at liu-lu-80's shapes,
#: the fastest of five blocks of CPU time; prints milliseconds per step
PRODUCTS = f"""
import time, torch
from interp.core.runtime import fast_cpu_process
fast_cpu_process()
n, classes = round({TRAIN_FRACTION} * {P} ** 2), -(-{P} // 16) * 16
hidden, grad = torch.rand(1, n, {WIDTH}), torch.rand(1, n, classes)
w, bias = torch.rand(1, classes, {WIDTH}), torch.rand(1, 1, classes)
real, w_real = grad[..., :{P}], w[:, :{P}].contiguous()
def step():
    torch.baddbmm(bias, hidden, w.transpose(1, 2)), torch.bmm(real.transpose(1, 2), hidden), torch.bmm(real, w_real)
step()
best = float("inf")
for _ in range(5):
    start = time.process_time()
    for _ in range(20):
        step()
    best = min(best, (time.process_time() - start) / 20)
print(best * 1e3)
"""

#: fresh processes (this Python's) whose CPU time makes up the start-up
IMPORTS = {"import torch": "import torch", "torch + transformer_lens": "import torch, transformer_lens",
           "import interp.cli": "import interp.cli",  # torch, transformer_lens and interp's own modules
           # torch imports torch._dynamo at the first optimizer's first parameter group, on both sides
           "torch + its first optimizer": "import torch; torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])"}


def parts(args, env: dict[str, str], rows: list, tmp: str) -> None:
    """Print where each side's CPU time goes (see the module's docstring)."""
    short = 20
    fixed = {"interp": [], "plain loop": []}
    for i in range(args.pairs):
        fixed["interp"].append(timed([*shlex.split(args.interp), "train", "--preset", "liu-lu-80", "--set",
                                      f"train.steps={short}", "--out", f"{tmp}/short{i}", "--no-progress"], env)[1])
        plain = [sys.executable, __file__, "--steps", str(short), "--plain-loop", tmp]
        fixed["plain loop"].append(timed(plain, env)[1])
    whole = {"interp": statistics.median(o[1] for o, _ in rows), "plain loop": statistics.median(p[1] for _, p in rows)}
    print(f"where the CPU time goes (medians of {args.pairs}):")
    per_step = {}
    for side, cpu in fixed.items():
        per_step[side] = (whole[side] - statistics.median(cpu)) / (args.steps - short)
        print(f"  {side}: {statistics.median(cpu) - short * per_step[side]:.1f} s fixed, "
              f"{per_step[side] * 1e3:.2f} ms per step")
    imports = {name: min(timed([sys.executable, "-c", code], env)[1] for _ in range(args.pairs))
               for name, code in IMPORTS.items()}
    print("  start-up, fresh processes (CPU s, best of each): "
          + ", ".join(f"{name} {cpu:.2f}" for name, cpu in imports.items()))
    out = subprocess.run([sys.executable, "-c", PRODUCTS], env=env, check=True, capture_output=True, text=True).stdout
    products = float(out.split()[-1]) / 1e3
    print(f"  interp's three products alone: {products * 1e3:.2f} ms per step (best of five blocks)")
    plain_fixed = whole["plain loop"] - args.steps * per_step["plain loop"]
    print(f"  the plain loop's fixed cost plus interp's products alone, over the plain loop: "
          f"{(plain_fixed + args.steps * products) / whole['plain loop']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--threads", type=int, help="threads of each side (default: torch's, one per core)")
    parser.add_argument("--interp", default=f"{sys.executable} -m interp.cli",
                        help="the command that runs interp's CLI (default: this Python's interp.cli)")
    parser.add_argument("--parts", action="store_true", help="then say where each side's CPU time goes")
    parser.add_argument("--plain-loop", type=Path, help=argparse.SUPPRESS)  # the child process's side
    args = parser.parse_args()
    if args.plain_loop:
        plain_loop(args.steps, args.plain_loop)
        return
    env = dict(os.environ)
    if args.threads:
        env.update({name: str(args.threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            ours = timed([*shlex.split(args.interp), "train", "--preset", "liu-lu-80",
                          "--set", f"train.steps={args.steps}", "--out", f"{tmp}/run{i}", "--no-progress"], env)
            plain = timed([sys.executable, __file__, "--steps", str(args.steps), "--plain-loop", tmp], env)
            rows.append((ours, plain))
            print(f"pair {i + 1}: interp {ours[0]:6.1f} s ({ours[1]:5.1f} s CPU)   "
                  f"plain loop {plain[0]:6.1f} s ({plain[1]:5.1f} s CPU)   "
                  f"ratio {ours[0] / plain[0]:.2f} (CPU {ours[1] / plain[1]:.2f})", flush=True)
        threads = f"{args.threads} thread(s) each" if args.threads else "default threads"
        print(f"{args.steps} steps of liu-lu-80, {args.pairs} interleaved pairs, {threads}:")
        for what, k in (("wall", 0), ("CPU", 1)):
            ratios = sorted(o[k] / p[k] for o, p in rows)
            print(f"  {what:>4}: median ratio {statistics.median(ratios):.2f} (from {ratios[0]:.2f} to "
                  f"{ratios[-1]:.2f}); interp median {statistics.median(o[k] for o, _ in rows):.1f} s, "
                  f"plain loop median {statistics.median(p[k] for _, p in rows):.1f} s", flush=True)
        if args.parts:
            parts(args, env, rows, tmp)


if __name__ == "__main__":
    main()
