"""A human-readable account of what changed between two states of a shadow (uses deepdiff)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from shadowsync._audit.record import as_state
from shadowsync._json import json_equal, json_type_name, kind_phrase
from shadowsync._tree import lookup
from shadowsync.cloud._history import History, as_log
from shadowsync.errors import InvalidArgumentError
from shadowsync.strategies import MISSING

if TYPE_CHECKING:
    from shadowsync.audit import AuditLog, ShadowState

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$:-]+")


def _show_path(path: tuple[str, ...]) -> str:
    out = ""
    for key in path:
        if _PLAIN_KEY.fullmatch(key):
            out += ("." if out else "") + key
        else:
            out += f"[{json.dumps(key, ensure_ascii=False)}]"
    return out


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _deepdiff() -> Any:
    try:
        from deepdiff import DeepDiff
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            'explaining changes needs deepdiff: pip install "shadowsync[explain]"'
        ) from None
    return DeepDiff


def explain_change(before: ShadowState, after: ShadowState) -> tuple[str, ...]:
    """Say, one line per changed value, what changed from ``before`` to ``after``.

    Each state is a `ShadowDocument`, a ``{"desired", "reported"}`` mapping or None (no
    shadow). Arrays are whole values, as in AWS updates; ``1`` and ``1.0`` are the same number.
    Needs the ``explain`` extra (deepdiff), imported only when this is called.

    ```pycon
    >>> for line in explain_change(
    ...     {"desired": {"mode": "eco", "rate": 30}, "reported": {"fw": "1.0"}},
    ...     {"desired": {"mode": "normal", "rate": "30", "zones": [1, 2]}, "reported": {}}):
    ...     print(line)
    desired.mode changed from "eco" to "normal"
    desired.rate changed from number 30 to string "30"
    desired.zones added: [1, 2]
    reported.fw removed (was "1.0")

    ```
    """
    old = as_state(before, "before")
    new = as_state(after, "after")
    # deepdiff finds the changed paths (arrays compared element by element: by hash it would
    # pair true with 1); json_equal then judges them: 1 and 1.0 are one number, true is not 1.
    diff = _deepdiff()(old, new, view="tree", zip_ordered_iterables=True)
    paths: list[tuple[str, ...]] = []
    for levels in diff.values():
        for level in levels:
            full = level.path(output_format="list")
            keys: list[str] = []
            for key in full:
                if not isinstance(key, str):
                    break  # an array changes as a whole
                keys.append(key)
            if tuple(keys) not in paths:
                paths.append(tuple(keys))
    lines = []
    for path in sorted(paths, key=lambda p: (p[0] != "desired", p)):
        was = lookup(old, path)
        now = lookup(new, path)
        if was is not MISSING and now is not MISSING and json_equal(was, now):
            continue
        where = _show_path(path)
        if was is MISSING:
            lines.append(f"{where} added: {_show(now)}")
        elif now is MISSING:
            lines.append(f"{where} removed (was {_show(was)})")
        elif kind_phrase(was) != kind_phrase(now) and not (
            isinstance(was, dict) or isinstance(now, dict)
        ):
            lines.append(
                f"{where} changed from {json_type_name(was)} {_show(was)} "
                f"to {json_type_name(now)} {_show(now)}"
            )
        else:
            lines.append(f"{where} changed from {_show(was)} to {_show(now)}")
    return tuple(lines)


def explain_versions(
    history: History,
    thing_name: str,
    shadow_name: str | None,
    old_version: int,
    new_version: int,
) -> tuple[str, ...]:
    """`explain_change` between two recorded versions of a shadow, rebuilt from its history.

    Each version's state is the one its last record at or below that version left.
    """
    log: AuditLog = as_log(history)
    if type(old_version) is not int or type(new_version) is not int:
        raise InvalidArgumentError("old_version and new_version must be ints")
    before = log.replay(thing_name, shadow_name, version=old_version)
    after = log.replay(thing_name, shadow_name, version=new_version)
    return explain_change(before, after)
