"""The shadowsync error tree.

Every error the public API raises on bad input is a `ShadowSyncError`. Errors that mirror a
rejection by the AWS IoT Device Shadow service are `ShadowRejectedError` subclasses: they
carry the HTTP status as ``code`` and the exact AWS text as ``message``, and render the body AWS
publishes on ``*/rejected``:

```pycon
>>> from shadowsync import apply_update
>>> from shadowsync.errors import ShadowRejectedError
>>> try:
...     apply_update(None, b'{"state": 1, "clientToken": "t1"}', timestamp=1700000000)
... except ShadowRejectedError as err:
...     body = err.to_rejected()
>>> body["code"], body["message"], body["clientToken"]
(400, 'State node must be an object', 't1')

```
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ForbiddenError",
    "InternalFailureError",
    "InvalidArgumentError",
    "InvalidDocumentError",
    "InvalidNameError",
    "InvalidRequestError",
    "MethodNotAllowedError",
    "PatchError",
    "PayloadTooLargeError",
    "ServiceUnavailableError",
    "ShadowNotFoundError",
    "ShadowRejectedError",
    "ShadowSyncError",
    "ThrottlingError",
    "TopicError",
    "UnauthorizedError",
    "UnsupportedEncodingError",
    "VersionConflictError",
    "error_for_code",
]


class ShadowSyncError(Exception):
    """Root of every error shadowsync raises on bad input or a refused operation."""


class InvalidArgumentError(ShadowSyncError):
    """A Python-level argument is of the wrong type or out of range (a caller bug)."""


class InvalidDocumentError(ShadowSyncError):
    """A shadow document (for example a GetThingShadow body) is malformed."""


class PatchError(ShadowSyncError):
    """A JSON Patch or JSON Merge Patch is malformed or cannot be applied."""


class TopicError(ShadowSyncError):
    """A string is not a reserved AWS IoT shadow topic."""


class ShadowRejectedError(ShadowSyncError):
    """A request the shadow service rejects, with the AWS status code and message text.

    ``message`` is the exact text AWS puts in the rejected body. ``detail`` is an optional
    explanation for people (which field, which limit) that never goes on the wire.
    """

    code: ClassVar[int] = 400
    aws_exception: ClassVar[str] = "InvalidRequestException"
    default_message: ClassVar[str] = "Invalid request"

    def __init__(
        self,
        message: str | None = None,
        *,
        detail: str | None = None,
        client_token: str | None = None,
        timestamp: int | None = None,
    ) -> None:
        self.message = message if message is not None else self.default_message
        self.detail = detail
        self.client_token = client_token
        self.timestamp = timestamp
        text = f"{self.code} {self.message}"
        if detail:
            text = f"{text} ({detail})"
        super().__init__(text)

    def to_rejected(self) -> dict[str, Any]:
        """Render the ``*/rejected`` body AWS publishes for this error."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.timestamp is not None:
            body["timestamp"] = self.timestamp
        if self.client_token is not None:
            body["clientToken"] = self.client_token
        return body

    def with_context(
        self, *, client_token: str | None = None, timestamp: int | None = None
    ) -> ShadowRejectedError:
        """Return a copy of this error carrying the request's client token and time."""
        return type(self)(
            self.message,
            detail=self.detail,
            client_token=client_token if client_token is not None else self.client_token,
            timestamp=timestamp if timestamp is not None else self.timestamp,
        )


class InvalidRequestError(ShadowRejectedError):
    """400: the request is malformed (bad JSON, bad state node, bad version or token, too deep)."""

    code = 400
    aws_exception = "InvalidRequestException"
    default_message = "Invalid request"


class InvalidNameError(InvalidRequestError):
    """400: a thing or shadow name breaks the AWS naming rules or would change a topic's meaning."""


class UnauthorizedError(ShadowRejectedError):
    """401: the caller is not authorized."""

    code = 401
    aws_exception = "UnauthorizedException"
    default_message = "Unauthorized"


class ForbiddenError(ShadowRejectedError):
    """403: the caller may not perform this operation."""

    code = 403
    aws_exception = "ForbiddenException"
    default_message = "Forbidden"


class ShadowNotFoundError(ShadowRejectedError):
    """404: the thing or shadow does not exist (or was deleted)."""

    code = 404
    aws_exception = "ResourceNotFoundException"
    default_message = "Thing not found"


class MethodNotAllowedError(ShadowRejectedError):
    """405: the operation is not allowed on this resource."""

    code = 405
    aws_exception = "MethodNotAllowedException"
    default_message = "Method not allowed"


class VersionConflictError(ShadowRejectedError):
    """409: the request's ``version`` does not match the shadow's current version."""

    code = 409
    aws_exception = "ConflictException"
    default_message = "Version conflict"


class PayloadTooLargeError(ShadowRejectedError):
    """413: the merged desired + reported state would exceed the size limit."""

    code = 413
    aws_exception = "RequestEntityTooLargeException"
    default_message = "The payload exceeds the maximum size allowed"


class UnsupportedEncodingError(ShadowRejectedError):
    """415: the payload is not UTF-8."""

    code = 415
    aws_exception = "UnsupportedDocumentEncodingException"
    # The AWS text really says "documented".
    default_message = "Unsupported documented encoding; supported encoding is UTF-8"


class ThrottlingError(ShadowRejectedError):
    """429: too many requests in flight or per second."""

    code = 429
    aws_exception = "ThrottlingException"
    default_message = "The rate exceeds the limit."


class InternalFailureError(ShadowRejectedError):
    """500: the service failed."""

    code = 500
    aws_exception = "InternalFailureException"
    default_message = "Internal service failure"


class ServiceUnavailableError(ShadowRejectedError):
    """503: the service is temporarily unavailable."""

    code = 503
    aws_exception = "ServiceUnavailableException"
    default_message = "The service is temporarily unavailable."


REJECTION_CLASSES: tuple[type[ShadowRejectedError], ...] = (
    InvalidRequestError,
    UnauthorizedError,
    ForbiddenError,
    ShadowNotFoundError,
    MethodNotAllowedError,
    VersionConflictError,
    PayloadTooLargeError,
    UnsupportedEncodingError,
    ThrottlingError,
    InternalFailureError,
    ServiceUnavailableError,
)
"""The rejection class of each status code, one per code. Internal (for `error_for_code` and
`shadowsync.aws`), not part of the public API."""

_BY_CODE: dict[int, type[ShadowRejectedError]] = {cls.code: cls for cls in REJECTION_CLASSES}


def error_for_code(
    code: int,
    message: str | None = None,
    *,
    client_token: str | None = None,
    timestamp: int | None = None,
) -> ShadowRejectedError:
    """Build the error matching a ``*/rejected`` body's ``code`` (unknown codes become 500).

    ```pycon
    >>> error_for_code(409, "Version conflict").__class__.__name__
    'VersionConflictError'

    ```
    """
    cls = _BY_CODE.get(code, InternalFailureError)
    return cls(message, client_token=client_token, timestamp=timestamp)
