"""Laws of the offline queue, one per test: replay means what the intents mean, within limits,
nothing is lost without a drop record, and the order survives a reopen."""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
from hypothesis import given
from hypothesis import strategies as st

from shadowsync import HLCStamp, ShadowLimits, UpdateRequest, json_equal
from shadowsync._device.queue import OfflineQueue, QueueLimits
from shadowsync._json import encoded_size
from shadowsync.stores import MemoryStore, SQLiteStore
from tests.strategies.causality import slow
from tests.strategies.device import (
    QUEUE_NOW,
    apply_batches,
    initial_reported,
    queue_intent_logs,
    reference_reported,
    reported_of,
    shadow_document,
    token_counter,
)

if TYPE_CHECKING:
    import random as random_module

    from shadowsync._device.intent import Intent
    from shadowsync._device.replay import ReplayBatch
    from shadowsync._json import JSONObject

document_limits = st.sampled_from([8192, 200, 90, 60]).map(
    lambda size: ShadowLimits(max_document_bytes=size)
)
"""From the AWS limit down to a few intents per update, so that replays split."""

initial_states = st.one_of(initial_reported, st.none())
"""The cloud's reported state before the replay, or no shadow at all."""


class _Log:
    """A queue plus what was put into it, to compute what replaying it must produce.

    An intent counts for the reference unless the queue dropped it for a reason other than
    coalescing (expired, queue full, rejected): those are lost on purpose, as the drop report
    says. Superseded intents count: coalescing them away must not change the result.
    """

    def __init__(self, limits: ShadowLimits) -> None:
        self.queue = OfflineQueue(MemoryStore(), shadow_limits=limits)
        self.entries: list[tuple[int, Intent, int]] = []
        self.puts = 0

    def put(self, intents: list[Intent]) -> None:
        for intent in intents:
            result = self.queue.put(intent, now=QUEUE_NOW)
            coalesced = result.seq is None and result.dropped[-1].reason == "superseded"
            if result.seq is not None or coalesced:
                self.entries.append((self.puts, intent, result.seq or 0))
            self.puts += 1

    def expected(self, initial: JSONObject | None) -> dict[tuple[str, str | None], JSONObject]:
        lost = {drop.intent.seq for drop in self.queue.drops() if drop.reason != "superseded"}
        return reference_reported(
            [(position, intent) for position, intent, seq in self.entries if seq not in lost],
            initial,
        )


def _same_state(
    expected: dict[tuple[str, str | None], JSONObject],
    documents: dict[tuple[str, str | None], JSONObject],
    initial: JSONObject | None,
) -> bool:
    """Equal reported states on every shadow either side touched."""
    untouched = reported_of({("", None): shadow_document(initial)})[("", None)]
    return all(
        json_equal(expected.get(key, untouched), documents.get(key, untouched))
        for key in set(expected) | set(documents)
    )


def _log(intents: list[Intent], limits: ShadowLimits) -> _Log:
    log = _Log(limits)
    log.put(intents)
    return log


@given(queue_intent_logs(max_size=30), initial_states, document_limits)
def test_replay_gives_the_state_of_every_intent_applied_in_stamp_order(
    intents: list[Intent], initial: JSONObject | None, limits: ShadowLimits
) -> None:
    log = _log(intents, limits)
    batches = log.queue.replay(now=QUEUE_NOW, token=token_counter())
    assert _same_state(log.expected(initial), reported_of(apply_batches(batches, initial)), initial)


@slow
@given(queue_intent_logs(max_size=30), document_limits)
def test_every_batch_is_a_valid_update_within_the_size_and_depth_limits(
    intents: list[Intent], limits: ShadowLimits
) -> None:
    queue = _log(intents, limits).queue
    for batch in queue.replay(now=QUEUE_NOW, token=token_counter()):
        parsed = UpdateRequest.parse(batch.request, limits=limits)  # depth, nulls, token
        assert parsed.client_token == batch.client_token
        assert batch.size == encoded_size(batch.request["state"]) <= limits.max_document_bytes


@slow
@given(queue_intent_logs(max_size=30), document_limits)
def test_replay_carries_every_pending_intent(intents: list[Intent], limits: ShadowLimits) -> None:
    queue = _log(intents, limits).queue
    batches = queue.replay(now=QUEUE_NOW, token=token_counter())
    carried = {seq for batch in batches for seq in batch.seqs}
    assert carried == {intent.seq for intent in queue.pending()}


@slow
@given(queue_intent_logs(max_size=30), document_limits, st.randoms(use_true_random=False))
def test_confirm_removes_exactly_the_batch_once_its_group_is_settled(
    intents: list[Intent], limits: ShadowLimits, random: random_module.Random
) -> None:
    queue = _log(intents, limits).queue
    batches = list(queue.replay(now=QUEUE_NOW, token=token_counter()))
    # Batches sharing an intent form a group; each group's intents go with its last confirm.
    sharing = collections.Counter(seq for batch in batches for seq in batch.seqs)
    random.shuffle(batches)
    unsettled = {batch.client_token: batch for batch in batches}
    for batch in batches:
        before = {intent.seq for intent in queue.pending()}
        removed = queue.confirm(batch.client_token)
        del unsettled[batch.client_token]
        if all(sharing[seq] == 1 for seq in batch.seqs):
            assert removed == batch.seqs
        carried_later = {seq for other in unsettled.values() for seq in other.seqs}
        assert set(removed).isdisjoint(carried_later)
        assert set(removed) <= before
        assert {intent.seq for intent in queue.pending()} == before - set(removed)
    assert queue.pending() == ()


@slow
@given(
    queue_intent_logs(max_size=20, increasing=True),
    queue_intent_logs(max_size=10, increasing=True),
    initial_states,
    document_limits,
    st.randoms(use_true_random=False),
)
def test_a_replay_interrupted_anywhere_then_replayed_again_converges(
    first: list[Intent],
    second: list[Intent],
    initial: JSONObject | None,
    limits: ShadowLimits,
    random: random_module.Random,
) -> None:
    # Stamps keep increasing across both rounds, as with one hybrid logical clock.
    later = [
        attrs.evolve(
            intent,
            stamp=HLCStamp(wall_ms=intent.stamp.wall_ms + len(first), counter=0, node="device"),
        )
        for intent in second
    ]
    log = _log(first, limits)
    token = token_counter()
    documents = apply_batches([], initial)
    accepted: set[str] = set()
    for batch in log.queue.replay(now=QUEUE_NOW, token=token):
        # The connection drops some updates; a write waits for the resets it depends on.
        if set(batch.depends_on) <= accepted and random.random() < 0.6:
            documents = apply_batches([batch], initial, documents)
            accepted.add(batch.client_token)
            log.queue.confirm(batch.client_token)
    log.put(later)
    documents = apply_batches(log.queue.replay(now=QUEUE_NOW, token=token), initial, documents)
    assert _same_state(log.expected(initial), reported_of(documents), initial)


@slow
@given(
    queue_intent_logs(max_size=40),
    st.integers(1, 12),
    st.integers(40, 600),
    st.sampled_from(["drop_oldest", "reject_new"]),
    st.randoms(use_true_random=False),
)
def test_no_intent_leaves_the_queue_without_a_drop_record_or_a_confirm(
    intents: list[Intent],
    max_intents: int,
    max_bytes: int,
    on_full: str,
    random: random_module.Random,
) -> None:
    limits = QueueLimits(
        max_intents=max_intents,
        max_bytes=max_bytes,
        on_full="drop_oldest" if on_full == "drop_oldest" else "reject_new",
    )
    queue = OfflineQueue(MemoryStore(), limits=limits, shadow_limits=ShadowLimits())
    confirmed = 0
    token = token_counter()
    batches: list[ReplayBatch] = []
    for intent in intents:
        queue.put(intent, now=QUEUE_NOW)
        if random.random() < 0.2:
            batches = list(queue.replay(now=QUEUE_NOW, token=token))
        if batches and random.random() < 0.3:
            confirmed += len(queue.confirm(batches.pop(0).client_token))
        stats = queue.stats(now=QUEUE_NOW)
        assert stats.count <= max_intents
        assert stats.bytes <= max_bytes
    stats = queue.stats(now=QUEUE_NOW)
    dropped = len(queue.drops())
    assert stats.puts == len(intents)
    assert stats.confirmed == confirmed
    assert stats.loaded + stats.puts - dropped == stats.count + stats.confirmed
    assert dropped == stats.expired + stats.queue_full + stats.superseded + stats.rejected


@slow
@given(queue_intent_logs(max_size=15), st.booleans())
def test_pending_intents_and_their_order_survive_a_reopen(
    intents: list[Intent], on_disk: bool
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "queue.db"
        store = SQLiteStore(path) if on_disk else MemoryStore()
        queue = OfflineQueue(store)
        for intent in intents[: len(intents) // 2]:
            queue.put(intent, now=QUEUE_NOW)
        before = queue.pending()
        if on_disk:
            store.close()
            store = SQLiteStore(path)
        reopened = OfflineQueue(store)
        assert reopened.pending() == before
        seqs = [intent.seq for intent in reopened.pending()]
        assert seqs == sorted(set(seqs))
        highest = max(seqs, default=0)
        for intent in intents[len(intents) // 2 :]:
            result = reopened.put(intent, now=QUEUE_NOW)
            if result.seq is not None:
                assert result.seq > highest
                highest = result.seq
        store.close()
