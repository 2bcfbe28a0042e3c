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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from shadowsync._json import JSONObject, describe, dumps_compact
from shadowsync._validators import is_count, is_finite_number
from shadowsync.errors import InvalidArgumentError, ShadowSyncError
from shadowsync.reconcile._errors import ReconcileStateError
from shadowsync.rules import Acknowledgement

if TYPE_CHECKING:
    from collections.abc import Callable

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


def is_object(value: object) -> bool:
    """True for a plain ``dict`` (a JSON object as parsed), not any mapping."""
    return type(value) is dict


def is_text(value: object) -> bool:
    """True for a ``str`` exactly."""
    return type(value) is str


def _is_attempt_count(value: object) -> bool:
    return is_count(value) and value > 0  # type: ignore[operator]


def _is_time(value: object) -> bool:
    return is_finite_number(value) and value >= 0  # type: ignore[operator]


def optional_field(
    check: Callable[[object], bool], what: str, *, owner: str = "ReconcilerState"
) -> Callable[..., None]:
    """An attrs validator of a stored state's field (``owner`` names the state in the error):
    ``None``, or a value ``check`` accepts."""

    def validate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not check(value):
            raise ReconcileStateError(
                f"{owner}.{attribute.name}: expected {what}, got {describe(value)}"
            )

    return validate


def _per_component(check: Callable[[object], bool], what: str) -> Callable[..., None]:
    """An attrs validator: an object of component names to values ``check`` accepts."""

    def validate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not dict:
            raise ReconcileStateError(
                f"ReconcilerState.{attribute.name}: expected a mapping of component names, got "
                f"{describe(value)}"
            )
        for name, item in value.items():
            if type(name) is not str or not check(item):
                raise ReconcileStateError(
                    f"ReconcilerState.{attribute.name}[{describe(name)}]: expected {what}, got "
                    f"{describe(item)}"
                )

    return validate


def _to_dict(value: object) -> object:
    # A copy, so that the caller's later changes do not reach a frozen value; anything else
    # is left for the validator to name.
    return dict(value) if isinstance(value, Mapping) else value


def _to_acks(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _acks(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not tuple or not all(isinstance(a, Acknowledgement) for a in value):
        raise ReconcileStateError(
            f"ReconcilerState.acknowledgements: expected Acknowledgement values, got "
            f"{describe(value)}"
        )


@attrs.frozen(kw_only=True)
class ReconcilerState:
    """The durable part of a `Reconciler` (see the module docstring)."""

    target: JSONObject | None = attrs.field(
        default=None, hash=False, validator=optional_field(is_object, "an object")
    )
    """The target in force (after a rollback: the last good one)."""
    version: int | None = attrs.field(default=None, validator=optional_field(is_count, "a version"))
    """Its version."""
    last_good: JSONObject | None = attrs.field(
        default=None, hash=False, validator=optional_field(is_object, "an object")
    )
    """The last target that converged."""
    last_good_version: int | None = attrs.field(
        default=None, validator=optional_field(is_count, "a version")
    )
    """Its version."""
    baseline: JSONObject | None = attrs.field(
        default=None, hash=False, validator=optional_field(is_object, "an object")
    )
    """What was observed first, the rollback target when no target ever converged."""
    rolled_back_from: int | None = attrs.field(
        default=None, validator=optional_field(is_count, "a version")
    )
    """The version given up by a rollback."""
    rejected_target: JSONObject | None = attrs.field(
        default=None, hash=False, validator=optional_field(is_object, "an object")
    )
    """The target given up, so that its redelivery is not tried again."""
    attempts: Mapping[str, int] = attrs.field(
        factory=dict,
        converter=_to_dict,
        validator=_per_component(_is_attempt_count, "a positive count"),
        hash=False,
    )
    """Failures per component on the target in force."""
    retry_at: Mapping[str, float] = attrs.field(
        factory=dict, converter=_to_dict, validator=_per_component(_is_time, "a time"), hash=False
    )
    """When each backing-off component retries (epoch seconds)."""
    errors: Mapping[str, str] = attrs.field(
        factory=dict, converter=_to_dict, validator=_per_component(is_text, "a string"), hash=False
    )
    """The last error of each component on the target in force."""
    last_error: str | None = attrs.field(
        default=None, validator=optional_field(is_text, "a string")
    )
    """The most recent error, prefixed with its component."""
    acknowledgements: tuple[Acknowledgement, ...] = attrs.field(
        default=(), converter=_to_acks, validator=_acks
    )
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
        if not isinstance(text, (str, bytes)):
            raise ReconcileStateError(f"reconciler state: expected JSON text, got {describe(text)}")
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
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
            attempts=mapping("attempts", _is_attempt_count, "a positive count"),
            retry_at=mapping("retryAt", _is_time, "a time"),
            errors=mapping("errors", is_text, "a string"),
            last_error=take("lastError", is_text, "a string"),
            acknowledgements=acknowledgements,
        )


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


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
