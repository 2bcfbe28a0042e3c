"""What a device reports back about a desired change, path by path: `Acknowledgement`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from shadowsync._json import JSONObject, describe, dumps_compact, json_pointer, parse_json_pointer
from shadowsync.errors import InvalidArgumentError
from shadowsync.rules._model import (
    InvalidAcknowledgementError,
    Status,
    check_path,
    check_text,
    epoch_seconds,
    is_listlike,
    is_non_negative_int,
    items_of,
    loads,
    show,
)

if TYPE_CHECKING:
    from shadowsync._tree import Path

ACK_KEY = "$ack"
"""The reported-state key suggested for an `Acknowledgement` (``reported["$ack"]``)."""


@attrs.frozen(kw_only=True)
class Rejection:
    """A path an acknowledgement reports as rejected, with the first rule that refused it.

    ```pycon
    >>> Rejection(path=("door",), rule="transitions:door", reason="not allowed").pointer
    '/door'

    ```
    """

    path: Path = attrs.field(validator=lambda _i, _a, v: check_path(v, "Rejection.path"))
    rule: str = attrs.field(validator=lambda _i, _a, v: check_text(v, "Rejection.rule"))
    reason: str = attrs.field(validator=lambda _i, _a, v: check_text(v, "Rejection.reason"))

    @property
    def pointer(self) -> str:
        """The path as a JSON Pointer (RFC 6901), as in `Acknowledgement.to_dict`."""
        return json_pointer(self.path)


def _to_paths(value: Iterable[Sequence[str]]) -> tuple[Path, ...]:
    if not is_listlike(value):
        raise InvalidArgumentError(f"expected a sequence of paths, got {describe(value)}")
    return tuple(check_path(tuple(p) if isinstance(p, list) else p, "a path") for p in value)


def _to_rejections(value: Iterable[Rejection]) -> tuple[Rejection, ...]:
    return items_of(
        value,
        Rejection,
        not_a_list=lambda v: InvalidArgumentError(
            f"expected a sequence of Rejection, got {describe(v)}"
        ),
        wrong_item=lambda item: InvalidArgumentError(f"expected a Rejection, got {describe(item)}"),
    )


_ACK_KEYS = ("desiredVersion", "timestamp", "applied", "rejected", "pending")


@attrs.frozen(kw_only=True)
class Acknowledgement:
    """What happened to each path of a desired change: applied, rejected (and why) or pending.

    ``desired_version`` is the shadow version of the desired state being answered, so the cloud
    can tell which request an acknowledgement is about. The JSON form (`to_dict`) is meant
    for the device's reported state under `ACK_KEY` (``reported["$ack"]``):

        {"desiredVersion": 7, "timestamp": 1700000000,
         "applied": ["/mode"],
         "rejected": [{"path": "/temperature", "rule": "range:temperature",
                       "reason": "45 is greater than the maximum 30"}],
         "pending": ["/firmware/version"]}

    Paths are JSON Pointers (RFC 6901). Every key is always present and holds a scalar or an
    array, so reporting a new acknowledgement replaces the previous one under the shadow's
    deep merge instead of mixing with it. It counts towards the document size limit.

    ```pycon
    >>> ack = Acknowledgement(desired_version=7, timestamp=1700000000, applied=[("mode",)],
    ...                       pending=[("firmware", "version")])
    >>> ack.status(("mode",)), ack.status(("firmware", "version")), ack.status(("x",))
    ('applied', 'pending', None)
    >>> Acknowledgement.from_dict(ack.to_dict()) == ack
    True

    ```
    """

    desired_version: int = attrs.field()
    timestamp: int = attrs.field(validator=epoch_seconds("Acknowledgement.timestamp"))
    applied: tuple[Path, ...] = attrs.field(default=(), converter=_to_paths)
    rejected: tuple[Rejection, ...] = attrs.field(default=(), converter=_to_rejections)
    pending: tuple[Path, ...] = attrs.field(default=(), converter=_to_paths)

    @desired_version.validator
    def _check_version(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if not is_non_negative_int(value):
            raise InvalidArgumentError(
                f"Acknowledgement.desired_version must be a non-negative int, got {describe(value)}"
            )

    def __attrs_post_init__(self) -> None:
        seen: set[Path] = set()
        for path in (*self.applied, *(r.path for r in self.rejected), *self.pending):
            if path in seen:
                raise InvalidArgumentError(
                    f"path {json_pointer(path)} is listed more than once in the acknowledgement"
                )
            seen.add(path)

    def status(self, path: Sequence[str]) -> Status | None:
        """``"applied"``, ``"rejected"``, ``"pending"``, or ``None`` for a path not listed."""
        key = tuple(path)
        if key in self.applied:
            return "applied"
        if any(rejection.path == key for rejection in self.rejected):
            return "rejected"
        if key in self.pending:
            return "pending"
        return None

    def mark_pending(self, *paths: Sequence[str]) -> Acknowledgement:
        """A copy with applied ``paths`` moved to pending (accepted, not yet in effect).

        ```pycon
        >>> ack = Acknowledgement(desired_version=3, timestamp=0, applied=[("door",)])
        >>> ack.mark_pending(("door",)).pending
        (('door',),)

        ```
        """
        return self._move(paths, "applied", "pending")

    def mark_applied(self, *paths: Sequence[str]) -> Acknowledgement:
        """A copy with pending ``paths`` moved to applied (now in effect).

        ```pycon
        >>> ack = Acknowledgement(desired_version=3, timestamp=0, pending=[("door",)])
        >>> ack.mark_applied(("door",)).applied
        (('door',),)

        ```
        """
        return self._move(paths, "pending", "applied")

    def _move(
        self,
        paths: tuple[Sequence[str], ...],
        source: Literal["applied", "pending"],
        target: Literal["applied", "pending"],
    ) -> Acknowledgement:
        group: tuple[Path, ...] = getattr(self, source)
        moving = [tuple(path) for path in paths]
        for path in moving:
            if path not in group:
                raise InvalidArgumentError(f"path {json_pointer(path)} is not {source}")
        changes: dict[str, Any] = {
            source: [p for p in group if p not in moving],
            target: [*getattr(self, target), *moving],
        }
        return attrs.evolve(self, **changes)

    def to_dict(self) -> JSONObject:
        """The JSON form (see the class docstring), ready for ``reported["$ack"]``."""
        return {
            "desiredVersion": self.desired_version,
            "timestamp": self.timestamp,
            "applied": [json_pointer(path) for path in self.applied],
            "rejected": [
                {"path": r.pointer, "rule": r.rule, "reason": r.reason} for r in self.rejected
            ],
            "pending": [json_pointer(path) for path in self.pending],
        }

    def to_json(self) -> str:
        """The JSON form as compact text."""
        return dumps_compact(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Acknowledgement:
        """Read and validate the JSON form, for example ``document.reported["$ack"]``.

        Raises `InvalidAcknowledgementError` naming the offending key.
        """

        def fail(where: str, problem: str) -> InvalidAcknowledgementError:
            return InvalidAcknowledgementError(f"acknowledgement{where}: {problem}")

        if not isinstance(data, Mapping):
            raise fail("", f"expected an object, got {show(data)}")
        for key in data:
            if key not in _ACK_KEYS:
                raise fail(f".{key}", f"unknown key (allowed: {', '.join(_ACK_KEYS)})")
        for key in ("desiredVersion", "timestamp"):
            if key not in data:
                raise fail(f".{key}", "missing required key")
            if not is_non_negative_int(data[key]):
                raise fail(f".{key}", f"expected a non-negative integer, got {show(data[key])}")

        def items(key: str) -> list[Any]:
            value = data.get(key, [])
            if not isinstance(value, list):
                raise fail(f".{key}", f"expected an array, got {show(value)}")
            return value

        def pointer(where: str, value: object) -> Path:
            path = parse_json_pointer(value) if isinstance(value, str) else None
            if path is None:
                raise fail(where, f'expected a JSON Pointer such as "/mode", got {show(value)}')
            return path

        applied = [pointer(f".applied[{i}]", v) for i, v in enumerate(items("applied"))]
        pending = [pointer(f".pending[{i}]", v) for i, v in enumerate(items("pending"))]
        rejected = []
        for i, entry in enumerate(items("rejected")):
            where = f".rejected[{i}]"
            if not isinstance(entry, Mapping) or set(entry) != {"path", "rule", "reason"}:
                raise fail(
                    where, f"expected an object with path, rule and reason, got {show(entry)}"
                )
            for key in ("rule", "reason"):
                if not isinstance(entry[key], str) or not entry[key]:
                    raise fail(
                        f"{where}.{key}", f"expected a non-empty string, got {show(entry[key])}"
                    )
            rejected.append(
                Rejection(
                    path=pointer(f"{where}.path", entry["path"]),
                    rule=entry["rule"],
                    reason=entry["reason"],
                )
            )
        try:
            return cls(
                desired_version=data["desiredVersion"],
                timestamp=data["timestamp"],
                applied=applied,
                rejected=rejected,
                pending=pending,
            )
        except InvalidArgumentError as err:
            raise fail("", str(err)) from None

    @classmethod
    def from_json(cls, data: str | bytes) -> Acknowledgement:
        """Read and validate the JSON form from text or UTF-8 bytes."""
        return cls.from_dict(loads(data, InvalidAcknowledgementError, "acknowledgement: not JSON"))
