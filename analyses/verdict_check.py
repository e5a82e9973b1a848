"""Every verdict of a release's localisation re-derived without interp's ablation code: each
kind's memorising and generalising sets zero-ablated with plain torch hooks, beside random sets
of the same size, scored from the dataset's masks and judged by the verdict rule written out
below; then compared with interp's own intervention table and the model card.

    OMP_NUM_THREADS=1 python analyses/verdict_check.py models/liu-lu-80 [models/... ...]

What is taken from interp: the run (`interp.load_run`) and the label sets (`localize`'s rows:
which components carry which label). What is not: the ablations, the scores, the rule.
- neurons: the readout neurons' activations zeroed — a two-layer net's `hook_post` output, a
  transformer's last MLP at the input of its output projection (`fc_out`, the activations that
  `hook_post` names);
- heads: the head's slice of the attention output projection's input (`o`), what `hook_z` names;
- embedding frequencies: W_E's residue rows with frequency k's cos and sin parts projected out,
  in a Fourier basis of Z_p built here (the constant and the other frequencies kept), fed in
  through a hook on the embedding;
- random sets: the first n of `torch.randperm(kind size)` with `torch.Generator().manual_seed(s)`,
  s = 0, 1, 2 (positions in the kind's rows), averaged over the three draws.
A set the size of its kind has no control. Irrep rows (a transformer on a group) are not
re-derived here: their basis is a group's irreps, not the Fourier basis of Z_p.

Prints, per release, one table: kind, set, n, memorised and test accuracy after the ablation
and for random sets (here, and interp's), the verdict here, interp's (`InterventionTable.outcome`,
zero mode) and the card's (its compact table, where the card states the rule's outcome), and
whether they agree; then the largest difference between the numbers here and interp's.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

import interp
from interp.analysis.localize import localize

SEEDS = (0, 1, 2)
#: an ablation must lower an accuracy by more than this beyond random sets to count
BAND = 0.02
#: where the accuracies tie (within BAND), the mean margin must fall by more than this (logits)
TIE = 1e-6
KINDS = ("neuron", "neuron cluster", "head", "frequency")


# --- the rule -------------------------------------------------------------------------------


def lowers_more(after: float | None, random: float | None, margin: float | None, random_margin: float | None
                ) -> bool:
    """Whether ablating a set lowers a quantity more than random sets of its size do: the
    accuracy by more than BAND; when the two accuracies are within BAND of each other, the
    margin by more than TIE. Never where the quantity does not exist (no noisy labels)."""
    if after is None or random is None:
        return False
    if abs(after - random) > BAND:
        return after < random
    return margin is not None and random_margin is not None and random_margin - margin > TIE


def rule(mine: dict, random: dict) -> str:
    """memorising: lowers memorisation more than random and test no more; generalising: the
    reverse; shared: both more; inert: neither."""
    memory = lowers_more(mine["memorised"], random["memorised"], mine["mem_margin"], random["mem_margin"])
    test = lowers_more(mine["test"], random["test"], mine["gen_margin"], random["gen_margin"])
    return {(True, True): "shared", (True, False): "memorising", (False, True): "generalising"}.get(
        (memory, test), "inert")


# --- scoring --------------------------------------------------------------------------------


def score(out: Tensor, dataset) -> dict:
    """Memorised accuracy (noisy training pairs against their observed labels), test accuracy,
    and the two mean margins (a label's logit minus the mean logit): the true label's on the
    test pairs, observed minus true on the noisy pairs."""
    out = out.double()
    rel = out - out.mean(-1, keepdim=True)
    test, noisy = ~dataset.train_mask, dataset.noisy_mask
    truth, observed = dataset.true_labels, dataset.labels
    hit = out.argmax(-1)
    result = {"test": float((hit[test] == truth[test]).double().mean()),
              "gen_margin": float(rel[test].gather(1, truth[test, None]).mean())}
    if noisy.any():
        result["memorised"] = float((hit[noisy] == observed[noisy]).double().mean())
        result["mem_margin"] = float((rel[noisy].gather(1, observed[noisy, None])
                                      - rel[noisy].gather(1, truth[noisy, None])).mean())
    else:
        result["memorised"] = result["mem_margin"] = None
    return result


# --- the forwards and the ablations ---------------------------------------------------------


def is_transformer(model: nn.Module) -> bool:
    return hasattr(model, "cfg")


def forward(model: nn.Module, pairs: Tensor) -> Tensor:
    """Logits over the p classes: a two-layer net takes the pairs; a transformer reads `a b =`
    (the `=` token is the vocabulary's last) and predicts at the last position."""
    if not is_transformer(model):
        return model(pairs)
    equals = torch.full_like(pairs[:, :1], model.cfg.d_vocab - 1)
    return model(torch.cat([pairs, equals], 1))[:, -1]


@contextmanager
def hooked(module: nn.Module, pre: bool, fn):
    handle = module.register_forward_pre_hook(fn) if pre else module.register_forward_hook(fn)
    try:
        yield
    finally:
        handle.remove()


def _block(model: nn.Module, layer: int) -> nn.Module:
    return model.get_submodule(f"blocks.{layer}._original_component")


def ablate_neurons(model: nn.Module, pairs: Tensor, neurons: list[int]) -> Tensor:
    """Logits with the readout neurons `neurons` zeroed."""
    units = torch.as_tensor(neurons, dtype=torch.long)
    if not is_transformer(model):
        def zero_out(module, args, out):
            out = out.clone()
            out[..., units] = 0
            return out
        with hooked(model.hook_post, False, zero_out):
            return forward(model, pairs)
    fc_out = _block(model, model.cfg.n_layers - 1).mlp._original_component.fc_out

    def zero_in(module, args):
        acts = args[0].clone()
        acts[..., units] = 0
        return (acts, *args[1:])

    with hooked(fc_out, True, zero_in):
        return forward(model, pairs)


def ablate_heads(model: nn.Module, pairs: Tensor, heads: list[str]) -> Tensor:
    """Logits with the heads named `L{layer}H{head}` zeroed in every layer at once."""
    d_head, chosen = model.cfg.d_head, {}
    for name in heads:
        layer, head = map(int, re.fullmatch(r"L(\d+)H(\d+)", name).groups())
        chosen.setdefault(layer, []).append(head)
    handles = []

    def zero_heads(mine):
        def hook(module, args):
            z = args[0].clone()  # [batch, pos, head · d_head], heads contiguous
            for h in mine:
                z[..., h * d_head:(h + 1) * d_head] = 0
            return (z, *args[1:])
        return hook

    try:
        for layer, mine in chosen.items():
            o = _block(model, layer).attn._original_component.o
            handles.append(o.register_forward_pre_hook(zero_heads(mine)))
        return forward(model, pairs)
    finally:
        for handle in handles:
            handle.remove()


def fourier_part(p: int, k: int) -> Tensor:
    """[p, p] the orthogonal projection of functions on Z_p onto frequency k (its cos and sin)."""
    x = torch.arange(p, dtype=torch.float64)
    waves = [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
    return sum(torch.outer(w, w) / w.dot(w) for w in waves if w.dot(w) > 1e-9)


def ablate_frequencies(model: nn.Module, pairs: Tensor, freqs: list[int]) -> Tensor:
    """Logits with the embedding's residue rows stripped of frequencies `freqs`."""
    p = model.cfg.d_vocab_out
    table = model.get_submodule("embed._original_component").weight.detach()
    residues = table[:p].double()
    stripped = residues - sum(fourier_part(p, k) for k in freqs) @ residues
    new = torch.cat([stripped.to(table.dtype), table[p:]])

    def replace(module, args, out):
        return new[args[0]]

    with hooked(model.get_submodule("embed._original_component"), False, replace):
        return forward(model, pairs)


def ablation(model: nn.Module, pairs: Tensor, kind: str, rows: list[dict]):
    """(positions in the kind's rows) -> logits, for one kind."""
    if kind == "neuron":
        return lambda pos: ablate_neurons(model, pairs, [rows[i]["index"] for i in pos])
    if kind == "neuron cluster":
        return lambda pos: ablate_neurons(model, pairs, [u for i in pos for u in rows[i]["members"]])
    if kind == "head":
        return lambda pos: ablate_heads(model, pairs, [rows[i]["index"] for i in pos])
    return lambda pos: ablate_frequencies(model, pairs, [rows[i]["index"] for i in pos])


@torch.no_grad()
def check(model: nn.Module, dataset, rows: list[dict], table=None) -> list[dict]:
    """For each kind's memorising and generalising set: the numbers here (zero ablation and
    the mean of random sets), the verdict here and, given interp's intervention `table`, its
    numbers and outcome."""
    found = []
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        run = ablation(model, dataset.inputs, kind, mine)
        for label in ("memorising", "generalising"):
            members = [i for i, r in enumerate(mine) if r["label"] == label]
            if not members:
                continue
            here = score(run(members), dataset)
            draws = [score(run(torch.randperm(len(mine), generator=torch.Generator().manual_seed(s))[
                : len(members)].tolist()), dataset) for s in SEEDS]
            random = {k: None if draws[0][k] is None else sum(d[k] for d in draws) / len(draws) for k in draws[0]}
            verdict = "no control" if len(members) == len(mine) else rule(here, random)
            entry = {"kind": kind, "label": label, "n": len(members), "of": len(mine), "here": here,
                     "random": random, "verdict": verdict}
            if table is not None:
                row = table.label_row(kind, label, "zero")
                entry["interp"] = {"here": _renamed(row.metrics), "random": _renamed(table.random_mean(row)),
                                   "verdict": table.outcome(row)}
            found.append(entry)
    return found


def _renamed(metrics: dict) -> dict:
    return {"memorised": metrics["noisy_observed_acc"], "test": metrics["test_acc"],
            "mem_margin": metrics["mem_margin"], "gen_margin": metrics["gen_margin"]}


# --- the card -------------------------------------------------------------------------------


def card_verdicts(card: Path) -> dict[tuple[str, str], str] | None:
    """The outcome each row of the card's compact intervention table states, by (kind, set);
    None when the card predates the rule (its caption does not name "the one rule")."""
    if not card.exists() or "by the one rule" not in card.read_text():
        return None
    found = {}
    for line in card.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 8 or cells[1] not in ("memorising", "generalising"):
            continue
        kind, label, verdict = cells[0], cells[1], cells[7]
        if verdict.startswith("holds"):
            found[kind, label] = label
        elif verdict.startswith("no control"):
            found[kind, label] = "no control"
        elif (m := re.match(r"(\w+), not (\w+)", verdict)):
            found[kind, label] = m.group(1)
        else:
            found[kind, label] = f"? {verdict}"
    return found


# --- the report -----------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def report(name: str, found: list[dict], card: dict | None) -> tuple[str, bool]:
    cols = ["kind", "set", "n", "memorised / random (here)", "test / random (here)",
            "memorised / random (interp)", "test / random (interp)", "verdict here", "interp", "card", "agree?"]
    lines = [f"### {name}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    ok, worst = True, 0.0
    for e in found:
        i = e["interp"]
        for side in ("here", "random"):
            for key in ("memorised", "test", "mem_margin", "gen_margin"):
                a, b = e[side][key], i[side][key]
                if a is not None and b is not None:
                    worst = max(worst, abs(a - b))
        theirs = card.get((e["kind"], e["label"]), "—") if card is not None else "(card predates the rule)"
        agree = e["verdict"] == i["verdict"] and (card is None or theirs == e["verdict"])
        ok &= agree
        lines.append("| " + " | ".join([
            e["kind"], e["label"], f"{e['n']} of {e['of']}",
            f"{_pct(e['here']['memorised'])} / {_pct(e['random']['memorised'])}",
            f"{_pct(e['here']['test'])} / {_pct(e['random']['test'])}",
            f"{_pct(i['here']['memorised'])} / {_pct(i['random']['memorised'])}",
            f"{_pct(i['here']['test'])} / {_pct(i['random']['test'])}",
            e["verdict"], i["verdict"], theirs, "yes" if agree else "NO"]) + " |")
    lines += ["", f"largest difference from interp's numbers (accuracies and margins): {worst:.2g}", ""]
    return "\n".join(lines), ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="release folders, e.g. models/liu-lu-80")
    args = parser.parse_args()
    all_ok = True
    for path in map(Path, args.runs):
        run = interp.load_run(path)
        result = localize(run.model, run.dataset)
        found = check(run.model, run.dataset, result.rows, result.interventions)
        skipped = sorted(set(result.interventions.kind_sizes) - set(KINDS))
        text, ok = report(path.name, found, card_verdicts(path / "MODEL_CARD.md"))
        print(text + (f"not re-derived here: {', '.join(skipped)}\n" if skipped else ""), flush=True)
        all_ok &= ok
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
