"""The request in flight: the messages that carry it, which answer is its, when it times out."""

from __future__ import annotations

import json

import pytest

from shadowsync import DEFAULT_LIMITS
from shadowsync._device.plan import Planned
from shadowsync._device.requests import Requests
from shadowsync.errors import InvalidArgumentError
from tests.strategies.device import token_counter


def requests(token: object = None) -> Requests:
    factory = token_counter("t") if token is None else (lambda: token)
    return Requests(
        thing_name="lamp",
        shadow_name="hvac",
        limits=DEFAULT_LIMITS,
        token=factory,  # type: ignore[arg-type]
        timeout=10,
    )


def test_a_get_goes_to_the_named_shadow_with_a_new_token() -> None:
    publish = requests().send("get", now=100.0)
    assert publish.topic == "$aws/things/lamp/shadow/name/hvac/get"
    assert json.loads(publish.payload) == {"clientToken": "t1"}


def test_an_answer_matches_by_operation_and_token_until_done() -> None:
    slot = requests()
    slot.send("delete", now=100.0)
    assert slot.answered("get", {"clientToken": "t1"}) is None
    assert slot.answered("delete", {"clientToken": "t2"}) is None
    request = slot.answered("delete", {"clientToken": "t1"})
    assert request is not None
    assert request.operation == "delete"
    assert slot.in_flight is request
    slot.done()
    assert slot.answered("delete", {"clientToken": "t1"}) is None


def test_an_update_carries_its_plan_and_times_out_at_its_deadline() -> None:
    slot = requests()
    planned = Planned(kind="desired", token="p9", state={"desired": {"on": True}})
    body = {"state": planned.state, "clientToken": "p9"}
    slot.send_update(planned, body, now=100.0)
    assert slot.timed_out(109.9) is None
    request = slot.timed_out(110.0)
    assert request is not None
    assert request.planned == planned
    assert request.body == body
    assert slot.in_flight is None


@pytest.mark.parametrize("token", ["", "x" * 65, 7])
def test_a_bad_token_is_refused(token: object) -> None:
    with pytest.raises(InvalidArgumentError, match="the token factory returned"):
        requests(token).send("get", now=100.0)
