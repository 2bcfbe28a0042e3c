"""JSON at the boundary: decoding payloads, validating and copying values, exact equality.

Everything that enters shadowsync from outside passes through here once, so the rest of the
core can assume plain, finite, depth-bounded JSON made of ``dict``/``list``/scalars.
"""

from __future__ import annotations

import io
import json
import marshal
import math
import pickle
import re
from collections.abc import Mapping
from typing import Any, Literal, NoReturn, TypeAlias, cast, get_args

from shadowsync.errors import InvalidRequestError, UnsupportedEncodingError

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
"""Any JSON value, as the standard library's `json` module represents it."""

JSONObject: TypeAlias = dict[str, JSONValue]
"""A JSON object."""

NESTING_MESSAGE = "JSON contains too many levels of nesting; maximum is {depth}"
INVALID_JSON = "Invalid JSON"
NULL_IN_ARRAY = "Array values must not be null"

_COMPACT = (",", ":")
# Built once: json.dumps with any non-default option builds a new encoder on every call.
_encode_compact = json.JSONEncoder(separators=_COMPACT, ensure_ascii=False).encode
_encode_canonical = json.JSONEncoder(separators=_COMPACT, sort_keys=True, ensure_ascii=True).encode
_encode_ascii_string = json.encoder.encode_basestring_ascii


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads with parse_constant builds a new decoder (and its scanner) per call.
_decoder = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    """``json.loads(text, parse_constant=_reject_constant)``, with the decoder built once."""
    if text.startswith("\ufeff"):  # as json.loads refuses it, word for word
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _decoder.decode(text)


def decode_payload(payload: bytes | bytearray | memoryview | str, *, max_depth: int) -> Any:
    """Decode a UTF-8 JSON payload, mapping every failure to the AWS rejection for it."""
    if isinstance(payload, str):
        text = payload
    elif isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsupportedEncodingError(detail=f"payload is not UTF-8: {exc.reason}") from None
    else:
        raise InvalidRequestError(
            INVALID_JSON,
            detail=f"expected bytes, str or a mapping, got {type(payload).__name__}",
        )
    try:
        return _loads(text)
    except RecursionError:
        raise InvalidRequestError(
            NESTING_MESSAGE.format(depth=max_depth), detail="payload nests too deeply to parse"
        ) from None
    except ValueError as exc:
        # JSONDecodeError, NaN/Infinity, and integers beyond the interpreter's digit limit.
        raise InvalidRequestError(INVALID_JSON, detail=str(exc)) from None


def decode_json(payload: bytes | str, *, max_depth: int) -> JSONValue:
    """Decode a JSON text of any shape (a file, a configuration): `decode_payload`, then the
    checks of `plain_json` (those `normalize_section` makes of a section), ``null`` anywhere.

    Refused, with `InvalidRequestError`: numbers beyond a float's range (``1e400`` decodes to
    infinity), strings holding a lone UTF-16 surrogate (``"\\ud800"``, which no UTF-8 text can
    hold), and nesting deeper than ``max_depth`` levels (objects and arrays count, the outermost
    is level 1); `decode_payload` refuses the rest.

    ```pycon
    >>> decode_json(b'{"on": [true, null]}', max_depth=2)
    {'on': [True, None]}
    >>> try:
    ...     decode_json('{"limits": {"max": 1e400}}', max_depth=8)
    ... except InvalidRequestError as err:
    ...     print(err.detail)
    a number beyond a float's range (inf) at limits.max

    ```
    """
    value = decode_payload(payload, max_depth=max_depth)
    try:
        # Decoded JSON holds only the plain types, so the strict walk takes all it should.
        plain = plain_json(value, max_depth=max_depth, lenient=False)
    except JSONProblem as bad:
        message = NESTING_MESSAGE.format(depth=max_depth) if bad.kind == "depth" else INVALID_JSON
        reason = bad.reason(
            {
                # A literal such as 1e400 decodes to infinity (NaN and Infinity do not decode).
                "number": "a number beyond a float's range ({value})",
                "depth": f"more than {max_depth} levels of nesting",
            }
        )
        # A path to a level too deep is as long as the limit: its start says where.
        where = f" at {_shorten(bad.location(''))}" if bad.path else ""
        raise InvalidRequestError(message, detail=reason + where) from None
    return plain


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message: shortened, and never failing.

    Untrusted input may hold ints too long to print or objects whose ``repr`` raises; a message
    about bad input must not fail itself.

    ```pycon
    >>> describe(10**5000)
    '<int of about 5001 digits>'
    >>> describe("x" * 100)[-5:]
    'xx...'

    ```
    """
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (value.bit_length() > _INT_BITS_CHECK)
    ):
        try:
            text = str(value)
        except ValueError:
            return f"<int of about {int(value.bit_length() * 0.30103) + 1} digits>"
    else:
        try:
            text = repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_kind(value: object) -> str | None:
    """The JSON type of ``value`` (``"string"``), ``None`` for a value JSON has no type for."""
    kind = _PLAIN_KINDS.get(type(value))
    if kind is not None:
        return kind  # a plain JSON value: no isinstance chain
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return None


_PLAIN_KINDS = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


def kind_phrase(value: object) -> str:
    """The JSON type of ``value`` as a phrase for messages (``"a string"``, ``"null"``)."""
    # A tuple is how Python code usually hands over an array, so it is named as one here.
    kind = "array" if isinstance(value, tuple) else _json_kind(value)
    if kind is None:
        return f"a {type(value).__name__}"
    if kind == "null":
        return kind
    return f"an {kind}" if kind in ("array", "object") else f"a {kind}"


def json_type_name(value: object) -> str:
    """The JSON type of a value: ``boolean``, ``number``, ``string``, ``array``, ``object``,
    ``null`` (anything else counts as ``object``)."""
    kind = _json_kind(value)
    return "object" if kind is None else kind


def format_path(parts: list[str | int] | tuple[str | int, ...]) -> str:
    """Render a path such as ``desired.lights[2].color`` for error messages."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def json_pointer(path: tuple[str, ...] | list[str]) -> str:
    """The RFC 6901 JSON Pointer of a path of object keys, e.g. ``/firmware/version``."""
    if not path:
        return ""
    pointer = "/" + "/".join(path)
    # The usual keys hold neither "~" nor "/": then there is nothing to escape (a key's own
    # "/" would show as one slash more than the path has keys).
    if "~" not in pointer and pointer.count("/") == len(path):
        return pointer
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path)


_POINTER = re.compile(r"(/([^~/]|~[01])*)+")


def parse_json_pointer(text: str) -> tuple[str, ...] | None:
    """The keys of a non-empty RFC 6901 JSON Pointer, or ``None`` when ``text`` is not one."""
    if _POINTER.fullmatch(text) is None:
        return None
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in text.split("/")[1:])


def normalize_section(value: Any, *, section: str, max_depth: int, nulls: bool) -> JSONObject:
    """Validate a ``desired``/``reported`` object and return a private, normalized copy.

    ``nulls`` says whether ``null`` may appear as an object member (it may in an update, where
    it deletes, but never in a stored document). ``null`` inside an array is always refused.
    The section object itself is nesting level 1; arrays count as levels, leaves do not.
    """
    if not isinstance(value, Mapping):
        raise InvalidRequestError(INVALID_JSON, detail=f"{section} is not an object")
    rules = _MEMBER_NULLS if nulls else _NO_NULLS
    try:
        result = _walk(value, 1, max_depth, rules, rules.member_null)
    except JSONProblem as bad:
        if bad.kind == "depth":
            message = NESTING_MESSAGE.format(depth=max_depth)
        else:
            message = NULL_IN_ARRAY if bad.kind == "null_in_array" else INVALID_JSON
        raise InvalidRequestError(
            message, detail=f"{bad.reason()} at {bad.location(section)}"
        ) from None
    assert isinstance(result, dict)
    return result


JSONProblemKind: TypeAlias = Literal[
    "number", "digits", "surrogate", "key", "type", "null", "null_in_array", "depth"
]
"""What `plain_json` found wrong: a NaN or infinity, an int too long to write, a lone
surrogate, a key that is not a string, a value of no JSON type, a null where none may be (in an
array, or anywhere), a container nested too deep."""

Nulls: TypeAlias = Literal["anywhere", "members", "nowhere"]
"""Where `plain_json` takes ``null``: anywhere, as object members only (an update's deletes;
never inside an array), or nowhere."""

_REASONS: dict[str, str] = {
    "number": "{value} is not a JSON number",
    "digits": "an integer has more digits than this interpreter converts",
    "surrogate": "a string holds a lone UTF-16 surrogate, which is not UTF-8",
    "key": "object key {value} is not a string",
    "type": "{type} is not a JSON type",
    "null": "null is not allowed here",
    "null_in_array": "null is not allowed here",
    "depth": "level {level} is too deep",
}


class JSONProblem(Exception):
    """What `plain_json` found wrong with a value, and where.

    ``kind`` says what is wrong; ``value`` is the offending value (or key) and ``level`` the
    nesting level of a container too deep. The location is built while the walk unwinds, so a
    valid value (the usual case) never pays for it. Each caller words the problem its own way
    (`reason`) and wraps it in its own error.
    """

    def __init__(self, kind: JSONProblemKind, value: object = None, *, level: int = 0) -> None:
        super().__init__(kind)
        self.kind = kind
        self.value = value
        self.level = level
        self.trail: list[str | int] = []
        """Keys and indexes from the problem up to the root (innermost first)."""

    @property
    def path(self) -> tuple[str | int, ...]:
        """Keys and indexes from the root down to the problem."""
        return tuple(reversed(self.trail))

    def location(self, root: str) -> str:
        """Where the problem is, below a value named ``root``: ``details.a[1].b``."""
        return format_path([root, *self.path])

    def reason(self, wording: Mapping[str, str] | None = None) -> str:
        """What is wrong, in words: ``wording[kind]`` where given, else the default text.

        A wording may use ``{value}`` (shortened ``repr``), ``{type}`` (the value's type name)
        and ``{level}``.
        """
        template = _REASONS[self.kind]
        if wording is not None:
            template = wording.get(self.kind, template)
        return template.format(
            value=describe(self.value), type=type(self.value).__name__, level=self.level
        )


class _Rules:
    """What one kind of `plain_json` walk accepts, besides its depth (see its arguments)."""

    __slots__ = ("array_null", "lenient", "member_null", "utf8")

    def __init__(self, nulls: Nulls, utf8: bool, lenient: bool) -> None:
        self.utf8 = utf8
        self.lenient = lenient
        # The problem a null is, in an object member and inside an array (None: it is fine).
        self.member_null: JSONProblemKind | None = "null" if nulls == "nowhere" else None
        self.array_null: JSONProblemKind | None = None if nulls == "anywhere" else "null_in_array"


# Made once for every kind of walk: `normalize_section` runs on every update, most of them
# small, and finds its rules without a lookup.
_RULES = {
    (nulls, utf8, lenient): _Rules(nulls, utf8, lenient)
    for nulls in get_args(Nulls)
    for utf8 in (False, True)
    for lenient in (False, True)
}
_MEMBER_NULLS = _RULES["members", True, True]
_NO_NULLS = _RULES["nowhere", True, True]


def plain_json(
    value: object,
    *,
    max_depth: int,
    nulls: Nulls = "anywhere",
    utf8: bool = True,
    lenient: bool = True,
) -> JSONValue:
    """A private copy of ``value`` as plain JSON, or `JSONProblem` saying what is wrong where.

    The one walk over values that come from outside: finite numbers, ints short enough to
    write, string keys, at most ``max_depth`` levels of containers (``value`` itself is level
    1; leaves do not count), ``null`` where ``nulls`` allows it. ``utf8`` refuses strings and
    keys holding a lone UTF-16 surrogate. ``lenient`` also takes other mappings, tuples and
    list subclasses, subclasses of the JSON scalar types (``IntEnum``, ``str`` enums) and
    ``str`` subclass keys, as their plain types; otherwise only ``dict``, ``list`` and the
    exact scalar types are JSON.

    ```pycon
    >>> plain_json({"a": (1, 2.5)}, max_depth=8)
    {'a': [1, 2.5]}
    >>> try:
    ...     plain_json({"a": [1, float("nan")]}, max_depth=8)
    ... except JSONProblem as bad:
    ...     print(bad.location("value"), bad.reason())
    value.a[1] nan is not a JSON number

    ```
    """
    rules = _RULES[nulls, utf8, lenient]
    result: JSONValue = _walk(value, 1, max_depth, rules, rules.member_null)
    return result


def _walk(
    value: Any, level: int, max_depth: int, rules: _Rules, null: JSONProblemKind | None
) -> Any:
    """Copy ``value`` as plain JSON; ``null`` is the problem a null is here (None: allowed)."""
    kind = type(value)
    if kind is str:
        if rules.utf8 and not value.isascii():
            _check_utf8(value)
        return value
    if kind is int:
        if value.bit_length() > _INT_BITS_CHECK:
            _check_int_digits(value)
        return value
    if kind is bool:
        return value
    if kind is float:
        if _isfinite(value):
            return value
        raise JSONProblem("number", value)
    if value is None:
        if null is None:
            return None
        raise JSONProblem(null)
    if kind is dict or kind is list:
        array = kind is list
    elif not rules.lenient:
        raise JSONProblem("type", value)
    elif isinstance(value, (list, tuple)):
        array = True
    elif isinstance(value, Mapping):
        array = False
    # Subclasses of the JSON scalar types (IntEnum, str-based enums, float subclasses).
    elif isinstance(value, bool):
        return bool(value)
    elif isinstance(value, int):
        return _walk(int(value), level, max_depth, rules, null)
    elif isinstance(value, float):
        return _walk(float(value), level, max_depth, rules, null)
    elif isinstance(value, str):
        return _walk(str(value), level, max_depth, rules, null)
    else:
        raise JSONProblem("type", value)
    if level > max_depth:
        raise JSONProblem("depth", value, level=level)
    utf8 = rules.utf8
    # Plain leaves are checked inline: a call per leaf would dominate validation.
    if array:
        # Inside an array nothing is a delete, so unless nulls are fine anywhere, a null is
        # refused at any depth below it.
        inner = rules.array_null
        items: list[JSONValue] = []
        for index, item in enumerate(value):
            leaf = type(item)
            if leaf is str:
                if item.isascii():
                    items.append(item)
                    continue
            elif leaf is int:
                if item.bit_length() <= _INT_BITS_CHECK:
                    items.append(item)
                    continue
            elif leaf is float:
                if _isfinite(item):
                    items.append(item)
                    continue
            elif leaf is bool:
                items.append(item)
                continue
            try:
                items.append(_walk(item, level + 1, max_depth, rules, inner))
            except JSONProblem as bad:
                bad.trail.append(index)
                raise
        return items
    out: JSONObject = {}
    for key, item in value.items():
        if type(key) is not str:
            if not (rules.lenient and isinstance(key, str)):
                raise JSONProblem("key", key)
            key = str(key)
        if utf8 and not key.isascii():
            _check_utf8(key)
        leaf = type(item)
        if leaf is str:
            if item.isascii():
                out[key] = item
                continue
        elif leaf is int:
            if item.bit_length() <= _INT_BITS_CHECK:
                out[key] = item
                continue
        elif leaf is float:
            if _isfinite(item):
                out[key] = item
                continue
        elif leaf is bool:
            out[key] = item
            continue
        try:
            out[key] = _walk(item, level + 1, max_depth, rules, null)
        except JSONProblem as bad:
            bad.trail.append(key)
            raise
    return out


_isfinite = math.isfinite


# Ints this large may exceed the interpreter's int <-> str digit limit (4300 by default).
_INT_BITS_CHECK = 14_000


def _check_int_digits(value: int) -> None:
    try:
        str(value)
    except ValueError:
        raise JSONProblem("digits", value) from None


def _check_utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JSONProblem("surrogate", text) from None


def json_equal(a: JSONValue, b: JSONValue) -> bool:
    """Compare two JSON values as JSON does: ``1 == 1.0`` but ``true != 1``.

    ```pycon
    >>> json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    True
    >>> json_equal(True, 1)
    False

    ```
    """
    if a is b:
        return True
    # Python's == settles inequality in C; equality needs care only because True == 1.
    if a != b:
        return False
    kind = type(a)
    if kind is not type(b):
        # Mixed int/float compare by value; every other mix of types differs.
        return (kind is int or kind is float) and (type(b) is int or type(b) is float)
    if kind is not dict and kind is not list:
        return True
    try:
        # marshal (format 2) tells True from 1 and 1 from 1.0: identical bytes, identical JSON.
        if marshal.dumps(a, 2) == marshal.dumps(b, 2):
            return True
    except ValueError:  # not marshallable: decide structurally
        pass
    return _equal_structure(a, b)


def pickled_alike(ours: list[Any], theirs: list[Any]) -> bool:
    """Whether each value in ``ours`` is exactly the one at its index in ``theirs``: the same
    types (``True`` is not ``1``, ``1`` is not ``1.0``), float signs and key order.

    One pickle of each list, compared, settles it in C. The pickler runs in fast mode, which
    keeps no memo, so how the values share objects (one string in many places, or a copy in
    each) cannot change the bytes; each value's bytes are self-delimiting, so the lists pickle
    alike exactly when every pair does. ``False`` also when a value cannot be pickled (it is
    not JSON): the caller then compares pair by pair.
    """
    try:
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
        pickler.fast = True  # no memo: the bytes depend on the values, not on object identity
        pickler.dump(ours)
        middle = buffer.tell()
        pickler.dump(theirs)
        pickled = buffer.getvalue()
    except Exception:  # not picklable (not JSON)
        return False
    return pickled[:middle] == pickled[middle:]


def _equal_structure(a: JSONValue, b: JSONValue) -> bool:
    kind = type(a)
    if kind is type(b):
        if kind is dict:
            da, db = cast("JSONObject", a), cast("JSONObject", b)
            if len(da) != len(db):
                return False
            for key, value in da.items():
                if key not in db or not _equal_structure(value, db[key]):
                    return False
            return True
        if kind is list:
            la, lb = cast("list[JSONValue]", a), cast("list[JSONValue]", b)
            return len(la) == len(lb) and all(map(_equal_structure, la, lb))
        return bool(a == b)
    return (kind is int or kind is float) and (type(b) is int or type(b) is float) and a == b


def copy_json(value: JSONValue) -> JSONValue:
    """Deep-copy plain JSON, sharing nothing with ``value`` (much faster than `copy.deepcopy`).

    marshal's format 2 writes no back-references, so the copy shares no object even where the
    original shares one in two places; values marshal cannot write are copied in Python.
    """
    kind = type(value)
    if kind is not dict and kind is not list:
        return value
    try:
        return cast("JSONValue", marshal.loads(marshal.dumps(value, 2)))
    except ValueError:  # an object marshal cannot write, or nesting beyond its limit
        return _copy_containers(value)


def _copy_containers(value: JSONValue) -> JSONValue:
    kind = type(value)
    if kind is dict:
        assert isinstance(value, dict)
        return {k: (_copy_containers(v) if type(v) in _CONTAINERS else v) for k, v in value.items()}
    if kind is list:
        assert isinstance(value, list)
        return [_copy_containers(v) if type(v) in _CONTAINERS else v for v in value]
    return value


_CONTAINERS = (dict, list)


def copy_object(value: JSONObject) -> JSONObject:
    """Deep-copy a JSON object."""
    result = copy_json(value)
    assert isinstance(result, dict)
    return result


def encoded_size(value: JSONValue) -> int:
    """Bytes of the compact UTF-8 JSON encoding of ``value``.

    Raises `InvalidRequestError` for strings that cannot be UTF-8 (lone surrogates).
    """
    try:
        return len(_encode_compact(value).encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidRequestError(
            INVALID_JSON, detail="a string holds a lone UTF-16 surrogate, which is not UTF-8"
        ) from None


def dumps_compact(value: Any) -> str:
    """Compact JSON text (the wire form used for MQTT payloads)."""
    return _encode_compact(value)


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, compact separators, ASCII-only (stable for hashing)."""
    # What the encoder writes for a lone string or number, without its overhead: tie-breaks
    # order values by this text, one scalar at a time.
    kind = type(value)
    if kind is str:
        return _encode_ascii_string(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and _isfinite(value):
        return float.__repr__(value)
    return _encode_canonical(value)
