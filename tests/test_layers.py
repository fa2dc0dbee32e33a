"""The library's layers point one way: no import circle among genimg's modules (imports inside functions
count: they hide an upward arrow, they do not remove it), and no private name crosses a module's border."""

import ast
from pathlib import Path

import genimg

PACKAGE = Path(genimg.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for file in PACKAGE.rglob("*.py"):
        parts = list(file.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = file
    return out


def _imports(name: str, file: Path, modules: dict) -> set[tuple[str, str | None]]:
    """(module of ours imported, the name taken from it or None) for every import in ``file``."""
    found = set()
    package = name.split(".") if file.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {(alias.name, None) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.add((f"{base}.{alias.name}", None))
                else:
                    found.add((base, alias.name))
    return {(m, n) for m, n in found if m in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    # A package's __init__ re-exports; an import through it is an edge to the package, which no module
    # below imports back (the API twins in genimg/__init__ import lazily from the layers).
    return {m: {t for t, _ in _imports(m, f, modules) if t != m and modules[t].name != "__init__.py"}
            for m, f in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
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
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_among_genimg_modules():
    assert _circles(_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_is_imported_from_another_module():
    modules = _modules()
    crossings = sorted(f"{m} imports {name} from {source}" for m, f in modules.items()
                       for source, name in _imports(m, f, modules)
                       if name and name.startswith("_") and not name.startswith("__") and source != m)
    assert crossings == []


def test_no_module_of_the_package_is_over_450_lines():
    """A module past 450 lines does several things: split it by what it does."""
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _modules().items()}
    assert not {name: n for name, n in sizes.items() if n > 450}
