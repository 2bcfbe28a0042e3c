"""Update: ``shadowsync.apply_update`` against moto's update path, same document, same request.

moto's timed path is what its ``UpdateThingShadow`` handler does with a request body once the
thing is looked up: ``json.loads(request_bytes)``, then
``FakeShadow.create_from_previous_version(previous, payload)``, then ``.to_response_dict()``
(the accepted body). moto's backend checks (the ``state`` node keys, the version) and the
final ``json.dumps`` are not timed; shadowsync is timed from the same request bytes to the same
accepted body as a ``dict``, with all of its validation included.

moto merges the request into the previous shadow's own dictionaries, so every call, ours and
moto's alike, gets its own fresh copy of the previous document, built outside the timed loop:
ours is parsed from the GetThingShadow body with ``ShadowDocument.from_json``, the way a fetched
shadow is held (parsing measures its size once; an update derives the next size from it).
moto also appends every ``FakeShadow`` it creates to a class-level list; that append is timed
(it is part of moto's path), and the list is emptied after each group of calls, untimed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from moto.iotdata.models import FakeShadow

from benchmarks.delta import normalise_moto_delta
from benchmarks.documents import LIMITS, UPDATE_TIMESTAMP, Case
from benchmarks.timing import Bench, Check, Comparison
from shadowsync import ShadowDocument, UpdateResult, apply_update, json_equal

if TYPE_CHECKING:
    from collections.abc import Sequence

_FAKE_SHADOW: Any = FakeShadow  # moto annotates desired/reported as str; they are dicts.

MOTO_UPDATE = (
    "moto: json.loads(request) + FakeShadow.create_from_previous_version(previous, payload)"
    " + .to_response_dict()"
)


def forget_moto_shadows() -> None:
    """Drop moto's registry of every FakeShadow ever created (it would grow without bound)."""
    _FAKE_SHADOW.instances_tracked.clear()


def strip_timestamps(value: Any) -> Any:
    """``value`` with every ``timestamp`` member set to 0 (moto stamps with the wall clock)."""
    if isinstance(value, dict):
        return {
            key: 0 if key == "timestamp" else strip_timestamps(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [strip_timestamps(item) for item in value]
    return value


class _Fixture:
    """Fresh copies of the previous document for each side, from its JSON text."""

    def __init__(self, case: Case, request: bytes | None = None) -> None:
        previous = case.previous
        self.case = case
        self.request = case.request_bytes if request is None else request
        self._desired = json.dumps(previous.desired)
        self._reported = json.dumps(previous.reported)
        self._body = previous.to_json()

    def ours(self, count: int) -> Sequence[ShadowDocument]:
        # Parsed from the GetThingShadow body, as a fetched shadow is held; parsing measures the
        # document's size once, and updates derive the next size from it.
        return [ShadowDocument.from_json(self._body, limits=LIMITS) for _ in range(count)]

    def moto(self, count: int) -> Sequence[Any]:
        version = self.case.previous.version
        return [
            _FAKE_SHADOW(json.loads(self._desired), json.loads(self._reported), None, version)
            for _ in range(count)
        ]

    def apply(self, document: ShadowDocument) -> UpdateResult:
        return apply_update(document, self.request, timestamp=UPDATE_TIMESTAMP, limits=LIMITS)

    def apply_accepted(self, document: ShadowDocument) -> object:
        return self.apply(document).accepted

    def apply_all(self, document: ShadowDocument) -> object:
        result = self.apply(document)
        # Each body is a cached property: reading it renders it, and the check reads it back.
        _ = result.accepted, result.delta, result.documents
        return result

    def moto_update(self, previous: Any) -> object:
        payload = json.loads(self.request)
        shadow = _FAKE_SHADOW.create_from_previous_version(previous, payload)
        return shadow, shadow.to_response_dict()


def _equal(label: str, ours: Any, theirs: Any) -> list[str]:
    if json_equal(ours, theirs):
        return []
    if isinstance(ours, dict) and isinstance(theirs, dict):
        keys = sorted(set(ours) | set(theirs))
        differing = [key for key in keys if not json_equal(ours.get(key), theirs.get(key))]
        return [f"{label}: differs at keys {differing[:5]}"]
    return [f"{label}: ours {str(ours)[:120]!r} vs moto {str(theirs)[:120]!r}"]


def _check_accepted(accepted: Any, response: Any) -> list[str]:
    return _equal("accepted body", strip_timestamps(accepted), strip_timestamps(response))


def _check_document(document: ShadowDocument, shadow: Any) -> list[str]:
    return [
        *_equal("desired", document.desired, shadow.desired or {}),
        *_equal("reported", document.reported, shadow.reported or {}),
        *_equal("version", document.version, shadow.version),
        *_equal(
            "desired metadata (timestamps ignored)",
            strip_timestamps(document.desired_metadata),
            strip_timestamps(shadow.metadata_desired or {}),
        ),
        *_equal(
            "reported metadata (timestamps ignored)",
            strip_timestamps(document.reported_metadata),
            strip_timestamps(shadow.metadata_reported or {}),
        ),
    ]


def _unpack(peer: object) -> tuple[Any, Any]:
    assert isinstance(peer, tuple), f"moto returned {type(peer).__name__}"
    return peer[0], peer[1]


def _check_with_accepted(ours: object, peer: object) -> list[str]:
    _, response = _unpack(peer)
    return _check_accepted(ours, response)


def _check_alone(ours: object, peer: object) -> list[str]:
    shadow, _ = _unpack(peer)
    if not isinstance(ours, UpdateResult):
        return [f"apply_update returned {type(ours).__name__}"]
    return _check_document(ours.document, shadow)


def _check_all(case: Case) -> Check:
    def check(ours: object, peer: object) -> list[str]:
        shadow, response = _unpack(peer)
        if not isinstance(ours, UpdateResult):
            return [f"apply_update returned {type(ours).__name__}"]
        moto_delta = normalise_moto_delta(
            _FAKE_SHADOW.parse_payload(shadow.desired, shadow.reported),
            shadow.desired,
            shadow.reported,
        )
        moto_state = shadow.to_dict(include_delta=False)["state"]
        problems = [
            *_check_accepted(ours.accepted, response),
            *_check_document(ours.document, shadow),
            *_equal("delta state", None if ours.delta is None else ours.delta["state"], moto_delta),
            *_equal("documents.current.state", ours.documents["current"]["state"], moto_state),
        ]
        previous = ours.documents.get("previous")
        if not isinstance(previous, dict) or previous.get("version") != case.previous.version:
            problems.append("documents.previous is missing or has the wrong version")
        return problems

    return check


def comparisons(case: Case) -> list[Comparison]:
    """The update comparisons for one case, all against the same moto update path.

    The first three rows apply the case's update request; the last one a request that carries
    the whole reported section.
    """
    fixture = _Fixture(case)
    moto = Bench(MOTO_UPDATE, fixture.moto_update, fixture.moto, cleanup=forget_moto_shadows)
    whole = _Fixture(case, case.whole_report_bytes)
    return [
        Comparison(
            group="update",
            operation="apply_update + accepted",
            ours=Bench(
                "shadowsync.apply_update(previous, request, timestamp=...).accepted",
                fixture.apply_accepted,
                fixture.ours,
            ),
            peer=moto,
            peer_label="moto update",
            check=_check_with_accepted,
            target="update",
        ),
        Comparison(
            group="update",
            operation="apply_update alone",
            ours=Bench(
                "shadowsync.apply_update(previous, request, timestamp=...)",
                fixture.apply,
                fixture.ours,
            ),
            peer=moto,
            peer_label="moto update",
            check=_check_alone,
        ),
        Comparison(
            group="update",
            operation="apply_update + accepted + delta + documents",
            ours=Bench(
                "shadowsync.apply_update(...) then .accepted, .delta, .documents",
                fixture.apply_all,
                fixture.ours,
            ),
            peer=moto,
            peer_label="moto update",
            check=_check_all(case),
        ),
        Comparison(
            group="update",
            operation="apply_update + accepted (whole reported section)",
            ours=Bench(
                "shadowsync.apply_update(previous, whole_report, timestamp=...).accepted",
                whole.apply_accepted,
                whole.ours,
            ),
            peer=Bench(
                MOTO_UPDATE.replace("request", "whole_report"),
                whole.moto_update,
                whole.moto,
                cleanup=forget_moto_shadows,
            ),
            peer_label="moto update",
            check=_check_with_accepted,
            target="update-whole",
        ),
    ]
