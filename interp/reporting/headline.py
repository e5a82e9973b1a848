"""The report's headline in plain words: where the rule lives, where the memory lives, and what
edit removes the memory at what cost, each claim quoted from the results that back it.

- **The rule** and **the memory**: every kind's generalising (memorising) set in the
  localisation's intervention table (`Localization.interventions`), with what zero-ablating it
  does to the memorised and test accuracy beside random sets of the same size. A set is claimed
  only where its verdict (the one rule, `core.metrics.accuracy_verdict`) holds in every ablation
  mode; one that does not is named with what it is instead (`shared`: ablating it lowers both
  accuracies more than random sets do; `inert`: neither) and its numbers; a set that is the whole kind (no random control) is listed as unchecked. A claimed
  set whose ablation moves its accuracy by under `interventions.MOVED` holds "in the margins only":
  it lowers the margin more than random sets do, but the rule (memory) is not in it alone.
- **Where the split is** (first): the coarsest unit whose intervention separates the rule from
  the memory (`separating`: heads, neuron clusters, neurons, embedding frequencies, then each
  neuron's dominant part against its residual, `part_split`), with its numbers beside its
  controls, and the coarser units that do not separate (the rule and the memory share them).
- **Unchecked**: the mixed sets (no verdict), the whole-kind sets, and the labels of kinds the
  table does not ablate (head frequencies; neuron parts where f^G/f^R were not checked), said to
  be from scores alone.
- **The edit**: the chosen label-free weight edit (`EditSearch.edit`): its size, memorised and
  test accuracy before and after, and random parts of about that size; where no edit reached
  the agreement the search asks for, it says so.

Nothing here is hard-coded about a model: change the results and the words change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.document import pct, plural

if TYPE_CHECKING:
    from ..analysis.edit import EditSearch
    from ..analysis.interventions import InterventionTable, SetAblation
    from ..analysis.localize import Localization
    from ..analysis.unit_rows import UnitRow

#: what each accuracy is called in the headline (the keys of `interventions.scored`)
NAMES = {"noisy_observed_acc": "memorised", "test_acc": "test", "clean_acc": "clean"}
#: what each outcome of the one verdict rule (`core.metrics.accuracy_verdict`) says of a set
OUTCOME_WORDS = {"shared": "shared — its ablation lowers both memorised and test more than random sets' does",
                 "inert": "inert — its ablation lowers neither more than random sets' does",
                 "memorising": "memorising — its ablation lowers memorised more than random sets' does, test no more",
                 "generalising": "generalising — its ablation lowers test more than random sets' does, memorised no "
                                 "more"}
#: the units of the split, coarsest first, and how the headline says the split is at each
UNITS = {"head": "across heads", "neuron cluster": "across frequency clusters of neurons", "neuron": "across neurons",
         "frequency": "across embedding frequencies", "irrep": "across embedding irreps",
         "neuron part": "inside each neuron"}
SMALL = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
LISTED = 8  # name up to this many members of a set; count a larger one


def claims(localization: Localization | None, search: EditSearch | None) -> list[dict[str, str]]:
    """The headline's claims in order, each {"topic", "text"}: `The rule`, `The memory`,
    `Unchecked` (when anything is), `The edit (…)`; one plain sentence each."""
    out = []
    if localization is not None:
        memory = ("the run has no noisy labels: nothing to memorise." if localization.memorised is None
                  else _placed(localization, "memorising") + _weak_memory(localization.memorised))
        where = split_claim(localization)
        if where is not None:
            out.append(where)
        out += [{"topic": "The rule", "text": _placed(localization, "generalising")},
                {"topic": "The memory", "text": memory}]
        unchecked = _unchecked(localization)
        if unchecked:
            out.append({"topic": "Unchecked", "text": unchecked})
    if search is not None:
        out.append(edit_claim(search))
    return out


def _placed(loc: Localization, label: str) -> str:
    """The kinds' `label` sets that hold up in every ablation mode, then those that do not."""
    table = loc.interventions
    if table is None:
        sets = [_what(kind, rows, len(_of(loc, kind))) for kind, rows in _sets(loc, label).items()]
        return (f"by score alone (not checked by intervention): {_join(sets)}." if sets
                else f"no component is labelled {label}.")
    primary, other = ("test_acc", "noisy_observed_acc") if label == "generalising" else ("noisy_observed_acc", "test_acc")
    good, bad = [], []
    for kind in table.kind_sizes:
        row = table.label_row(kind, label)
        if row is None or table.verdict(row) == "no control":
            continue
        held, modes = table.held(kind, label)
        what = _what(kind, [r for r in _of(loc, kind) if r.label == label], table.kind_sizes[kind])
        if held == modes:
            good.append(f"{what} ({_evidence(table, row, [primary])}){_margins_only(table, row)}")
        else:
            plural_ = what.startswith(("the ", "all ")) or row.size > 1
            outcome = table.outcome(row)
            verdict = (f"hold{'' if plural_ else 's'} up only in some ablation modes" if outcome == label
                       else f"{'do' if plural_ else 'does'} not hold up against random sets of the same size: "
                            f"{OUTCOME_WORDS[outcome]}")
            bad.append(f"{what}, labelled {label}, {verdict} ({_evidence(table, row, [primary, other])}"
                       f"{_tied(table, row)}; holds in {held} of {modes} modes)")
    if not good and not bad:
        return f"no set labelled {label} can be checked against random sets of its size."
    if not bad:
        return _join(good) + "."
    return f"{_join(good)} — but {_join(bad)}." if good else _join(bad) + "."


def split_claim(loc: Localization) -> dict[str, str] | None:
    """Where the split between rule and memory is: the coarsest unit whose intervention separates
    them (`separating`), with its numbers, and the coarser units checked that do not (their sets'
    verdicts are in the rule and the memory claims). On a run without noisy labels, where the
    rule is. None when no unit was checked by intervention."""
    checked = separating(loc)
    if not checked:
        return None
    topic = "Where the split is" if loc.memorised is not None else "Where the rule is"
    found = next((unit for unit, ok in checked.items() if ok), None)
    coarser = [unit for unit in checked if unit != found and (found is None or _coarser(unit, found))]
    names = [UNITS[unit][len("across "):] if unit != "neuron part" else "parts of neurons" for unit in coarser]
    if found is None:
        return {"topic": topic, "text": f"no unit checked separates the rule from the memory (the "
                                        f"{_join(names, ', ')}: their verdicts are below)."}
    text = f"{UNITS[found]} — {_separation(loc, found)}"
    if names:
        text += f" Coarser units checked do not separate them: the {_join(names, ', ')} (their verdicts are below)."
    return {"topic": topic, "text": text}


def separating(loc: Localization) -> dict[str, bool]:
    """{unit: whether its intervention separates rule from memory}, for every unit checked, in
    UNITS' order (coarsest first). A kind of component separates when one of its label sets holds
    in every ablation mode, not in the margins only, and none has the opposite outcome; the neurons' parts when
    `PartCheck.separates`."""
    out: dict[str, bool] = {}
    table = loc.interventions
    opposite = {"memorising": "generalising", "generalising": "memorising"}
    for unit in UNITS:
        if unit == "neuron part":
            if loc.parts is not None and loc.parts.rows:
                out[unit] = loc.parts.separates
            continue
        if table is None or unit not in table.kind_sizes:
            continue
        rows = {label: row for label in opposite if (row := table.label_row(unit, label)) is not None
                and table.outcome(row) != "no control"}
        if rows:  # a set that holds in the margins only does not move what its label names: no split
            held = any(table.held(unit, label)[0] == table.held(unit, label)[1] and table.margins_only(row) is None
                       for label, row in rows.items())
            out[unit] = held and not any(table.outcome(row) == opposite[label] for label, row in rows.items())
    return out


def _coarser(unit: str, than: str) -> bool:
    order = list(UNITS)
    return order.index(unit) < order.index(than)


def _separation(loc: Localization, unit: str) -> str:
    """The numbers that show the split at `unit`."""
    if unit == "neuron part":
        parts, base = loc.parts, loc.parts.baseline
        control = {"f^G": f"keeping instead a random other {parts.unit} of each neuron, rescaled to the dominant "
                          "part's norm",
                   "f^R": f"subtracting instead a random other {parts.unit} of each neuron, rescaled to the "
                          "dominant part's norm"}
        rows = {r.extraction: r for r in parts.rows}
        said = "; ".join(
            f"keeping only each neuron's {'dominant ' + parts.unit if r.extraction == 'f^G' else 'residual'} "
            f"({r.extraction}): memorised {_change(base['noisy_observed_acc'], r.metrics['noisy_observed_acc'])}, "
            f"test {_change(base['test_acc'], r.metrics['test_acc'])} ({control[r.extraction]}: memorised "
            f"{pct(r.control['noisy_observed_acc'])}, test {pct(r.control['test_acc'])}; {r.outcome}"
            f"{_tied_to(r.metrics, r.control, 'the control')})" for r in parts.rows)
        if all(r.holds for r in parts.rows):
            return said + f". The rule is in each neuron's dominant {parts.unit}, the memory in the rest."
        held = [r for r in parts.rows if r.holds]
        other = next(r for r in parts.rows if not r.holds)
        if held[0].extraction == "f^G":
            return (said + f". Removing the rest forgets and keeps the rule: the rule is in each neuron's dominant "
                    f"{parts.unit}, the memory in the rest — though removing the dominant parts is {other.outcome}: "
                    "they carry part of the memorised margin too.")
        return (said + f". Removing the dominant parts loses the rule and keeps the memory: the rule is in each "
                f"neuron's dominant {parts.unit}; removing the rest is {other.outcome}.")
    table = loc.interventions
    said = []
    for label in ("memorising", "generalising"):
        row = table.label_row(unit, label)
        if row is None or table.outcome(row) == "no control":
            continue
        what = _what(unit, [r for r in _of(loc, unit) if r.label == label], table.kind_sizes[unit])
        only = " in the margins only" if table.margins_only(row) else ""
        said.append(f"{what} scored {label}: {_evidence(table, row, ['noisy_observed_acc', 'test_acc'])} "
                    f"({table.outcome(row)}{only}{_tied_to(row.metrics, table.random_mean(row), 'random')})")
    return _join(said) + "."


def _margins_only(table: InterventionTable, row: SetAblation) -> str:
    """The words for a set whose verdict holds in the margins while zero-ablating it moves the
    accuracy it is named for by under MOVED (`InterventionTable.margins_only`): it carries part
    of what its label says, not all."""
    from ..analysis.interventions import MOVED

    name = table.margins_only(row)
    if name is None:
        return ""
    return (f" — in the margins only: the {name} accuracy moves by under {MOVED:.0%}, so the "
            f"{'memory' if name == 'memorised' else 'rule'} is not in this set alone")


def _tied(table: InterventionTable, row: SetAblation) -> str:
    """Where an accuracy is within the verdict's band of random's, the margins decided: said so."""
    return _tied_to(row.metrics, table.random_mean(row), "random")


def _tied_to(metrics: dict, control: dict, name: str) -> str:
    """`; memorised within 2 points of random, so the margins decide` where an accuracy ties its control."""
    from ..core.metrics import VERDICT_BAND

    tied = [NAMES[key] for key in ("noisy_observed_acc", "test_acc") if metrics[key] is not None
            and control[key] is not None and abs(metrics[key] - control[key]) <= VERDICT_BAND]
    return f"; {' and '.join(tied)} within {VERDICT_BAND * 100:g} points of {name}, so the margins decide" if tied else ""


def _evidence(table: InterventionTable, row: SetAblation, keys: list[str]) -> str:
    """What zero-ablating the set does to the accuracies `keys`, beside random sets of its size."""
    ref = table.random_mean(row)
    return "ablated: " + ", ".join(f"{NAMES[key]} {_change(table.baseline[key], row.metrics[key])}, random {pct(ref[key])}"
                                   for key in keys if table.baseline[key] is not None)


def _unchecked(loc: Localization) -> str:
    """The mixed sets, the whole-kind sets and the kinds the intervention table does not ablate."""
    table = loc.interventions
    if table is None:
        return ""
    mixed, whole = [], []
    for kind, total in table.kind_sizes.items():
        rows = _of(loc, kind)
        for label in ("memorising", "generalising", "mixed"):
            row = table.label_row(kind, label)
            if row is None:
                continue
            what = _what(kind, [r for r in rows if r.label == label], total)
            if label == "mixed":
                mixed.append(what)
            elif table.verdict(row) == "no control":
                whole.append(f"{what} {label}")
    by_score = []
    for kind in dict.fromkeys(_set_kind(r) for r in loc.rows):
        if kind.split(": ")[0] in table.kind_sizes or (kind.startswith("neuron part") and loc.parts is not None
                                                        and loc.parts.rows):
            continue  # checked by intervention: the neuron parts as f^G and f^R (`split_claim`)
        sets = {label: rows for label in ("generalising", "memorising") if (rows := _sets(loc, label).get(kind))}
        if sets:  # the larger of its two sets
            label, rows = max(sets.items(), key=lambda item: len(item[1]))
            by_score.append(f"{_what(kind, rows, 0)} {label}")
    notes = [f"{head}: {_join(items, ', ')}" for head, items in (
        ("mixed (no verdict)", mixed), ("the whole kind (no random control)", whole),
        ("by score alone (not ablated)", by_score)) if items]
    return _join(notes) + "." if notes else ""


def edit_claim(search: EditSearch) -> dict[str, str]:
    """The chosen edit: its size in the topic; what it does to memorised, test and clean accuracy,
    and random parts of about its size, in the text."""
    from ..analysis.edit import AGREEMENT, DOMINANT, LEARNED, SHIFTED

    e, base = search.edit, search.baseline
    text = ", ".join(f"{NAMES[key]} {_change(base[key], e.metrics[key])}"
                     for key in ("noisy_observed_acc", "test_acc", "clean_acc") if base[key] is not None)
    unit = next((pt for pt in search.points if pt.method == DOMINANT), None)
    net = {"resynthesized": "re-synthesized net", "f^G": "f^G net"}.get(search.teacher, search.teacher)
    if unit is not None and search.teacher != "f^G":  # the split's unit inside neurons, as an edit, beside the chosen one
        text += (f" (beside it, each neuron's dominant part alone, f^G, a move of {unit.size:.1%} of the neuron "
                 f"maps' squared norm: memorised {pct(unit.metrics['noisy_observed_acc'])}, test "
                 f"{pct(unit.metrics['test_acc'])})")
    if e.method == SHIFTED:
        _, random = search.random_near(e.size)
        if random:  # the control: the same size of move in random directions
            text += "; random moves of the same size: " + _scores(random, base)
        best = max((pt for pt in search.points if pt.method in LEARNED), key=lambda pt: pt.agreement)
        text = (f"every neuron's input and output weights moved {e.parameter:.1%} of the way to the {net} (the whole "
                f"move, the {net} itself, would be {search.teacher_size:.1%}): {text}. No edit of the readout alone "
                f"agrees with the {net} on {AGREEMENT:.1%} of the grid (the most agreeing, on {pct(best.agreement)}: "
                f"memorised {pct(best.metrics['noisy_observed_acc'])}, test {pct(best.metrics['test_acc'])}), so the "
                "edit reaches into the input side")
        if e.agreement < AGREEMENT:
            text += f" (short of what the search asks: it agrees on {pct(e.agreement)}, not {AGREEMENT:.1%})"
        return {"topic": f"The edit ({e.size:.1%} of the neuron maps' squared norm (u, v, w), found without labels)",
                "text": text + "."}
    size, random = search.random_near(e.size)
    if random:
        text += f"; random parts of {size:.1%}: " + _scores(random, base)
    if e.agreement < AGREEMENT:
        text += (f" (short of what the search asks: it agrees with the {search.teacher} on "
                 f"{pct(e.agreement)} of the grid, not {AGREEMENT:.1%})")
    return {"topic": f"The edit ({e.size:.1%} of the readout's weight, found without labels)", "text": text + "."}


def _scores(control: dict[str, float | None], base: dict[str, float | None]) -> str:
    """A control's memorised and test accuracy, where the model has them."""
    return ", ".join(f"{NAMES[key]} {pct(control[key])}" for key in ("noisy_observed_acc", "test_acc")
                     if base[key] is not None)


def _weak_memory(memorised: float | None) -> str:
    if memorised is None or memorised >= 0.5:
        return ""
    return f" (The model fits only {pct(memorised)} of the noisy labels: these push towards them without winning.)"


# --- words for sets of components -----------------------------------------------------------


def _of(loc: Localization, kind: str) -> list[UnitRow]:
    return [r for r in loc.rows if r.kind == kind]


def _set_kind(row: UnitRow) -> str:
    """A row's kind, a neuron part's split into `neuron part: dominant` / `neuron part: residual`."""
    return row.kind if row.part is None else f"{row.kind}: {row.part}"


def _sets(loc: Localization, label: str) -> dict[str, list[UnitRow]]:
    """Each kind's rows carrying `label` (a neuron part's kind split into `dominant`/`residual`)."""
    out: dict[str, list[UnitRow]] = {}
    for r in loc.rows:
        if r.label == label:
            out.setdefault(_set_kind(r), []).append(r)
    return out


def _what(kind: str, rows: list[UnitRow], total: int) -> str:
    """A set of `rows` of one kind in words: `frequency clusters 3, 25, 27 (280 neurons)`,
    `all four heads`, `183 of 512 neurons`."""
    n = len(rows)
    if kind == "neuron cluster":
        freqs = [r.name[2:] for r in rows if r.name.startswith("k=")]
        loose = sum(r.neurons for r in rows if not r.name.startswith("k="))
        named = [f"frequency cluster{'s' if len(freqs) > 1 else ''} {', '.join(freqs)}"] if freqs else []
        if loose:
            named.append("the unclustered neurons")
        count = sum(r.neurons for r in rows)
        return f"{' and '.join(named)} ({count}{'' if loose and not freqs else ' neurons'})"
    if kind.startswith("neuron part"):
        return f"the {kind.split(': ')[-1]} parts of {n} neurons"
    noun = {"frequency": "embedding frequency", "irrep": "embedding irrep"}.get(kind, kind)
    if n == total and n > 1:
        return f"all {SMALL[n] if n < len(SMALL) else n} {plural(noun)}"
    if kind in ("head", "frequency", "irrep") and n <= LISTED:
        names = (r.identifier if r.irrep_label is None else r.irrep_label for r in rows)  # an irrep by its label
        return f"{noun if n == 1 else plural(noun)} {', '.join(map(str, names))}"
    return f"{n} of {total} {plural(noun)}"


def _change(before: float | None, after: float | None) -> str:
    """`100 → 2.9%`, `82.6 → 97.7%`: an accuracy before and after, the first without its unit."""
    first = "—" if before is None else "100" if before == 1 else "0" if before == 0 else f"{before:.1%}"[:-1]
    return f"{first} → {pct(after)}"


def _join(items: list[str], sep: str = "; ") -> str:
    return sep.join(items)
