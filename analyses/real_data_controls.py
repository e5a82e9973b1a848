"""Real data with noisy labels (issue 29): does a trained layer hold the rule, or would an
untrained net of the same shape read out as well? The class-subspace readout and linear probes of
the true label, each beside its raw-input and untrained-net controls, and what moves the
readout of the first hidden layer.

    OMP_NUM_THREADS=1 python analyses/real_data_controls.py [--part recipes|probes|all]
        [--splits 0 1 2] [--out runs/real-data-controls]

`recipes` (digits): the issue measured 95.2% for the first hidden layer's readout of a digits
MLP (64 → 512 → 512 → 10, Adam 1e-3, 300 epochs); the `digits-40` preset gives 88.7%, below an
untrained net (89.6%). For each training recipe — the preset (full batch, 400 steps),
minibatches of 128 (3,000 steps) and of 32 (12,000 steps), both about 300 epochs, and the
preset's minibatch-128 recipe on pixel intensities 0..16 instead of 0..1 — and each seed (the
split, the noise draw, the initialisation and the minibatch order all take it), train digits-40
so changed (a finished run directory is reused), then read the raw inputs and each layer's
`hook_pre` and `hook_post` with the class-subspace readout of `core.class_structure` (subspaces
from the *observed* labels), at k = 5, 10, 20 directions per class, uncentred (the product's
readout) and centred on the training examples' mean, beside the same readout of an untrained
net of the same spec. Writes `<out>/recipes.md`.

`probes` (digits-40, mnist5k-40 and the transformer over rows, digits-tt-40, as the presets
train them): the `class_subspaces` and `probes` analyses, each layer beside the raw inputs and
an untrained net of the same shape. Writes `<out>/probes.md`. Prints every number it writes.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

import interp
from interp.core.class_structure import INPUT, class_subspaces, readout
from interp.families.base import build_model, family_of
from interp.training.train import started

HOOKS = ("blocks.0.hook_pre", "blocks.0.hook_post", "blocks.1.hook_pre", "blocks.1.hook_post")
DIRECTIONS = (5, 10, 20)
#: name → (batch size, steps, pixel scale)
RECIPES = {"preset (full batch, 400 steps)": (0, 400, 1.0), "minibatch 128, 3000 steps": (128, 3000, 1.0),
           "minibatch 32, 12000 steps": (32, 12000, 1.0), "minibatch 128, pixels 0..16": (128, 3000, 16.0)}


def trained(spec, out: Path, dataset=None):
    """The run at `out`: loaded when finished, else trained (resumed when interrupted)."""
    if (out / "model.safetensors").exists():
        return interp.load_run(out)
    return interp.train(spec, out, dataset=dataset, resume=started(out), progress=False)


def recipe_run(name: str, seed: int, out: Path):
    batch, steps, scale = RECIPES[name]
    base = interp.get_preset("digits-40").spec
    spec = replace(base, task=replace(base.task, seed=seed), noise=replace(base.noise, seed=seed),
                   model=replace(base.model, seed=seed),
                   train=replace(base.train, batch_size=batch, steps=steps, seed=seed, eval_every=max(10, steps // 100),
                                 checkpoint_every=steps))
    drawn = interp.make_dataset(spec.task, spec.noise)
    dataset = interp.Dataset.from_tensors(spec.task, drawn.inputs * scale, drawn.labels, drawn.train_mask,
                                          drawn.true_labels)
    tag = f"b{batch}-s{steps}-x{scale:g}-seed{seed}"
    return trained(spec, out / tag, dataset)


def readouts(run) -> dict[tuple[str, int, bool], tuple[float, float | None]]:
    """(where, k, centred) → (test accuracy of the readout, the same on an untrained net)."""
    ds, model = run.dataset, run.model
    family = family_of(model)
    train, test = ds.train_mask, ds.test_mask
    _, cache = family.run_with_cache(model, ds.inputs, names_filter=lambda n: n in HOOKS)
    _, fresh = family.run_with_cache(build_model(family.spec(model), ds.p), ds.inputs,
                                     names_filter=lambda n: n in HOOKS)

    def score(acts: torch.Tensor, k: int, centred: bool) -> float:
        acts = acts.double()
        if centred:
            acts = acts - acts[train].mean(0)
        predicted = readout(acts, class_subspaces(acts[train], ds.labels[train], ds.p, k))
        return float((predicted[test] == ds.true_labels[test]).double().mean())

    out = {}
    for k in DIRECTIONS:
        for centred in (False, True):
            out[INPUT, k, centred] = (score(ds.inputs, k, centred), None)
            for hook in HOOKS:
                out[hook, k, centred] = (score(cache[hook], k, centred), score(fresh[hook], k, centred))
    return out


def recipes(seeds: list[int], out: Path) -> list[str]:
    lines = ["Per run: the product's readout (10 directions, uncentred) of the raw inputs and of each layer's "
             "`hook_post`, trained / untrained net of the same spec.", "",
             "| recipe | seed | memorised | final test | best test (step) | raw inputs | layer 1 trained / untrained | "
             "layer 2 trained / untrained | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    print(lines[0])
    table: dict[str, list[dict]] = {}
    for name in RECIPES:
        for seed in seeds:
            t0 = time.perf_counter()
            run = recipe_run(name, seed, out)
            scores = readouts(run)
            table.setdefault(name, []).append(scores)
            m = run.final_metrics
            best = max(run.history, key=lambda row: (row["test_acc"], -row["step"]))
            first, second = scores["blocks.0.hook_post", 10, False], scores["blocks.1.hook_post", 10, False]
            line = (f"| {name} | {seed} | {m['noisy_observed_acc']:.1%} | {m['test_acc']:.1%} | {best['test_acc']:.1%} "
                    f"({best['step']}) | {scores[INPUT, 10, False][0]:.1%} | {first[0]:.1%} / {first[1]:.1%} | "
                    f"{second[0]:.1%} / {second[1]:.1%} | {time.perf_counter() - t0:.0f} |")
            lines.append(line)
            print(line, flush=True)
    head = " | ".join(f"k={k}{', centred' if c else ''}" for k in DIRECTIONS for c in (False, True))
    lines += ["", f"Mean over seeds {', '.join(map(str, seeds))}: readout test accuracy, trained / untrained net "
                  "(the raw inputs: one number).", "", f"| recipe | where | {head} |",
              "|---|---|" + "---|" * (2 * len(DIRECTIONS))]
    for name, runs in table.items():
        for where in (INPUT, *HOOKS):
            cells = []
            for k in DIRECTIONS:
                for centred in (False, True):
                    trained_acc = sum(s[where, k, centred][0] for s in runs) / len(runs)
                    if where == INPUT:
                        cells.append(f"{trained_acc:.1%}")
                    else:
                        untrained = sum(s[where, k, centred][1] for s in runs) / len(runs)
                        cells.append(f"{trained_acc:.1%} / {untrained:.1%}")
            line = f"| {name} | {where} | " + " | ".join(cells) + " |"
            lines.append(line)
            print(line, flush=True)
    return lines


def probes(out: Path) -> list[str]:
    lines = []
    for preset in ("digits-40", "mnist5k-40", "digits-tt-40"):
        t0 = time.perf_counter()
        run = trained(interp.get_preset(preset).spec, out / preset)
        m = run.final_metrics
        lines += [f"## {preset}: memorised {m['noisy_observed_acc']:.1%}, test {m['test_acc']:.1%} (trained or loaded "
                  f"in {time.perf_counter() - t0:.0f} s)", ""]
        for analysis in ("class_subspaces", "probes"):
            t0 = time.perf_counter()
            result = interp.analyze(run, analysis)
            seconds = time.perf_counter() - t0
            lines += [f"### {preset}: `{analysis}` ({seconds:.0f} s)", "", result.summary(), ""]
            lines += [table.markdown() for table in result.tables()] + [""]
            print("\n".join(lines[-4 - len(result.tables()):]), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default="all", choices=["recipes", "probes", "all"])
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2], help="seeds of the recipe grid")
    parser.add_argument("--out", default="runs/real-data-controls")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread per process: several times faster on a loaded 2-core machine
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.part in ("recipes", "all"):
        (out / "recipes.md").write_text("\n".join(recipes(args.splits, out)) + "\n")
        print(f"wrote {out / 'recipes.md'}")
    if args.part in ("probes", "all"):
        (out / "probes.md").write_text("\n".join(probes(out)) + "\n")
        print(f"wrote {out / 'probes.md'}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
