"""Model cards of released runs, recomputed from the release itself."""

from __future__ import annotations

import re
from pathlib import Path

from ..training.release import model_card, resolve
from ..training.rundir import load_run


def refresh_card(name_or_path: str | Path) -> Path:
    """Rewrite a release's MODEL_CARD.md from the release itself — its extraction recomputed, the
    training command of the old card kept — after an analysis changes what it reports."""
    from ..analysis.filtration import compare_extractions

    path = resolve(name_or_path)
    run = load_run(path)
    old = (path / "MODEL_CARD.md").read_text() if (path / "MODEL_CARD.md").exists() else ""
    found = re.search(r"Trained with:\n\n```bash\n(.*?)\n```", old, re.S)
    extraction = compare_extractions(run.model, run.dataset, loss=run.spec.train.loss)
    card = path / "MODEL_CARD.md"
    card.write_text(model_card(run, path.name, found.group(1) if found else "", {"result": extraction.to_dict()}))
    return card
