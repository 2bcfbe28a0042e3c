"""What a device runs, as values: `Component`, its `UpdateStrategy`, and the `Step` values.

A component owns one path of the target state (a service's settings, a file's content, a
firmware slot) and says how a change of its value is carried out: the ordered `Action` list of
its update strategy. The reconciler only decides *when* each step may run; what a step does
(download an image, write a file, start a process) is the caller's.

```pycon
>>> web = Component(name="web", path=("services", "web"), depends_on=["db"])
>>> [action.value for action in change_actions(web.strategy, old="v1", new="v2")]
['prepare', 'stop', 'start']
>>> [a.value for a in change_actions(UpdateStrategy.HANDOVER, old="v1", new="v2")]
['prepare', 'start', 'handover', 'stop']

```
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

import attrs

from shadowsync._json import JSONValue, describe, json_pointer
from shadowsync._tree import MISSING, Missing, Path
from shadowsync._validators import seconds
from shadowsync.reconcile._errors import ComponentError

__all__ = [
    "JSON_TYPES",
    "Action",
    "Component",
    "Step",
    "UpdateStrategy",
    "change_actions",
]

JSON_TYPES = frozenset({"object", "array", "string", "number", "boolean", "null"})
"""The JSON type names a `Component` may list in ``accepts``."""


def plain_copy(value: object) -> JSONValue:
    """A copy of ``value`` as plain JSON; `ValueError` says why it is not JSON.

    Refused: what `json` cannot write (NaN, infinities, sets, objects, nesting too deep,
    integers too long to print) and object keys that are not str, which `json` would silently
    turn into (possibly colliding) strings.
    """
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValueError(reason) from None
    copy = json.loads(text)
    if copy == value:  # json turned no key into a str (== compares in C): nothing to find
        return cast("JSONValue", copy)
    pending = [value]
    while pending:  # a loop, not recursion: the value was as deep as json could write
        item = pending.pop()
        if isinstance(item, Mapping):
            for key, inner in item.items():
                if type(key) is not str:
                    raise ValueError(f"an object key is not a str: {describe(key)}")
                pending.append(inner)
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return cast("JSONValue", copy)


class UpdateStrategy(enum.Enum):
    """How a component moves from its old value to a new one (Balena's update strategies)."""

    PREPARE_THEN_SWITCH = "prepare-then-switch"
    """Prepare the new value while the old one runs, then stop the old and start the new
    (Balena's download-then-kill, the default): the shortest gap."""
    STOP_THEN_PREPARE = "stop-then-prepare"
    """Stop the old value first, then prepare and start the new (kill-then-download): for
    devices short of room to hold both."""
    RELEASE_THEN_PREPARE = "release-then-prepare"
    """Stop the old value, release what it held (delete its image) as a separate step, then
    prepare and start the new (delete-then-download): for the least room."""
    HANDOVER = "handover"
    """Prepare and start the new value beside the old one, wait for a signal (or a timeout),
    then stop the old: never zero instances."""


class Action(enum.Enum):
    """What one step asks the caller to do with a value of a component."""

    PREPARE = "prepare"
    """Make the new value ready without disturbing what runs (download, unpack, validate)."""
    START = "start"
    """Put the new value into effect (start the process, switch the link)."""
    STOP = "stop"
    """Take the old value out of effect."""
    RELEASE = "release"
    """Free what the old value held (delete its image or files)."""
    HANDOVER = "handover"
    """Not a step the caller runs: the reconciler waits for `Reconciler.signal` or the
    component's ``handover_timeout`` between starting the new value and stopping the old."""


def change_actions(
    strategy: UpdateStrategy, *, old: JSONValue | Missing, new: JSONValue | Missing
) -> tuple[Action, ...]:
    """The actions that move a component from ``old`` to ``new`` under ``strategy``.

    A first install (``old`` is `MISSING`) is prepare then start whatever the strategy; a
    removal (``new`` is `MISSING`) stops the old value (and releases it under
    release-then-prepare).
    """
    if old is MISSING and new is MISSING:
        return ()
    if old is MISSING:
        return (Action.PREPARE, Action.START)
    if new is MISSING:
        if strategy is UpdateStrategy.RELEASE_THEN_PREPARE:
            return (Action.STOP, Action.RELEASE)
        return (Action.STOP,)
    return _CHANGES[strategy]


_CHANGES = {
    UpdateStrategy.PREPARE_THEN_SWITCH: (Action.PREPARE, Action.STOP, Action.START),
    UpdateStrategy.STOP_THEN_PREPARE: (Action.STOP, Action.PREPARE, Action.START),
    UpdateStrategy.RELEASE_THEN_PREPARE: (
        Action.STOP,
        Action.RELEASE,
        Action.PREPARE,
        Action.START,
    ),
    UpdateStrategy.HANDOVER: (Action.PREPARE, Action.START, Action.HANDOVER, Action.STOP),
}


def _name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not str or not value:
        raise ComponentError(f"{attribute.name} must be a non-empty str, got {describe(value)}")


def _to_path(value: object) -> Path:
    if type(value) is str:
        value = (value,)
    if isinstance(value, list):
        value = tuple(value)
    if type(value) is not tuple or not value or not all(type(key) is str and key for key in value):
        raise ComponentError(
            f"a component path must be a non-empty tuple of non-empty str keys, got "
            f"{describe(value)}"
        )
    return value


def _to_names(value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ComponentError(f"depends_on must be a sequence of names, got {describe(value)}")
    names = tuple(value)
    for name in names:
        if type(name) is not str or not name:
            raise ComponentError(f"a dependency must be a non-empty str, got {describe(name)}")
    return names


def _to_strategy(value: object) -> UpdateStrategy:
    if isinstance(value, UpdateStrategy):
        return value
    try:
        return UpdateStrategy(value)
    except ValueError:
        allowed = ", ".join(s.value for s in UpdateStrategy)
        raise ComponentError(
            f"strategy must be an UpdateStrategy or one of {allowed}, got {describe(value)}"
        ) from None


def _to_types(value: object) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ComponentError(f"accepts must be a set of JSON type names, got {describe(value)}")
    try:
        types = frozenset(value)
    except TypeError:
        raise ComponentError(
            f"accepts must be a set of JSON type names, got {describe(value)}"
        ) from None
    unknown = sorted(str(t) for t in types - JSON_TYPES)
    if unknown or not types:
        raise ComponentError(
            f"accepts must name JSON types among {', '.join(sorted(JSON_TYPES))}, got "
            f"{describe(sorted(map(str, types)))}"
        )
    return types


def _lock(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (type(value) is not str or not value):
        raise ComponentError(f"lock must be a non-empty str or None, got {describe(value)}")


@attrs.frozen(kw_only=True)
class Component:
    """One part of the device the reconciler keeps at its target value.

    - ``name``: unique among the components;
    - ``path``: the path of the target state it owns (a str is a one-key path);
    - ``depends_on``: names of components that must have converged before any step of this one
      runs (a database before the web service);
    - ``strategy``: how a change is carried out (`UpdateStrategy`, or its value as a str);
    - ``lock``: a lock name; while the application holds it (`Reconciler.hold`), no step of
      this component runs, so an update never interrupts critical work;
    - ``handover_timeout``: seconds a handover waits for `Reconciler.signal` before stopping the
      old value anyway;
    - ``accepts``: the JSON types its target value may have (``None``: any), so a target of the
      wrong type is refused before anything runs.

    ```pycon
    >>> Component(name="web", path="web", strategy="handover").strategy
    <UpdateStrategy.HANDOVER: 'handover'>

    ```
    """

    name: str = attrs.field(validator=_name)
    path: Path = attrs.field(converter=_to_path)
    depends_on: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    strategy: UpdateStrategy = attrs.field(
        default=UpdateStrategy.PREPARE_THEN_SWITCH, converter=_to_strategy
    )
    lock: str | None = attrs.field(default=None, validator=_lock)
    handover_timeout: float = attrs.field(default=30.0, validator=seconds)
    accepts: frozenset[str] | None = attrs.field(default=None, converter=_to_types)

    @property
    def pointer(self) -> str:
        """The owned path as a JSON Pointer (``/services/web``)."""
        return json_pointer(self.path)


@attrs.frozen(kw_only=True)
class Step:
    """One thing to do now: ``action`` on ``value`` of ``component``.

    ``value`` is the new value for `Action.PREPARE` and `Action.START`, the old one (as last
    observed) for `Action.STOP` and `Action.RELEASE`. ``version`` is the target version the
    step serves (``None`` for a rollback to the state found at start). Answer it with
    `Reconciler.done` or `Reconciler.failed`, passing the step back.
    """

    id: int
    """Unique within one reconciler's life, in the order steps were issued."""
    component: str
    """The component's name."""
    path: Path
    """The component's path."""
    action: Action
    """What to do."""
    value: JSONValue = attrs.field(hash=False)
    """The value to act on."""
    version: int | None
    """The target version this step serves."""
