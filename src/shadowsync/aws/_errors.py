"""botocore failures as shadowsync errors, so no `ClientError` reaches the caller."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shadowsync.errors import (
    REJECTION_CLASSES,
    ForbiddenError,
    InternalFailureError,
    InvalidRequestError,
    ServiceUnavailableError,
    ShadowRejectedError,
    ShadowSyncError,
    ThrottlingError,
    UnauthorizedError,
    error_for_code,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

# Error codes that do not carry the status the shadowsync class stands for (DynamoDB and
# CloudWatch answer throttling with 400, for example), so the code decides, not the status.
_BY_AWS_CODE: dict[str, type[ShadowRejectedError]] = {
    **{cls.aws_exception: cls for cls in REJECTION_CLASSES},
    "ThrottlingException": ThrottlingError,
    "Throttling": ThrottlingError,
    "ThrottledException": ThrottlingError,
    "TooManyRequestsException": ThrottlingError,
    "RequestLimitExceeded": ThrottlingError,
    "ProvisionedThroughputExceededException": ThrottlingError,
    "LimitExceededException": ThrottlingError,
    "ServiceUnavailable": ServiceUnavailableError,
    "ServiceUnavailableException": ServiceUnavailableError,
    "InternalServerError": InternalFailureError,
    "InternalFailure": InternalFailureError,
    "InternalFailureException": InternalFailureError,
    "InternalServiceError": InternalFailureError,
    "AccessDeniedException": ForbiddenError,
    "AccessDenied": ForbiddenError,
    "UnrecognizedClientException": UnauthorizedError,
    "ExpiredTokenException": UnauthorizedError,
    "InvalidSignatureException": UnauthorizedError,
}

RETRYABLE: tuple[type[ShadowRejectedError], ...] = (
    ThrottlingError,
    ServiceUnavailableError,
    InternalFailureError,
)
"""The errors worth retrying after a pause: the request was fine, the service was not."""


class HistoryConflictError(ShadowSyncError):
    """A history record does not extend the stored chain: another writer appended first.

    Raised by `DynamoDBHistoryStore.append` when a record's ``previous_checksum`` is not the
    checksum of the thing's newest stored record, or when a concurrent append took the same
    place in the chain (the conditional write failed). Read the history again and decide again.
    """


def client_error(exc: ClientError, operation: str) -> ShadowRejectedError:
    """The shadowsync error for a botocore ``ClientError`` of ``operation``."""
    response: Any = exc.response if isinstance(exc.response, dict) else {}
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    message = error.get("Message") or error.get("message") or response.get("message")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    detail = f"{operation} failed with {code or 'an unnamed error'}"
    cls = _BY_AWS_CODE.get(code)
    if cls is None:
        cls = type(error_for_code(status if isinstance(status, int) else 500))
    return cls(str(message) if message else None, detail=detail)


@contextlib.contextmanager
def aws_call(operation: str) -> Iterator[None]:
    """Translate botocore failures raised inside the block, naming ``operation``.

    A ``ClientError`` becomes the matching `ShadowRejectedError` subclass (code and AWS
    message kept); a failure before any answer arrived (no connection, a timeout, a bad
    parameter caught by botocore) becomes `ServiceUnavailableError` or `InvalidRequestError`.
    """
    try:
        yield
    except ClientError as exc:
        raise client_error(exc, operation) from None
    except BotoCoreError as exc:
        name = type(exc).__name__
        if name == "NoCredentialsError":
            raise UnauthorizedError(detail=f"{operation}: {exc}") from None
        if name in ("ParamValidationError", "NoRegionError"):
            raise InvalidRequestError(detail=f"{operation}: {exc}") from None
        raise ServiceUnavailableError(detail=f"{operation}: {name}: {exc}") from None
