"""The layering rules of STYLE.md, enforced by import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
# lint-imports has no ``python -m`` entry point; call its click command from this interpreter so
# the test uses the same environment whether or not the venv's bin/ is on PATH.
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def test_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "0 broken" in report, report


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Every import circle of ``graph``, each once: ``(a, b, ..., a)`` for an import ``a -> b``
    from which a chain of imports leads back to ``a`` (the shortest such chain)."""
    cycles: dict[frozenset[str], tuple[str, ...]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.setdefault(frozenset(back), (importer, *back))
    return list(cycles.values())


def test_the_cycle_check_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for name in ("pkg.a", "pkg.b", "pkg.c", "pkg.d"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    graph.add_import(importer="pkg.d", imported="pkg.c")
    assert import_cycles(graph) == []
    graph.add_import(importer="pkg.c", imported="pkg.a")  # only under TYPE_CHECKING counts too
    assert import_cycles(graph) == [("pkg.a", "pkg.b", "pkg.c", "pkg.a")]


def test_no_import_cycles_among_inspector_modules() -> None:
    """No module reaches itself through its imports, whether they run at import time, inside
    a function or only for type checking: when a split leaves two modules needing each other,
    the piece both need gets a module of its own (STYLE.md)."""
    graph = grimp.build_graph("inspector", cache_dir=None)
    assert len(graph.modules) > 100  # the real package, not an empty one
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
