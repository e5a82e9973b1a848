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
- embedding irreps (a transformer on a group): the same with the irrep's isotypic part, found
  here as an eigenspace of the conjugacy classes' convolutions (no irrep is built); interp's
  projection is read only to match each part to the irrep number in its rows, and the largest
  distance between the two projections is printed;
- random sets: the first n of `torch.randperm(kind size)` with `torch.Generator().manual_seed(s)`,
  s = 0, 1, 2 (positions in the kind's rows), averaged over the three draws.
A set the size of its kind has no control.

Prints, per release, one table: kind, set, n, memorised and test accuracy after the ablation
and for random sets (here, and interp's), the verdict here, interp's (`InterventionTable.outcome`,
zero mode) and the card's (the compact intervention table of models/NAME/MODEL_CARD.md; where the
card predates the rule, that table as interp renders it now), and whether all three agree; then
the largest difference between the numbers here and interp's. Exits 1 when any disagree.
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
from interp.analysis.unit_rows import UnitRow

SEEDS = (0, 1, 2)
#: an ablation must lower an accuracy by more than this beyond random sets to count
BAND = 0.02
#: where the accuracies tie (within BAND), the mean margin must fall by more than this (logits)
TIE = 1e-6
KINDS = ("neuron", "neuron cluster", "head", "frequency", "irrep")


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


def isotypic_parts(table: Tensor) -> list[Tensor]:
    """[n, n] projections of functions on a group (Cayley `table`) onto its isotypic components,
    one per irrep: the joint eigenspaces of convolution by the sums of the conjugacy classes
    (central, so they commute; each acts on irrep ρ's part as |C| χ_ρ(C) / d_ρ, and a random
    combination of them separates the irreps). Needs every element conjugate to its inverse
    (S_n, A_5), which makes the operators symmetric."""
    n = len(table)
    g = torch.arange(n)
    identity = int((table == g).all(1).nonzero()[0])
    inverse = (table == identity).int().argmax(1)
    conjugates = table[table[g[None], g[:, None]], inverse[g[None]]]  # [x, h] = h x h⁻¹
    which = torch.full((n,), -1)
    for x in range(n):
        if which[x] < 0:
            which[conjugates[x]] = int(which.max()) + 1
    weights = torch.rand(int(which.max()) + 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # (T f)(x) = Σ_y w[class of y x⁻¹] f(y)
    op = weights[which[table[g[None], inverse[:, None]]]]
    if not torch.allclose(op, op.T):
        raise ValueError("an element not conjugate to its inverse: the class operators are not symmetric")
    values, vectors = torch.linalg.eigh(op)
    cuts = [0, *((values[1:] - values[:-1]) > 1e-8 * values.abs().max()).nonzero().flatten().add(1).tolist(), n]
    return [vectors[:, a:b] @ vectors[:, a:b].T for a, b in zip(cuts, cuts[1:])]


def ablate_residue_parts(model: nn.Module, pairs: Tensor, parts: list[Tensor]) -> Tensor:
    """Logits with the embedding's residue rows stripped of the projections `parts`."""
    embedding = model.get_submodule("embed._original_component")
    table = embedding.weight.detach()
    n = len(parts[0])
    residues = table[:n].double()
    stripped = residues - sum(parts) @ residues
    new = torch.cat([stripped.to(table.dtype), table[n:]])

    def replace(module, args, out):
        return new[args[0]]

    with hooked(embedding, False, replace):
        return forward(model, pairs)


def ablation(model: nn.Module, dataset, kind: str, rows: list[UnitRow], irreps: list[Tensor] | None = None):
    """(positions in the kind's rows) -> logits, for one kind (`irreps`: each irrep row's
    isotypic projection)."""
    pairs = dataset.inputs
    if kind == "neuron":
        return lambda pos: ablate_neurons(model, pairs, [rows[i].index for i in pos])
    if kind == "neuron cluster":
        return lambda pos: ablate_neurons(model, pairs, [u for i in pos for u in rows[i].members])
    if kind == "head":
        return lambda pos: ablate_heads(model, pairs, [rows[i].name for i in pos])
    if kind == "frequency":
        return lambda pos: ablate_residue_parts(model, pairs, [fourier_part(dataset.p, rows[i].index) for i in pos])
    return lambda pos: ablate_residue_parts(model, pairs, [irreps[i] for i in pos])


def matched_irreps(task, indices: list[int]) -> tuple[list[Tensor], float]:
    """The isotypic projection here of each irrep interp numbers `indices` (the one nearest to
    interp's, `harmonics_of(task).project`, read only to name them), and the largest distance
    between a projection here and interp's."""
    from interp.core.harmonics import harmonics_of

    units, mine = harmonics_of(task), isotypic_parts(task.structure.table)
    found, worst = [], 0.0
    for j in indices:
        keep = torch.zeros(units.n_units, dtype=torch.bool)
        keep[j] = True
        theirs = units.project(torch.eye(task.structure.order, dtype=torch.float64), keep, dim=0)
        distances = [float((part - theirs).norm()) for part in mine]
        best = min(range(len(mine)), key=distances.__getitem__)
        worst = max(worst, distances[best])
        found.append(mine[best])
    return found, worst


@torch.no_grad()
def check(model: nn.Module, dataset, rows: list[UnitRow], table=None) -> list[dict]:
    """For each kind's memorising and generalising set: the numbers here (zero ablation and
    the mean of random sets), the verdict here and, given interp's intervention `table`, its
    numbers and outcome."""
    found = []
    for kind in KINDS:
        mine = [r for r in rows if r.kind == kind]
        if not any(r.label in ("memorising", "generalising") for r in mine):
            continue
        irreps, distance = matched_irreps(dataset.task, [r.index for r in mine]) if kind == "irrep" else (None, None)
        run = ablation(model, dataset, kind, mine, irreps)
        for label in ("memorising", "generalising"):
            members = [i for i, r in enumerate(mine) if r.label == label]
            if not members:
                continue
            here = score(run(members), dataset)
            draws = [score(run(torch.randperm(len(mine), generator=torch.Generator().manual_seed(s))[
                : len(members)].tolist()), dataset) for s in SEEDS]
            random = {k: None if draws[0][k] is None else sum(d[k] for d in draws) / len(draws) for k in draws[0]}
            verdict = "no control" if len(members) == len(mine) else rule(here, random)
            entry = {"kind": kind, "label": label, "n": len(members), "of": len(mine), "here": here,
                     "random": random, "verdict": verdict, "irrep_distance": distance}
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


#: the header of the compact intervention table (`InterventionTable.compact`), as Markdown
HEADER = "| kind | set | n | memorised | random: memorised | test | random: test | verdict |"


def card_verdicts(text: str) -> dict[tuple[str, str], str] | None:
    """The outcome each row of a card's compact intervention table states, by (kind, set);
    None when the card predates the rule (its caption does not name "the one rule")."""
    if "by the one rule" not in text or HEADER not in text:
        return None
    found = {}
    for line in text.split(HEADER, 1)[1].splitlines()[2:]:  # below the header and its rule
        if not line.startswith("|"):
            break  # the table's end
        kind, label, *_, verdict = (c.strip() for c in line.strip().strip("|").split("|"))
        if label not in ("memorising", "generalising"):
            continue
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


def report(name: str, found: list[dict], card: dict, source: str) -> tuple[str, bool]:
    cols = ["kind", "set", "n", "memorised / random (here)", "test / random (here)",
            "memorised / random (interp)", "test / random (interp)", "verdict here", "interp", "card", "agree?"]
    lines = [f"### {name}", "", f"card: {source}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    ok, worst = True, 0.0
    for e in found:
        i = e["interp"]
        for side in ("here", "random"):
            for key in ("memorised", "test", "mem_margin", "gen_margin"):
                a, b = e[side][key], i[side][key]
                if a is not None and b is not None:
                    worst = max(worst, abs(a - b))
        theirs = card.get((e["kind"], e["label"]), "—")
        agree = e["verdict"] == i["verdict"] == theirs
        ok &= agree
        lines.append("| " + " | ".join([
            e["kind"], e["label"], f"{e['n']} of {e['of']}",
            f"{_pct(e['here']['memorised'])} / {_pct(e['random']['memorised'])}",
            f"{_pct(e['here']['test'])} / {_pct(e['random']['test'])}",
            f"{_pct(i['here']['memorised'])} / {_pct(i['random']['memorised'])}",
            f"{_pct(i['here']['test'])} / {_pct(i['random']['test'])}",
            e["verdict"], i["verdict"], theirs, "yes" if agree else "NO"]) + " |")
    lines += ["", f"largest difference from interp's numbers (accuracies and margins): {worst:.2g}"]
    distances = [e["irrep_distance"] for e in found if e["irrep_distance"] is not None]
    if distances:
        lines.append(f"largest distance between an isotypic projection here and interp's: {max(distances):.2g}")
    lines.append("")
    return "\n".join(lines), ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="release folders, e.g. models/liu-lu-80")
    args = parser.parse_args()
    all_ok = True
    for path in map(Path, args.runs):
        try:
            run = interp.load_run(path)
        except (OSError, RuntimeError, ValueError) as error:
            sys.exit(f"verdict_check: {error}")
        result = localize(run.model, run.dataset)
        found = check(run.model, run.dataset, result.rows, result.interventions)
        # the card when it states the rule's outcomes, else its table as interp renders it now
        written = path / "MODEL_CARD.md"
        card = card_verdicts(written.read_text()) if written.exists() else None
        source = str(written)
        if card is None:
            card = card_verdicts(result.interventions.compact().markdown())
            source = f"{written} predates the rule: its intervention table as interp renders it now"
        text, ok = report(path.name, found, card, source)
        theirs = {(r.kind, r.label) for r in result.interventions.label_rows()
                  if r.label in ("memorising", "generalising")}
        missed = sorted(theirs - {(e["kind"], e["label"]) for e in found})
        if missed:
            text += f"checked by interp, not here: {missed}\n"
            ok = False
        print(text, flush=True)
        all_ok &= ok
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
