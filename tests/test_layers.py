"""The import graph follows the layers: no cycle among the project's modules, ``pipeline`` never imports
``models`` or the top-level ``mimo`` modules, ``models`` never imports the top-level ``mimo`` modules, inside
``models`` the estimators import neither runs nor reports, reports never import runs, and ``bench`` and
``tests`` do not import each other. Read from the source with ``ast`` (lazy imports inside functions count)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"mimo": "mimo", "pipeline": "mimo.pipeline", "models": "mimo.models"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in PACKAGES:
        parts = PACKAGES[parts[0]].split(".") + parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    files = [p for folder in ("mimo", "pipeline", "models", "bench", "tests") for p in (ROOT / folder).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, name):
            # the longest module of ours that the imported name starts with (a name may be an attribute)
            parts = imported.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in modules and candidate != name:
                    targets.add(candidate)
                    break
        graph[name] = targets
    return graph


GRAPH = _graph()



def test_the_walk_sees_the_project():
    assert "mimo.models.runs.fit" in GRAPH and "mimo.pipeline.errors" in GRAPH
    assert "mimo.models.estimators.base" in GRAPH["mimo.models.estimators.ridge"]


def test_no_import_cycle():
    # a package's __init__ that only re-exports is where a cycle through it would start: count it like a module
    colour, stack, cycles = {}, [], []

    def visit(node):
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if colour.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in colour:
                visit(nxt)
        stack.pop()
        colour[node] = 2

    for node in sorted(GRAPH):
        if node not in colour:
            visit(node)
    assert cycles == []


def _violations(source_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for name, targets in GRAPH.items():
        if name == source_prefix or name.startswith(source_prefix + "."):
            bad += [f"{name} -> {t}" for t in targets if any(t == f or t.startswith(f + ".") for f in forbidden)]
    return bad


TOP = ("mimo.cli", "mimo.predict", "mimo.design", "mimo.__main__")


@pytest.mark.parametrize("source, forbidden", [
    ("mimo.pipeline", ("mimo.models",) + TOP),
    ("mimo.models", TOP),
    ("mimo.models.data", ("mimo.models.estimators", "mimo.models.runs", "mimo.models.report")),
    ("mimo.models.metrics", ("mimo.models.estimators", "mimo.models.runs", "mimo.models.report")),
    ("mimo.models.estimators", ("mimo.models.runs", "mimo.models.report")),
    ("mimo.models.report", ("mimo.models.runs",)),
    ("bench", ("tests",)),
    ("tests", ("bench",)),
])
def test_layers(source, forbidden):
    assert _violations(source, forbidden) == []


def test_models_never_import_the_top_level_package():
    # `from mimo import __version__` inside models/ would tie the library to the package's face
    bad = [name for name, path in ((n, p) for n, p in ((_module_name(p), p) for p in (ROOT / "models").rglob("*.py")))
           if "mimo" in _imports(path, name)]
    assert bad == []
