"""What a reconciler must remember across a reboot, as a value: `ReconcilerState`.

Steps in flight are not part of it: after a reboot nothing is in flight, and the reconciler
plans again from what it observes then. What must survive is the target and the last good
target, the rollback, and the attempt counts and retry times, so that a device that fails,
reboots and fails again still rolls back after N attempts instead of counting from zero.

```pycon
>>> from shadowsync.stores import MemoryStore
>>> state = ReconcilerState(target={"web": "v2"}, version=7, attempts={"web": 1})
>>> ReconcilerState.from_json(state.to_json()) == state
True
>>> store = MemoryStore()
>>> state.save(store)
>>> ReconcilerState.load(store) == state
True

```
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from shadowsync._json import JSONObject, describe, dumps_compact
from shadowsync._validators import is_count, is_finite_number
from shadowsync.errors import InvalidArgumentError, ShadowSyncError
from shadowsync.reconcile._errors import ReconcileStateError
from shadowsync.rules import Acknowledgement

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["STATE_FORMAT", "ReconcilerState", "StateStore"]

STATE_FORMAT = 1
"""The layout version `ReconcilerState.to_json` writes (and the only one it reads)."""


@runtime_checkable
class StateStore(Protocol):
    """Where a `ReconcilerState` is saved: the named JSON documents of a device store
    (`shadowsync.stores.MemoryStore` and `shadowsync.stores.SQLiteStore` have them)."""

    def put_state(self, name: str, value: Mapping[str, Any]) -> None:
        """Keep the JSON object ``value`` under ``name``, atomically."""
        ...

    def get_state(self, name: str) -> JSONObject | None:
        """The JSON object kept under ``name``, or ``None``."""
        ...


def _to_acks(value: Iterable[Acknowledgement]) -> tuple[Acknowledgement, ...]:
    return tuple(value)


def _frozen_map(value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(value)


@attrs.frozen(kw_only=True)
class ReconcilerState:
    """The durable part of a `Reconciler` (see the module docstring)."""

    target: JSONObject | None = attrs.field(default=None, hash=False)
    """The target in force (after a rollback: the last good one)."""
    version: int | None = None
    """Its version."""
    last_good: JSONObject | None = attrs.field(default=None, hash=False)
    """The last target that converged."""
    last_good_version: int | None = None
    """Its version."""
    baseline: JSONObject | None = attrs.field(default=None, hash=False)
    """What was observed first, the rollback target when no target ever converged."""
    rolled_back_from: int | None = None
    """The version given up by a rollback."""
    rejected_target: JSONObject | None = attrs.field(default=None, hash=False)
    """The target given up, so that its redelivery is not tried again."""
    attempts: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map, hash=False)
    """Failures per component on the target in force."""
    retry_at: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map, hash=False)
    """When each backing-off component retries (epoch seconds)."""
    errors: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, hash=False)
    """The last error of each component on the target in force."""
    last_error: str | None = None
    """The most recent error, prefixed with its component."""
    acknowledgements: tuple[Acknowledgement, ...] = attrs.field(default=(), converter=_to_acks)
    """Rollback acknowledgements not yet taken by the caller."""

    def to_dict(self) -> JSONObject:
        """The JSON form (camelCase keys, a ``format`` number)."""
        return {
            "format": STATE_FORMAT,
            "target": self.target,
            "version": self.version,
            "lastGood": self.last_good,
            "lastGoodVersion": self.last_good_version,
            "baseline": self.baseline,
            "rolledBackFrom": self.rolled_back_from,
            "rejectedTarget": self.rejected_target,
            "attempts": dict(self.attempts),
            "retryAt": dict(self.retry_at),
            "errors": dict(self.errors),
            "lastError": self.last_error,
            "acknowledgements": [ack.to_dict() for ack in self.acknowledgements],
        }

    def to_json(self) -> str:
        """The JSON form as compact text."""
        return dumps_compact(self.to_dict())

    def save(self, store: StateStore, name: str = "reconciler") -> None:
        """Keep this state in ``store`` under ``name`` (one atomic write)."""
        if not isinstance(store, StateStore):
            raise InvalidArgumentError(
                f"store must have put_state/get_state, got {describe(store)}"
            )
        store.put_state(name, self.to_dict())

    @classmethod
    def load(cls, store: StateStore, name: str = "reconciler") -> ReconcilerState | None:
        """The state kept in ``store`` under ``name``, or ``None`` if none was saved."""
        if not isinstance(store, StateStore):
            raise InvalidArgumentError(
                f"store must have put_state/get_state, got {describe(store)}"
            )
        data = store.get_state(name)
        return None if data is None else cls.from_dict(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReconcilerState:
        """Read the JSON form back; `ReconcileStateError` names what is wrong."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ReconcileStateError(f"reconciler state: not JSON ({exc})") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: object) -> ReconcilerState:
        """Read and validate the JSON form; `ReconcileStateError` names the offending key."""
        if type(data) is not dict:
            raise ReconcileStateError(f"reconciler state: expected an object, got {describe(data)}")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ReconcileStateError(f"reconciler state.{unknown[0]}: unknown key")
        if data.get("format") != STATE_FORMAT:
            raise ReconcileStateError(
                f"reconciler state.format: expected {STATE_FORMAT}, got "
                f"{describe(data.get('format'))}"
            )

        def take(key: str, check: Any, what: str, *, optional: bool = True) -> Any:
            value = data.get(key)
            if (value is None and optional) or check(value):
                return value
            raise ReconcileStateError(
                f"reconciler state.{key}: expected {what}, got {describe(value)}"
            )

        def mapping(key: str, check: Any, what: str) -> dict[str, Any]:
            value = take(key, lambda v: type(v) is dict, "an object") or {}
            for name, item in value.items():
                if not check(item):
                    raise ReconcileStateError(
                        f"reconciler state.{key}.{name}: expected {what}, got {describe(item)}"
                    )
            return dict(value)

        def is_object(value: object) -> bool:
            return type(value) is dict

        acks = take("acknowledgements", lambda v: type(v) is list, "an array") or []
        try:
            acknowledgements = [Acknowledgement.from_dict(ack) for ack in acks]
        except ShadowSyncError as exc:
            raise ReconcileStateError(f"reconciler state.acknowledgements: {exc}") from None
        return cls(
            target=take("target", is_object, "an object"),
            version=take("version", is_count, "a version"),
            last_good=take("lastGood", is_object, "an object"),
            last_good_version=take("lastGoodVersion", is_count, "a version"),
            baseline=take("baseline", is_object, "an object"),
            rolled_back_from=take("rolledBackFrom", is_count, "a version"),
            rejected_target=take("rejectedTarget", is_object, "an object"),
            attempts=mapping("attempts", lambda v: is_count(v) and v > 0, "a positive count"),
            retry_at=mapping("retryAt", lambda v: is_finite_number(v) and v >= 0, "a time"),
            errors=mapping("errors", lambda v: type(v) is str, "a string"),
            last_error=take("lastError", lambda v: type(v) is str, "a string"),
            acknowledgements=acknowledgements,
        )


_KEYS = {
    "format",
    "target",
    "version",
    "lastGood",
    "lastGoodVersion",
    "baseline",
    "rolledBackFrom",
    "rejectedTarget",
    "attempts",
    "retryAt",
    "errors",
    "lastError",
    "acknowledgements",
}
