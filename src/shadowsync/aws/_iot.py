"""`IotShadowClient`: the AWS IoT data plane (``boto3.client("iot-data")``) for shadows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._document import ShadowDocument
from shadowsync._json import decode_payload, describe, dumps_compact
from shadowsync._limits import DEFAULT_LIMITS, MAX_CONFIGURABLE_DEPTH, ShadowLimits
from shadowsync._update import UpdateRequest, apply_update
from shadowsync.aws._errors import aws_call
from shadowsync.errors import (
    InternalFailureError,
    InvalidArgumentError,
    ShadowNotFoundError,
    ShadowSyncError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["IotShadowClient"]

_PAGE_SIZE = 100  # the largest page ListNamedShadowsForThing serves


@attrs.frozen(kw_only=True)
class IotShadowClient:
    """Classic and named shadows through an injected ``boto3.client("iot-data")``.

    ``shadow_name=None`` is the classic shadow. Every failure is a shadowsync error: a
    ``ClientError`` becomes the `ShadowRejectedError` subclass with the AWS code and message
    (404 `ShadowNotFoundError`, 409 `VersionConflictError`, 400 `InvalidRequestError`, 413
    `PayloadTooLargeError`, 429 `ThrottlingError`, ...). Names and update requests are checked
    before any call, with the texts AWS would answer.

    The client must be created with the account's data endpoint (``aws iot describe-endpoint
    --endpoint-type iot:Data-ATS``), e.g. ``boto3.client("iot-data",
    endpoint_url="https://xxxx-ats.iot.eu-west-1.amazonaws.com")``.
    """

    client: Any
    """A ``boto3.client("iot-data")`` (or anything with the same four methods)."""
    limits: ShadowLimits = DEFAULT_LIMITS
    """The limits names and update requests are checked against before a call."""

    def _names(self, thing_name: object, shadow_name: object) -> dict[str, str]:
        names = {"thingName": self.limits.check_thing_name(thing_name)}
        if shadow_name is not None:
            names["shadowName"] = self.limits.check_shadow_name(shadow_name)
        return names

    def get(self, thing_name: str, shadow_name: str | None = None) -> ShadowDocument | None:
        """GetThingShadow as a `ShadowDocument`, or None when the shadow does not exist."""
        names = self._names(thing_name, shadow_name)
        try:
            with aws_call("GetThingShadow"):
                response = self.client.get_thing_shadow(**names)
                body = self._body(response, "GetThingShadow")
        except ShadowNotFoundError:
            return None
        try:
            return ShadowDocument.from_dict(body, limits=self.limits)
        except ShadowSyncError as exc:
            raise InternalFailureError(
                detail=f"GetThingShadow returned a body that is not a shadow document: {exc}"
            ) from None

    def update(
        self,
        thing_name: str,
        request: Mapping[str, Any] | bytes | str | UpdateRequest,
        shadow_name: str | None = None,
        *,
        current: ShadowDocument | None = None,
    ) -> dict[str, Any]:
        """UpdateThingShadow; returns the accepted body (``state``, ``metadata``, ``version``...).

        The request is validated first and refused with the AWS 400/415 texts before any call.
        With ``current`` (the shadow as last read), the merged document is also checked against
        the size and depth limits, so a 413 is raised before the call; the version check is
        left to the service, since ``current`` may be stale.
        """
        names = self._names(thing_name, shadow_name)
        parsed = (
            request
            if isinstance(request, UpdateRequest)
            else UpdateRequest.parse(request, limits=self.limits)
        )
        if current is not None:
            if not isinstance(current, ShadowDocument):
                raise InvalidArgumentError(
                    f"current must be a ShadowDocument or None, got {describe(current)}"
                )
            apply_update(
                current,
                attrs.evolve(parsed, version=None),
                timestamp=current.timestamp,
                limits=self.limits,
            )
        payload = dumps_compact(parsed.to_dict()).encode("utf-8")
        with aws_call("UpdateThingShadow"):
            response = self.client.update_thing_shadow(payload=payload, **names)
            return self._body(response, "UpdateThingShadow")

    def delete(self, thing_name: str, shadow_name: str | None = None) -> dict[str, Any]:
        """DeleteThingShadow; returns ``{"version", "timestamp"}``, or raises 404."""
        names = self._names(thing_name, shadow_name)
        with aws_call("DeleteThingShadow"):
            response = self.client.delete_thing_shadow(**names)
            return self._body(response, "DeleteThingShadow")

    def list_named_shadows(self, thing_name: str) -> list[str]:
        """Every named shadow of a thing (all pages), without the classic shadow.

        AWS answers ``[]`` for a thing with no shadows (and for an unknown thing); a 404, which
        moto answers for a thing it does not know, means the same.
        """
        try:
            return self._list_named_shadows(thing_name)
        except ShadowNotFoundError:
            return []

    def _list_named_shadows(self, thing_name: str) -> list[str]:
        names = self._names(thing_name, None)
        results: list[str] = []
        token: str | None = None
        with aws_call("ListNamedShadowsForThing"):
            while True:
                extra = {"nextToken": token} if token else {}
                page = self.client.list_named_shadows_for_thing(
                    pageSize=_PAGE_SIZE, **names, **extra
                )
                found = page.get("results") or []
                if not isinstance(found, list) or not all(isinstance(n, str) for n in found):
                    raise InternalFailureError(
                        detail=f"ListNamedShadowsForThing returned results {describe(found)}"
                    )
                results.extend(found)
                token = page.get("nextToken")
                if not token:
                    return results

    @staticmethod
    def _body(response: Mapping[str, Any], operation: str) -> dict[str, Any]:
        payload: Any = response.get("payload")
        raw = payload.read() if hasattr(payload, "read") else payload
        if not isinstance(raw, (bytes, bytearray, str)):
            raise InternalFailureError(detail=f"{operation} returned no payload")
        try:
            body = decode_payload(raw, max_depth=MAX_CONFIGURABLE_DEPTH)
        except ShadowSyncError as exc:
            raise InternalFailureError(
                detail=f"{operation} returned a payload that is not JSON: {exc}"
            ) from None
        if not isinstance(body, dict):
            raise InternalFailureError(
                detail=f"{operation} returned {describe(body)}, not a JSON object"
            )
        return body
