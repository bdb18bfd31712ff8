"""Layering: the static import graph of prerl (scripts/import_graph.py) has no cycle (each module imported
in a fresh interpreter: tests/process/test_imports_isolated.py)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from import_graph import cycles, graph  # noqa: E402


def test_the_static_import_graph_has_no_cycle():
    """Deferred imports (inside functions) count too: a cycle through them still ties two modules."""
    _, edges, _ = graph()
    assert cycles(edges, top_only=True) == [] and cycles(edges, top_only=False) == []
