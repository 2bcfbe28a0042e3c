"""No module of shadowsync reaches into another module's private names.

The rule, checked by reading the source of every module under ``src/shadowsync`` with `ast`:
a module may import from another shadowsync module (``from shadowsync.x import name``,
``import shadowsync.x as m`` then ``m.name``, or ``name.attribute`` on what it imported) only
names that do not start with an underscore. Dunder names (``__version__``) and private
*modules* (``from shadowsync import _json``) are fine: a private module's public names are the
internal API it offers the rest of the package. There is no exception for modules of the same
package: ``rules/_builtin.py`` may not use a ``_name`` of ``rules/_model.py`` either. A module
that needs another's helper gets it under a name without the underscore. (Attributes of an
instance, ``document._size``, are beyond what reading the source can tell; review keeps those.)
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import shadowsync

SOURCE = Path(shadowsync.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _absolute(module: str | None, level: int, here: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    base = here.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join([*base, module] if module else base)


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def _reaches_in(source: str, here: str, *, is_package: bool = False) -> list[str]:
    """Every place in the source of module ``here`` that uses another module's private name."""
    tree = ast.parse(source)
    found: list[str] = []
    # Local names bound to another shadowsync module, or to a name imported from one.
    foreign: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            origin = _absolute(node.module, node.level, here, is_package)
            if origin.split(".")[0] != "shadowsync" or origin == here:
                continue
            for alias in node.names:
                qualified = f"{origin}.{alias.name}"
                if _is_private(alias.name) and not _is_module(qualified):
                    found.append(f"{here}:{node.lineno} imports {qualified}")
                foreign[alias.asname or alias.name] = qualified
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "shadowsync" and alias.name != here:
                    bound = alias.asname or alias.name.split(".")[0]
                    foreign[bound] = alias.name if alias.asname else bound
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _is_private(node.attr):
            continue
        used = _dotted(node.value)
        root = None if used is None else used.split(".")[0]
        if used is not None and root in foreign:
            owner = foreign[root] + used[len(root) :]
            if owner != here and not _is_module(f"{owner}.{node.attr}"):
                found.append(f"{here}:{node.lineno} uses {owner}.{node.attr}")
    return found


def _scan(path: Path) -> list[str]:
    return _reaches_in(
        path.read_text(encoding="utf-8"), _module_name(path), is_package=path.name == "__init__.py"
    )


def test_the_scan_sees_every_module() -> None:
    names = {_module_name(path) for path in SOURCE.rglob("*.py")}
    assert {"shadowsync", "shadowsync._tree", "shadowsync.rules._model", "shadowsync.audit"} <= (
        names
    )


def test_the_scan_finds_private_imports_and_private_attributes() -> None:
    source = (
        "import shadowsync.cloud\n"
        "import shadowsync.audit as audit\n"
        "from shadowsync import __version__, _json\n"
        "from shadowsync._json import _BadValue, describe\n"
        "from shadowsync.audit import HistoryRecord\n"
        "from shadowsync.rules._model import _Deleted\n"
        "from . import _model\n"
        "from ._paths import _cached_pattern\n"
        "from ._sample import _mine\n"
        "_json._normalize\n"
        "HistoryRecord._from_states\n"
        "HistoryRecord.__name__\n"
        "audit._state\n"
        "shadowsync.cloud._history.as_log\n"
        "shadowsync.cloud._private\n"
        "_model.show\n"
        "self._own\n"
    )
    found = _reaches_in(source, "shadowsync.rules._sample")
    assert [line.split(" ", 1)[1] for line in found] == [
        "imports shadowsync._json._BadValue",
        "imports shadowsync.rules._model._Deleted",
        "imports shadowsync.rules._paths._cached_pattern",
        "uses shadowsync._json._normalize",
        "uses shadowsync.audit.HistoryRecord._from_states",
        "uses shadowsync.audit._state",
        "uses shadowsync.cloud._private",
    ]


def test_no_module_uses_another_modules_private_names() -> None:
    found = [place for path in sorted(SOURCE.rglob("*.py")) for place in _scan(path)]
    assert found == []
