"""The device sync session: every transition of its table, reconnects, 409s, rules, health."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowsync import ShadowDocument, ShadowLimits, topics
from shadowsync._device.config import Backoff, SessionConfig, SessionHealth
from shadowsync._device.queue import QueueLimits
from shadowsync._device.session import ShadowSession
from shadowsync._device.state import TRANSITIONS, SessionState, SessionStateError, Trigger
from shadowsync.errors import (
    InvalidArgumentError,
    InvalidRequestError,
    PayloadTooLargeError,
    ShadowSyncError,
)
from shadowsync.events import (
    AcknowledgementQueued,
    CacheReset,
    ConflictResolved,
    DeltaReceived,
    Dropped,
    Event,
    IntentsConfirmed,
    IntentsQueued,
    MessageIgnored,
    Publish,
    RequestFailed,
    ReviewNeeded,
    ShadowDeleted,
    SnapshotReceived,
    StateChanged,
    Subscribe,
    SyncCompleted,
    UpdateAccepted,
    UpdateRejected,
)
from shadowsync.rules import ACK_KEY, Range, RuleSet
from shadowsync.stores import MemoryStore, SQLiteStore, Store
from shadowsync.strategies import LastWriterWins
from shadowsync.testing import InMemoryShadowService
from tests.strategies.device import hostile_payloads, token_counter

THING = "lamp"
START = 1_700_000_000.0
DOCS = Path(__file__).resolve().parents[2] / "docs"

S = SessionState
T = Trigger


class Rig:
    """A session, a service and a clock, with the messages between them passed by hand."""

    def __init__(
        self,
        *,
        config: SessionConfig | None = None,
        rules: RuleSet | None = None,
        store: Store | None = None,
        service: InMemoryShadowService | None = None,
        policy: Any = None,
        shadow_name: str | None = None,
    ) -> None:
        self.now = START
        self.store = store if store is not None else MemoryStore()
        self.service = (
            service if service is not None else InMemoryShadowService(clock=lambda: self.now)
        )
        self.shadow_name = shadow_name
        self.session = ShadowSession(
            THING,
            shadow_name,
            store=self.store,
            token=token_counter("t"),
            random=lambda: 0.5,
            config=config,
            rules=rules,
            policy=policy,
        )
        self.unsent: list[Publish] = []
        self.events: list[Event] = []

    @property
    def state(self) -> SessionState:
        return self.session.state

    def current(self) -> SessionState:
        """The state, read through a call (so that type checkers do not narrow it)."""
        return self.session.state

    def doc(self) -> ShadowDocument:
        document = self.service.document(THING, self.shadow_name)
        assert document is not None
        return document

    def take(self, events: list[Event]) -> list[Event]:
        for event in events:
            if isinstance(event, Publish):
                self.unsent.append(event)
            elif not isinstance(event, Subscribe):
                self.events.append(event)
        return events

    def connect(self) -> list[Event]:
        return self.take(self.session.connected(self.now))

    def report(self, changes: dict[str, Any]) -> list[Event]:
        return self.take(self.session.report(changes, self.now))

    def tick(self, seconds: float = 0.0) -> list[Event]:
        self.now += seconds
        return self.take(self.session.tick(self.now))

    def serve(self) -> list[tuple[str, bytes]]:
        """The service handles the oldest unsent publish; its replies (not yet delivered)."""
        publish = self.unsent.pop(0)
        return self.service.handle(publish.topic, publish.payload)

    def deliver(self, messages: list[tuple[str, bytes]]) -> list[Event]:
        out: list[Event] = []
        for topic, payload in messages:
            out += self.take(self.session.receive_message(topic, payload, self.now))
        return out

    def pump(self) -> list[Event]:
        out: list[Event] = []
        for _ in range(100):
            if not self.unsent:
                return out
            out += self.deliver(self.serve())
        raise AssertionError("the session kept publishing")

    def sync(self) -> list[Event]:
        return self.connect() + self.pump()

    def cloud(self, body: dict[str, Any]) -> list[tuple[str, bytes]]:
        """A cloud application's update; the service's messages for the device."""
        topic = topics.build(THING, "update", shadow_name=self.shadow_name)
        return self.service.handle(topic, json.dumps(body).encode())

    def topic(self, operation: topics.Operation, response: topics.Response) -> str:
        return topics.build(THING, operation, response, shadow_name=self.shadow_name)

    def message(
        self, operation: topics.Operation, response: topics.Response, body: Any
    ) -> list[Event]:
        payload = json.dumps(body).encode()
        return self.take(
            self.session.receive_message(self.topic(operation, response), payload, self.now)
        )

    def last_token(self) -> str:
        token = json.loads(self.unsent[-1].payload)["clientToken"]
        assert isinstance(token, str)
        return token


def of_type(events: list[Event], kind: type[Any]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def published(events: list[Event]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (event.topic.rsplit("/shadow/", 1)[1], json.loads(event.payload))
        for event in events
        if isinstance(event, Publish)
    ]


def in_sync(**kwargs: Any) -> Rig:
    """A session in sync with an existing, empty shadow (version 1)."""
    rig = Rig(**kwargs)
    rig.service.update(THING, {"state": {}})
    rig.sync()
    assert rig.state is S.IN_SYNC
    return rig


def updating(**kwargs: Any) -> Rig:
    rig = in_sync(**kwargs)
    rig.report({"on": True})
    assert rig.state is S.UPDATING
    return rig


def backing_off(**kwargs: Any) -> Rig:
    rig = Rig(**kwargs)
    rig.connect()
    rig.unsent.clear()
    rig.message("get", "rejected", {"code": 500, "message": "boom", "clientToken": "t1"})
    assert rig.state is S.BACKOFF
    return rig


def conflicted(rig: Rig) -> list[Event]:
    """Make the update in flight meet a 409: the cloud writes first."""
    rig.deliver(rig.cloud({"state": {"desired": {"mode": "eco"}}}))
    return rig.deliver(rig.serve())


def in_review() -> Rig:
    rig = updating(config=SessionConfig(max_conflict_retries=0))
    conflicted(rig)
    assert rig.state is S.REVIEW
    return rig


def deleting() -> Rig:
    rig = in_sync()
    rig.take(rig.session.delete(rig.now))
    assert rig.state is S.DELETING
    return rig


# -- one scenario per transition of the table ------------------------------------------------

Scenario = Callable[[], tuple[Rig, list[Event]]]
SCENARIOS: dict[tuple[SessionState, Trigger], Scenario] = {}


def scenario(state: SessionState, trigger: Trigger) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS[(state, trigger)] = function
        return function

    return register


@scenario(S.OFFLINE, T.CONNECTED)
def _offline_connected() -> tuple[Rig, list[Event]]:
    rig = Rig()
    return rig, rig.connect()


@scenario(S.OFFLINE, T.DISCONNECTED)
def _offline_disconnected() -> tuple[Rig, list[Event]]:
    rig = Rig()
    return rig, rig.take(rig.session.disconnected(rig.now))


@scenario(S.FETCHING, T.PUBLISH)
def _fetching_publish() -> tuple[Rig, list[Event]]:
    rig = Rig()
    rig.report({"on": True})
    rig.connect()
    return rig, rig.deliver(rig.serve())


@scenario(S.FETCHING, T.SYNCED)
def _fetching_synced() -> tuple[Rig, list[Event]]:
    rig = Rig()
    rig.connect()
    return rig, rig.deliver(rig.serve())


@scenario(S.FETCHING, T.FAILED)
def _fetching_failed() -> tuple[Rig, list[Event]]:
    rig = Rig()
    rig.connect()
    return rig, rig.message("get", "rejected", {"code": 503, "message": "x", "clientToken": "t1"})


@scenario(S.FETCHING, T.REFRESH)
def _fetching_refresh() -> tuple[Rig, list[Event]]:
    rig = Rig()
    rig.service.update(THING, {"state": {"reported": {"on": False}}})
    rig.report({"on": True})
    rig.connect()
    snapshot = rig.serve()
    rig.deliver([m for m in rig.cloud({"state": {"desired": {"x": 1}}}) if "accepted" in m[0]])
    return rig, rig.deliver(snapshot)


@scenario(S.FETCHING, T.DISCONNECTED)
def _fetching_disconnected() -> tuple[Rig, list[Event]]:
    rig = Rig()
    rig.connect()
    return rig, rig.take(rig.session.disconnected(rig.now))


@scenario(S.UPDATING, T.PUBLISH)
def _updating_publish() -> tuple[Rig, list[Event]]:
    rig = in_sync()
    rig.take(rig.session.desire({"mode": "eco"}, rig.now))
    rig.report({"on": True})
    return rig, rig.deliver(rig.serve())


@scenario(S.UPDATING, T.SYNCED)
def _updating_synced() -> tuple[Rig, list[Event]]:
    rig = updating()
    return rig, rig.deliver(rig.serve())


@scenario(S.UPDATING, T.REFRESH)
def _updating_refresh() -> tuple[Rig, list[Event]]:
    rig = updating()
    rig.take(rig.session.get(rig.now))
    return rig, rig.deliver(rig.serve())


@scenario(S.UPDATING, T.CONFLICT)
def _updating_conflict() -> tuple[Rig, list[Event]]:
    rig = updating()
    return rig, conflicted(rig)


@scenario(S.UPDATING, T.ESCALATE)
def _updating_escalate() -> tuple[Rig, list[Event]]:
    rig = updating(config=SessionConfig(max_conflict_retries=0))
    return rig, conflicted(rig)


@scenario(S.UPDATING, T.FAILED)
def _updating_failed() -> tuple[Rig, list[Event]]:
    rig = updating()
    token = rig.last_token()
    rig.unsent.clear()
    return rig, rig.message(
        "update", "rejected", {"code": 503, "message": "busy", "clientToken": token}
    )


@scenario(S.UPDATING, T.DISCONNECTED)
def _updating_disconnected() -> tuple[Rig, list[Event]]:
    rig = updating()
    return rig, rig.take(rig.session.disconnected(rig.now))


@scenario(S.IN_SYNC, T.PUBLISH)
def _in_sync_publish() -> tuple[Rig, list[Event]]:
    rig = in_sync()
    return rig, rig.report({"on": True})


@scenario(S.IN_SYNC, T.REFRESH)
def _in_sync_refresh() -> tuple[Rig, list[Event]]:
    rig = in_sync()
    return rig, rig.take(rig.session.get(rig.now))


@scenario(S.IN_SYNC, T.DELETE)
def _in_sync_delete() -> tuple[Rig, list[Event]]:
    rig = in_sync()
    return rig, rig.take(rig.session.delete(rig.now))


@scenario(S.IN_SYNC, T.DISCONNECTED)
def _in_sync_disconnected() -> tuple[Rig, list[Event]]:
    rig = in_sync()
    return rig, rig.take(rig.session.disconnected(rig.now))


@scenario(S.BACKOFF, T.RETRY)
def _backoff_retry() -> tuple[Rig, list[Event]]:
    rig = backing_off()
    assert rig.tick(0.1) == [] or rig.state is S.BACKOFF
    return rig, rig.tick(3600)


@scenario(S.BACKOFF, T.RESUME)
def _backoff_resume() -> tuple[Rig, list[Event]]:
    rig = backing_off()
    return rig, rig.take(rig.session.resume(rig.now))


@scenario(S.BACKOFF, T.DELETE)
def _backoff_delete() -> tuple[Rig, list[Event]]:
    rig = backing_off()
    return rig, rig.take(rig.session.delete(rig.now))


@scenario(S.BACKOFF, T.DISCONNECTED)
def _backoff_disconnected() -> tuple[Rig, list[Event]]:
    rig = backing_off()
    return rig, rig.take(rig.session.disconnected(rig.now))


@scenario(S.REVIEW, T.RESUME)
def _review_resume() -> tuple[Rig, list[Event]]:
    rig = in_review()
    return rig, rig.take(rig.session.resume(rig.now))


@scenario(S.REVIEW, T.DELETE)
def _review_delete() -> tuple[Rig, list[Event]]:
    rig = in_review()
    return rig, rig.take(rig.session.delete(rig.now))


@scenario(S.REVIEW, T.DISCONNECTED)
def _review_disconnected() -> tuple[Rig, list[Event]]:
    rig = in_review()
    return rig, rig.take(rig.session.disconnected(rig.now))


@scenario(S.DELETING, T.PUBLISH)
def _deleting_publish() -> tuple[Rig, list[Event]]:
    rig = deleting()
    rig.report({"on": True})
    return rig, rig.deliver(rig.serve())


@scenario(S.DELETING, T.SYNCED)
def _deleting_synced() -> tuple[Rig, list[Event]]:
    rig = deleting()
    return rig, rig.deliver(rig.serve())


@scenario(S.DELETING, T.FAILED)
def _deleting_failed() -> tuple[Rig, list[Event]]:
    rig = deleting()
    token = rig.last_token()
    rig.unsent.clear()
    return rig, rig.message(
        "delete", "rejected", {"code": 500, "message": "x", "clientToken": token}
    )


@scenario(S.DELETING, T.REFRESH)
def _deleting_refresh() -> tuple[Rig, list[Event]]:
    rig = deleting()
    rig.message("update", "delta", {"state": {"mode": "eco"}, "version": 40})  # a gap
    return rig, rig.deliver(rig.serve())


@scenario(S.DELETING, T.DISCONNECTED)
def _deleting_disconnected() -> tuple[Rig, list[Event]]:
    rig = deleting()
    return rig, rig.take(rig.session.disconnected(rig.now))


TABLE = sorted(
    ((state, trigger) for state, row in TRANSITIONS.items() for trigger in row),
    key=lambda pair: (pair[0].value, pair[1].value),
)


def test_every_transition_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(TABLE)


@pytest.mark.parametrize(
    ("state", "trigger"), TABLE, ids=[f"{s.value}-{t.value}" for s, t in TABLE]
)
def test_transition(state: SessionState, trigger: Trigger) -> None:
    rig, events = SCENARIOS[(state, trigger)]()
    target = TRANSITIONS[state][trigger]
    assert rig.state is target
    changes = of_type(events, StateChanged)
    if target is not state:
        assert StateChanged(previous=state, current=target, trigger=trigger) in changes
    else:
        assert all(change.previous is not state for change in changes[:1]) or not changes


def test_the_table_has_no_dead_ends() -> None:
    for state in SessionState:
        assert TRANSITIONS[state], state
        assert TRANSITIONS[state].get(T.DISCONNECTED) is S.OFFLINE
    reachable = {S.OFFLINE}
    frontier = [S.OFFLINE]
    while frontier:
        for target in TRANSITIONS[frontier.pop()].values():
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(SessionState)


# -- the diagram in the docs -------------------------------------------------------------------


def test_the_docs_show_the_generated_diagram() -> None:
    page = (DOCS / "device.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```mermaid\n(.*?)```", page, re.S)
    assert ShadowSession.diagram() in blocks


def test_the_docs_table_lists_every_transition() -> None:
    page = (DOCS / "device.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| `(\w+)` \|", page, re.M)
    listed = {(S(state), T(trigger)): S(target) for state, trigger, target in rows}
    table = {
        (state, trigger): target
        for state, row in TRANSITIONS.items()
        for trigger, target in row.items()
    }
    assert listed == table


def test_diagram_has_one_line_per_transition() -> None:
    lines = ShadowSession.diagram().splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert len(lines) == 2 + sum(len(row) for row in TRANSITIONS.values())


# -- connect, snapshot, reconcile ---------------------------------------------------------------


def test_connect_subscribes_to_exact_topics_then_gets() -> None:
    rig = Rig(shadow_name="config")
    events = rig.connect()
    subscribe = of_type(events, Subscribe)[0]
    assert list(subscribe.topics) == topics.subscriptions(THING, "config")
    assert not any("#" in topic or "+" in topic for topic in subscribe.topics)
    assert published(events) == [("name/config/get", {"clientToken": "t1"})]
    assert events.index(subscribe) < events.index(of_type(events, Publish)[0])


def test_reports_made_offline_are_published_on_connect_with_the_version() -> None:
    rig = Rig()
    rig.service.update(THING, {"state": {"reported": {"temp": 20}}})
    rig.report({"temp": 21, "fan": {"speed": 2}})
    assert rig.unsent == []
    rig.connect()
    events = rig.deliver(rig.serve())
    assert published(events) == [
        (
            "update",
            {
                "state": {"reported": {"temp": 21, "fan": {"speed": 2}}},
                "clientToken": "t2",
                "version": 1,
            },
        )
    ]
    events = rig.pump()
    assert of_type(events, UpdateAccepted) == [UpdateAccepted(client_token="t2", version=2)]
    assert of_type(events, IntentsConfirmed)[0].seqs == (1, 2)
    assert of_type(events, SyncCompleted) == [SyncCompleted(version=2, at=int(START))]
    assert rig.doc().reported == {"temp": 21, "fan": {"speed": 2}}
    assert rig.session.cloud_document == rig.doc()


def test_a_new_shadow_is_created_empty_before_values_are_written_with_a_version() -> None:
    rig = Rig()
    rig.report({"on": True})
    events = rig.sync()
    bodies = [body for name, body in published(events) if name == "update"]
    assert bodies[0]["state"] == {}
    assert "version" not in bodies[0]
    assert bodies[1]["version"] == 1
    assert rig.doc().reported == {"on": True}


def test_values_the_cloud_already_holds_are_confirmed_without_sending() -> None:
    rig = in_sync()
    rig.service.update(THING, {"state": {"reported": {"on": True}}})  # e.g. an update whose
    rig.take(rig.session.disconnected(rig.now))  # accepted message was lost
    rig.report({"on": True})
    events = rig.sync()
    assert [name for name, _ in published(events)] == ["get"]
    assert of_type(events, IntentsConfirmed)[0].client_token is None
    assert rig.session.queue.pending() == ()


def test_a_value_written_back_to_the_base_still_wins() -> None:
    rig = in_sync()
    rig.report({"a": 1})
    rig.pump()
    # The device writes 3, and the update is applied, but its answer is lost ...
    rig.report({"a": 3})
    rig.serve()
    rig.take(rig.session.disconnected(rig.now))
    # ... then it goes back to 1, which equals the last synced base.
    rig.report({"a": 1})
    rig.sync()
    assert rig.doc().reported["a"] == 1


def test_snapshot_reports_the_delta_and_notifications_held_during_fetch_are_replayed() -> None:
    rig = Rig()
    rig.service.update(THING, {"state": {"desired": {"mode": "heat"}}})
    rig.connect()
    snapshot = rig.serve()
    held = rig.cloud({"state": {"desired": {"level": 3}}})  # version 2, after the snapshot
    assert rig.deliver(held) == [] or all(not isinstance(e, DeltaReceived) for e in rig.deliver([]))
    events = rig.deliver(snapshot)
    deltas = of_type(events, DeltaReceived)
    assert deltas[0] == DeltaReceived(state={"mode": "heat"}, version=1)
    assert deltas[-1].state == {"mode": "heat", "level": 3}
    assert deltas[-1].version == 2
    assert rig.session.last_seen_version == 2


def test_notifications_at_or_below_the_snapshot_are_not_replayed() -> None:
    rig = Rig()
    old = rig.cloud({"state": {"desired": {"mode": "heat"}}})  # version 1
    rig.connect()
    snapshot = rig.serve()
    rig.deliver(old)  # held while fetching
    events = rig.deliver(snapshot)
    assert len(of_type(events, DeltaReceived)) == 1
    assert [e.reason for e in of_type(events, MessageIgnored)] == ["covered by snapshot 1"] * 2


def test_a_stale_delta_is_ignored_and_a_current_one_is_evaluated_again() -> None:
    rig = in_sync()
    first = rig.cloud({"state": {"desired": {"mode": "heat"}}})
    second = rig.cloud({"state": {"desired": {"mode": "cool"}}})
    rig.deliver(second)
    assert rig.session.last_seen_version == 3
    stale = [m for m in first if m[0].endswith("/delta")]
    events = rig.deliver(stale)
    assert of_type(events, MessageIgnored)[0].reason.startswith("stale")
    current = [m for m in second if m[0].endswith("/delta")]
    again = rig.deliver(current)
    assert of_type(again, DeltaReceived) == [DeltaReceived(state={"mode": "cool"}, version=3)]


def test_a_version_gap_triggers_a_fresh_snapshot() -> None:
    rig = in_sync()
    rig.cloud({"state": {"desired": {"mode": "heat"}}})  # lost
    later = rig.cloud({"state": {"desired": {"mode": "cool"}}})
    events = rig.deliver([m for m in later if m[0].endswith("/delta")])  # the rest lost too
    assert rig.state is S.FETCHING
    assert ("get", {"clientToken": rig.last_token()}) in published(events)


def test_versions_seen_never_go_backwards_when_a_snapshot_is_older() -> None:
    rig = in_sync()
    rig.report({"on": True})
    rig.take(rig.session.get(rig.now))  # a refresh after the update
    rig.deliver(rig.serve())  # accepted: version 2
    snapshot = rig.serve()
    rig.deliver([m for m in rig.cloud({"state": {"desired": {"x": 1}}}) if "accepted" in m[0]])
    assert rig.session.last_seen_version == 3
    rig.deliver(snapshot)
    assert rig.session.last_seen_version == 3


def test_a_delta_of_our_update_before_its_accepted_keeps_the_view_exact() -> None:
    rig = in_sync()
    rig.deliver(rig.cloud({"state": {"desired": {"level": 4}}}))
    rig.report({"on": True})
    replies = rig.serve()
    rig.deliver(list(reversed(replies)))  # documents, delta, then accepted
    assert rig.state is S.IN_SYNC
    assert rig.session.cloud_document == rig.doc()


# -- 409, retries, escalation, backoff ----------------------------------------------------------


def test_409_refetches_merges_again_and_retries() -> None:
    rig = updating()
    token = rig.last_token()
    events = conflicted(rig)
    assert of_type(events, UpdateRejected) == [
        UpdateRejected(code=409, message="Version conflict", client_token=token)
    ]
    assert rig.state is S.BACKOFF
    assert rig.session.next_deadline() == pytest.approx(START + 0.5 * 0.5)
    events = rig.tick(1)
    assert [name for name, _ in published(events)] == ["get"]
    events = rig.pump()
    assert of_type(events, SyncCompleted)
    document = rig.doc()
    assert document.reported == {"on": True}
    assert document.desired == {"mode": "eco"}


def test_409_beyond_the_budget_escalates_to_review_and_says_so() -> None:
    rig = updating(config=SessionConfig(max_conflict_retries=1))
    conflicted(rig)
    rig.tick(10)
    rig.deliver(rig.serve())  # fresh snapshot, update sent again
    events = conflicted(rig)
    assert rig.state is S.REVIEW
    [review] = of_type(events, ReviewNeeded)
    assert review.escalated
    assert "2 version conflicts" in review.reason
    assert [item.path for item in review.items] == [("on",)]
    assert review.items[0].proposed is True
    assert rig.session.health(rig.now).in_review
    # Nothing more is sent until the application resumes.
    assert rig.tick(3600) == []
    rig.report({"off": 1})
    assert rig.unsent == []
    rig.take(rig.session.resume(rig.now))
    rig.pump()
    assert rig.current() is S.IN_SYNC
    assert rig.doc().reported == {"on": True, "off": 1}


def test_backoff_grows_and_is_reset_by_a_successful_sync() -> None:
    rig = Rig(config=SessionConfig(backoff=Backoff(initial=1, multiplier=2, maximum=8, jitter=0)))
    rig.connect()
    delays = []
    for _ in range(6):
        token = rig.last_token()
        rig.unsent.clear()
        rig.message("get", "rejected", {"code": 500, "message": "x", "clientToken": token})
        deadline = rig.session.next_deadline()
        assert deadline is not None
        delays.append(deadline - rig.now)
        rig.now = deadline
        rig.tick()
    assert delays == [1, 2, 4, 8, 8, 8]
    assert rig.session.health(rig.now).consecutive_failures == 6
    rig.pump()
    assert rig.session.health(rig.now).consecutive_failures == 0


def test_a_request_without_answer_times_out_and_is_retried() -> None:
    rig = updating(config=SessionConfig(request_timeout=10))
    rig.serve()  # applied, but the answer is lost
    assert rig.tick(9) == []
    events = rig.tick(1)
    assert of_type(events, RequestFailed)[0].operation == "update"
    assert rig.state is S.BACKOFF
    rig.tick(60)
    events = rig.pump()
    assert [name for name, _ in published(events)] == []  # the value was already there
    assert rig.current() is S.IN_SYNC
    assert rig.session.queue.pending() == ()


def test_late_and_duplicate_answers_are_ignored() -> None:
    rig = updating()
    replies = rig.serve()
    rig.deliver(replies)
    events = rig.deliver(replies)
    assert not of_type(events, UpdateAccepted)
    assert not of_type(events, DeltaReceived)
    assert rig.unsent == []
    assert rig.state is S.IN_SYNC
    get = rig.deliver(rig.service.handle(rig.topic("get", None), b'{"clientToken": "t1"}'))  # type: ignore[arg-type]
    assert "no GET" in of_type(get, MessageIgnored)[0].reason


def test_at_most_one_update_in_flight() -> None:
    rig = updating()
    for value in range(5):
        rig.report({"n": value})
    assert len(rig.unsent) == 1
    rig.pump()
    assert rig.doc().reported == {"on": True, "n": 4}


def test_a_permanent_rejection_drops_the_batch_and_moves_on() -> None:
    rig = updating()
    token = rig.last_token()
    rig.unsent.clear()
    events = rig.message(
        "update", "rejected", {"code": 400, "message": "Invalid JSON", "clientToken": token}
    )
    assert of_type(events, UpdateRejected)[0].permanent
    [dropped] = of_type(events, Dropped)
    assert [record.reason for record in dropped.records] == ["rejected"]
    assert rig.state is S.IN_SYNC


def test_every_superseded_report_is_reported_once_while_the_queue_keeps_few_records() -> None:
    rig = updating(config=SessionConfig(queue_limits=QueueLimits(max_drop_records=3)))
    rig.unsent.clear()  # the first update stays in flight: later reports wait in the queue
    dropped: list[Any] = []
    for value in range(40):
        dropped.extend(
            record.intent.value
            for event in of_type(rig.report({"n": value}), Dropped)
            for record in event.records
        )
    assert dropped == list(range(39))


def queued_writes(events: list[Event]) -> list[tuple[tuple[str, ...], Any]]:
    return [
        (intent.path, intent.value)
        for event in of_type(events, IntentsQueued)
        for intent in event.intents
    ]


def test_a_report_is_queued_as_one_intent_per_top_level_key() -> None:
    rig = in_sync()
    events = rig.report({"sensors": {"temp": 21, "hum": {"rel": 40}}, "on": True})
    assert queued_writes(events) == [
        (("sensors",), {"temp": 21, "hum": {"rel": 40}}),
        (("on",), True),
    ]
    rig.pump()
    assert rig.doc().reported == {"sensors": {"temp": 21, "hum": {"rel": 40}}, "on": True}
    assert rig.session.queue.pending() == ()


def test_a_partial_report_of_a_queued_object_is_queued_leaf_by_leaf() -> None:
    rig = updating()
    rig.unsent.clear()  # the first update stays in flight: later reports wait in the queue
    rig.report({"sensors": {"temp": 21, "hum": 40}})
    # Part of the object: one intent per leaf, so that each supersedes its own pending value.
    events = rig.report({"sensors": {"temp": 22}})
    assert queued_writes(events) == [(("sensors", "temp"), 22)]
    events = rig.report({"sensors": {"temp": 23}})
    assert queued_writes(events) == [(("sensors", "temp"), 23)]
    [dropped] = of_type(events, Dropped)
    assert [(r.intent.path, r.reason) for r in dropped.records] == [
        (("sensors", "temp"), "superseded")
    ]
    writes = [(intent.path, intent.value) for intent in rig.session.queue.pending()]
    assert writes == [
        (("on",), True),
        (("sensors",), {"temp": 21, "hum": 40}),
        (("sensors", "temp"), 23),
    ]
    # The whole object again supersedes everything pending under it, as one intent.
    events = rig.report({"sensors": {"temp": 24, "hum": 41}})
    assert queued_writes(events) == [(("sensors",), {"temp": 24, "hum": 41})]
    [dropped] = of_type(events, Dropped)
    assert len(dropped.records) == 2
    for _ in range(5):  # the lost update times out; the queue is sent again
        rig.tick(60)
        rig.pump()
    assert rig.doc().reported == {"on": True, "sensors": {"temp": 24, "hum": 41}}
    assert rig.session.queue.pending() == ()


def test_the_preflight_refuses_an_update_that_would_exceed_the_size_limit() -> None:
    rig = in_sync(config=SessionConfig(limits=ShadowLimits(max_document_bytes=200)))
    rig.service.update(THING, {"state": {"desired": {"note": "x" * 150}}})
    rig.take(rig.session.get(rig.now))
    rig.pump()
    events = rig.report({"log": "y" * 60})
    rejected = of_type(events, UpdateRejected)
    assert rejected == [
        UpdateRejected(
            code=413,
            message="The payload exceeds the maximum size allowed",
            client_token=rejected[0].client_token,
            permanent=True,
            local=True,
        )
    ]
    assert of_type(events, Dropped)
    assert rig.unsent == []


# -- desired state: rules, acknowledgements, auto-report ----------------------------------------

RULES = RuleSet(rules=[Range(path="target", minimum=0, maximum=100)])


def test_rejected_desired_values_are_acknowledged_with_the_desired_version() -> None:
    rig = in_sync(rules=RULES)
    events = rig.deliver(rig.cloud({"state": {"desired": {"target": 150, "mode": "eco"}}}))
    [delta] = of_type(events, DeltaReceived)
    assert delta.state == {"mode": "eco"}
    assert [rejection.path for rejection in delta.rejected] == [("target",)]
    [queued] = of_type(events, AcknowledgementQueued)
    assert queued.acknowledgement.desired_version == 2
    assert of_type(events, ConflictResolved)[0].section == "desired"
    rig.pump()
    ack: Any = rig.doc().reported[ACK_KEY]
    assert ack["desiredVersion"] == 2
    assert ack["rejected"][0]["path"] == "/target"
    # The same rejection is not acknowledged again.
    rig.take(rig.session.get(rig.now))
    events = rig.pump()
    assert not of_type(events, AcknowledgementQueued)


def test_a_fixed_desired_value_clears_the_acknowledged_rejection() -> None:
    rig = in_sync(rules=RULES, config=SessionConfig(auto_report=True))
    rig.deliver(rig.cloud({"state": {"desired": {"target": 150}}}))
    rig.pump()
    rig.deliver(rig.cloud({"state": {"desired": {"target": 50}}}))
    rig.pump()
    document = rig.doc()
    ack: Any = document.reported[ACK_KEY]
    assert document.reported["target"] == 50
    assert ack["rejected"] == []
    assert document.delta is None


def test_auto_report_reports_applied_desired_values() -> None:
    rig = in_sync(config=SessionConfig(auto_report=True))
    events = rig.deliver(rig.cloud({"state": {"desired": {"mode": "eco", "fan": {"speed": 2}}}}))
    assert of_type(events, DeltaReceived)[0].auto_reported
    rig.pump()
    document = rig.doc()
    assert document.reported == {"mode": "eco", "fan": {"speed": 2}}
    assert document.delta is None
    assert rig.state is S.IN_SYNC


def test_without_auto_report_the_delta_waits_for_the_application() -> None:
    rig = in_sync()
    rig.deliver(rig.cloud({"state": {"desired": {"mode": "eco"}}}))
    assert rig.unsent == []
    health = rig.session.health(rig.now + 30)
    assert health.divergence_age == 30
    rig.report({"mode": "eco"})
    rig.pump()
    assert rig.session.health(rig.now).divergence_age is None


def test_desire_changes_the_desired_state() -> None:
    rig = in_sync()
    rig.take(rig.session.desire({"mode": "eco", "old": None}, rig.now))
    rig.pump()
    assert rig.doc().desired == {"mode": "eco"}


def test_policy_decides_concurrent_reported_changes() -> None:
    rig = in_sync(policy=LastWriterWins())
    rig.report({"a": 1})
    rig.pump()
    rig.take(rig.session.disconnected(rig.now))
    rig.report({"a": 2})  # at START
    rig.now += 10
    rig.service.update(THING, {"state": {"reported": {"a": 3}}})  # later, by another writer
    events = rig.sync()
    [resolved] = of_type(events, ConflictResolved)
    assert resolved.report.records[0].winner == "theirs"
    assert rig.doc().reported["a"] == 3
    assert rig.session.queue.pending() == ()


# -- delete -------------------------------------------------------------------------------------


def test_delete_resets_versions_and_republishes_what_is_queued() -> None:
    rig = deleting()
    events = rig.deliver(rig.serve())
    assert of_type(events, ShadowDeleted) == [ShadowDeleted(version=1, by_us=True)]
    assert rig.session.last_seen_version is None
    assert rig.session.cloud_document is None


def test_delete_needs_an_idle_connected_session() -> None:
    rig = Rig()
    with pytest.raises(SessionStateError):
        rig.session.delete(rig.now)
    with pytest.raises(SessionStateError):
        rig.session.resume(rig.now)


def test_a_delete_by_someone_else_is_noticed() -> None:
    rig = in_sync()
    rig.report({"on": True})
    rig.pump()
    replies = rig.service.handle(rig.topic("delete", None), b'{"clientToken": "x"}')  # type: ignore[arg-type]
    events = rig.deliver(replies)
    assert of_type(events, ShadowDeleted) == [ShadowDeleted(version=2, by_us=False)]


# -- commands and inputs that are wrong ---------------------------------------------------------


def test_report_refuses_what_the_service_never_would_accept_before_queuing() -> None:
    rig = Rig()
    with pytest.raises(InvalidRequestError):
        rig.report({"rgb": [1, None]})
    with pytest.raises(PayloadTooLargeError):
        rig.report({"log": "x" * 9000})
    with pytest.raises(InvalidArgumentError):
        rig.report({ACK_KEY: {}})
    with pytest.raises(InvalidArgumentError):
        rig.session.report("on", rig.now)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        rig.session.tick(float("nan"))
    assert rig.session.queue.pending() == ()


def test_a_bad_token_factory_is_refused() -> None:
    session = ShadowSession(THING, store=MemoryStore(), token=lambda: "x" * 65, random=lambda: 0.0)
    with pytest.raises(InvalidArgumentError):
        session.connected(START)


def test_a_bad_random_source_is_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        Backoff().delay(0, lambda: 1.0)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("not/a/topic", b"{}", "not a shadow topic"),
        ("$aws/things/other/shadow/update/delta", b"{}", "another shadow"),
        ("$aws/things/lamp/shadow/update", b"{}", "request topic"),
        ("$aws/things/lamp/shadow/update/delta", b"\xff", "malformed"),
        ("$aws/things/lamp/shadow/update/delta", b"[1]", "not a JSON object"),
        ("$aws/things/lamp/shadow/update/delta", b"[" * 100_000, "malformed"),
        ("$aws/things/lamp/shadow/update/delta", b"x" * 300_000, "too big"),
        ("$aws/things/lamp/shadow/update/delta", b'{"state": {}, "version": "1"}', "malformed"),
        ("$aws/things/lamp/shadow/update/delta", b'{"state": 4, "version": 1}', "malformed"),
        ("$aws/things/lamp/shadow/update/documents", b'{"current": 1}', "malformed"),
        ("$aws/things/lamp/shadow/get/accepted", b'{"clientToken": "zz"}', "no GET"),
    ],
)
def test_bad_messages_become_events(topic: str, payload: bytes, reason: str) -> None:
    rig = in_sync()
    rig.report({"on": True})
    before = rig.session.queue.pending()
    events = rig.take(rig.session.receive_message(topic, payload, rig.now))
    [ignored] = of_type(events, MessageIgnored)
    assert reason in ignored.reason
    assert rig.session.queue.pending() == before


def test_a_non_string_topic_or_payload_is_ignored() -> None:
    rig = in_sync()
    events = rig.session.receive_message(5, b"{}", rig.now)  # type: ignore[arg-type]
    assert isinstance(events[0], MessageIgnored)
    events = rig.session.receive_message(rig.topic("update", "delta"), 5, rig.now)  # type: ignore[arg-type]
    assert isinstance(events[0], MessageIgnored)


def test_an_unreadable_snapshot_is_a_failed_request() -> None:
    rig = Rig()
    rig.connect()
    events = rig.message("get", "accepted", {"state": {"desired": 5}, "clientToken": "t1"})
    assert of_type(events, RequestFailed)[0].operation == "get"
    assert rig.state is S.BACKOFF


@given(
    payloads=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    (op, resp)
                    for op in ("update", "get", "delete")
                    for resp in ("accepted", "rejected")
                ]
                + [("update", "delta"), ("update", "documents")]
            ),
            hostile_payloads(),
        ),
        max_size=6,
    ),
    state=st.sampled_from(["fetching", "updating", "in_sync", "offline"]),
)
def test_hostile_messages_never_raise_nor_touch_the_queue(
    payloads: list[tuple[tuple[str, str], bytes]], state: str
) -> None:
    rig = Rig()
    rig.report({"on": True})
    if state != "offline":
        rig.connect()
        if state != "fetching":
            rig.deliver(rig.serve())
        if state == "in_sync":
            rig.pump()
    pending = {intent.seq for intent in rig.session.queue.pending()}
    for (operation, response), payload in payloads:
        topic = topics.build(THING, operation, response)  # type: ignore[arg-type]
        events = rig.session.receive_message(topic, payload, rig.now)
        assert all(isinstance(event, Event) for event in events)
    assert {intent.seq for intent in rig.session.queue.pending()} <= pending
    rig.take(rig.session.disconnected(rig.now))
    rig.unsent.clear()
    rig.sync()
    assert rig.session.queue.pending() == ()


# -- reboot, cache, health ----------------------------------------------------------------------


def test_a_rebooted_session_resumes_from_its_store() -> None:
    rig = in_sync()
    rig.report({"on": True})
    rig.pump()
    rig.deliver(rig.cloud({"state": {"desired": {"mode": "eco"}}}))
    rig.report({"temp": 20})  # queued, not sent yet
    rig.unsent.clear()
    reborn = Rig(store=rig.store, service=rig.service)
    reborn.now = rig.now
    assert reborn.session.last_seen_version == rig.session.last_seen_version == 3
    assert reborn.session.cloud_document == rig.session.cloud_document
    assert [i.path for i in reborn.session.queue.pending()] == [("temp",)]
    old = max(i.stamp for i in rig.session.queue.pending())
    events = reborn.report({"temp": 21})
    assert of_type(events, IntentsQueued)[0].intents[0].stamp > old
    reborn.sync()
    assert reborn.doc().reported == {"on": True, "temp": 21}


def test_a_corrupt_cache_is_reported_and_ignored() -> None:
    store = MemoryStore()
    store.put_cache(THING, None, document={"state": {"desired": 5}}, base=None)
    rig = Rig(store=store)
    events = rig.connect()
    assert isinstance(events[0], CacheReset)
    rig.pump()
    assert rig.state is S.IN_SYNC


def test_health_makes_a_stuck_sync_visible() -> None:
    rig = Rig()
    rig.report({"on": True})
    rig.now += 100
    health = rig.session.health(rig.now)
    assert health == SessionHealth(
        state=S.OFFLINE,
        connected=False,
        pending_intents=1,
        oldest_pending_age=100.0,
        last_sync_at=None,
        consecutive_failures=0,
        divergence_age=100.0,
        next_retry_at=None,
        last_seen_version=None,
    )
    assert health.to_json()["pendingIntents"] == 1
    rig.sync()
    health = rig.session.health(rig.now)
    assert (health.pending_intents, health.last_sync_at, health.divergence_age) == (
        0,
        int(rig.now),
        None,
    )


def test_queue_drops_are_reported_as_events() -> None:
    rig = Rig(config=SessionConfig(queue_limits=QueueLimits(max_intents=2)))
    rig.report({"a": 1, "b": 2})
    events = rig.report({"c": 3})
    [dropped] = of_type(events, Dropped)
    assert [(r.intent.path, r.reason) for r in dropped.records] == [(("a",), "queue_full")]
    events = rig.tick(8 * 86_400)
    assert {r.reason for r in of_type(events, Dropped)[0].records} == {"expired"}


# -- values --------------------------------------------------------------------------------------


@given(attempt=st.integers(0, 2000), draw=st.floats(0, 1, exclude_max=True))
def test_backoff_stays_within_its_bounds(attempt: int, draw: float) -> None:
    backoff = Backoff(initial=0.5, multiplier=3, maximum=120, jitter=1)
    delay = backoff.delay(attempt, lambda: draw)
    assert 0 <= delay <= 120


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"multiplier": 0.5}, {"maximum": 0.1, "initial": 1}, {"jitter": 2}],
)
def test_backoff_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        Backoff(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"request_timeout": 0},
        {"max_conflict_retries": -1},
        {"auto_report": 1},
        {"backoff": 5},
        {"limits": {}},
    ],
)
def test_config_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ShadowSyncError):
        SessionConfig(**kwargs)


def test_session_arguments_are_validated() -> None:
    with pytest.raises(InvalidArgumentError):
        ShadowSession("bad/name", store=MemoryStore(), token=str, random=float)
    with pytest.raises(InvalidArgumentError):
        ShadowSession(THING, store=MemoryStore(), token=str, random=float, rules={})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        ShadowSession(THING, store=MemoryStore(), token=str, random=float, policy=3)  # type: ignore[arg-type]


def test_events_are_frozen_values() -> None:
    event = UpdateAccepted(client_token="t", version=2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.version = 3  # type: ignore[misc]
    with pytest.raises(InvalidArgumentError):
        UpdateAccepted(client_token=1, version=2)  # type: ignore[arg-type]
    assert Publish(topic="t", payload="é").payload == "é".encode()
    assert SnapshotReceived(version=None).version is None


def test_the_table_is_on_the_class() -> None:
    assert ShadowSession.TRANSITIONS is TRANSITIONS


# --- what a round trip writes -----------------------------------------------------------------


class Commits:
    """The commits on a `SQLiteStore`'s connection, each with whether it waited for the disk
    (``synchronous=FULL``): counted, not timed, so that a regression shows as a failure."""

    def __init__(self, store: SQLiteStore) -> None:
        self.commits: list[bool] = []
        self._full = True
        connection = store._conn  # the test watches the store's own statements
        assert connection is not None
        connection.set_trace_callback(self._trace)

    def _trace(self, sql: str) -> None:
        statement = sql.strip().upper()
        if statement.startswith("PRAGMA SYNCHRONOUS="):
            self._full = statement.endswith("=FULL")
        elif statement == "COMMIT":
            self.commits.append(self._full)

    def take(self) -> list[bool]:
        taken, self.commits = self.commits, []
        return taken


def watched(path: Path) -> tuple[Rig, SQLiteStore, Commits]:
    """A session in sync on a `SQLiteStore` at ``path``, its commits counted from now on."""
    store = SQLiteStore(path)
    rig = Rig(store=store)
    rig.service.update(THING, {"state": {"reported": {"a": 0}}})
    rig.sync()
    return rig, store, Commits(store)


def test_a_round_trip_commits_once_at_the_report_and_once_at_its_answer(tmp_path: Path) -> None:
    rig, store, commits = watched(tmp_path / "device.db")
    for n in range(1, 4):
        rig.report({"a": n, "b": {"c": n, "d": [n, n]}, "e": f"n{n}", "f": {"g": {"h": n}}})
        assert commits.take() == [True]  # the whole report, on the disk when report returns
        replies = rig.serve()
        assert [topic.rsplit("/shadow/", 1)[1] for topic, _ in replies] == [
            "update/accepted",
            "update/documents",
        ]
        assert of_type(rig.deliver(replies[:1]), IntentsConfirmed)
        # The confirmation and the cache entry: one commit, which need not wait for the disk.
        assert commits.take() == [False]
        rig.deliver(replies[1:])
        assert commits.take() == []  # the documents of our own update change nothing
        assert rig.state is S.IN_SYNC
        assert not rig.unsent
        assert store.intents() == []
    store.close()
    with SQLiteStore(tmp_path / "device.db") as reopened:
        cached = reopened.get_cache(THING, None)
        assert cached is not None
        assert cached.document is not None
        assert cached.document["version"] == rig.doc().version


def test_a_session_call_that_changes_nothing_writes_nothing(tmp_path: Path) -> None:
    rig, store, commits = watched(tmp_path / "device.db")
    rig.tick(1.0)
    rig.message("update", "accepted", {"clientToken": "someone-else", "version": 1})
    rig.session.get(rig.now)
    assert commits.take() == []
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_cache_entry_lost_to_a_rolled_back_transaction_is_written_again(
    kind: str, tmp_path: Path
) -> None:
    """An enclosing transaction that rolls back after a session call takes the call's cache
    entry with it; the session's next call writes the entry again."""
    store: Any = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "device.db")
    rig = Rig(store=store)
    rig.service.update(THING, {"state": {"reported": {"a": 0}}})

    def failing_after_the_call() -> None:
        with store.transaction():
            rig.sync()
            assert store.get_cache(THING, None) is not None
            raise RuntimeError("the application failed after the call")

    with pytest.raises(RuntimeError, match="after the call"):
        failing_after_the_call()
    assert store.get_cache(THING, None) is None
    assert store.rollbacks == 1
    rig.tick(1.0)
    cached = store.get_cache(THING, None)
    assert cached is not None
    assert cached.document is not None
    assert cached.document["version"] == rig.doc().version


def test_a_session_call_that_raises_writes_nothing() -> None:
    store = MemoryStore()
    rig = in_sync(store=store)
    rig.session._requests._token = lambda: ""  # the next update's token factory fails
    with pytest.raises(InvalidArgumentError, match="token"):
        rig.report({"a": 1, "b": 2})
    assert store.intents() == []
    assert rig.session.queue.pending() == ()
