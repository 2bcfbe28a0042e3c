"""Report policies: a minimum interval, a maximum rate and deadbands, with nothing lost."""

from __future__ import annotations

from typing import Any

import pytest

from shadowsync import ReportPolicy, SessionConfig, SessionState
from shadowsync.errors import InvalidArgumentError
from shadowsync.testing import LoopbackPair


def _pair(**policy: Any) -> LoopbackPair:
    pair = LoopbackPair("meter-1", config=SessionConfig(report_policy=ReportPolicy(**policy)))
    pair.connect()
    assert pair.run_until_quiet()
    return pair


def _sent(pair: LoopbackPair) -> int:
    document = pair.service.document("meter-1")
    return 0 if document is None else document.version


def test_a_minimum_interval_coalesces_reports_and_the_last_value_goes_out() -> None:
    pair = _pair(min_interval=10)
    pair.report({"kwh": 1})
    pair.advance(1)
    first = _sent(pair)
    for value in range(2, 12):
        pair.report({"kwh": value})
        pair.advance(0.5)
    # Within the interval nothing more went out; what is held shows in health.
    assert _sent(pair) == first
    health = pair.session.health(pair.now)
    assert health.held_back == 0  # waiting for the interval, not under a deadband
    assert health.pending_intents == 1  # coalesced: the last value only
    assert pair.session.next_deadline() is not None
    assert pair.run_until_quiet()
    document = pair.service.document("meter-1")
    assert document is not None
    assert document.reported == {"kwh": 11}
    assert _sent(pair) == first + 1
    assert pair.session.state is SessionState.IN_SYNC


def test_a_maximum_rate_spaces_the_updates() -> None:
    pair = _pair(max_rate=0.5)  # one update every 2 seconds at most
    start = _sent(pair)
    for value in range(6):
        pair.report({f"k{value}": value})
        pair.advance(0.7)
    assert pair.run_until_quiet()
    updates = _sent(pair) - start
    assert 1 <= updates <= 3
    document = pair.service.document("meter-1")
    assert document is not None
    assert document.reported == {f"k{value}": value for value in range(6)}


def test_changes_under_the_deadband_wait_and_still_go_out() -> None:
    pair = _pair(deadband={"temp_c": 0.5}, max_hold=300)
    pair.report({"temp_c": 20.0})
    assert pair.run_until_quiet()
    version = _sent(pair)
    pair.report({"temp_c": 20.2})
    pair.advance(5)
    assert _sent(pair) == version  # under the deadband: held
    assert pair.session.health(pair.now).held_back == 1
    pair.report({"temp_c": 20.3})
    pair.advance(5)
    assert _sent(pair) == version
    # A significant change elsewhere takes the held one along.
    pair.report({"door": "open"})
    pair.advance(1)
    document = pair.service.document("meter-1")
    assert document is not None
    assert document.reported == {"temp_c": 20.3, "door": "open"}
    assert pair.session.health(pair.now).held_back == 0


def test_a_held_change_goes_out_alone_after_max_hold() -> None:
    pair = _pair(deadband={"temp_c": 1.0}, max_hold=60)
    pair.report({"temp_c": 20.0})
    assert pair.run_until_quiet()
    pair.report({"temp_c": 20.4})
    pair.advance(59)
    document = pair.service.document("meter-1")
    assert document is not None
    assert document.reported == {"temp_c": 20.0}
    pair.advance(2)
    document = pair.service.document("meter-1")
    assert document is not None
    assert document.reported == {"temp_c": 20.4}


def test_a_big_change_is_sent_at_once() -> None:
    pair = _pair(deadband={"temp_c": 1.0})
    pair.report({"temp_c": 20.0})
    assert pair.run_until_quiet()
    pair.report({"temp_c": 25.0})
    pair.advance(1)
    document = pair.service.document("meter-1")
    assert document is not None
    assert document.reported == {"temp_c": 25.0}


def test_the_policy_is_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="deadband"):
        ReportPolicy(deadband={"a": -1})
    with pytest.raises(InvalidArgumentError):
        ReportPolicy(max_rate=0)
    with pytest.raises(InvalidArgumentError, match="report_policy"):
        SessionConfig(report_policy="fast")  # type: ignore[arg-type]
    assert ReportPolicy(min_interval=1, max_rate=0.25).gap == 4.0
