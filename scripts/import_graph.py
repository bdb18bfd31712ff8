"""Print the import graph of the ``prerl`` package, read statically from its sources (nothing is imported).

    python scripts/import_graph.py            # one line per module, then cycles and heavy dependencies
    python scripts/import_graph.py --dot      # Graphviz

``A -> B``: A imports B when A is imported (module level); ``A ~> B``: A imports B inside a function
(deferred, run later). Imports under ``if TYPE_CHECKING:`` are left out (they never run). A cycle is
reported for module-level edges and, separately, when deferred edges are counted too: the second kind
does not fail at import, but it still means two modules depend on each other.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "prerl"
HEAVY = ("torch", "transformers", "vllm", "datasets", "mlflow", "numpy", "math_verify")  # seconds to import


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file of every module of the package (``__init__`` files name their package)."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module an import of ``name`` loads (its longest prefix that is a module)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> tuple[dict[str, bool], set[str]]:
    """({package module: imported at module level?}, third-party top-level names imported at module level)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    edges: dict[str, bool] = {}
    external: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
                continue
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative import
                    anchor = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{alias.name}" for alias in child.names]  # a submodule, else base itself
            for target in targets:
                if target.split(".")[0] == PACKAGE:
                    hit = _resolve(target, modules)
                    if hit and hit != module:
                        edges[hit] = edges.get(hit, False) or top
                elif top and target:
                    external.add(target.split(".")[0])
            visit(child, top)

    visit(ast.parse(path.read_text(), str(path)), True)
    return edges, external


def graph(root: Path = ROOT):
    modules = module_names(root)
    edges, external = {}, {}
    for name, path in modules.items():
        edges[name], external[name] = imports_of(name, path, modules)
    for name, path in modules.items():  # a package that imports all its modules by discovery (plug-ins)
        source = path.read_text() if path.name == "__init__.py" else ""
        if "iter_modules(__path__)" in source and "import_module" in source:
            for child in modules:
                if child.rpartition(".")[0] == name:
                    edges[name].setdefault(child, True)
    return modules, edges, external


def cycles(edges: dict[str, dict[str, bool]], top_only: bool) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def succ(v):
        return [w for w, top in edges[v].items() if top or not top_only]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in succ(v):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            strong(v)
    return sorted(out)


def heavy_at_import(edges, external) -> dict[str, list[str]]:
    """Heavy third-party packages each module pulls in when imported (module-level edges, transitively)."""
    out = {}
    for start in edges:
        seen, todo, found = {start}, [start], set()
        while todo:
            v = todo.pop()
            found |= external[v] & set(HEAVY)
            for w, top in edges[v].items():
                if top and w not in seen:
                    seen.add(w)
                    todo.append(w)
        out[start] = sorted(found)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", action="store_true", help="print Graphviz instead of text")
    args = parser.parse_args(argv)
    modules, edges, external = graph()
    if args.dot:
        print("digraph prerl {")
        for v in modules:
            for w, top in sorted(edges[v].items()):
                print(f'  "{v}" -> "{w}"{"" if top else " [style=dashed]"};')
        print("}")
        return 0
    short = lambda m: m.removeprefix(f"{PACKAGE}.")  # noqa: E731
    print(f"{PACKAGE} import graph: '->' at import, '~>' inside functions (deferred)")
    for v in modules:
        now = sorted(short(w) for w, top in edges[v].items() if top)
        later = sorted(short(w) for w, top in edges[v].items() if not top)
        line = f"{short(v)} -> {', '.join(now) or '-'}"
        print(line + (f"  ~> {', '.join(later)}" if later else ""))
    heavy = heavy_at_import(edges, external)
    print(f"\nheavy packages ({', '.join(HEAVY)}) pulled in at import:")
    for v in modules:
        print(f"  {short(v)}: {', '.join(heavy[v]) or 'none'}")
    top, every = cycles(edges, top_only=True), cycles(edges, top_only=False)
    print(f"\ncycles at import (module level): {len(top)}")
    for comp in top:
        print("  " + " <-> ".join(short(m) for m in comp))
    print(f"cycles counting deferred imports too: {len(every)}")
    for comp in every:
        print("  " + " <-> ".join(short(m) for m in comp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
