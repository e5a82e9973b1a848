"""The localisation checked against planted models whose answer is known by construction, at
full size: precision and recall of each label, per component kind.

    python analyses/planted_localization.py [--out DIR]

Models (`interp.planted`): the ReLU two-layer net of closed-form rule neurons and lookups that
are rule neurons pushed under threshold (p = 59, 20% wrong labels; neurons and neuron parts);
Gromov's quadratic rule with lookups (p = 59, 4%; neurons); the union of the closed-form rule
transformer and a lookup transformer (p = 59, 10%; neurons, clusters, heads, head frequencies,
embedding frequencies); and the unions with the released `nanda-grokking` (p = 113) and
`nanda-inversion` (p = 59) transformers on the generalising side (neurons, heads, and for the
grokked one embedding frequencies). Prints one Markdown table and writes it with the numbers to
`DIR/planted_localization.{md,json}`. Tests run the same checks at p = 31 (tests/test_localize.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import interp
from interp.training.rundir import write_json
from interp.analysis.localize import localize
from interp.core.metrics import subset_metrics
from interp.planted import planted_transformer, planted_two_layer
from interp.testing import recovery

NAMES = ("generalising", "memorising", "inert")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="reports/planted_localization")
    args = parser.parse_args()
    out = Path(args.out)
    task = interp.TaskSpec(p=59, train_fraction=0.5)
    results = {}
    start = time.perf_counter()

    for act, rate in (("relu", 0.2), ("quadratic", 0.04)):
        ds = interp.make_dataset(task, interp.NoiseSpec(kind="wrong", rate=rate, seed=1))
        built = planted_two_layer(ds, act=act, seed=2)
        results[f"two-layer {act}, p = 59, {rate:.0%} wrong"] = (built.model, ds, built.truths())

    ds = interp.make_dataset(task, interp.NoiseSpec(kind="wrong", rate=0.1, seed=7))
    built = planted_transformer(ds)
    results["rule transformer ∪ lookups, p = 59, 10% wrong"] = (built.model, ds, built.truths(ds))
    for name in ("nanda-grokking", "nanda-inversion"):
        trained = interp.load(name)
        ds = interp.make_dataset(trained.spec.task, interp.NoiseSpec(kind="wrong", rate=0.1, seed=7))
        built = planted_transformer(ds, trained.model)
        truths = built.truths(ds)
        if name == "nanda-inversion":  # it needs its kept frequencies together, not each one
            del truths["frequency"]
        results[f"`{name}` ∪ lookups, p = {ds.p}, 10% wrong"] = (built.model, ds, truths)

    lines = ["| planted model | memorised / test | kind | " + " | ".join(f"{n}: precision / recall" for n in NAMES) + " |",
             "|---|---|---|" + "---|" * len(NAMES)]
    record = {}
    for title, (model, ds, truths) in results.items():
        m = subset_metrics(interp.logits(model, ds.inputs), ds)
        found = recovery(localize(model, ds, kinds=tuple(dict.fromkeys(k.partition(":")[0] for k in truths))).rows,
                         truths)
        record[title] = {"metrics": m, "checks": found}
        for kind, per_label in found.items():
            cells = [f"{per_label[n][0]:.3f} / {per_label[n][1]:.3f}" if n in per_label else "—" for n in NAMES]
            lines.append(f"| {title} | {m['noisy_observed_acc']:.1%} / {m['test_acc']:.1%} | {kind} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    print(f"\n{time.perf_counter() - start:.0f} s")
    out.mkdir(parents=True, exist_ok=True)
    (out / "planted_localization.md").write_text(table + "\n")
    write_json(out / "planted_localization.json", record)


if __name__ == "__main__":
    main()
