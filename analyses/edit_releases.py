"""The weight edit that forgets the noise (`interp.analysis.edit`) on every release and on the
planted nets: what each method reaches, and the edit `interp edit` would write.

    python analyses/edit_releases.py [--out DIR] [--cards] [NAME ...]

For each model: the label-free teacher, the unedited and the teacher's memorised and test
accuracy, the chosen edit (its method, size and both accuracies; a readout edit's size is its
share of the readout map's squared norm, a move toward the teacher's weights' of the neuron
maps' u, v and w together), and per method the smallest edit
that takes memorisation to ≤ 5% with its test accuracy (— where none does). Prints one Markdown
table, writes it with the numbers to `DIR/edit_releases.{md,json}` and each model's Pareto
figure to `DIR/edit_NAME.png`; each model's row and numbers also go to `DIR/edit_NAME.{md,json}`
as soon as it is done. With `--cards`, each release's MODEL_CARD.md is refreshed from the same
search (`interp.reporting.cards.refresh_card`: the localisation is recomputed, the edit is not).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import interp
from interp.analysis.edit import DOMINANT, SHIFTED, edit_search
from interp.planted import planted_transformer, planted_two_layer
from interp.reporting.cards import refresh_card
from interp.training.rundir import write_json, write_text

#: every release with wrong training labels (nanda-grokking and s5-clean have none: nothing to forget)
RELEASES = ("nanda-noisy-59", "nanda-inversion", "nanda-noisy", "nanda-coexistence", "liu-lu-80", "doshi-coexistence",
            "a5-noisy", "s5-noisy", "nanda-s5-noisy")
FORGOTTEN = 0.05  # "the memory removed": memorised at most this
METHODS = ("learned mask", "learned neuron mask", "greedy", "flip count", "localisation ranking", "random",
           SHIFTED, DOMINANT)


def models(names: list[str]):
    for name in names:
        if name == "planted two-layer":
            ds = interp.make_dataset(interp.TaskSpec(p=59, train_fraction=0.5), interp.NoiseSpec(kind="wrong", rate=0.2, seed=1))
            yield name, planted_two_layer(ds, act="relu", seed=2).model, ds
        elif name == "planted transformer":
            ds = interp.make_dataset(interp.TaskSpec(p=59, train_fraction=0.5), interp.NoiseSpec(kind="wrong", rate=0.1, seed=7))
            yield name, planted_transformer(ds).model, ds
        else:
            run = interp.load(name)
            yield name, run.model, run.dataset


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=[*RELEASES, "planted two-layer", "planted transformer"])
    parser.add_argument("--out", default="reports/edit_releases")
    parser.add_argument("--cards", action="store_true", help="refresh each release's model card from its search")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = ["model", "teacher", "memorised / test", "teacher: memorised / test",
              "chosen edit: method, size, memorised / test",
              *(f"{m}: smallest size with memorised ≤ 5%, test" for m in METHODS), "seconds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    data = {}
    for name, model, ds in models(args.names):
        start = time.perf_counter()
        search = edit_search(model, ds, comparisons=True)
        seconds = time.perf_counter() - start
        search.figures(out, f"edit_{name.replace(' ', '_')}")
        b, t, e = search.baseline, search.teacher_metrics, search.edit
        cells = [name, search.teacher, f"{pct(b['noisy_observed_acc'])} / {pct(b['test_acc'])}",
                 f"{pct(t['noisy_observed_acc'])} / {pct(t['test_acc'])}",
                 f"{e.method}, {e.size:.1%}, {pct(e.metrics['noisy_observed_acc'])} / {pct(e.metrics['test_acc'])}"]
        for method in METHODS:
            done = [pt for pt in search.curve(method) if pt.metrics["noisy_observed_acc"] is not None
                    and pt.metrics["noisy_observed_acc"] <= FORGOTTEN]
            best = min(done, key=lambda pt: pt.size) if done else None
            cells.append("—" if best is None else f"{best.size:.1%}, {pct(best.metrics['test_acc'])}")
        cells.append(f"{seconds:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
        data[name] = {"result": search.to_dict(), "seconds": seconds, "chosen": asdict(e)}
        stem = f"edit_{name.replace(' ', '_')}"
        write_text(out / f"{stem}.md", lines[-1] + "\n")
        write_json(out / f"{stem}.json", data[name])
        if args.cards and not name.startswith("planted"):
            refresh_card(name, search=search)
    write_text(out / "edit_releases.md", "\n".join(lines) + "\n")
    write_json(out / "edit_releases.json", data)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
