"""Model cards of released runs, recomputed from the release itself: the extraction, the
localisation's intervention table (compact: per kind, the memorising and generalising sets
beside random sets of their size, and the verdict) and the label-free edit's one line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..training import rundir
from ..training.release import model_card, resolve
from ..training.rundir import load_run
from .headline import edit_claim, split_claim

if TYPE_CHECKING:
    from ..analysis.edit import EditSearch
    from ..analysis.localize import Localization

INTERVENTIONS_HEADING = "## Localisation checked by intervention"
EDIT_HEADING = "## The edit that forgets the noise"


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


def refresh_card(name_or_path: str | Path, checks: bool = True, search: EditSearch | None = None) -> Path:
    """Rewrite a release's MODEL_CARD.md from the release itself — its extraction recomputed, the
    training command of the old card kept — after an analysis changes what it reports. With
    `checks`, the localisation (with its intervention table) and the edit search are recomputed
    too (slow on a transformer); without, the old card's sections for them are kept as they are.
    MODEL_CARD.md is not in the release's manifest, so the manifest stays valid. `search`: the
    release's edit search when the caller has already run it (analyses/edit_releases.py)."""
    from ..analysis.filtration import compare_extractions

    path = resolve(name_or_path)
    run = load_run(path)
    old = (path / "MODEL_CARD.md").read_text() if (path / "MODEL_CARD.md").exists() else ""
    found = re.search(r"Trained with:\n\n```bash\n(.*?)\n```", old, re.S)
    extraction = compare_extractions(run.model, run.dataset, loss=run.spec.train.loss)
    if checks:
        from ..analysis.edit import EDIT
        from ..analysis.localize import LOCALIZATION

        sections = check_sections(None if LOCALIZATION.skip_reason(run) else LOCALIZATION(run),
                                  search if search is not None else None if EDIT.skip_reason(run) else EDIT(run))
    else:
        sections = tuple(re.findall(rf"^((?:{INTERVENTIONS_HEADING}|{EDIT_HEADING}).*?)(?=^## )", old, re.S | re.M))
    card = path / "MODEL_CARD.md"
    rundir.write_text(card, model_card(run, path.name, found.group(1) if found else "",
                                       {"result": extraction.to_dict()}, sections))
    return card
