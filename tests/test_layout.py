"""The library's layout: no import circle (lazy imports inside functions count too), and the
library never reads the repository's benchmarks/ or scripts/ folders (it works installed)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mpqlib"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.with_suffix("").relative_to(PKG.parent).parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(mod: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The mpqlib modules ``mod`` imports anywhere in its file, the packages it lives in included
    (a runner importing its package's ``__init__``, which imports the runner, is a circle)."""
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    found = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}  # annotations only: not imported at run time
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = pkg
            for _ in range(max(node.level - 1, 0)):
                base = base.rsplit(".", 1)[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            names = [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            target, names = "", [a.name for a in node.names]
        else:
            continue
        for t in names + [target]:
            while t and t not in mods and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in mods and t != mod:
                found.add(t)
                break
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the finder finds one


def _code_strings(tree: ast.AST) -> list[str]:
    """Every string constant of a module but its docstrings."""
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs]


def test_the_library_never_reads_benchmarks():
    """Only a profile's default settings may name a file there (a path a caller can change)."""
    for path in PKG.rglob("*.py"):
        named = [s for s in _code_strings(ast.parse(path.read_text())) if s.split("/")[0] == "benchmarks"]
        assert named == ([] if path.name != "profiles.py" else ["benchmarks/gpu_steps-*.json"]), path


def _layer(mod: str) -> int:
    """0: the library, 1: the study (mpqlib.study), 2: the book (mpqlib.book)."""
    return 2 if mod.startswith("mpqlib.book") else 1 if mod.startswith("mpqlib.study") else 0


def test_layers_point_one_way_library_study_book():
    """The library imports nothing of the study or the book, the study nothing of the book: each
    layer uses only the ones below it (lazy imports inside functions count too)."""
    mods = _modules()
    assert {"mpqlib.study", "mpqlib.book"} <= set(mods) and "mpqlib.search" in mods
    upward = sorted(f"{m} -> {t}" for m, p in mods.items() for t in _imports(m, p, mods) if _layer(t) > _layer(m))
    assert upward == []
    assert _layer("mpqlib.cli") == 0 and _layer("mpqlib.study.pipeline") == 1 and _layer("mpqlib.book.chapters") == 2


def test_the_book_is_readers_without_mixins():
    """Each chapter is one reader class over the results (``mpqlib.book.results.Reader``): no class
    of the book has more than one base, none is a mixin, and no chapter reader derives from another."""
    readers = {}
    for path in sorted((PKG / "book").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [getattr(b, "id", getattr(b, "attr", None)) for b in node.bases]
                assert len(bases) <= 1 and "Mixin" not in node.name, f"{path.name}: class {node.name}({bases})"
                readers[node.name] = bases
    chapters = {n for n in readers if n.endswith("Chapter")}
    assert len(chapters) == 7 and all(readers[n] == ["Reader"] for n in chapters), readers
