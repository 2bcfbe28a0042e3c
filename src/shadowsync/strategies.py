"""Conflict-resolution strategies: what wins when both sides changed the same path.

The three-way merge (`shadowsync.merge`) classifies every changed path; only paths that
*both* sides changed to different values reach a strategy, as a `Conflict`. A strategy
returns a `Resolution`: the value to keep (or `MISSING` to delete), who won, why,
and whether a person must review it. Strategies are small immutable values; write your own by
implementing `Strategy`:

```pycon
>>> from shadowsync.strategies import Conflict, LastWriterWins, MISSING
>>> conflict = Conflict(path=("target_c",), section="desired", base=20, ours=21, theirs=23,
...                     ours_stamp=105, theirs_stamp=110)
>>> LastWriterWins().resolve(conflict).value
23

```
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from shadowsync._json import JSONValue, canonical_json, describe, json_equal, json_type_name
from shadowsync._tree import MISSING, Missing, Value
from shadowsync.errors import InvalidArgumentError

__all__ = [
    "MISSING",
    "Conflict",
    "ConflictKind",
    "FieldMerge",
    "LastWriterWins",
    "ManualReview",
    "Missing",
    "OwnerWins",
    "Priority",
    "Resolution",
    "Severity",
    "Strategy",
    "Winner",
    "conflict_kind",
]


Winner = Literal["ours", "theirs", "base", "merged"]
"""Which input a resolution took its value from (``merged``: a combination of both)."""


class ConflictKind(enum.Enum):
    """Why two changes conflict."""

    VERSION_CONFLICT = "version_conflict"
    """An update was refused because the shadow moved on (409)."""
    CONCURRENT_MODIFICATION = "concurrent_modification"
    """Both sides set the same path to different values of the same JSON type."""
    DATA_TYPE_CONFLICT = "data_type_conflict"
    """Both sides set the same path to values of different JSON types (or one deleted it)."""
    BUSINESS_RULE_VIOLATION = "business_rule_violation"
    """A merged value broke a business rule and was not applied."""


class Severity(enum.IntEnum):
    """How much a conflict matters; ordered, so ``Severity.HIGH > Severity.LOW``."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, value: object) -> Severity:
        """``"high"``, ``"HIGH"`` or a `Severity` to a `Severity`."""
        if isinstance(value, Severity):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise InvalidArgumentError(
            f"severity must be one of low, medium, high, critical; got {describe(value)}"
        )


def _json_kind(value: Value) -> str:
    return "missing" if value is MISSING else json_type_name(value)


def conflict_kind(ours: Value, theirs: Value) -> ConflictKind:
    """``DATA_TYPE_CONFLICT`` when the JSON types differ, else ``CONCURRENT_MODIFICATION``."""
    if _json_kind(ours) != _json_kind(theirs):
        return ConflictKind.DATA_TYPE_CONFLICT
    return ConflictKind.CONCURRENT_MODIFICATION


@attrs.frozen(kw_only=True)
class Conflict:
    """One path that both sides changed to different values since ``base``.

    ``ours``/``theirs`` are the two proposals (`MISSING` when a side deleted the path),
    ``*_stamp`` their write stamps when known (any totally ordered value, typically an
    `HLCStamp`), ``*_source`` who wrote them (``"device"``, ``"cloud"``...).
    """

    path: tuple[str, ...]
    section: Literal["desired", "reported"] = "desired"
    base: Value = MISSING
    ours: Value = MISSING
    theirs: Value = MISSING
    ours_stamp: Any = None
    theirs_stamp: Any = None
    ours_source: str = "device"
    theirs_source: str = "cloud"
    severity: Severity = Severity.MEDIUM

    @property
    def kind(self) -> ConflictKind:
        """Concurrent modification or data-type conflict."""
        return conflict_kind(self.ours, self.theirs)

    @property
    def dotted_path(self) -> str:
        """The path as ``a.b.c``."""
        return ".".join(self.path)


@attrs.frozen(kw_only=True)
class Resolution:
    """A strategy's decision: keep ``value`` (`MISSING` deletes), taken from ``winner``.

    ``review`` asks for a person's decision; the merge then keeps the current value and records
    a review item instead of applying ``value``.
    """

    value: Value
    winner: Winner
    reason: str
    review: bool = False


def _pick(conflict: Conflict, side: Literal["ours", "theirs"], reason: str) -> Resolution:
    value = conflict.ours if side == "ours" else conflict.theirs
    return Resolution(value=value, winner=side, reason=reason)


@runtime_checkable
class Strategy(Protocol):
    """What a conflict-resolution strategy implements.

    ``commutative`` promises that swapping ours and theirs swaps only the winner label, never
    the resulting value; the merge laws test strategies that claim it.
    """

    @property
    def name(self) -> str:
        """A short stable name, recorded in conflict reports and audit records."""
        ...

    @property
    def commutative(self) -> bool:
        """Whether the resolved value is independent of which side is ours."""
        ...

    def resolve(self, conflict: Conflict) -> Resolution:
        """Decide one conflict."""
        ...


def _order_key(value: Value) -> tuple[int, float, str]:
    """A total order for tie-breaks: absent < numbers (by value) < everything else (by JSON)."""
    if value is MISSING:
        return (0, 0.0, "")
    if type(value) is int or type(value) is float:
        try:
            return (1, float(value), canonical_json(value))
        except OverflowError:  # an int beyond float range still orders by its sign
            return (1, float("inf") if value > 0 else float("-inf"), canonical_json(value))
    return (2, 0.0, canonical_json(value))


@attrs.frozen(kw_only=True)
class LastWriterWins:
    """The write with the greater stamp wins; without a decisive stamp the choice is fixed.

    When both stamps are equal, or neither side has one, the larger value wins (numbers by
    value, then anything else by canonical JSON text; any value beats a deletion),
    so every replica picks the same value whatever the order of the merge (the strategy is then
    commutative). ``prefer="ours"`` or ``"theirs"`` instead settles stamp-less conflicts for
    that side, which is not commutative. A side with a stamp beats a side without one.
    """

    prefer: Literal["ours", "theirs"] | None = None

    @property
    def name(self) -> str:
        return "last_writer_wins"

    @property
    def commutative(self) -> bool:
        return self.prefer is None

    def resolve(self, conflict: Conflict) -> Resolution:
        ours, theirs = conflict.ours_stamp, conflict.theirs_stamp
        side: Literal["ours", "theirs"]
        if ours is not None and theirs is not None and ours != theirs:
            side = "ours" if ours > theirs else "theirs"
            return _pick(conflict, side, f"{side} written later ({max(ours, theirs)})")
        if (ours is None) != (theirs is None):
            side = "ours" if ours is not None else "theirs"
            return _pick(conflict, side, f"only {side} has a write stamp")
        if ours is None and self.prefer is not None:
            return _pick(conflict, self.prefer, f"no write stamps: {self.prefer} preferred")
        side = "ours" if _order_key(conflict.ours) >= _order_key(conflict.theirs) else "theirs"
        what = "equal stamps" if ours is not None else "no write stamps"
        return _pick(conflict, side, f"{what}: larger value wins (deterministic)")


@attrs.frozen(kw_only=True)
class OwnerWins:
    """Each section has an owner: the cloud owns ``desired``, the device owns ``reported``.

    This is how Greengrass shadow sync settles conflicts. ``owners`` maps a section to the source
    that owns it; when neither side is the owner, ``fallback`` decides.
    """

    owners: Mapping[str, str] = attrs.field(
        factory=lambda: {"desired": "cloud", "reported": "device"}
    )
    fallback: Strategy = attrs.field(factory=LastWriterWins)

    @property
    def name(self) -> str:
        return "owner_wins"

    @property
    def commutative(self) -> bool:
        # Two writers from the same source (two devices) go to the fallback.
        return self.fallback.commutative

    def resolve(self, conflict: Conflict) -> Resolution:
        owner = self.owners.get(conflict.section)
        if owner is not None and conflict.ours_source != conflict.theirs_source:
            if conflict.ours_source == owner:
                return _pick(conflict, "ours", f"{owner} owns {conflict.section}")
            if conflict.theirs_source == owner:
                return _pick(conflict, "theirs", f"{owner} owns {conflict.section}")
        return self.fallback.resolve(conflict)


def _check_priorities(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and type(v) is int for k, v in value.items()
    ):
        raise InvalidArgumentError(f"{attribute.name} must map source names to ints")


@attrs.frozen(kw_only=True)
class Priority:
    """The side whose source has the higher priority wins; a lower priority never overwrites.

    ``sources`` maps a source (``"cloud"``, ``"device"``, ``"operator"``...) to a priority
    (higher wins). ``fields`` overrides it per path pattern (``"firmware.*"``): for each side,
    the first pattern that matches the conflict's path *and names that side's source* gives its
    priority, else ``sources`` does. Equal or unknown priorities go to ``fallback``.

    ```pycon
    >>> from shadowsync.strategies import Conflict, Priority
    >>> strategy = Priority(sources={"operator": 3, "cloud": 2, "device": 1})
    >>> strategy.resolve(Conflict(path=("mode",), ours="eco", theirs="boost",
    ...                           ours_source="operator", theirs_source="cloud")).winner
    'ours'

    ```
    """

    sources: Mapping[str, int] = attrs.field(validator=_check_priorities)
    fields: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)
    fallback: Strategy = attrs.field(factory=LastWriterWins)

    @fields.validator
    def _check_fields(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, Mapping):
            raise InvalidArgumentError("fields must map path patterns to source priorities")
        for pattern, priorities in value.items():
            if not isinstance(pattern, str):
                raise InvalidArgumentError(f"field pattern {describe(pattern)} is not a string")
            _check_priorities(self, attribute, priorities)

    @property
    def name(self) -> str:
        return "priority"

    @property
    def commutative(self) -> bool:
        # Equal priorities go to the fallback.
        return self.fallback.commutative

    def priority_of(self, path: tuple[str, ...], source: str) -> int | None:
        """The priority of ``source`` for ``path`` (a field override, else the source's)."""
        from shadowsync.rules._paths import cached_pattern

        for pattern, priorities in self.fields.items():
            if cached_pattern(pattern).matches(path) and source in priorities:
                return priorities[source]
        return self.sources.get(source)

    def resolve(self, conflict: Conflict) -> Resolution:
        ours = self.priority_of(conflict.path, conflict.ours_source)
        theirs = self.priority_of(conflict.path, conflict.theirs_source)
        if ours is not None and theirs is not None and ours != theirs:
            side: Literal["ours", "theirs"] = "ours" if ours > theirs else "theirs"
            source = conflict.ours_source if side == "ours" else conflict.theirs_source
            return _pick(conflict, side, f"{source} has priority {max(ours, theirs)}")
        return self.fallback.resolve(conflict)


@attrs.frozen(kw_only=True)
class FieldMerge:
    """Merge what can be merged; only a true leaf conflict goes to ``fallback``.

    Objects are always merged field by field by the three-way merge itself, so disjoint edits
    are never lost. This strategy also merges *arrays of scalars* as sets against the base:
    elements either side added are kept, elements either side removed are dropped, in the order
    of ``ours`` then the new elements of ``theirs``. Anything else goes to ``fallback``.
    """

    fallback: Strategy = attrs.field(factory=LastWriterWins)

    @property
    def name(self) -> str:
        return "field_merge"

    @property
    def commutative(self) -> bool:
        return False

    def resolve(self, conflict: Conflict) -> Resolution:
        ours, theirs, base = conflict.ours, conflict.theirs, conflict.base
        if (
            isinstance(ours, list)
            and isinstance(theirs, list)
            and all(not isinstance(v, (list, dict)) for v in (*ours, *theirs))
        ):
            base_items = base if isinstance(base, list) else []
            removed = [v for v in base_items if not _contains(ours, v) or not _contains(theirs, v)]
            merged: list[JSONValue] = []
            for item in (*ours, *theirs):
                if not _contains(merged, item) and not _contains(removed, item):
                    merged.append(item)
            return Resolution(
                value=merged, winner="merged", reason="array elements merged against the base"
            )
        return self.fallback.resolve(conflict)


def _contains(items: list[JSONValue], value: JSONValue) -> bool:
    return any(json_equal(item, value) for item in items)


@attrs.frozen(kw_only=True)
class ManualReview:
    """Never decide: keep the current value and ask a person (a review item is recorded).

    ``keep`` is the side whose value stays until the review is settled (``"ours"``: the local
    value).
    """

    keep: Literal["ours", "theirs"] = "ours"

    @property
    def name(self) -> str:
        return "manual_review"

    @property
    def commutative(self) -> bool:
        return False

    def resolve(self, conflict: Conflict) -> Resolution:
        value = conflict.ours if self.keep == "ours" else conflict.theirs
        return Resolution(
            value=value, winner=self.keep, reason="held for manual review", review=True
        )
