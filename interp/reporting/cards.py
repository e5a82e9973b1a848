"""Model cards of released runs, recomputed from the release itself: the extraction, the
localisation's intervention table (compact: per kind, the memorising and generalising sets
beside random sets of their size, and the verdict) and the label-free edit's one line — or, on a
run over features, where those are written for (a, b) pairs and do not apply, the analyses of
`CARD_ANALYSES` that do (each one's summary and tables), each chosen by the registry's skip
reason."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..analysis.registry import ANALYSES
from ..training import rundir
from ..training.release import model_card, resolve
from ..training.rundir import Run, load_run
from .headline import edit_claim, split_claim

if TYPE_CHECKING:
    from ..analysis.edit import EditSearch
    from ..analysis.localize import Localization

INTERVENTIONS_HEADING = "## Localisation checked by intervention"
EDIT_HEADING = "## The edit that forgets the noise"

#: Beside the localisation and the edit search, the analyses a card states where they apply (on
#: runs over features: the class structure with its controls, where the memory sits layer by
#: layer and unit by unit, and the weight edit), with the command that computes each.
CARD_ANALYSES = {"class_subspaces": "interp analyze RUN_DIR --analysis class_subspaces",
                 "layer_rewind": "interp analyze RUN_DIR --analysis layer_rewind",
                 "suspect_neurons": "interp analyze RUN_DIR --analysis suspect_neurons",
                 "example_flips": "interp analyze RUN_DIR --analysis example_flips",
                 "feature_edit": "interp edit RUN_DIR --out EDITED"}


def check_sections(localization: Localization | None, search: EditSearch | None) -> tuple[str, ...]:
    """The card's sections for the intervention table and the edit (Markdown, one per result)."""
    out = []
    if localization is not None and localization.interventions is not None:
        where = split_claim(localization)
        parts = localization.parts
        out.append(f"{INTERVENTIONS_HEADING} (`interp analyze RUN_DIR --analysis localize`)\n\n"
                   + (f"{where['topic']}: {where['text']}\n\n" if where else "")
                   + f"{localization.interventions.compact().markdown()}"
                   + (f"\n\n{parts.table().markdown()}" if parts is not None and parts.rows else ""))
    if search is not None:
        claim = edit_claim(search)
        out.append(f"{EDIT_HEADING} (`interp edit RUN_DIR --out EDITED`)\n\n{claim['topic']}: {claim['text']}")
    return tuple(out)


def analysis_sections(run: Run) -> tuple[str, ...]:
    """A section per analysis of CARD_ANALYSES that applies to `run`: its title and command,
    what it found (`summary`) and its tables."""
    out = []
    for name, command in CARD_ANALYSES.items():
        analysis = ANALYSES[name]
        if analysis.skip_reason(run):
            continue
        result = analysis(run)
        blocks = [f"## {analysis.title} (`{command}`)", result.summary(), *(t.markdown() for t in result.tables())]
        out.append("\n\n".join(block for block in blocks if block))
    return tuple(out)


def _headings() -> list[str]:
    """The headings of the sections a card may carry beside the extraction."""
    return [INTERVENTIONS_HEADING, EDIT_HEADING, *(f"## {ANALYSES[name].title}" for name in CARD_ANALYSES)]


def refresh_card(name_or_path: str | Path, checks: bool = True, search: EditSearch | None = None) -> Path:
    """Rewrite a release's MODEL_CARD.md from the release itself — its extraction recomputed, the
    training command of the old card kept — after an analysis changes what it reports. With
    `checks`, the localisation (with its intervention table) and the edit search are recomputed
    too (slow on a transformer), and the analyses of CARD_ANALYSES that apply; without, the old
    card's sections for them are kept as they are. The extraction is left out where it does not
    apply (a run over features). MODEL_CARD.md is not in the release's manifest, so the manifest
    stays valid. `search`: the release's edit search when the caller has already run it
    (analyses/edit_releases.py)."""
    from ..analysis.filtration import EXTRACTION

    path = resolve(name_or_path)
    run = load_run(path)
    old = (path / "MODEL_CARD.md").read_text() if (path / "MODEL_CARD.md").exists() else ""
    found = re.search(r"Trained with:\n\n```bash\n(.*?)\n```", old, re.S)
    extraction = None if EXTRACTION.skip_reason(run) else {"result": EXTRACTION(run).to_dict()}
    if checks:
        from ..analysis.edit import EDIT
        from ..analysis.localize import LOCALIZATION

        sections = check_sections(None if LOCALIZATION.skip_reason(run) else LOCALIZATION(run),
                                  search if search is not None else None if EDIT.skip_reason(run) else EDIT(run))
        sections += analysis_sections(run)
    else:
        headings = "|".join(map(re.escape, _headings()))
        sections = tuple(re.findall(rf"^((?:{headings}).*?)(?=^## )", old, re.S | re.M))
    card = path / "MODEL_CARD.md"
    rundir.write_text(card, model_card(run, path.name, found.group(1) if found else "", extraction, sections))
    return card
