"""The session's view of the cloud: its cache round trip, deltas over it, and message versions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shadowsync import DEFAULT_LIMITS, ShadowDocument
from shadowsync._device.messages import Notification
from shadowsync._device.view import CloudView, apply_at, apply_patch
from shadowsync._json import copy_object
from shadowsync._tree import nest
from shadowsync.events import CacheReset
from shadowsync.stores import MemoryStore

if TYPE_CHECKING:
    from shadowsync._json import JSONObject, JSONValue


def view(store: MemoryStore, shadow_name: str | None = None) -> CloudView:
    return CloudView(store, "lamp", shadow_name, limits=DEFAULT_LIMITS)


def document(version: int, desired: JSONObject, reported: JSONObject) -> ShadowDocument:
    return ShadowDocument.from_dict(
        {
            "state": {"desired": desired, "reported": reported},
            "metadata": {"reported": {"on": {"timestamp": 1_700_000_000}}},
            "version": version,
            "timestamp": 1_700_000_000,
        }
    )


def test_the_view_survives_a_reboot_through_the_store() -> None:
    store = MemoryStore()
    first = view(store, "hvac")
    first.expect_snapshot()
    first.take_snapshot(document(4, {"mode": "cool"}, {"on": True}))
    first.accept_desired({"mode": "cool"}, first.theirs_desired())
    first.rebase()
    first.see(6)
    first.persist()

    again = view(store, "hvac")
    assert again.load() is None
    assert again.document == first.document
    assert again.last_seen == 6
    assert again.agreed.accepted_desired == {"mode": "cool"}
    assert again.agreed.accepted_metadata == first.agreed.accepted_metadata
    assert again.agreed.base_reported == {"on": True}
    assert not again.is_fresh()  # only a snapshot makes a view exact
    assert view(store).load() is None  # the classic shadow has no entry of its own


def test_an_unreadable_cache_is_reset_and_said_so() -> None:
    store = MemoryStore()
    store.put_cache("lamp", None, document=None, base={"lastSeenVersion": -1})
    fresh = view(store)
    reset = fresh.load()
    assert isinstance(reset, CacheReset)
    assert "lastSeenVersion" in reset.reason
    assert fresh.document is None
    assert fresh.last_seen is None


def test_a_newer_delta_counts_until_the_view_catches_up() -> None:
    cloud = view(MemoryStore())
    cloud.expect_snapshot()
    cloud.take_snapshot(document(2, {"mode": "cool", "fan": 1}, {}))
    cloud.apply_delta(3, {"mode": "heat"})
    assert cloud.theirs_desired() == {"mode": "heat", "fan": 1}
    assert cloud.desired_version() == 3
    cloud.apply_delta(2, {"mode": "off"})  # already in the view
    assert cloud.theirs_desired() == {"mode": "heat", "fan": 1}
    cloud.expect_snapshot()
    cloud.take_snapshot(document(3, {"mode": "dry"}, {}))
    assert cloud.theirs_desired() == {"mode": "dry"}


def test_notifications_older_than_what_was_seen_add_nothing() -> None:
    cloud = view(MemoryStore())
    cloud.expect_snapshot()
    cloud.take_snapshot(document(5, {}, {}))
    assert cloud.ignores(5, floor=5) == "covered by snapshot 5"
    assert cloud.ignores(4, floor=None) == "stale: version 4 < 5 seen"
    assert cloud.ignores(6, floor=5) is None
    assert not cloud.take_notification(Notification(version=6, delta={"on": True}))
    assert cloud.take_notification(Notification(version=9, delta={"on": False}))  # a gap
    assert cloud.last_seen == 9
    assert not cloud.is_fresh()


def test_a_snapshot_below_what_was_seen_is_the_latest_word_when_nothing_came_since() -> None:
    cloud = view(MemoryStore())
    cloud.see(40)
    cloud.expect_snapshot()
    cloud.take_snapshot(document(2, {}, {}))  # deleted and created again meanwhile
    assert cloud.last_seen == 2
    assert cloud.is_fresh()
    cloud.expect_snapshot()
    cloud.see(7)  # a message arrived while the GET was out
    cloud.take_snapshot(document(3, {}, {}))
    assert cloud.last_seen == 7
    assert not cloud.is_fresh()


def test_forgetting_the_shadow_clears_what_was_agreed() -> None:
    store = MemoryStore()
    cloud = view(store)
    cloud.expect_snapshot()
    cloud.take_snapshot(document(2, {"mode": "cool"}, {"on": True}))
    cloud.accept_desired({"mode": "cool"}, cloud.theirs_desired())
    cloud.rebase()
    cloud.forget()
    cloud.persist()
    again = view(store)
    assert again.load() is None
    assert (
        again.document,
        again.last_seen,
        again.agreed.accepted_desired,
        again.agreed.base_reported,
    ) == (
        None,
        None,
        {},
        {},
    )


def test_the_cache_entry_holds_the_document_as_get_thing_shadow_renders_it() -> None:
    store = MemoryStore()
    first = view(store)
    first.expect_snapshot()
    shadow = document(4, {"mode": "cool", "on": True}, {"on": True, "mode": "heat"})
    first.take_snapshot(shadow)
    first.persist()
    entry = store.get_cache("lamp", None)
    assert entry is not None
    assert entry.document == shadow.to_dict()  # delta included, as the service renders it


def test_the_view_writes_its_cache_entry_only_when_it_changed() -> None:
    writes: list[object] = []

    class Counting(MemoryStore):
        def put_cache(self, *args: object, **kwargs: object) -> None:
            writes.append(kwargs["document"])
            super().put_cache(*args, **kwargs)  # type: ignore[arg-type]

    store = Counting()
    first = view(store)
    assert first.load() is None
    first.persist()
    assert writes == []  # nothing known, nothing stored: the entry would say as much
    first.expect_snapshot()
    first.take_snapshot(document(4, {"mode": "cool"}, {"on": True}))
    first.persist()
    first.persist()
    assert len(writes) == 1
    again = document(4, {"mode": "cool"}, {"on": True})
    first.take_notification(Notification(version=4, document=again, delta=None))
    first.persist()
    assert len(writes) == 1
    first.accept_desired({"mode": "cool"}, first.theirs_desired())
    first.accept_desired({"mode": "cool"}, first.theirs_desired())
    first.persist()
    assert len(writes) == 2  # the same document again changes nothing; a new agreement does


@pytest.mark.parametrize(
    ("tree", "path", "value"),
    [
        ({}, ("a", "b"), 1),
        ({"a": 5}, ("a", "b"), {"c": None, "d": [1]}),
        ({"a": {"b": {"x": 1}}}, ("a", "b"), {"y": 2}),
        ({"a": {"b": 1}}, ("a", "b"), None),
        ({}, ("a", "b", "c"), None),
        ({"a": {"b": [1]}}, ("a",), [2]),
    ],
)
def test_applying_at_a_path_is_applying_the_nested_patch(
    tree: JSONObject, path: tuple[str, ...], value: JSONValue
) -> None:
    expected = copy_object(tree)
    apply_patch(expected, nest(path, value))
    apply_at(tree, path, value)
    assert tree == expected
