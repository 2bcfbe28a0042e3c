"""Named JSON state in both stores (`put_state` / `get_state`), and the migration of older files."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

from shadowsync.errors import InvalidArgumentError
from shadowsync.stores import MemoryStore, SQLiteStore, Store, StoreCorruptError, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Reopens the same file (SQLite), or hands back the same object (memory)."""
    opened: list[Store] = []

    def make() -> Store:
        store: Store
        if request.param == "memory":
            store = opened[0] if opened else MemoryStore()
        else:
            store = SQLiteStore(tmp_path / "store.db")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_a_state_is_kept_replaced_and_read_back(make_store: Callable[[], Store]) -> None:
    store = make_store()
    assert store.get_state("reconciler") is None
    store.put_state("reconciler", {"target": {"web": "v1"}, "attempts": {}})
    store.put_state("reconciler", {"target": {"web": "v2"}, "n": [1, 2.5, None, True]})
    store.put_state("poller", {"etag": '"abc"'})
    again = make_store()
    assert again.get_state("reconciler") == {"target": {"web": "v2"}, "n": [1, 2.5, None, True]}
    assert again.get_state("poller") == {"etag": '"abc"'}


def test_a_state_shares_nothing_mutable(make_store: Callable[[], Store]) -> None:
    store = make_store()
    value: dict[str, Any] = {"list": [1]}
    store.put_state("s", value)
    value["list"].append(2)
    read = store.get_state("s")
    assert read == {"list": [1]}
    assert read is not None
    items = read["list"]
    assert isinstance(items, list)
    items.append(3)
    assert store.get_state("s") == {"list": [1]}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("", {}, "state name"),
        ("x" * 129, {}, "state name"),
        (3, {}, "state name"),
        ("s", None, "must be a JSON object"),
        ("s", [1], "must be a JSON object"),
        ("s", {"a": float("inf")}, r"value\.a holds inf"),
        ("s", {"a": {1, 2}}, r"value\.a holds a set"),
        ("s", {"a": "\ud800"}, "lone surrogate"),
    ],
)
def test_bad_state_is_refused_and_nothing_is_written(
    make_store: Callable[[], Store], name: Any, value: Any, message: str
) -> None:
    store = make_store()
    with pytest.raises(InvalidArgumentError, match=message):
        store.put_state(name, value)
    assert store.get_state("s") is None


def test_a_closed_store_refuses_state(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.close()
    with pytest.raises(StoreError):
        store.put_state("s", {})
    with pytest.raises(StoreError):
        store.get_state("s")


def test_a_version_one_file_without_the_state_table_opens_and_is_migrated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    # The layout the first release wrote, byte for byte the same statements.
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("CREATE TABLE shadowsync_schema (version INTEGER NOT NULL)")
        raw.execute(
            "CREATE TABLE intents (seq INTEGER PRIMARY KEY AUTOINCREMENT, thing_name TEXT NOT "
            "NULL, shadow_name TEXT, kind TEXT NOT NULL, path TEXT NOT NULL, value TEXT NOT NULL,"
            " created_at INTEGER NOT NULL, stamp TEXT NOT NULL)"
        )
        raw.execute(
            "CREATE TABLE shadow_cache (thing_name TEXT NOT NULL, shadow_name TEXT NOT NULL,"
            " document TEXT, base TEXT, PRIMARY KEY (thing_name, shadow_name)) WITHOUT ROWID"
        )
        raw.execute("INSERT INTO shadowsync_schema VALUES (1)")
        raw.execute("INSERT INTO shadow_cache VALUES ('lamp', '', NULL, '{\"on\":true}')")
    finally:
        raw.close()
    with SQLiteStore(path) as store:
        cached = store.get_cache("lamp", None)
        assert cached is not None
        assert cached.base == {"on": True}
        assert store.get_state("reconciler") is None
        store.put_state("reconciler", {"version": 3})
    with SQLiteStore(path) as store:
        assert store.get_state("reconciler") == {"version": 3}
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT version FROM shadowsync_schema").fetchall() == [(1,)]
    finally:
        raw.close()


def test_an_unreadable_state_row_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.put_state("s", {"a": 1})
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("UPDATE device_state SET value = '[1]' WHERE name = 's'")
    finally:
        raw.close()
    with SQLiteStore(path) as store, pytest.raises(StoreCorruptError, match="state 's'"):
        store.get_state("s")
