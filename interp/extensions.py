"""Families and analyses from installed packages, found through entry points: a package adds
one by declaring it, with no edit of interp. In its pyproject.toml:

    [project.entry-points."interp.families"]
    my_mlp = "my_package.family:MyFamily"      # a ModelFamily subclass or instance

    [project.entry-points."interp.analyses"]
    my_count = "my_package.count:MY_ANALYSIS"  # an Analysis (or a module that registers its own)

`import interp` loads them after the built-ins (`load_extensions`), so `interp.ANALYSES`,
`interp analyze --analysis`, `--set model.arch=NAME` and the report see them. An entry point
that fails to load is skipped with a warning that names it and the error, so one broken
package does not stop interp from importing.
"""

from __future__ import annotations

import warnings
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from .analysis.registry import ANALYSES, Analysis, add_analysis
from .families.base import FAMILIES, ModelFamily, register

FAMILY_GROUP, ANALYSIS_GROUP = "interp.families", "interp.analyses"


def _add_family(found: object) -> None:
    if isinstance(found, type) and issubclass(found, ModelFamily):
        found = found()
    if not isinstance(found, ModelFamily):
        raise TypeError(f"it is a {type(found).__name__}, not a ModelFamily (subclass or instance) or a module")
    if FAMILIES.get(found.name) is not found:
        register(found)


def _add_analysis(found: object) -> None:
    if not isinstance(found, Analysis):
        raise TypeError(f"it is a {type(found).__name__}, not an Analysis or a module")
    if ANALYSES.get(found.name) is not found:
        add_analysis(found)


def _load(point: EntryPoint, add) -> None:
    try:
        found = point.load()
        if not isinstance(found, ModuleType):  # a module registers what it holds on import
            add(found)
    except Exception as err:  # a broken package must not stop `import interp`
        warnings.warn(f"interp: skipped the entry point {point.name} = {point.value} of {point.group}: "
                      f"{type(err).__name__}: {err}", RuntimeWarning, stacklevel=3)


def load_extensions() -> None:
    """Register every family and analysis that an installed package declares (idempotent)."""
    for point in entry_points(group=FAMILY_GROUP):
        _load(point, _add_family)
    for point in entry_points(group=ANALYSIS_GROUP):
        _load(point, _add_analysis)
