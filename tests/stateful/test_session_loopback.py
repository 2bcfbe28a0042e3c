"""A device session and the in-memory service under any fault schedule that ends in a good network.

The device reports its own keys (``a``, ``b``, ``c``, ``n.x``, ``n.y``); a cloud application
sets desired ``mode`` and ``target`` (a rule allows ``target`` only from 0 to 100) and writes
a reported key of its own. Between steps the network drops, duplicates, reorders and delays
messages, the link goes down for up to more than a week (queued intents expire) and the device
reboots from its store. The queue is small, so it fills and drops.

Throughout: every intent ``put`` returned for is still queued, confirmed, or listed in a drop
record; and the versions the device has seen never go back. At the end the network heals, the
device reconnects, and once everything is quiet: device and cloud agree (the device's cached
document, in memory and in its store, is the service's), every owned key holds the device's
last value unless a drop record says it was lost, and every desired value is reported
(auto-report) or acknowledged as refused by the rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from shadowsync import ShadowDocument
from shadowsync._device.config import SessionConfig
from shadowsync._device.intent import written_leaves
from shadowsync._device.queue import DropRecord, QueueLimits
from shadowsync._device.state import SessionState
from shadowsync._fakes.loopback import LoopbackPair
from shadowsync.events import Dropped, IntentsConfirmed, IntentsQueued
from shadowsync.rules import ACK_KEY, Range, RuleSet
from shadowsync.strategies import MISSING
from tests.strategies.device import (
    SESSION_DELAYS,
    SESSION_DESIRED_KEYS,
    SESSION_TARGET_RANGE,
    SESSION_THING,
    session_desired,
    session_fault_settings,
    session_reports,
)

if TYPE_CHECKING:
    from shadowsync._device.intent import Intent

RULES = RuleSet(
    rules=[Range(path="target", minimum=SESSION_TARGET_RANGE[0], maximum=SESSION_TARGET_RANGE[1])]
)
CONFIG = SessionConfig(
    auto_report=True,
    max_conflict_retries=2,
    request_timeout=20.0,
    queue_limits=QueueLimits(max_intents=10),
)


def _lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return MISSING
        tree = tree[key]
    return tree


class DeviceAndCloud(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pair = LoopbackPair(SESSION_THING, config=CONFIG, rules=RULES)
        self.read = 0
        self.queued: dict[int, Intent] = {}
        self.confirmed: set[int] = set()
        self.dropped: dict[int, DropRecord] = {}
        self.highest: int | None = None

    @initialize(seed=st.integers(0, 2**32 - 1))
    def start(self, seed: int) -> None:
        self.pair = LoopbackPair(SESSION_THING, seed=seed, config=CONFIG, rules=RULES)

    def absorb(self) -> None:
        events = self.pair.events
        for event in events[self.read :]:
            if isinstance(event, IntentsQueued):
                for intent in event.intents:
                    assert intent.seq not in self.queued, "a seq was given twice"
                    self.queued[intent.seq] = intent
            elif isinstance(event, IntentsConfirmed):
                self.confirmed.update(event.seqs)
            elif isinstance(event, Dropped):
                for record in event.records:
                    self.dropped[record.intent.seq] = record
        self.read = len(events)

    # -- the device --

    @rule(changes=session_reports())
    def device_reports(self, changes: dict[str, Any]) -> None:
        self.pair.report(changes)

    @rule()
    def link_up(self) -> None:
        self.pair.connect()

    @rule()
    def link_down(self) -> None:
        self.pair.disconnect()

    @rule()
    def device_reboots(self) -> None:
        self.pair.reboot()

    @rule()
    def device_asks_for_a_snapshot(self) -> None:
        self.pair.get()

    @rule()
    def operator_resumes(self) -> None:
        if self.pair.session.state in (SessionState.REVIEW, SessionState.BACKOFF):
            self.pair.resume()

    # -- the cloud --

    @rule(changes=session_desired())
    def cloud_sets_desired(self, changes: dict[str, Any]) -> None:
        self.pair.cloud_update({"state": {"desired": changes}})

    @rule(value=st.integers(0, 9))
    def cloud_writes_its_own_reported_key(self, value: int) -> None:
        self.pair.cloud_update({"state": {"reported": {"cloud_note": value}}})

    # -- the network and time --

    @rule(changes=session_fault_settings())
    def network_changes(self, changes: dict[str, float]) -> None:
        self.pair.faults.configure(**changes)

    @rule(seconds=st.sampled_from(SESSION_DELAYS))
    def time_passes(self, seconds: float) -> None:
        self.pair.advance(seconds)

    # -- always --

    @invariant()
    def no_intent_disappears_without_a_record(self) -> None:
        self.absorb()
        pending = {intent.seq for intent in self.pair.queue.pending()}
        lost = set(self.queued) - pending - self.confirmed - set(self.dropped)
        assert not lost, f"intents {sorted(lost)} left the queue without a record"

    @invariant()
    def versions_never_go_back(self) -> None:
        version = self.pair.session.last_seen_version
        if self.highest is not None:
            assert version is not None, "the device forgot every version it saw"
            assert version >= self.highest, f"version went back from {self.highest} to {version}"
        self.highest = version

    # -- finally: a good network, and quiet --

    def teardown(self) -> None:
        pair = self.pair
        pair.heal()
        pair.disconnect()
        pair.connect()
        assert pair.run_until_quiet(), "still busy an hour after the network healed"
        self.no_intent_disappears_without_a_record()
        self.versions_never_go_back()
        assert pair.differences() == []
        document = pair.service.document(SESSION_THING)
        cached = pair.session.cloud_document
        if document is None:
            assert cached is None
            assert not [i for i in self.queued.values() if i.seq not in self.dropped]
            return
        assert cached is not None
        assert cached.desired_metadata == document.desired_metadata
        assert cached.reported_metadata == document.reported_metadata
        entry = pair.store.get_cache(SESSION_THING, None)
        assert entry is not None
        assert entry.document is not None
        stored = ShadowDocument.from_dict(entry.document)
        assert (stored.version, stored.desired, stored.reported) == (
            document.version,
            document.desired,
            document.reported,
        )
        assert set(self.queued) == self.confirmed | set(self.dropped)
        self.check_owned_keys(document)
        self.check_desired_keys(document)

    def check_owned_keys(self, document: ShadowDocument) -> None:
        # The latest write to each leaf (a report's intent may carry a whole object).
        latest: dict[tuple[str, ...], tuple[Intent, Any]] = {}
        for seq in sorted(self.queued):
            intent = self.queued[seq]
            if intent.kind == "report" and intent.path[0] not in SESSION_DESIRED_KEYS:
                for path, value in written_leaves(intent):
                    latest[path] = (intent, value)
        for path, (intent, value) in latest.items():
            record = self.dropped.get(intent.seq)
            if record is not None and record.reason != "superseded":
                continue  # lost, and the drop record says so
            expected = MISSING if value is None else value
            assert _lookup(document.reported, path) == expected, (path, record)

    def check_desired_keys(self, document: ShadowDocument) -> None:
        ack: Any = document.reported.get(ACK_KEY)
        refused = (
            [entry["path"] for entry in ack.get("rejected", [])] if isinstance(ack, dict) else []
        )
        for key, value in document.desired.items():
            if document.reported.get(key) != value:
                assert f"/{key}" in refused, (key, value, document.reported)


DeviceAndCloud.TestCase.settings = settings(stateful_step_count=100)
TestDeviceAndCloud = DeviceAndCloud.TestCase
