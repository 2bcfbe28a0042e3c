"""The layout holds: layers import one way, no cycles, modules stay small, the map is complete.

These tests read the source with `ast` (nothing is imported), so they see imports inside
functions as well as at the top of a module. Imports under ``if TYPE_CHECKING:`` are left out:
they never run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "shadowsync"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

MAX_MODULE_LINES = 1_000
MAX_CLASS_LINES = 800

# The layers, from the inside out. A module may import its own layer and the layers inside it.
# The stores are a layer of their own between the core and the fakes: the core holds the `Store`
# contract and never imports an implementation; the loopback pair runs on a `MemoryStore`.
CORE = "core"
STORAGE = "storage"
TESTING = "testing"
EDGE = "edge"
_STORAGE_MODULES = ("shadowsync.stores",)
_EDGE_MODULES: tuple[str, ...] = (
    "shadowsync.aws",
    "shadowsync.mqtt",
    "shadowsync.cli",
    "shadowsync.reconcile.http",
    "shadowsync.demo",
    "shadowsync.__main__",
)
_TESTING_MODULES = ("shadowsync.testing", "shadowsync._fakes")
_RANK = {CORE: 0, STORAGE: 1, TESTING: 2, EDGE: 3}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> str:
    def within(prefixes: tuple[str, ...]) -> bool:
        return any(module == p or module.startswith(p + ".") for p in prefixes)

    if within(_EDGE_MODULES):
        return EDGE
    if within(_TESTING_MODULES):
        return TESTING
    if within(_STORAGE_MODULES):
        return STORAGE
    return CORE


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skipped.update(id(n) for n in ast.walk(inner))
    return skipped


def _imports(module: str) -> set[str]:
    """The shadowsync modules ``module`` imports when it runs, deferred imports included."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("shadowsync"):
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("shadowsync"))
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func).endswith("import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            # importlib.import_module("shadowsync....") with a literal name
            name = node.args[0].value
            if isinstance(name, str) and name.startswith("shadowsync"):
                found.add(name)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_src() -> None:
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_inwards(module: str) -> None:
    """The core imports no store, fake or adapter; the stores no fake; the fakes no adapter."""
    outward = sorted(dep for dep in GRAPH[module] if _RANK[_layer(dep)] > _RANK[_layer(module)])
    assert outward == [], f"{module} ({_layer(module)}) imports {outward}"


def _long_definitions() -> list[str]:
    too_long: list[str] = []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n") + (not text.endswith("\n"))
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    too_long.append(f"{module}.{node.name}: {size} lines")
    return too_long


def test_modules_and_classes_stay_small() -> None:
    assert _long_definitions() == []


def _mapped_modules() -> set[str]:
    """The module paths the module map of docs/architecture.md names, as dotted names."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    mapped: set[str] = set()
    for cell in re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE):
        name = cell.removesuffix(".py").removesuffix("/").replace("/", ".")
        name = name.removesuffix(".__init__")
        mapped.add("shadowsync" if name in ("", "__init__") else f"shadowsync.{name}")
    return mapped


def test_the_module_map_names_every_module() -> None:
    mapped = _mapped_modules()
    missing = sorted(set(MODULES) - mapped)
    stale = sorted(mapped - set(MODULES))
    assert (missing, stale) == ([], [])
