"""The import contract (docs: engine-review.md c.3), read from the source with ``ast``.

Every import counts: top-level, inside functions and under ``if TYPE_CHECKING:``, since each one
is a dependency a reader has to follow. What it enforces:

- no import cycle among the modules of client/, flight/, engine/ and stages/;
- packages point one way: flight -> engine -> stages, and flight -> client (the ``stageflight``
  command dispatches put/get/ls to it); client imports none of ours, flight never stages;
- flight reaches engine only through its package surface (``from engine import ...``);
- inside engine, each module imports only layers below its own (``ENGINE_LAYERS``), its own
  subpackage, and never a sibling across a ``|``;
- no product module is over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("client", "flight", "engine", "stages")

# What each package may import of ours.
ALLOWED_PACKAGES = {
    "client": set(),
    "flight": {"client", "engine"},
    "engine": {"stages"},
    "stages": set(),
}
# Top to bottom; a module may import from the layers after its own. Names in one tuple are
# siblings (the "|" of c.3): none imports another.
ENGINE_LAYERS = [
    ("core", "ingest"),
    ("session",),
    ("statements",),
    ("plans",),
    ("stage_access",),
    ("catalog", "sql", "metadata"),
    ("config", "names", "results", "external", "conflicts", "described"),
    ("errors",),
]
MAX_LINES = 500
LONG_ON_PURPOSE = {
    # Generated data (scripts/list_functions.py writes it): a reviewed list, not code to read.
    "engine/sql/allowed_functions.py",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _own(name: str) -> str | None:
    """The module of ours that an imported name lives in (a package's name is its __init__)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> list[tuple[str, ast.stmt]]:
    """(imported module of ours, the import statement) for every import in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            target = _own(name)
            if target is not None and target != module:
                found.append((target, node))
    return found


GRAPH = {m: {t for t, _ in _imports(m)} for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(GRAPH):
        if start in index:
            continue
        work = [(start, iter(sorted(GRAPH[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(GRAPH[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def test_no_import_cycles():
    assert _cycles() == []


def test_packages_import_only_downwards():
    wrong = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        for t in targets
        if (top := m.split(".")[0]) != (other := t.split(".")[0]) and other not in ALLOWED_PACKAGES[top]
    ]
    assert wrong == []


def test_flight_uses_only_the_engine_package_surface():
    wrong = []
    for module in (m for m in MODULES if m.split(".")[0] == "flight"):
        for target, node in _imports(module):
            if target.split(".")[0] != "engine":
                continue
            if not (isinstance(node, ast.ImportFrom) and node.module == "engine" and not node.level):
                wrong.append(f"{module}:{node.lineno} imports {target}")
    assert wrong == []


def _engine_layer(module: str) -> tuple[int, str]:
    """(layer index, the engine subpackage or module it belongs to)."""
    part = module.split(".")[1]
    for depth, names in enumerate(ENGINE_LAYERS):
        if part in names:
            return depth, part
    raise AssertionError(f"{module} is in no layer of ENGINE_LAYERS: place it there")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("engine.")))
def test_engine_modules_import_only_lower_layers(module):
    depth, group = _engine_layer(module)
    wrong = []
    for target in sorted(GRAPH[module]):
        if not target.startswith("engine."):
            if target == "engine":
                wrong.append(f"{module} imports the engine package surface (import the module itself)")
            continue
        target_depth, target_group = _engine_layer(target)
        if target_group != group and target_depth <= depth:
            wrong.append(f"{module} imports {target} (layer {target_group} is not below {group})")
    assert wrong == []


def test_no_product_module_is_over_500_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in MODULES.values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert {p: n for p, n in long.items() if p not in LONG_ON_PURPOSE} == {}
