"""The library leaves its caller's process alone: importing `interp`, analysing and training
change neither flush-to-zero, glibc's malloc thresholds nor matplotlib's backend."""

import ast
from pathlib import Path

import torch

import interp
from interp.core.runtime import denormals_flushed, flush_denormals


def test_import_analysis_and_training_change_nothing_process_wide(fresh_interpreter):
    # the probe ran in a fresh interpreter (conftest.py), so nothing imported or set by other
    # tests can hide a change; its matplotlib backend was svg, so that a switch to Agg would show
    assert fresh_interpreter["before"] == fresh_interpreter["after"]
    assert fresh_interpreter["before"][3] == "svg"


def test_flush_denormals_is_scoped_to_its_block():
    before = denormals_flushed()
    tiny = torch.tensor([1e-30])
    with flush_denormals():
        assert (tiny * 1e-10).item() == 0.0
    assert denormals_flushed() == before
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            pass
        assert denormals_flushed()  # a caller's own flush-to-zero survives the block too
    finally:
        torch.set_flush_denormal(before)


def _imported_at_import_time(tree: ast.Module) -> list[str]:
    """The modules a source file imports when it is itself imported: its top level, class bodies
    and module-level if/try blocks, not function bodies nor `if TYPE_CHECKING:` blocks."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            todo += node.orelse
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo += ast.iter_child_nodes(node)
    return found


def test_no_module_of_interp_imports_matplotlib_until_a_figure_is_drawn():
    # importing the library (any module of it, analyses included) must not cost a caller matplotlib;
    # each analysis's figures and the shared helpers (`analysis.plots`) import it when they draw
    package = Path(interp.__file__).parent
    eager = {str(path.relative_to(package)): names for path in sorted(package.rglob("*.py"))
             if (names := [n for n in _imported_at_import_time(ast.parse(path.read_text()))
                           if n.split(".")[0] == "matplotlib"])}
    assert eager == {}
