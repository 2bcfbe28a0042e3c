"""The error tree, the rejected bodies, every rejection text the core produces, and check order.

Texts come from the ERR table (section 5 of ``spec/aws-shadow-semantics.md``); the order of the
checks and the clientToken echo are the brief's inferred choices 3 and 18.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from shadowsync import ShadowDocument, apply_update
from shadowsync.errors import (
    ForbiddenError,
    InternalFailureError,
    InvalidArgumentError,
    InvalidDocumentError,
    InvalidNameError,
    InvalidRequestError,
    MethodNotAllowedError,
    PatchError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    ShadowNotFoundError,
    ShadowRejectedError,
    ShadowSyncError,
    ThrottlingError,
    TopicError,
    UnauthorizedError,
    UnsupportedEncodingError,
    VersionConflictError,
    error_for_code,
)

T = 1_700_000_000
NESTING = "JSON contains too many levels of nesting; maximum is 6"
SEVEN_LEVELS: dict[str, Any] = {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}

REJECTIONS: list[tuple[type[ShadowRejectedError], int, str, str]] = [
    (InvalidRequestError, 400, "InvalidRequestException", "Invalid request"),
    (InvalidNameError, 400, "InvalidRequestException", "Invalid request"),
    (UnauthorizedError, 401, "UnauthorizedException", "Unauthorized"),
    (ForbiddenError, 403, "ForbiddenException", "Forbidden"),
    (ShadowNotFoundError, 404, "ResourceNotFoundException", "Thing not found"),
    (MethodNotAllowedError, 405, "MethodNotAllowedException", "Method not allowed"),
    (VersionConflictError, 409, "ConflictException", "Version conflict"),
    (
        PayloadTooLargeError,
        413,
        "RequestEntityTooLargeException",
        "The payload exceeds the maximum size allowed",
    ),
    (
        UnsupportedEncodingError,
        415,
        "UnsupportedDocumentEncodingException",
        "Unsupported documented encoding; supported encoding is UTF-8",
    ),
    (ThrottlingError, 429, "ThrottlingException", "The rate exceeds the limit."),
    (InternalFailureError, 500, "InternalFailureException", "Internal service failure"),
    (
        ServiceUnavailableError,
        503,
        "ServiceUnavailableException",
        "The service is temporarily unavailable.",
    ),
]


def stored(version: int = 2) -> ShadowDocument:
    return ShadowDocument(
        desired={"setpoint": 21}, desired_metadata={"setpoint": {"timestamp": T}}, version=version
    )


def rejected(payload: Any, document: ShadowDocument | None = None) -> dict[str, Any]:
    with pytest.raises(ShadowRejectedError) as info:
        apply_update(document, payload, timestamp=T)
    return info.value.to_rejected()


def message_of(payload: Any, document: ShadowDocument | None = None) -> str:
    body = rejected(payload, document)
    assert isinstance(body["message"], str)
    return body["message"]


# --- The error tree ---


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    sub: type
    for sub in cls.__subclasses__():
        found |= {sub} | _all_subclasses(sub)
    return found


def test_every_rejection_class_is_in_the_table() -> None:
    subclasses = {
        cls for cls in _all_subclasses(ShadowRejectedError) if cls.__module__ == "shadowsync.errors"
    }
    assert subclasses == {row[0] for row in REJECTIONS}


@pytest.mark.parametrize(
    ("cls", "code", "aws_exception", "default"), REJECTIONS, ids=[r[0].__name__ for r in REJECTIONS]
)
def test_rejection_class_code_exception_and_default_message(
    cls: type[ShadowRejectedError], code: int, aws_exception: str, default: str
) -> None:
    assert cls.code == code
    assert cls.aws_exception == aws_exception
    assert cls.default_message == default
    error = cls()
    assert error.message == default
    assert error.to_rejected() == {"code": code, "message": default}
    assert str(error) == f"{code} {default}"
    assert isinstance(error, ShadowRejectedError)
    assert isinstance(error, ShadowSyncError)


def test_hierarchy() -> None:
    assert issubclass(InvalidNameError, InvalidRequestError)
    for cls in (InvalidArgumentError, InvalidDocumentError, PatchError, TopicError):
        assert issubclass(cls, ShadowSyncError)
        assert not issubclass(cls, ShadowRejectedError)
    assert issubclass(ShadowSyncError, Exception)


def test_message_detail_and_str() -> None:
    error = VersionConflictError(detail="request version 3, shadow version 5")
    assert error.message == "Version conflict"
    assert error.detail == "request version 3, shadow version 5"
    assert str(error) == "409 Version conflict (request version 3, shadow version 5)"
    assert error.to_rejected() == {"code": 409, "message": "Version conflict"}


def test_to_rejected_includes_token_and_timestamp_only_when_set() -> None:
    assert ShadowNotFoundError("No shadow exists with name: 'x'").to_rejected() == {
        "code": 404,
        "message": "No shadow exists with name: 'x'",
    }
    assert VersionConflictError(timestamp=T).to_rejected() == {
        "code": 409,
        "message": "Version conflict",
        "timestamp": T,
    }
    assert VersionConflictError(client_token="c-1").to_rejected() == {
        "code": 409,
        "message": "Version conflict",
        "clientToken": "c-1",
    }
    assert VersionConflictError(client_token="c-1", timestamp=0).to_rejected() == {
        "code": 409,
        "message": "Version conflict",
        "timestamp": 0,
        "clientToken": "c-1",
    }
    assert VersionConflictError(client_token="").to_rejected()["clientToken"] == ""


def test_with_context_copies_type_message_detail_and_adds_context() -> None:
    original = InvalidNameError("Invalid thing name", detail="'a/b' has a slash")
    copy = original.with_context(client_token="tok", timestamp=T)
    assert type(copy) is InvalidNameError
    assert copy is not original
    assert (copy.message, copy.detail) == ("Invalid thing name", "'a/b' has a slash")
    assert copy.to_rejected() == {
        "code": 400,
        "message": "Invalid thing name",
        "timestamp": T,
        "clientToken": "tok",
    }
    assert original.to_rejected() == {"code": 400, "message": "Invalid thing name"}
    # None keeps what the error already carries.
    again = copy.with_context()
    assert (again.client_token, again.timestamp) == ("tok", T)
    replaced = copy.with_context(client_token="other")
    assert (replaced.client_token, replaced.timestamp) == ("other", T)


@pytest.mark.parametrize(
    ("code", "cls"),
    [(row[1], row[0]) for row in REJECTIONS if row[0] is not InvalidNameError],
)
def test_error_for_code_maps_each_code(code: int, cls: type[ShadowRejectedError]) -> None:
    error = error_for_code(code, "text", client_token="tok", timestamp=T)
    assert type(error) is cls
    assert error.to_rejected() == {
        "code": code,
        "message": "text",
        "timestamp": T,
        "clientToken": "tok",
    }
    assert error_for_code(code).message == cls.default_message


@pytest.mark.parametrize("code", [0, 200, 402, 418, 502, 999])
def test_error_for_code_unknown_code_is_500(code: int) -> None:
    error = error_for_code(code)
    assert type(error) is InternalFailureError
    assert error.to_rejected() == {"code": 500, "message": "Internal service failure"}
    assert error_for_code(code, "I'm a teapot").to_rejected() == {
        "code": 500,
        "message": "I'm a teapot",
    }


# --- Every 400 text the core produces (ERR) ---


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(b"{not json", "Invalid JSON", id="syntax"),
        pytest.param(b"", "Invalid JSON", id="empty-payload"),
        pytest.param(b'{"state": {"desired": {"t": NaN}}}', "Invalid JSON", id="nan-token"),
        pytest.param(b'{"state": {"desired": {"t": Infinity}}}', "Invalid JSON", id="inf-token"),
        pytest.param(b'{"state": {"desired": {"t": -Infinity}}}', "Invalid JSON", id="-inf"),
        pytest.param(b'{"state": {"desired": {"t": 1e400}}}', "Invalid JSON", id="1e400"),
        pytest.param(b'{"state": {"desired": {"s": "\\ud800"}}}', "Invalid JSON", id="surrogate"),
        pytest.param(b'{"state": {"desired": {"\\udfff": 1}}}', "Invalid JSON", id="surrogate-key"),
        pytest.param({"state": {"desired": {"t": float("nan")}}}, "Invalid JSON", id="py-nan"),
        pytest.param(
            {"state": {"desired": {"at": datetime.date(2024, 1, 1)}}}, "Invalid JSON", id="py-date"
        ),
        pytest.param({"state": {"desired": {"tags": {"a", "b"}}}}, "Invalid JSON", id="py-set"),
        pytest.param({"state": {"desired": {1: "x"}}}, "Invalid JSON", id="py-int-key"),
        pytest.param(b"{}", "Missing required node: state", id="no-state"),
        pytest.param(b'{"foo": {"state": {}}}', "Missing required node: state", id="nested-state"),
        pytest.param(b'{"state": "x"}', "State node must be an object", id="state-string"),
        pytest.param(b'{"state": 1}', "State node must be an object", id="state-number"),
        pytest.param(b'{"state": []}', "State node must be an object", id="state-array"),
        pytest.param(b'{"state": true}', "State node must be an object", id="state-bool"),
        pytest.param(b'{"state": {"desired": "x"}}', "Desired node must be an object", id="d-str"),
        pytest.param(b'{"state": {"desired": [1]}}', "Desired node must be an object", id="d-arr"),
        pytest.param(b'{"state": {"desired": 0}}', "Desired node must be an object", id="d-num"),
        pytest.param(b'{"state": {"reported": 5}}', "Reported node must be an object", id="r-num"),
        pytest.param(
            b'{"state": {"reported": false}}', "Reported node must be an object", id="r-bool"
        ),
        pytest.param(b'{"state": {}, "version": "3"}', "Invalid version", id="version-string"),
        pytest.param(b'{"state": {}, "version": 1.5}', "Invalid version", id="version-float"),
        pytest.param(b'{"state": {}, "version": 2.0}', "Invalid version", id="version-2.0"),
        pytest.param(b'{"state": {}, "version": true}', "Invalid version", id="version-bool"),
        pytest.param(b'{"state": {}, "version": -1}', "Invalid version", id="version-negative"),
        pytest.param(b'{"state": {}, "version": {}}', "Invalid version", id="version-object"),
        pytest.param(b'{"state": {}, "clientToken": 5}', "Invalid clientToken", id="token-number"),
        pytest.param(b'{"state": {}, "clientToken": null}', "Invalid clientToken", id="token-null"),
        pytest.param(
            b'{"state": {}, "clientToken": "' + b"x" * 65 + b'"}',
            "Invalid clientToken",
            id="token-65-bytes",
        ),
        pytest.param(
            b'{"state": {}, "clientToken": "\\ud800"}', "Invalid clientToken", id="token-surrogate"
        ),
        pytest.param({"state": {"desired": SEVEN_LEVELS}}, NESTING, id="nesting"),
        pytest.param(
            b'{"state": {"foo": {}}}', "State contains an invalid node: 'foo'", id="node-foo"
        ),
        pytest.param(
            b'{"state": {"Desired": {}}}', "State contains an invalid node: 'Desired'", id="case"
        ),
        pytest.param(
            b'{"state": {"metadata": {}}}',
            "State contains an invalid node: 'metadata'",
            id="node-metadata",
        ),
        pytest.param(
            b'{"state": {"desired": {"colors": [null, "RED", "GREEN"]}}}',
            "Array values must not be null",
            id="doc-array-null",
        ),
        pytest.param(
            b'{"state": {"reported": {"m": [[1], [null]]}}}',
            "Array values must not be null",
            id="nested-array-null",
        ),
        pytest.param(
            b'{"state": {"desired": {"zones": [{"id": 1, "name": null}]}}}',
            "Array values must not be null",
            id="null-in-object-in-array",
        ),
    ],
)
def test_err_400_texts(payload: Any, message: str) -> None:
    assert rejected(payload) == {"code": 400, "message": message, "timestamp": T}


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff",
        b'{"state": {"desired": {"room": "K\xfcche"}}}',
        b"\xfe\xff\x00{\x00}",
        b'{"state": {}, "clientToken": "\xc3"}',
    ],
    ids=["ff", "latin-1", "utf-16-bom", "truncated-sequence"],
)
def test_err_415_for_bytes_that_are_not_utf8(payload: bytes) -> None:
    assert rejected(payload) == {
        "code": 415,
        "message": "Unsupported documented encoding; supported encoding is UTF-8",
        "timestamp": T,
    }


def test_err_409_and_413_from_the_core() -> None:
    assert rejected({"state": {}, "version": 1}, stored(version=2)) == {
        "code": 409,
        "message": "Version conflict",
        "timestamp": T,
    }
    assert rejected({"state": {"reported": {"blob": "x" * 8200}}}) == {
        "code": 413,
        "message": "The payload exceeds the maximum size allowed",
        "timestamp": T,
    }


def test_err_rejections_raise_the_matching_classes() -> None:
    with pytest.raises(InvalidRequestError):
        apply_update(None, b"{}", timestamp=T)
    with pytest.raises(UnsupportedEncodingError):
        apply_update(None, b"\xff", timestamp=T)
    with pytest.raises(VersionConflictError):
        apply_update(stored(), {"state": {}, "version": 7}, timestamp=T)
    with pytest.raises(PayloadTooLargeError):
        apply_update(None, {"state": {"desired": {"x": "y" * 9000}}}, timestamp=T)


def test_request_of_unsupported_python_type_is_invalid_json() -> None:
    assert rejected(["state"]) == {"code": 400, "message": "Invalid JSON", "timestamp": T}
    assert rejected(42) == {"code": 400, "message": "Invalid JSON", "timestamp": T}


# --- Check order (inferred 3) ---


@pytest.mark.parametrize(
    ("payload", "document", "message"),
    [
        pytest.param(
            b'{"clientToken": 5, "state": "\xff"',
            None,
            "Unsupported documented encoding; supported encoding is UTF-8",
            id="encoding-before-syntax",
        ),
        pytest.param(
            b'{"clientToken": "' + b"x" * 65 + b'", "state": ',
            None,
            "Invalid JSON",
            id="syntax-before-token",
        ),
        pytest.param(b'[{"clientToken": 5}]', None, "Invalid JSON", id="non-object-before-token"),
        pytest.param(
            {"clientToken": 5, "version": "x", "state": "x"},
            None,
            "Invalid clientToken",
            id="token-before-version",
        ),
        pytest.param({"version": -1}, None, "Invalid version", id="version-before-missing-state"),
        pytest.param(
            {"version": "x", "state": {"desired": {"a": [None]}}},
            None,
            "Invalid version",
            id="version-before-section-contents",
        ),
        pytest.param(
            {"clientToken": "c", "State": {}},
            None,
            "Missing required node: state",
            id="missing-state",
        ),
        pytest.param(
            {"state": [{"foo": 1}]},
            None,
            "State node must be an object",
            id="state-type-before-nodes",
        ),
        pytest.param(
            {"state": {"desired": "x", "foo": {}}},
            None,
            "State contains an invalid node: 'foo'",
            id="invalid-node-before-section-type",
        ),
        pytest.param(
            b'{"state": {"desired": {}, "zeta": 1, "alpha": 2}}',
            None,
            "State contains an invalid node: 'zeta'",
            id="first-bad-node-in-document-order",
        ),
        pytest.param(
            {"state": {"desired": SEVEN_LEVELS}, "version": 9},
            stored(),
            NESTING,
            id="nesting-before-version-conflict",
        ),
        pytest.param(
            {"state": {"desired": {"a": [None]}}, "version": 9},
            stored(),
            "Array values must not be null",
            id="array-null-before-version-conflict",
        ),
        pytest.param(
            {"state": {"desired": {"a": float("inf")}}, "version": 9},
            stored(),
            "Invalid JSON",
            id="non-finite-before-version-conflict",
        ),
        pytest.param(
            b'{"state": {"desired": {"a": 1e400}}, "version": 9}',
            stored(),
            "Invalid JSON",
            id="1e400-before-version-conflict",
        ),
        pytest.param(
            {"state": {"desired": {"blob": "x" * 9000}}, "version": 9},
            stored(),
            "Version conflict",
            id="version-conflict-before-size",
        ),
        pytest.param(
            {"state": {"desired": {"blob": "x" * 9000}}, "version": 2},
            stored(),
            "The payload exceeds the maximum size allowed",
            id="size-last",
        ),
    ],
)
def test_inferred_check_order(payload: Any, document: ShadowDocument | None, message: str) -> None:
    assert message_of(payload, document) == message


@pytest.mark.parametrize(
    "state",
    [
        pytest.param({"desired": SEVEN_LEVELS, "reported": "x"}, id="too-deep-vs-reported-type"),
        pytest.param({"desired": {"a": [None]}, "reported": 5}, id="array-null-vs-reported-type"),
        pytest.param(
            {"desired": {"a": float("nan")}, "reported": []}, id="non-finite-vs-reported-type"
        ),
    ],
)
def test_inferred_check_order_section_types_before_section_contents(state: Any) -> None:
    # Brief choice 3 puts the desired/reported type checks before the checks inside sections.
    assert message_of({"state": state}) == "Reported node must be an object"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            b'{"state": {"desired": {"s": "\\ud800"}}, "version": 9}', id="surrogate-value"
        ),
        pytest.param(
            b'{"state": {"reported": {"\\ud800": [1]}}, "version": 9}', id="surrogate-key"
        ),
    ],
)
def test_inferred_check_order_lone_surrogate_before_version_conflict(payload: bytes) -> None:
    assert rejected(payload, stored()) == {"code": 400, "message": "Invalid JSON", "timestamp": T}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"state": {"desired": {"\\ud800": null}}}', id="deleted-key"),
        pytest.param(
            b'{"state": {"desired": {"setpoint": {"\\udc00": null}}}}', id="deleted-nested-key"
        ),
        pytest.param({"state": {"reported": {"gone\ud800": None}}}, id="mapping-deleted-key"),
    ],
)
def test_inferred_lone_surrogate_in_a_deleted_key_is_invalid_json(payload: Any) -> None:
    # The key never reaches the stored document, but it does reach the accepted echo.
    assert rejected(payload, stored()) == {"code": 400, "message": "Invalid JSON", "timestamp": T}


def test_version_null_is_invalid_version() -> None:
    # Brief choice 3: "Invalid version" for a version that is not an int; null is not an int.
    assert rejected(b'{"state": {}, "version": null}', stored()) == {
        "code": 400,
        "message": "Invalid version",
        "timestamp": T,
    }


# --- clientToken echo in rejections (inferred 18) ---


@pytest.mark.parametrize(
    ("payload", "document", "code"),
    [
        pytest.param({"version": "x", "state": {}}, None, 400, id="invalid-version"),
        pytest.param({}, None, 400, id="missing-state"),
        pytest.param({"state": 3}, None, 400, id="state-type"),
        pytest.param({"state": {"foo": {}}}, None, 400, id="invalid-node"),
        pytest.param({"state": {"desired": 1}}, None, 400, id="desired-type"),
        pytest.param({"state": {"reported": 1}}, None, 400, id="reported-type"),
        pytest.param({"state": {"desired": SEVEN_LEVELS}}, None, 400, id="nesting"),
        pytest.param({"state": {"desired": {"a": [None]}}}, None, 400, id="array-null"),
        pytest.param({"state": {"desired": {"a": float("nan")}}}, None, 400, id="nan"),
        pytest.param({"state": {"desired": {"s": "\ud800"}}}, None, 400, id="lone-surrogate"),
        pytest.param({"state": {}, "version": 1}, stored(), 409, id="version-conflict"),
        pytest.param({"state": {"desired": {"x": "y" * 9000}}}, None, 413, id="too-large"),
    ],
)
def test_inferred_valid_client_token_is_echoed_in_rejections(
    payload: dict[str, Any], document: ShadowDocument | None, code: int
) -> None:
    body = rejected({**payload, "clientToken": "req-17"}, document)
    assert body["code"] == code
    assert body["clientToken"] == "req-17"
    assert body["timestamp"] == T


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"state": {}, "clientToken": "x" * 65}, id="too-long"),
        pytest.param({"state": {}, "clientToken": 17}, id="not-a-string"),
        pytest.param({"clientToken": "x" * 65}, id="too-long-and-missing-state"),
        pytest.param(b'{"clientToken": "ok", "state": ', id="unparseable"),
        pytest.param(b'{"clientToken": "ok", "state": {"a": "\xff"}}', id="not-utf8"),
        pytest.param(b'["clientToken", "ok"]', id="not-an-object"),
    ],
)
def test_inferred_invalid_or_unreadable_client_token_is_not_echoed(payload: Any) -> None:
    body = rejected(payload)
    assert "clientToken" not in body
    assert body["timestamp"] == T
