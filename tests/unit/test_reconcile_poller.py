"""The sans-I/O target poller: ETag, 304, jittered interval, backoff, durable state."""

from __future__ import annotations

import pytest

from shadowsync import Backoff
from shadowsync.errors import InvalidArgumentError
from shadowsync.reconcile import (
    PollConfig,
    PollerState,
    ReconcileStateError,
    TargetPoller,
)
from shadowsync.stores import MemoryStore

BODY = b'{"version": 3, "target": {"web": "v1"}}'
CONFIG = PollConfig(
    url="http://127.0.0.1:1/target",
    interval=60,
    jitter=0.5,
    backoff=Backoff(initial=0.5, multiplier=2, maximum=300, jitter=0),
)


def test_the_first_poll_is_at_once_and_without_an_etag() -> None:
    poller = TargetPoller(CONFIG, random=lambda: 0.0)
    request = poller.next_request(now=5)
    assert request is not None
    assert request.url == CONFIG.url
    assert "If-None-Match" not in request.headers
    assert poller.next_request(now=5) is None  # one in flight at a time
    assert poller.next_deadline() is None


def test_a_200_gives_the_target_and_the_etag_goes_with_the_next_poll() -> None:
    poller = TargetPoller(CONFIG, random=lambda: 0.5)
    poller.next_request(now=0)
    polled = poller.response(200, {"etag": '"e1"'}, BODY, now=1)
    assert polled is not None
    assert (polled.target, polled.version, polled.changed) == ({"web": "v1"}, 3, True)
    assert poller.next_deadline() == 1 + 60 - 0.5 * 0.5 * 60  # jitter takes up to half off
    assert poller.next_request(now=45.9) is None
    request = poller.next_request(now=46)
    assert request is not None
    assert request.headers["If-None-Match"] == '"e1"'
    again = poller.response(304, {}, b"", now=47)
    assert again is not None
    assert (again.target, again.version, again.changed) == ({"web": "v1"}, 3, False)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, b"", "HTTP 500"),
        (304, b"", "HTTP 304"),  # a 304 without a known target is no answer
        (200, b"{", "not JSON"),
        (200, b'{"target": {}}', "version"),
        (200, b'{"version": 1, "target": []}', "must be"),
    ],
)
def test_a_bad_answer_backs_off_exponentially_up_to_the_interval(
    status: int, body: bytes, error: str
) -> None:
    poller = TargetPoller(CONFIG, random=lambda: 0.0)
    delays = []
    now = 0.0
    for _ in range(10):
        assert poller.next_request(now) is not None
        assert poller.response(status, {}, body, now) is None
        assert poller.last_error is not None
        assert error in poller.last_error
        deadline = poller.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
    assert delays == [0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_network_failure_backs_off_and_a_good_poll_resets_it() -> None:
    poller = TargetPoller(CONFIG, random=lambda: 0.0)
    poller.next_request(now=0)
    poller.failed("connection refused", now=0)
    poller.next_request(now=0.5)
    poller.failed("connection refused", now=0.5)
    assert poller.next_deadline() == 1.5
    poller.next_request(now=1.5)
    assert poller.response(200, {}, BODY, now=1.5) is not None
    assert poller.last_error is None
    assert poller.next_deadline() == 61.5


def test_an_answer_without_a_request_is_refused() -> None:
    poller = TargetPoller(CONFIG, random=lambda: 0.0)
    with pytest.raises(InvalidArgumentError, match="no poll is in flight"):
        poller.response(200, {}, BODY, now=0)


def test_the_etag_and_its_target_survive_a_restart() -> None:
    store = MemoryStore()
    poller = TargetPoller(CONFIG, random=lambda: 0.0)
    poller.next_request(now=0)
    poller.response(200, {"ETag": '"e1"'}, BODY, now=0)
    poller.state.save(store)
    restarted = TargetPoller(CONFIG, random=lambda: 0.0, state=PollerState.load(store))
    request = restarted.next_request(now=1)
    assert request is not None
    assert request.headers["If-None-Match"] == '"e1"'
    polled = restarted.response(304, {}, b"", now=1)
    assert polled is not None
    assert polled.target == {"web": "v1"}


@pytest.mark.parametrize(
    "data",
    [[], {"etag": 1}, {"target": []}, {"version": -1}, {"other": 1}],
)
def test_a_damaged_poller_state_is_refused(data: object) -> None:
    with pytest.raises(ReconcileStateError, match="poller state"):
        PollerState.from_dict(data)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="url"):
        PollConfig(url="ftp://x")
    with pytest.raises(InvalidArgumentError, match="interval"):
        PollConfig(url="http://x", interval=0)


def test_a_target_with_nan_is_a_failed_poll_and_is_not_kept() -> None:
    poller = TargetPoller(CONFIG, random=lambda: 0.0)
    poller.next_request(now=0)
    body = b'{"version": 3, "target": {"web": NaN}}'
    assert poller.response(200, {"ETag": '"a"'}, body, now=0) is None
    assert poller.last_error is not None
    assert "NaN" in poller.last_error
    assert poller.state == PollerState()


def test_an_etag_that_is_not_text_is_not_kept_so_the_state_still_loads() -> None:
    poller = TargetPoller(CONFIG, random=lambda: 0.0)
    poller.next_request(now=0)
    poller.response(200, {"ETag": 5}, BODY, now=0)  # type: ignore[dict-item]
    store = MemoryStore()
    poller.state.save(store)
    assert PollerState.load(store) == PollerState(etag=None, target={"web": "v1"}, version=3)


@pytest.mark.parametrize(
    ("status", "headers", "body", "named"),
    [
        ("200", {}, BODY, "status"),
        (200, [("ETag", '"a"')], BODY, "headers"),
        (200, {}, None, "body"),
        (200, {}, BODY.decode(), "body"),
    ],
)
def test_an_answer_of_the_wrong_types_is_refused(
    status: object, headers: object, body: object, named: str
) -> None:
    poller = TargetPoller(CONFIG, random=lambda: 0.0)
    poller.next_request(now=0)
    with pytest.raises(InvalidArgumentError, match=named):
        poller.response(status, headers, body, now=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="error"):
        poller.failed(5, now=0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields", [{"etag": 5}, {"target": "web"}, {"version": -1}, {"version": True}]
)
def test_a_poller_state_of_bad_values_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ReconcileStateError, match="poller state"):
        PollerState(**fields)  # type: ignore[arg-type]


def test_the_poller_state_needs_a_state_store() -> None:
    with pytest.raises(InvalidArgumentError, match="put_state"):
        PollerState().save(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="put_state"):
        PollerState.load(object())  # type: ignore[arg-type]
