"""Laws of the cloud-side resolver, over random histories played through the service.

Each history mixes cloud writes (desired), device writes (reported), time passing and
resolutions with random policies and rules; every resolution's update is applied and its record
added to the log (see `tests.strategies.cloud`).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given

from shadowsync import stamps_at
from shadowsync.audit import AuditLog
from shadowsync.cloud import HistoryHead, handle_delta_event
from shadowsync.strategies import MISSING, ConflictKind
from tests.strategies import leaf_paths, lookup, strict_equal, value_form
from tests.strategies.cloud import (
    POLICIES,
    RULES,
    SHADOWS,
    THING,
    Resolution,
    Step,
    histories,
    run_history,
    state_of,
)

Path = tuple[str, ...]


def _related(a: Path, b: Path) -> bool:
    """One path is the other or lies under it."""
    return a[: len(b)] == b or b[: len(a)] == a


def _refused(resolution: Resolution) -> list[Path]:
    return [
        r.path for r in resolution.decision.report if r.kind is ConflictKind.BUSINESS_RULE_VIOLATION
    ]


@given(histories())
def test_replaying_the_log_reproduces_every_recorded_version(history: list[Step]) -> None:
    run = run_history(history)
    assert run.log.verify().ok
    assert run.resolutions, "every history ends with a resolution of each shadow"
    for record in run.log:
        replayed = run.log.replay(THING, record.shadow_name, version=record.version)
        assert replayed == run.states[(record.shadow_name, record.version)], record.version
    for resolution in run.resolutions:
        assert resolution.decision.record.version == resolution.after.version
        assert run.log.replay(
            THING, resolution.step.shadow, version=resolution.after.version
        ) == state_of(resolution.after)


@given(histories())
def test_decisions_are_deterministic(history: list[Step]) -> None:
    run = run_history(history)
    for resolution in run.resolutions:
        step = resolution.step
        again = handle_delta_event(
            dict(resolution.event),
            resolution.before.to_dict(),
            now=resolution.decision.record.timestamp,
            history=AuditLog(resolution.history),
            policy=POLICIES[step.policy],
            rules=RULES if step.rules else None,
        )
        assert again.to_json() == resolution.decision.to_json()
        assert again.record.checksum == resolution.decision.record.checksum
        assert again.events == resolution.decision.events
        assert again.metrics == resolution.decision.metrics


@given(histories())
def test_pending_is_the_delta_left_after_the_update_and_never_a_refused_path(
    history: list[Step],
) -> None:
    run = run_history(history)
    for resolution in run.resolutions:
        decision = resolution.decision
        delta = resolution.after.delta or {}
        assert sorted(decision.pending) == sorted(leaf_paths(delta)), (decision.pending, delta)
        assert decision.to_json()["pending"] == [
            "".join("/" + key for key in path) for path in decision.pending
        ]
        for refused in _refused(resolution):
            assert not any(_related(path, refused) for path in decision.pending)


@given(histories())
def test_a_refused_value_is_not_in_desired_after_the_update(history: list[Step]) -> None:
    run = run_history(history)
    for resolution in run.resolutions:
        for record in resolution.decision.report:
            if record.kind is not ConflictKind.BUSINESS_RULE_VIOLATION:
                continue
            # Desired holds at the refused path what is reported there (or neither has it).
            desired = lookup(resolution.after.desired, record.path)
            assert desired == lookup(resolution.after.reported, record.path), record


@given(histories())
def test_a_path_only_the_cloud_changed_is_never_written_by_the_resolver(
    history: list[Step],
) -> None:
    run = run_history(history)
    for resolution in run.resolutions:
        if resolution.step.rules or resolution.decision.update is None:
            continue
        before = resolution.before
        update: Any = resolution.decision.update
        written = leaf_paths(update["state"]["desired"])
        base = resolution.base
        cloud_stamps = stamps_at(before.section_metadata("desired"), leaf_paths(before.delta or {}))
        device_stamps = stamps_at(before.section_metadata("reported"), cloud_stamps)
        for path in leaf_paths(before.delta or {}):
            reported_now = lookup(before.reported, path)
            agreed = reported_now if base is None else lookup(base["reported"], path)
            # JSON equality, as the resolver compares (Python's == takes true for 1).
            if value_form(reported_now) != value_form(agreed):
                continue  # the device changed it too
            device, cloud = device_stamps.get(path), cloud_stamps.get(path)
            if base is None and device is not None and cloud is not None and device > cloud:
                continue  # no record yet: the device reported after the cloud wrote (metadata)
            assert not any(_related(path, other) for other in written), (path, written)


@given(histories())
def test_a_held_path_is_never_written_and_stays_pending(history: list[Step]) -> None:
    run = run_history(history)
    for resolution in run.resolutions:
        decision = resolution.decision
        update: Any = decision.update
        written = leaf_paths(update["state"]["desired"]) if update is not None else {}
        for item in decision.reviews:
            # A rule's refusal settles a conflict: nothing refused is still held.
            assert not any(_related(item.path, r) for r in _refused(resolution))
            assert not any(_related(item.path, other) for other in written)
            assert item.current is not MISSING
            assert lookup(resolution.after.desired, item.path) == (True, item.current)
            assert any(_related(item.path, path) for path in decision.pending)


@given(histories())
def test_a_decision_leaves_the_history_it_read_unchanged(history: list[Step]) -> None:
    # A decision reads the base of its merge from the history without copying it.
    run = run_history(history)
    for resolution in run.resolutions:
        step = resolution.step
        log = AuditLog(resolution.history)
        head = HistoryHead.from_log(log, THING)
        states = [view.last_state(THING, shadow) for view in (log, head) for shadow in SHADOWS]
        before = copy.deepcopy(states)
        for view in (log, head):
            handle_delta_event(
                dict(resolution.event),
                resolution.before,
                now=resolution.decision.record.timestamp,
                history=view,
                policy=POLICIES[step.policy],
                rules=RULES if step.rules else None,
            )
        after = [view.last_state(THING, shadow) for view in (log, head) for shadow in SHADOWS]
        assert strict_equal(after, before)
