"""IotShadowClient against a moto server, and the error mapping against botocore's Stubber."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from botocore.stub import Stubber

from shadowsync import ShadowDocument
from shadowsync.aws import RETRYABLE, IotShadowClient
from shadowsync.errors import (
    ForbiddenError,
    InternalFailureError,
    InvalidNameError,
    InvalidRequestError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    ShadowNotFoundError,
    ShadowRejectedError,
    ThrottlingError,
    VersionConflictError,
)

if TYPE_CHECKING:
    from tests.adapters.aws.conftest import Aws


@pytest.mark.parametrize("shadow", [None, "configuration"])
def test_update_get_delete_round_trip(aws: Aws, shadow: str | None) -> None:
    aws.create_thing("lamp-1")
    accepted = aws.shadows.update(
        "lamp-1", {"state": {"desired": {"on": True, "level": 3}}}, shadow
    )
    assert accepted["state"] == {"desired": {"on": True, "level": 3}}
    assert accepted["version"] == 1
    second = aws.shadows.update(
        "lamp-1", {"state": {"reported": {"on": True}}, "version": 1}, shadow
    )
    assert second["version"] == 2
    document = aws.shadows.get("lamp-1", shadow)
    assert isinstance(document, ShadowDocument)
    assert document.version == 2
    assert document.desired == {"on": True, "level": 3}
    assert document.reported == {"on": True}
    assert document.delta == {"level": 3}
    deleted = aws.shadows.delete("lamp-1", shadow)
    assert set(deleted) == {"version", "timestamp"}
    assert aws.shadows.get("lamp-1", shadow) is None


def test_a_stale_version_is_a_version_conflict(aws: Aws) -> None:
    aws.create_thing("lamp-1")
    aws.shadows.update("lamp-1", {"state": {"desired": {"on": True}}})
    aws.shadows.update("lamp-1", {"state": {"desired": {"on": False}}, "version": 1})
    with pytest.raises(VersionConflictError) as caught:
        aws.shadows.update("lamp-1", {"state": {"desired": {"on": True}}, "version": 1})
    assert (caught.value.code, caught.value.message) == (409, "Version conflict")
    document = aws.shadows.get("lamp-1")
    assert document is not None
    assert (document.version, document.desired) == (2, {"on": False})


def test_a_missing_shadow_reads_as_none_and_deletes_as_404(aws: Aws) -> None:
    aws.create_thing("lamp-1")
    assert aws.shadows.get("lamp-1") is None
    assert aws.shadows.get("lamp-1", "nope") is None
    with pytest.raises(ShadowNotFoundError) as caught:
        aws.shadows.delete("lamp-1", "nope")
    assert caught.value.code == 404
    assert "DeleteThingShadow" in str(caught.value)


def test_named_shadows_are_listed_without_the_classic_one(aws: Aws) -> None:
    aws.create_thing("lamp-1")
    aws.shadows.update("lamp-1", {"state": {"reported": {"ok": True}}})
    for name in ("telemetry", "configuration"):
        aws.shadows.update("lamp-1", {"state": {"reported": {"ok": True}}}, name)
    assert sorted(aws.shadows.list_named_shadows("lamp-1")) == ["configuration", "telemetry"]


def test_requests_are_checked_before_any_call(aws: Aws) -> None:
    aws.create_thing("lamp-1")
    with pytest.raises(InvalidRequestError) as caught:
        aws.shadows.update("lamp-1", {"state": 1})
    assert caught.value.message == "State node must be an object"  # AWS's text, not moto's
    with pytest.raises(InvalidRequestError) as invalid:
        aws.shadows.update("lamp-1", {"state": {"delta": {}}})
    assert invalid.value.message == "State contains an invalid node: 'delta'"
    with pytest.raises(InvalidNameError):
        aws.shadows.get("lamp/1")
    assert aws.shadows.get("lamp-1") is None


def test_an_update_too_large_once_merged_is_refused_before_the_call(aws: Aws) -> None:
    # moto does not check the 8 KB limit; the pre-flight on the merged document does.
    aws.create_thing("lamp-1")
    aws.shadows.update("lamp-1", {"state": {"reported": {"log": "x" * 5000}}})
    current = aws.shadows.get("lamp-1")
    assert current is not None
    request = {"state": {"desired": {"note": "y" * 4000}}}
    with pytest.raises(PayloadTooLargeError) as caught:
        aws.shadows.update("lamp-1", request, current=current)
    assert (caught.value.code, caught.value.message) == (
        413,
        "The payload exceeds the maximum size allowed",
    )
    after = aws.shadows.get("lamp-1")
    assert after is not None
    assert (after.version, after.desired) == (1, {})


def _stubbed(aws: Aws) -> tuple[IotShadowClient, Stubber]:
    stubber = Stubber(aws.iot_data)
    return IotShadowClient(client=aws.iot_data), stubber


@pytest.mark.parametrize(
    ("aws_code", "status", "message", "expected"),
    [
        ("ThrottlingException", 429, "Rate exceeded", ThrottlingError),
        ("RequestEntityTooLargeException", 413, "too big", PayloadTooLargeError),
        ("InvalidRequestException", 400, "Invalid JSON", InvalidRequestError),
        ("ConflictException", 409, "Version conflict", VersionConflictError),
        ("ServiceUnavailableException", 503, "later", ServiceUnavailableError),
        ("InternalFailureException", 500, "boom", InternalFailureError),
        ("ForbiddenException", 403, "Forbidden", ForbiddenError),
        ("SomethingNewException", 418, "teapot", InternalFailureError),
    ],
)
def test_client_errors_become_shadowsync_errors(
    aws: Aws, aws_code: str, status: int, message: str, expected: type[ShadowRejectedError]
) -> None:
    shadows, stubber = _stubbed(aws)
    stubber.add_client_error(
        "update_thing_shadow",
        service_error_code=aws_code,
        service_message=message,
        http_status_code=status,
    )
    with stubber, pytest.raises(ShadowRejectedError) as caught:
        shadows.update("lamp-1", {"state": {"desired": {"on": True}}})
    assert type(caught.value) is expected
    assert caught.value.message == message
    assert aws_code in str(caught.value)
    assert (type(caught.value) in RETRYABLE) == (
        expected in (ThrottlingError, ServiceUnavailableError, InternalFailureError)
    )


def test_a_payload_that_is_not_a_document_is_an_internal_failure(aws: Aws) -> None:
    shadows, stubber = _stubbed(aws)
    response: dict[str, Any] = {"payload": b'{"state": {"desired": 5}}'}
    stubber.add_response("get_thing_shadow", response, {"thingName": "lamp-1"})
    with stubber, pytest.raises(InternalFailureError) as caught:
        shadows.get("lamp-1")
    assert "not a shadow document" in str(caught.value)


def test_no_server_is_service_unavailable(aws: Aws) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client(
        "iot-data",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    try:
        with pytest.raises(ServiceUnavailableError) as caught:
            IotShadowClient(client=client).get("lamp-1")
        assert "GetThingShadow" in str(caught.value)
    finally:
        client.close()
