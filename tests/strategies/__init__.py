"""Hypothesis strategies shared by every test suite of shadowsync, and the oracles they feed.

Every feature extends this one package instead of growing private generators, so that all suites
draw shadow states, update requests, names and hostile inputs from the same definitions. This
module holds what every layer draws from (JSON values, documents, update requests, names, hostile
input, oracles); each layer's own strategies are a module beside it: `causality` (clocks and
version checks), `merge`, `rules`, `device` (queue, stores, session), `cloud`, and `fleet` (a
fleet of devices with history, for the cloud side).

The first half generates *valid* input: JSON values within the AWS limits (depth <= 6 counting
the ``desired``/``reported`` object as level 1, no ``null`` in stored state, no ``null`` in arrays),
update requests, GetThingShadow bodies, names and client tokens, and documents built by applying
sequences of updates. Sizes are kept small so that properties run fast.

The second half generates *hostile* input for the fuzz suites: arbitrary JSON with nulls, huge
integers, NaN and infinities, deep nesting, lone surrogates, Python objects that are not JSON at
all, bad names and topics.

The last part holds the independent oracles that the property suites compare the library
against (type-strict equality, leaf paths, metadata shape, "only shadowsync errors escape").
"""

from __future__ import annotations

import functools
import json
import math
import string
from fractions import Fraction
from typing import TYPE_CHECKING, Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st

from shadowsync import (
    DEFAULT_LIMITS,
    JSONObject,
    JSONValue,
    ShadowDocument,
    ShadowLimits,
    apply_update,
    errors,
    topics,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

T = TypeVar("T")

MAX_DEPTH = DEFAULT_LIMITS.max_depth
"""AWS nesting limit: the section object is level 1, arrays count, leaves do not."""

NESTING_TEXT = "JSON contains too many levels of nesting; maximum is 6"
"""The AWS rejection text for a request nested deeper than the default limit."""

ROOMY_LIMITS = ShadowLimits(max_document_bytes=30 * 1024)
"""The largest configurable size limit: for properties where a 413 would only be noise."""

FIRST_TIMESTAMP = 1_600_000_000
"""Epoch seconds at which generated histories start."""

# --------------------------------------------------------------------------------------------
# Valid JSON and shadow state
# --------------------------------------------------------------------------------------------

KEY_POOL = ("a", "b", "c", "on", "color", "mode", "timestamp", "version", "", "é", "日本")
"""Keys drawn often, so that generated states, patches and reports collide on the same keys."""

CROSS_TYPE_SCALARS: tuple[JSONValue, ...] = (0, 1, -1, 0.0, 1.0, -0.0, 2.5, True, False, "", "1")
"""Scalars that are equal across JSON types in Python (``1 == 1.0 == True``) but not all in JSON."""


@functools.cache
def json_scalars() -> st.SearchStrategy[JSONValue]:
    """Finite JSON scalars without ``null``: booleans, integers, floats (no NaN/inf), strings.

    ``CROSS_TYPE_SCALARS`` are drawn often so that ``1`` meets ``1.0`` and ``True`` meets ``1``.
    Strings never hold lone surrogates (they could not be UTF-8).
    """
    return st.one_of(
        st.sampled_from(CROSS_TYPE_SCALARS),
        st.integers(min_value=-(2**64), max_value=2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    )


@functools.cache
def shadow_keys() -> st.SearchStrategy[str]:
    """Object keys: mostly from ``KEY_POOL``, sometimes any short string (including ``""``)."""
    return st.one_of(st.sampled_from(KEY_POOL), st.text(max_size=6))


@functools.cache
def shadow_values(levels: int) -> st.SearchStrategy[JSONValue]:
    """Null-free JSON values holding at most ``levels`` nested containers (0: scalars only).

    Arrays and objects both count as a level. Arrays never contain ``null`` (AWS rejects that).
    """
    if levels <= 0:
        return json_scalars()
    inner = shadow_values(levels - 1)
    return st.one_of(
        json_scalars(),
        st.lists(inner, max_size=3),
        st.dictionaries(shadow_keys(), inner, max_size=3),
    )


def encoded_state_size(state: Mapping[str, Any]) -> int:
    """Bytes of compact UTF-8 JSON, the way AWS measures a state against the size limit."""
    text = json.dumps(state, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8"))


@functools.cache
def shadow_states(
    max_depth: int = MAX_DEPTH, max_bytes: int = 2048
) -> st.SearchStrategy[JSONObject]:
    """A ``desired`` or ``reported`` object as stored: no nulls, nesting <= ``max_depth``.

    The object itself is level 1, so its members hold at most ``max_depth - 1`` container
    levels. States are kept under ``max_bytes`` so that two of them fit in one document.
    """
    return st.dictionaries(shadow_keys(), shadow_values(max_depth - 1), max_size=4).filter(
        lambda state: encoded_state_size(state) <= max_bytes
    )


def _retyped(value: JSONValue) -> JSONValue:
    """An equal number of the other numeric type, or the bool/int twin (``1`` <-> ``True``)."""
    if type(value) is bool:
        return int(value)
    if type(value) is int:
        if value in (0, 1):
            return bool(value)
        if abs(value) <= 2**53:
            return float(value)
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def retyped(value: Any) -> Any:
    """A copy of ``value`` that Python finds equal, with its scalars of another type where one
    exists: ``True`` for ``1``, ``0`` for ``False``, ``2.0`` for ``2``, ``3`` for ``3.0``."""
    if isinstance(value, dict):
        return {key: retyped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [retyped(item) for item in value]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return bool(value) if value in (0, 1) else float(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _perturb(draw: st.DrawFn, value: JSONValue, levels: int) -> JSONValue:
    """A variant of ``value``: kept, replaced, retyped, or (for containers) changed inside."""
    kind = type(value)
    move = draw(st.sampled_from(("keep", "keep", "replace", "retype", "inside", "inside")))
    if move == "keep":
        return value
    if move == "replace":
        return draw(shadow_values(levels))
    if move == "retype" or kind not in (dict, list):
        return _retyped(value)
    if kind is list:
        assert isinstance(value, list)
        items = [_perturb(draw, item, levels - 1) for item in value]
        edit = draw(st.sampled_from(("none", "drop", "insert", "swap")))
        if edit == "drop" and items:
            items.pop(draw(st.integers(0, len(items) - 1)))
        elif edit == "insert":
            items.insert(draw(st.integers(0, len(items))), draw(shadow_values(levels - 1)))
        elif edit == "swap" and len(items) > 1:
            i, j = draw(st.lists(st.integers(0, len(items) - 1), min_size=2, max_size=2))
            items[i], items[j] = items[j], items[i]
        return items
    assert isinstance(value, dict)
    return _perturb_object(draw, value, levels - 1)


def _perturb_object(draw: st.DrawFn, value: JSONObject, levels: int) -> JSONObject:
    """Drop some keys, perturb others, add a few new ones; members hold <= ``levels`` levels."""
    out: JSONObject = {}
    for key, item in value.items():
        if draw(st.integers(0, 5)) == 0:
            continue
        out[key] = _perturb(draw, item, levels)
    extra = draw(st.dictionaries(shadow_keys(), shadow_values(levels), max_size=2))
    for key, item in extra.items():
        out.setdefault(key, item)
    return out


@functools.cache
@st.composite
def related_states(draw: st.DrawFn, max_depth: int = MAX_DEPTH) -> tuple[JSONObject, JSONObject]:
    """Two states where the second is derived from the first, so they share most of their keys.

    The second has keys dropped and added, leaves replaced, numbers retyped to an equal value of
    the other type (``1`` -> ``1.0``), ``0``/``1`` swapped with ``False``/``True``, and nested
    objects and arrays changed inside. Both stay within ``max_depth``.
    """
    first = draw(shadow_states(max_depth))
    second = _perturb_object(draw, first, max_depth - 1)
    return first, second


@functools.cache
def json_values(levels: int = 4) -> st.SearchStrategy[JSONValue]:
    """Any finite JSON value, ``null`` included anywhere (arrays too), at most ``levels`` deep.

    For laws that hold for all JSON (JSON Patch), not only for shadow state.
    """
    if levels <= 0:
        return st.one_of(st.none(), json_scalars())
    inner = json_values(levels - 1)
    return st.one_of(
        st.none(),
        json_scalars(),
        st.lists(inner, max_size=4),
        st.dictionaries(shadow_keys(), inner, max_size=3),
    )


@functools.cache
@st.composite
def related_values(draw: st.DrawFn, levels: int = 4) -> tuple[JSONValue, JSONValue]:
    """Two null-free JSON values of any type where the second is derived from the first (as in
    :func:`related_states`; arrays also get items inserted and swapped)."""
    first = draw(shadow_values(levels))
    return first, _perturb(draw, first, levels)


def nested_chain(levels: int, leaf: JSONValue = 1, *, key: str = "a") -> JSONValue:
    """``levels`` nested objects ``{"a": {"a": ... leaf}}`` (0 gives the leaf)."""
    value: JSONValue = leaf
    for _ in range(levels):
        value = {key: value}
    return value


def container_depth(value: object) -> int:
    """Containers (objects and arrays) on the longest path from ``value`` down; leaves count 0."""
    if isinstance(value, dict):
        return 1 + max((container_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((container_depth(item) for item in value), default=0)
    return 0


# --------------------------------------------------------------------------------------------
# Update requests
# --------------------------------------------------------------------------------------------


@functools.cache
def patch_values(levels: int) -> st.SearchStrategy[JSONValue]:
    """Values inside an update's section: like :func:`shadow_values` but objects may hold
    ``null`` members (which delete). Arrays still never hold ``null``."""
    if levels <= 0:
        return st.one_of(st.none(), json_scalars())
    return st.one_of(
        st.none(),
        json_scalars(),
        st.lists(shadow_values(levels - 1), max_size=3),
        st.dictionaries(shadow_keys(), patch_values(levels - 1), max_size=3),
    )


@functools.cache
def section_patches(max_depth: int = MAX_DEPTH) -> st.SearchStrategy[JSONObject]:
    """The ``desired``/``reported`` object of an update: nulls delete, objects merge."""
    return st.dictionaries(shadow_keys(), patch_values(max_depth - 1), max_size=3)


@functools.cache
@st.composite
def update_states(
    draw: st.DrawFn, sections: st.SearchStrategy[JSONObject] | None = None
) -> JSONObject | None:
    """The ``state`` node of an update request, or ``None`` for ``{"state": null}`` (clear).

    Each of ``desired``/``reported`` is absent, ``null`` (clear that section) or a patch drawn
    from ``sections`` (default :func:`section_patches`).
    """
    patches = section_patches() if sections is None else sections
    if draw(st.integers(0, 11)) == 0:
        return None
    state: JSONObject = {}
    for name in ("desired", "reported"):
        choice = draw(st.sampled_from(("absent", "null", "patch", "patch", "patch")))
        if choice == "null":
            state[name] = None
        elif choice == "patch":
            state[name] = draw(patches)
    return state


@functools.cache
@st.composite
def update_bodies(
    draw: st.DrawFn,
    versions: st.SearchStrategy[int | None] | None = None,
    client_token_values: st.SearchStrategy[str | None] | None = None,
    sections: st.SearchStrategy[JSONObject] | None = None,
) -> JSONObject:
    """Valid ``/update`` request documents (as mappings) with an optional version and token.

    ``versions`` and ``client_token_values`` default to "never present"; pass a strategy that
    may return ``None`` (left out) to include them.
    """
    body: JSONObject = {"state": draw(update_states(sections))}
    version = None if versions is None else draw(versions)
    if version is not None:
        body["version"] = version
    token = None if client_token_values is None else draw(client_token_values)
    if token is not None:
        body["clientToken"] = token
    return body


REQUEST_STATE_NODE_ERRORS: tuple[tuple[Any, str], ...] = (
    ({}, "Missing required node: state"),
    ({"desired": {"a": 1}}, "Missing required node: state"),
    ({"state": 1}, "State node must be an object"),
    ({"state": "x"}, "State node must be an object"),
    ({"state": []}, "State node must be an object"),
    ({"state": True}, "State node must be an object"),
    ({"state": {"foo": {}}}, "State contains an invalid node: 'foo'"),
    ({"state": {"desired": {}, "delta": {}}}, "State contains an invalid node: 'delta'"),
    ({"state": {"desired": 1}}, "Desired node must be an object"),
    ({"state": {"desired": "x"}}, "Desired node must be an object"),
    ({"state": {"reported": [1]}}, "Reported node must be an object"),
    ({"state": {"reported": False}}, "Reported node must be an object"),
    ({"state": {"desired": nested_chain(7)}}, NESTING_TEXT),
    ({"state": {"reported": {"a": [[[[[[1]]]]]]}}}, NESTING_TEXT),
    ({"state": {"desired": {"a": [1, None]}}}, "Array values must not be null"),
    ({"state": {"reported": {"a": {"b": [[None]]}}}}, "Array values must not be null"),
    ({"state": {"desired": {"a": math.nan}}}, "Invalid JSON"),
    ({"state": {"reported": {"a": [math.inf]}}}, "Invalid JSON"),
    ({"state": {"desired": {"a": {1, 2}}}}, "Invalid JSON"),
    ({"state": {}, "version": "1"}, "Invalid version"),
    ({"state": {}, "version": -1}, "Invalid version"),
    ({"state": {}, "version": True}, "Invalid version"),
    ({"state": {}, "version": 1.0}, "Invalid version"),
    ({"state": {}, "clientToken": "x" * 65}, "Invalid clientToken"),
    ({"state": {}, "clientToken": "é" * 33}, "Invalid clientToken"),
    ({"state": {}, "clientToken": 5}, "Invalid clientToken"),
    ("not json", "Invalid JSON"),
    ('{"state": {}', "Invalid JSON"),
    ("[]", "Invalid JSON"),
    ("null", "Invalid JSON"),
    ('"state"', "Invalid JSON"),
    ('{"state": {"desired": {"a": NaN}}}', "Invalid JSON"),
    ('{"state": {"desired": {"a": 1e400}}}', "Invalid JSON"),
)
"""Update requests AWS rejects with 400 before looking at the stored shadow, with the text."""


@st.composite
def rejected_updates(
    draw: st.DrawFn, document: ShadowDocument | None, limits: ShadowLimits = DEFAULT_LIMITS
) -> tuple[Any, int, str]:
    """An update request that must be rejected when applied to ``document``, with the HTTP code
    and AWS text of the rejection:
    a version other than the current one (409; any version when there is no shadow), a merged
    state over the size limit (413), a malformed request (400) or a payload that is not UTF-8
    (415)."""
    kind = draw(st.sampled_from(("version", "size", "request", "request", "encoding")))
    if kind == "version":
        current = None if document is None else document.version
        body = draw(update_bodies())
        body["version"] = draw(st.integers(0, 2**31).filter(lambda v: v != current))
        return body, 409, "Version conflict"
    if kind == "size":
        body = draw(update_bodies())
        state = body["state"] if isinstance(body["state"], dict) else {}
        name = draw(st.sampled_from(("desired", "reported")))
        patch = state.get(name)
        padded = dict(patch) if isinstance(patch, dict) else {}
        padded["\x00pad"] = "x" * limits.max_document_bytes
        body["state"] = {**state, name: padded}
        if document is not None and draw(st.booleans()):
            body["version"] = document.version
        return body, 413, "The payload exceeds the maximum size allowed"
    if kind == "encoding":
        text = json_text(draw(update_bodies()))
        at = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf")))
        payload = text[:at].encode("utf-8") + junk + text[at:].encode("utf-8")
        return payload, 415, "Unsupported documented encoding; supported encoding is UTF-8"
    payload, message = draw(st.sampled_from(REQUEST_STATE_NODE_ERRORS))
    return payload, 400, message


# --------------------------------------------------------------------------------------------
# Documents and GetThingShadow bodies
# --------------------------------------------------------------------------------------------


@functools.cache
@st.composite
def built_documents(
    draw: st.DrawFn,
    max_updates: int = 4,
    limits: ShadowLimits = DEFAULT_LIMITS,
    bodies: st.SearchStrategy[JSONObject] | None = None,
) -> ShadowDocument:
    """Documents made the way the service makes them: apply 1..``max_updates`` update bodies
    (default :func:`update_bodies`) at non-decreasing timestamps, skipping any that are rejected
    for size, starting from a random earlier version (a shadow re-created after a delete)."""
    requests = bodies if bodies is not None else update_bodies()
    timestamp = draw(st.integers(FIRST_TIMESTAMP, FIRST_TIMESTAMP + 10_000))
    document: ShadowDocument | None = None
    previous_version = draw(st.sampled_from((0, 0, 0, 1, 41)))
    for body in draw(st.lists(requests, min_size=1, max_size=max_updates)):
        timestamp += draw(st.integers(0, 50))
        try:
            result = apply_update(
                document,
                body,
                timestamp=timestamp,
                limits=limits,
                previous_version=previous_version,
            )
        except errors.PayloadTooLargeError:
            continue
        document = result.document
    if document is None:
        document = apply_update(None, {"state": {}}, timestamp=timestamp).document
    return document


def _metadata_for(value: JSONValue, stamps: Iterator[int]) -> Any:
    """Metadata mirroring ``value``, taking each leaf's timestamp from ``stamps``."""
    if type(value) is dict:
        assert isinstance(value, dict)
        return {key: _metadata_for(item, stamps) for key, item in value.items()}
    if type(value) is list:
        assert isinstance(value, list)
        return [_metadata_for(item, stamps) for item in value]
    return {"timestamp": next(stamps)}


def _leaf_times(first: int, last: int, step: int) -> Iterator[int]:
    """Timestamps that wander between ``first`` and ``last`` (one per leaf, without a draw each)."""
    span = last - first + 1
    index = 0
    while True:
        yield first + (index * step) % span
        index += 1


@functools.cache
@st.composite
def constructed_documents(draw: st.DrawFn, limits: ShadowLimits = DEFAULT_LIMITS) -> ShadowDocument:
    """Documents built directly: related desired/reported states with per-leaf metadata whose
    timestamps differ from leaf to leaf (all <= the document timestamp), any version >= 1."""
    desired, reported = draw(related_states())
    if draw(st.booleans()):
        desired, reported = reported, desired
    if draw(st.integers(0, 4)) == 0:
        desired = {}
    if draw(st.integers(0, 4)) == 0:
        reported = {}
    timestamp = draw(st.integers(FIRST_TIMESTAMP, FIRST_TIMESTAMP + 10_000))
    stamps = _leaf_times(FIRST_TIMESTAMP, timestamp, draw(st.integers(0, 7919)))
    document = ShadowDocument(
        desired=desired,
        reported=reported,
        desired_metadata=_metadata_for(desired, stamps),
        reported_metadata=_metadata_for(reported, stamps),
        version=draw(st.integers(min_value=1, max_value=2**40)),
        timestamp=timestamp,
    )
    if document.size > limits.max_document_bytes:
        # Rare: the derived state grew large. Keep desired alone, or nothing, to stay valid.
        document = ShadowDocument(
            desired=desired,
            desired_metadata=document.desired_metadata,
            version=document.version,
            timestamp=timestamp,
        )
    if document.size > limits.max_document_bytes:
        document = ShadowDocument(version=document.version, timestamp=timestamp)
    return document


@functools.cache
def shadow_documents(limits: ShadowLimits = DEFAULT_LIMITS) -> st.SearchStrategy[ShadowDocument]:
    """Any valid stored document: built by updates or constructed with drawn metadata."""
    return st.one_of(built_documents(limits=limits), constructed_documents(limits=limits))


@functools.cache
@st.composite
def get_bodies(draw: st.DrawFn) -> JSONObject:
    """GetThingShadow bodies as AWS returns them (``state`` with ``delta`` when present,
    ``metadata``, ``version``, ``timestamp``), sometimes without ``metadata`` or ``state.delta``,
    which a parser must tolerate."""
    document = draw(shadow_documents())
    body = document.to_dict(timestamp=document.timestamp + draw(st.integers(0, 100)))
    state = body["state"]
    assert isinstance(state, dict)
    if "delta" in state and draw(st.booleans()):
        del state["delta"]
    if draw(st.integers(0, 5)) == 0:
        del body["metadata"]
    return body


# --------------------------------------------------------------------------------------------
# Names and client tokens
# --------------------------------------------------------------------------------------------

THING_NAME_ALPHABET = string.ascii_letters + string.digits + ":_-"
"""Characters AWS allows in a thing name (``[a-zA-Z0-9:_-]``)."""

SHADOW_NAME_ALPHABET = THING_NAME_ALPHABET + "$"
"""Characters AWS allows in a shadow name (``[$a-zA-Z0-9:_-]``)."""

BAD_NAME_CHARACTERS = ("/", "+", "#", " ", "\x00", "\n", ".", "é", "\ud800", "\u200b", "*", "\\")
"""Characters no name may contain (``$`` is also bad in a thing name)."""


@functools.cache
def thing_names() -> st.SearchStrategy[str]:
    """Valid thing names: 1 to 128 characters of ``[a-zA-Z0-9:_-]``."""
    return st.one_of(
        st.text(THING_NAME_ALPHABET, min_size=1, max_size=12),
        st.text(THING_NAME_ALPHABET, min_size=120, max_size=128),
        st.sampled_from(("name", "shadow", "things", "update", "get", "-", ":")),
    )


@functools.cache
def shadow_names() -> st.SearchStrategy[str]:
    """Valid shadow names: 1 to 64 characters of ``[$a-zA-Z0-9:_-]`` (``name`` included)."""
    return st.one_of(
        st.text(SHADOW_NAME_ALPHABET, min_size=1, max_size=12),
        st.text(SHADOW_NAME_ALPHABET, min_size=60, max_size=64),
        st.sampled_from(("name", "shadow", "update", "delta", "$", "$aws")),
    )


@functools.cache
@st.composite
def _with_bad_character(draw: st.DrawFn, alphabet: str, bad: tuple[str, ...]) -> str:
    """A short string of ``alphabet`` with one character of ``bad`` inserted somewhere."""
    name = draw(st.text(alphabet, max_size=10))
    at = draw(st.integers(0, len(name)))
    return name[:at] + draw(st.sampled_from(bad)) + name[at:]


@functools.cache
def invalid_thing_names() -> st.SearchStrategy[str]:
    """Strings that are not thing names: empty, too long, or holding a forbidden character."""
    return st.one_of(
        st.just(""),
        st.text(THING_NAME_ALPHABET, min_size=129, max_size=140),
        _with_bad_character(THING_NAME_ALPHABET, (*BAD_NAME_CHARACTERS, "$")),
    )


@functools.cache
def invalid_shadow_names() -> st.SearchStrategy[str]:
    """Strings that are not shadow names: empty, too long, or holding a forbidden character."""
    return st.one_of(
        st.just(""),
        st.text(SHADOW_NAME_ALPHABET, min_size=65, max_size=80),
        _with_bad_character(SHADOW_NAME_ALPHABET, BAD_NAME_CHARACTERS),
    )


@functools.cache
def client_tokens() -> st.SearchStrategy[str]:
    """Valid client tokens: strings of at most 64 UTF-8 bytes (non-ASCII included)."""
    return st.one_of(
        st.text(max_size=16),
        st.text(string.printable, min_size=60, max_size=64),
        st.just("é" * 32),
    )


@functools.cache
def invalid_client_tokens() -> st.SearchStrategy[object]:
    """``clientToken`` values AWS rejects: over 64 UTF-8 bytes, not a string, or not UTF-8."""
    return st.one_of(
        st.text(string.printable, min_size=65, max_size=80),
        st.just("é" * 33),
        st.just("\ud800"),
        st.integers(),
        st.booleans(),
        st.lists(st.text(max_size=2), max_size=2),
        st.just({"token": "x"}),
    )


@functools.cache
def operation_response_pairs() -> st.SearchStrategy[
    tuple[topics.Operation, topics.Response | None]
]:
    """Every operation with every response that exists for it (``None``: the request topic)."""
    pairs: list[tuple[topics.Operation, topics.Response | None]] = [
        ("update", None),
        ("update", "accepted"),
        ("update", "rejected"),
        ("update", "delta"),
        ("update", "documents"),
        ("get", None),
        ("get", "accepted"),
        ("get", "rejected"),
        ("delete", None),
        ("delete", "accepted"),
        ("delete", "rejected"),
    ]
    return st.sampled_from(pairs)


# --------------------------------------------------------------------------------------------
# Hostile input for the fuzz suites
# --------------------------------------------------------------------------------------------


class Opaque:
    """A plain Python object that is not JSON."""

    def __repr__(self) -> str:
        return "Opaque()"


class IntSubclass(int):
    """An ``int`` subclass (as ``IntEnum`` values are)."""


class StrSubclass(str):
    """A ``str`` subclass (as ``StrEnum`` values are)."""


class FloatSubclass(float):
    """A ``float`` subclass."""


def digit_run(digits: int, digit: int = 9) -> int:
    """The integer written as ``digits`` copies of ``digit`` (built without str(), which refuses
    more than 4300 digits)."""
    return int(digit * (10**digits - 1)) // 9


@functools.cache
def huge_ints() -> st.SearchStrategy[int]:
    """Integers of up to ~5000 digits, around and beyond Python's 4300-digit str() limit."""
    digits = st.one_of(st.sampled_from((19, 20, 309, 4299, 4300, 4301, 5000)), st.integers(1, 5000))
    return st.tuples(digits, st.booleans()).map(
        lambda pair: (-1 if pair[1] else 1) * digit_run(pair[0])
    )


@functools.cache
def hostile_strings() -> st.SearchStrategy[str]:
    """Strings with any code point, lone surrogates included."""
    return st.text(
        st.one_of(st.characters(), st.sampled_from(("\ud800", "\udfff", "\x00", "\ufeff"))),
        max_size=8,
    )


@functools.cache
def hostile_scalars() -> st.SearchStrategy[Any]:
    """Scalars a JSON parser may produce, and worse: null, huge ints, NaN, infinities."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        huge_ints(),
        st.floats(),
        st.sampled_from((math.nan, math.inf, -math.inf, -0.0, 1e308)),
        hostile_strings(),
    )


@functools.cache
def hostile_json() -> st.SearchStrategy[Any]:
    """Arbitrary JSON-shaped values: nulls everywhere (arrays too), huge ints, non-finite
    floats, surrogate keys and strings, and chains nesting up to 60 levels deep."""
    tree = st.recursive(
        hostile_scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(shadow_keys(), hostile_strings()), inner, max_size=4),
        ),
        max_leaves=20,
    )
    return st.one_of(tree, deep_values(tree))


@st.composite
def deep_values(draw: st.DrawFn, leaves: st.SearchStrategy[Any]) -> Any:
    """A leaf wrapped in 1..60 objects and/or arrays (deep enough to pass any depth limit)."""
    value = draw(leaves)
    shape = draw(st.sampled_from(("object", "array", "mixed")))
    for level in range(draw(st.integers(1, 60))):
        wrap_in_object = shape == "object" or (shape == "mixed" and level % 2 == 1)
        value = {"a": value} if wrap_in_object else [value]
    return value


class _SelfReferencing:
    """Builders for containers that contain themselves."""

    @staticmethod
    def dict_(extra: dict[str, Any]) -> dict[str, Any]:
        value = dict(extra)
        value["self"] = value
        return value

    @staticmethod
    def list_(extra: list[Any]) -> list[Any]:
        value = list(extra)
        value.append(value)
        return value


@functools.cache
def python_objects() -> st.SearchStrategy[Any]:
    """Python values that are not plain JSON: sets, tuples, bytes, custom objects, subclasses of
    int/str/float (NaN included), complex numbers, dicts with non-string keys, self-referencing
    dicts and lists, plus the hostile scalars."""
    small = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none())
    return st.one_of(
        hostile_scalars(),
        st.sets(st.integers(), max_size=3),
        st.frozensets(st.text(max_size=2), max_size=2),
        st.tuples(small, small),
        st.binary(max_size=8),
        st.binary(max_size=8).map(bytearray),
        st.builds(Opaque),
        st.integers().map(IntSubclass),
        st.text(max_size=4).map(StrSubclass),
        st.sampled_from((FloatSubclass(math.nan), FloatSubclass(math.inf), FloatSubclass(1.5))),
        st.complex_numbers(max_magnitude=10),
        st.dictionaries(
            st.one_of(st.integers(), st.none(), st.tuples(small), st.binary(max_size=2)),
            small,
            min_size=1,
            max_size=3,
        ),
        st.dictionaries(shadow_keys(), small, max_size=2).map(_SelfReferencing.dict_),
        st.lists(small, max_size=2).map(_SelfReferencing.list_),
        st.just(object),
        st.just(Ellipsis),
    )


@functools.cache
def hostile_values() -> st.SearchStrategy[Any]:
    """Hostile JSON or Python objects, alone or nested inside objects and arrays (tuples too)."""
    return st.recursive(
        st.one_of(hostile_json(), python_objects()),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.lists(inner, max_size=3).map(tuple),
            st.dictionaries(st.one_of(shadow_keys(), hostile_strings()), inner, max_size=3),
        ),
        max_leaves=8,
    )


@functools.cache
@st.composite
def hostile_update_bodies(draw: st.DrawFn) -> dict[Any, Any]:
    """Mappings shaped like update requests, so that they reach the deeper checks: ``state``,
    its members, ``version`` and ``clientToken`` are each valid, hostile or left out."""
    body: dict[Any, Any] = {}
    shape = draw(st.sampled_from(("sections", "sections", "state", "missing")))
    if shape == "state":
        body["state"] = draw(hostile_values())
    elif shape == "sections":
        state: dict[Any, Any] = {}
        for name in ("desired", "reported"):
            pick = draw(st.sampled_from(("absent", "valid", "hostile", "hostile")))
            if pick == "valid":
                state[name] = draw(section_patches())
            elif pick == "hostile":
                inner = draw(hostile_values())
                state[name] = inner if draw(st.booleans()) else {"k": inner}
        if draw(st.integers(0, 6)) == 0:
            state[draw(hostile_strings())] = draw(hostile_values())
        body["state"] = state
    for field, valid in (
        ("version", st.integers(0, 5)),
        ("clientToken", client_tokens()),
    ):
        pick = draw(st.sampled_from(("absent", "absent", "valid", "hostile")))
        if pick == "valid":
            body[field] = draw(valid)
        elif pick == "hostile":
            body[field] = draw(st.one_of(python_objects(), invalid_client_tokens()))
    if draw(st.integers(0, 6)) == 0:
        body[draw(st.one_of(st.integers(), hostile_strings()))] = draw(hostile_values())
    return body


@functools.cache
@st.composite
def hostile_get_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """GetThingShadow bodies with one part (``state``, a section, ``delta``, ``metadata``, a
    section's metadata, ``version``, ``timestamp`` or a leaf) replaced by a hostile value."""
    body: dict[str, Any] = draw(get_bodies())
    hostile = draw(hostile_values())
    state = body["state"]
    metadata = body.setdefault("metadata", {})
    part = draw(
        st.sampled_from(
            (
                *("state", "desired", "reported", "delta", "metadata", "meta"),
                *("version", "timestamp", "leaf", "leaf", "extra"),
            )
        )
    )
    if part in ("state", "metadata", "version", "timestamp"):
        body[part] = hostile
    elif part in ("desired", "reported", "delta"):
        state[part] = hostile
    elif part == "meta":
        metadata[draw(st.sampled_from(("desired", "reported", "delta")))] = hostile
    elif part == "leaf":
        section = state.setdefault(draw(st.sampled_from(("desired", "reported"))), {})
        section[draw(st.one_of(shadow_keys(), hostile_strings()))] = hostile
    else:
        body[draw(hostile_strings())] = hostile
    return body


POINTERS = ("", "/", "/a", "/a/0", "/a/-", "/-", "/0", "/a/b/c", "/~0", "/~1", "/~2", "a", "/é")
"""JSON Pointers, valid and not, for hostile JSON Patch operations."""


@functools.cache
@st.composite
def hostile_json_patches(draw: st.DrawFn) -> Any:
    """Lists of RFC 6902 operations, valid and broken: unknown ops, bad pointers, missing or
    hostile members; sometimes not a list of operations at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(python_objects())
    pointers = st.one_of(st.sampled_from(POINTERS), hostile_strings(), python_objects())
    operations = []
    for _ in range(draw(st.integers(0, 4))):
        operation: dict[Any, Any] = {
            "op": draw(
                st.one_of(
                    st.sampled_from(("add", "remove", "replace", "move", "copy", "test", "x")),
                    python_objects(),
                )
            ),
            "path": draw(pointers),
        }
        if draw(st.booleans()):
            operation["value"] = draw(hostile_values())
        if draw(st.booleans()):
            operation["from"] = draw(pointers)
        operations.append(operation if draw(st.integers(0, 9)) else draw(python_objects()))
    return operations


def _int_text(value: int) -> str:
    """Decimal digits of any int, even beyond the interpreter's str() digit limit."""
    if value < 0:
        return "-" + _int_text(-value)
    chunk = 10**1000
    parts: list[str] = []
    while value >= chunk:
        value, rest = divmod(value, chunk)
        parts.append(str(rest).zfill(1000))
    parts.append(str(value))
    return "".join(reversed(parts))


def json_text(value: Any, *, ascii_only: bool = True) -> str:
    """Serialize like :func:`json.dumps` but also write what it refuses: ``NaN``, ``Infinity``,
    integers of any length, lone surrogates (escaped, or raw with ``ascii_only=False``).
    Tuples become arrays; non-string keys, other objects and cycles become strings."""
    return _json_text(value, ascii_only, set())


def _json_text(value: Any, ascii_only: bool, open_containers: set[int]) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return _int_text(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(float(value))
    if isinstance(value, str):
        return json.dumps(str(value), ensure_ascii=ascii_only)
    if isinstance(value, (list, tuple, dict)):
        if id(value) in open_containers:
            return '"cycle"'
        open_containers.add(id(value))
        if isinstance(value, dict):
            text = (
                "{"
                + ",".join(
                    json.dumps(str(key), ensure_ascii=ascii_only)
                    + ":"
                    + _json_text(item, ascii_only, open_containers)
                    for key, item in value.items()
                )
                + "}"
            )
        else:
            text = (
                "["
                + ",".join(_json_text(item, ascii_only, open_containers) for item in value)
                + "]"
            )
        open_containers.discard(id(value))
        return text
    return json.dumps(repr(value), ensure_ascii=ascii_only)


ODD_TOKENS = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1" + "0" * 5000,
    '"\\ud800"',
    '"\\udc00x"',
    "[1,null]",
    "[[[null]]]",
    "{}",
    "[]",
    "null",
    "00",
    "1.",
    "'x'",
    '"\\x"',
    "tru",
    "",
)
"""JSON tokens (and near-JSON) that parsers disagree about or must refuse."""


@functools.cache
@st.composite
def hostile_json_texts(draw: st.DrawFn) -> str:
    """Text that is JSON, nearly JSON, or not JSON: hostile values rendered by
    :func:`json_text`, odd tokens spliced into an update template, truncations, junk text."""
    shape = draw(st.sampled_from(("value", "body", "token", "cut", "junk")))
    ascii_only = draw(st.booleans())
    if shape == "value":
        return json_text(draw(hostile_json()), ascii_only=ascii_only)
    if shape == "body":
        return json_text(draw(hostile_update_bodies()), ascii_only=ascii_only)
    if shape == "token":
        template = draw(
            st.sampled_from(
                (
                    '{"state":{"desired":{"a":%s}}}',
                    '{"state":{"reported":{%s:1}}}',
                    '{"state":%s}',
                    '{"state":{"desired":%s}}',
                    '{"state":{},"version":%s}',
                    '{"state":{},"clientToken":%s}',
                    "%s",
                )
            )
        )
        return template.replace("%s", draw(st.sampled_from(ODD_TOKENS)))
    if shape == "cut":
        text = json_text(draw(update_bodies()), ascii_only=ascii_only)
        return text[: draw(st.integers(0, len(text)))]
    return draw(st.text())


def to_utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text``; lone surrogates are kept (as invalid UTF-8) instead of failing."""
    return text.encode("utf-8", "surrogatepass")


@functools.cache
def hostile_payloads() -> st.SearchStrategy[Any]:
    """Anything a caller might pass as an update payload: bytes, text, JSON texts as str and
    bytes, hostile mappings, and Python objects that are not payloads at all."""
    return st.one_of(
        st.binary(max_size=64),
        st.text(max_size=32),
        hostile_json_texts(),
        hostile_json_texts().map(to_utf8),
        hostile_update_bodies(),
        hostile_values(),
    )


TOPIC_WORDS = (
    "$aws",
    "things",
    "thing",
    "shadow",
    "name",
    "update",
    "get",
    "delete",
    "accepted",
    "rejected",
    "delta",
    "documents",
    "",
    "+",
    "#",
    "$",
    "lamp",
    "Shadow",
    "UPDATE",
    " ",
    "\x00",
    "é",
    "\ud800",
    "a" * 129,
)
"""Topic levels to shuffle into hostile topics: the real words, wildcards, case changes."""


@functools.cache
@st.composite
def hostile_topics(draw: st.DrawFn) -> str:
    """Strings near the reserved shadow topics: real topics with a level changed, added,
    dropped or re-cased, wildcard and empty levels, over-long names, and arbitrary text."""
    shape = draw(st.sampled_from(("words", "mutated", "mutated", "text")))
    if shape == "text":
        return draw(st.text())
    if shape == "words":
        levels = draw(st.lists(st.one_of(st.sampled_from(TOPIC_WORDS), st.text(max_size=4))))
        prefix = draw(st.sampled_from(("$aws/things/", "")))
        return prefix + "/".join(levels)
    operation, response = draw(operation_response_pairs())
    shadow = draw(st.one_of(st.none(), shadow_names()))
    levels = topics.build(draw(thing_names()), operation, response, shadow_name=shadow).split("/")
    at = draw(st.integers(0, len(levels) - 1))
    edit = draw(st.sampled_from(("replace", "insert", "drop", "case", "append")))
    word = draw(st.one_of(st.sampled_from(TOPIC_WORDS), hostile_strings()))
    if edit == "replace":
        levels[at] = word
    elif edit == "insert":
        levels.insert(at, word)
    elif edit == "drop":
        del levels[at]
    elif edit == "case":
        levels[at] = levels[at].swapcase()
    else:
        levels.append(word)
    return "/".join(levels)


@functools.cache
def hostile_names() -> st.SearchStrategy[Any]:
    """Anything passed where a thing or shadow name belongs: bad strings and non-strings."""
    return st.one_of(
        invalid_thing_names(), invalid_shadow_names(), hostile_strings(), python_objects()
    )


# --------------------------------------------------------------------------------------------
# Oracles: written independently of shadowsync, to compare it against
# --------------------------------------------------------------------------------------------


def typed_form(value: Any) -> Any:
    """A hashable form of a JSON value that keeps each scalar's exact type (``1``, ``1.0`` and
    ``True`` all differ), for type-strict comparison."""
    if isinstance(value, dict):
        return ("object", frozenset((key, typed_form(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(typed_form(item) for item in value))
    return (type(value).__name__, value)


def strict_equal(a: Any, b: Any) -> bool:
    """Type-strict JSON equality: ``1 != 1.0`` and ``True != 1``, objects ignore key order."""
    return bool(typed_form(a) == typed_form(b))


def value_form(value: Any) -> Any:
    """A hashable form of a JSON value under JSON's equality: numbers by exact value (``1`` equals
    ``1.0``), booleans apart from numbers, arrays in order, objects ignoring key order."""
    if isinstance(value, dict):
        return ("object", frozenset((key, value_form(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(value_form(item) for item in value))
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, (int, float)):
        return ("number", Fraction(value))
    if value is None:
        return ("null", None)
    return ("string", value)


def same_json(a: Any, b: Any) -> bool:
    """JSON equality by value (see :func:`value_form`)."""
    return bool(value_form(a) == value_form(b))


Path = tuple[str, ...]


def leaf_paths(state: Mapping[str, Any]) -> dict[Path, Any]:
    """Every leaf under an object, by key path: values that are not objects, and empty objects.
    Arrays are whole values (they are leaves)."""
    out: dict[Path, Any] = {}
    stack: list[tuple[Path, Mapping[str, Any]]] = [((), state)]
    while stack:
        prefix, node = stack.pop()
        for key, item in node.items():
            path = (*prefix, key)
            if isinstance(item, dict) and item:
                stack.append((path, item))
            else:
                out[path] = item
    return out


def from_leaf_paths(leaves: Mapping[Path, Any]) -> JSONObject:
    """Rebuild the object whose :func:`leaf_paths` are ``leaves``."""
    out: JSONObject = {}
    for path, value in leaves.items():
        node = out
        for key in path[:-1]:
            child = node.setdefault(key, {})
            assert isinstance(child, dict)
            node = child
        node[path[-1]] = value
    return out


def lookup(value: Any, path: Path) -> tuple[bool, Any]:
    """``(True, value at path)`` if every step of ``path`` is a key of an object, else
    ``(False, None)``."""
    node = value
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def contains_null(value: Any) -> bool:
    """True when ``null`` appears anywhere in ``value``."""
    stack = [value]
    while stack:
        node = stack.pop()
        if node is None:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def metadata_timestamps(value: Any, metadata: Any) -> list[int]:
    """The timestamps of ``metadata``, checking that it mirrors ``value`` exactly: an object per
    object, a list per array (one entry per element), ``{"timestamp": int}`` per leaf."""
    if isinstance(value, dict):
        assert isinstance(metadata, dict), f"metadata {metadata!r} does not mirror {value!r}"
        assert metadata.keys() == value.keys(), f"metadata keys {list(metadata)} != {list(value)}"
        return [t for key in value for t in metadata_timestamps(value[key], metadata[key])]
    if isinstance(value, list):
        assert isinstance(metadata, list), f"metadata {metadata!r} does not mirror {value!r}"
        assert len(metadata) == len(value), f"metadata {metadata!r} does not mirror {value!r}"
        return [
            t
            for item, meta in zip(value, metadata, strict=True)
            for t in metadata_timestamps(item, meta)
        ]
    assert isinstance(metadata, dict), f"leaf {value!r} has metadata {metadata!r}"
    assert list(metadata) == ["timestamp"], f"leaf {value!r} has metadata {metadata!r}"
    stamp = metadata["timestamp"]
    assert type(stamp) is int, f"leaf {value!r} has timestamp {stamp!r}"
    return [stamp]


FORBIDDEN_ESCAPES: tuple[type[BaseException], ...] = (
    RecursionError,
    KeyError,
    TypeError,
    ValueError,
    IndexError,
    AttributeError,
    UnicodeError,
)
"""Exceptions that must never escape the public API from deep inside (design, section 3)."""


def check_error(error: errors.ShadowSyncError) -> None:
    """Assert that a shadowsync error is one a person can act on: a message, and for service
    rejections an HTTP code matching its class and the AWS text."""
    assert str(error), f"{type(error).__name__} has an empty message"
    if isinstance(error, errors.ShadowRejectedError):
        assert type(error.code) is int, error.code
        assert 400 <= error.code <= 599, error.code
        assert isinstance(error.message, str), repr(error.message)
        assert error.message.strip(), repr(error.message)
        assert isinstance(error, type(errors.error_for_code(error.code)))
        body = error.to_rejected()
        assert body["code"] == error.code
        assert body["message"] == error.message


def outcome(call: Callable[[], T]) -> T | errors.ShadowSyncError:
    """Run ``call``; return its result or the :class:`ShadowSyncError` it raised (checked with
    :func:`check_error`). Any other exception fails the test, naming the escaped type."""
    try:
        return call()
    except errors.ShadowSyncError as error:
        check_error(error)
        return error
    except Exception as exc:
        listed = "forbidden " if isinstance(exc, FORBIDDEN_ESCAPES) else "non-shadowsync "
        raise AssertionError(f"{listed}{type(exc).__name__} escaped: {str(exc)[:300]}") from exc


def assert_wire_json(body: Any) -> None:
    """Assert that ``body`` can go on the wire: strict JSON (no NaN/inf) encodable as UTF-8."""
    try:
        text = json.dumps(body, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise AssertionError(f"not sendable as UTF-8 JSON ({exc}): {str(body)[:300]}") from None


def capped_examples(limit: int) -> settings:
    """Settings running at most ``limit`` examples (fewer when the active profile runs fewer),
    for properties whose inputs are expensive to generate."""
    active = settings.default
    assert active is not None
    return settings(max_examples=min(limit, active.max_examples))
