"""The import graph of ``geoproc`` has no circle and no upward arrow (a small AST check).

Layers, bottom to top; a module may import only from its own layer or below:

    core  →  storage  →  domain (raster, stac, inventory, zonal, cube)  →  jobs  →  engine + ledger  →  api  →  faces

Every ``import`` counts, at module level or inside a function: a function-local import hides a circle
from Python, not from this test. Further rules: the engine and the ledger are handed their handlers and
never import ``geoproc.jobs``; domain libraries never import the job model (``Stage``, ``JobType``, ...)
and, like everything below them, never import ``rich``. A new module must be given a layer below
(``LAYERS``), so that its place is a decision and not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "geoproc"

CORE, STORAGE, DOMAIN, JOBS, ENGINE, API, FACES = range(7)
LAYER_NAMES = ["core", "storage", "domain", "jobs", "engine/ledger", "api", "faces"]

# module or package prefix -> layer; the longest matching prefix wins
LAYERS = {
    "geoproc.errors": CORE, "geoproc.ids": CORE, "geoproc.settings": CORE, "geoproc.model": CORE,
    "geoproc.spec": CORE, "geoproc.status": CORE, "geoproc.bbox": CORE, "geoproc.units": CORE,
    "geoproc.version": CORE, "geoproc.logs": CORE,
    "geoproc.storage": STORAGE,
    "geoproc.raster": DOMAIN, "geoproc.stac": DOMAIN, "geoproc.inventory": DOMAIN, "geoproc.zonal": DOMAIN,
    "geoproc.cube": DOMAIN,
    "geoproc.jobs": JOBS,
    "geoproc.engine": ENGINE, "geoproc.ledger": ENGINE,
    "geoproc.api": API, "geoproc.lifecycle": API,
    "geoproc.cli": FACES, "geoproc.report": FACES, "geoproc.htmlreport": FACES, "geoproc.doctor": FACES,
    "geoproc.planview": FACES,
    "geoproc": FACES,  # the package root is the public facade: it re-exports the API
}

JOB_MODEL = {"Stage", "JobType", "StageOutput", "TaskSpec", "FailurePolicy", "ALL_OR_NOTHING", "PARTIAL_OK"}


def module_name(path: Path) -> str:
    parts = ("geoproc",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    best = max((prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")),
               key=len, default=None)
    return None if best is None else LAYERS[best]


def imports(module: str) -> list[tuple[int, str, set[str]]]:
    """(line, imported geoproc module, names taken from it) for every import in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[int, str, set[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((node.lineno, alias.name, set()))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = {a.name for a in node.names}
            submodules = {n for n in names if f"{target}.{n}" in MODULES}
            for n in submodules:  # `from . import ids` imports the module geoproc.ids
                out.append((node.lineno, f"{target}.{n}", set()))
            if names - submodules:
                out.append((node.lineno, target, names - submodules))
    return out


def internal_edges() -> dict[str, list[tuple[int, str, set[str]]]]:
    edges: dict[str, list[tuple[int, str, set[str]]]] = {}
    for module in MODULES:
        for line, target, names in imports(module):
            if target == "geoproc" or target.startswith("geoproc."):
                while target not in MODULES:  # `import geoproc.x.attr`-style: the module that holds it
                    target = target.rpartition(".")[0]
                if target != module:
                    edges.setdefault(module, []).append((line, target, names))
    return edges


def cycles(edges: dict[str, list[tuple[int, str, set[str]]]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a closed path."""
    graph = {m: sorted({t for _, t, _ in edges.get(m, [])}) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
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
                found.append(_path_through(sorted(comp), graph))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _path_through(comp: list[str], graph: dict[str, list[str]]) -> list[str]:
    """One circle inside a strongly connected component, from its first module back to it (BFS)."""
    members, start = set(comp), comp[0]
    prev: dict[str, str] = {}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in graph[v]:
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [*reversed(path), start]
            if w in members and w not in prev:
                prev[w] = v
                todo.append(w)
    return comp


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(ROOT.parent)}:{line}"


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer_of(m) is None]
    assert not missing, "modules without a layer (add them to LAYERS in tests/test_layering.py): " + \
        ", ".join(missing)


def test_no_import_cycles():
    edges = internal_edges()
    found = cycles(edges)
    lines = []
    for path in found:
        lines.append("  circle: " + " -> ".join(path))
        for a, b in zip(path, path[1:], strict=False):
            line = next(ln for ln, t, _ in edges[a] if t == b)
            lines.append(f"      {a} -> {b}  ({_where(a, line)})")
    assert not found, "import cycles between geoproc modules:\n" + "\n".join(lines)


def test_no_upward_or_forbidden_imports():
    bad = []
    for module, targets in sorted(internal_edges().items()):
        lm = layer_of(module)
        for line, target, names in targets:
            lt = layer_of(target)
            if lm is None or lt is None:
                continue  # reported by test_every_module_has_a_layer
            if lt > lm:
                bad.append(f"  upward: {module} ({LAYER_NAMES[lm]}) -> {target} ({LAYER_NAMES[lt]})  "
                           f"[{_where(module, line)}]")
            elif lm == ENGINE and lt == JOBS:
                bad.append(f"  engine/ledger imports the job registry: {module} -> {target}  "
                           f"[{_where(module, line)}]")
            elif lm == DOMAIN and target == "geoproc.model" and names & JOB_MODEL:
                bad.append(f"  domain imports the job model: {module} -> geoproc.model "
                           f"({', '.join(sorted(names & JOB_MODEL))})  [{_where(module, line)}]")
    for module in MODULES:
        if layer_of(module) is not None and layer_of(module) <= DOMAIN:
            for line, target, _ in imports(module):
                if target == "rich" or target.startswith("rich."):
                    bad.append(f"  presentation below jobs: {module} -> {target}  [{_where(module, line)}]")
    assert not bad, "imports against the layer order (core → storage → domain → jobs → engine/ledger → " \
                    "api → faces):\n" + "\n".join(bad)
