"""The stores: the same behaviour in memory and in SQLite, durability details of the SQLite file,
and clear errors for damaged, foreign or newer files."""

from __future__ import annotations

import collections
import contextlib
import enum
import json
import math
import sqlite3
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowsync import HLCStamp
from shadowsync._device.intent import Intent
from shadowsync._device.store import CheckedObject, store_transaction
from shadowsync._json import canonical_json
from shadowsync.errors import InvalidArgumentError, InvalidNameError, ShadowSyncError
from shadowsync.stores import (
    CacheEntry,
    MemoryStore,
    SQLiteStore,
    Store,
    StoreCorruptError,
    StoreError,
    StoreSchemaError,
    _encode_cache,
    _encode_entry,
)
from tests.strategies import shadow_states

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from shadowsync._json import JSONObject, JSONValue


def _intent(
    value: JSONValue = 1,
    *,
    path: tuple[str, ...] = ("a",),
    shadow: str | None = None,
    ms: int = 1_700_000_000_000,
) -> Intent:
    return Intent(
        thing_name="lamp",
        shadow_name=shadow,
        kind="report",
        path=path,
        value=value,
        created_at=ms // 1000,
        stamp=HLCStamp(wall_ms=ms, counter=0, node="lamp"),
    )


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """A factory for stores of one kind: every call reopens the same file, or for memory
    returns the same store (a memory store lives as long as its object, so "reopening" it
    means a new reader of the same object, as after an agent restarts its queue)."""
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


def test_both_stores_implement_the_protocol(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as sqlite_store, MemoryStore() as memory_store:
        assert isinstance(sqlite_store, Store)
        assert isinstance(memory_store, Store)


# --- intents ---


def test_append_returns_increasing_seqs_and_intents_come_back_in_order(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    seqs = [store.append(_intent(n, path=(f"k{n}",))) for n in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    stored = store.intents()
    assert [intent.seq for intent in stored] == seqs
    assert [intent.value for intent in stored] == [0, 1, 2, 3, 4]


def test_an_intent_comes_back_equal_with_its_seq(make_store: Callable[[], Store]) -> None:
    store = make_store()
    values: list[JSONValue] = [
        None,
        {"b": None, "c": [1, 2.5, "x"], "d": {"e": True}},
        -0.0,
        10**30,
        1.0,
        '日本 \u00e9 "quoted" \\ ',
        [],
        {},
    ]
    original = [_intent(value, path=("a", str(n)), shadow="cfg") for n, value in enumerate(values)]
    for intent in original:
        store.append(intent)
    for n, (before, after) in enumerate(zip(original, store.intents(), strict=True), start=1):
        assert after.seq == n
        assert after == Intent(
            thing_name=before.thing_name,
            shadow_name=before.shadow_name,
            kind=before.kind,
            path=before.path,
            value=before.value,
            created_at=before.created_at,
            stamp=before.stamp,
            seq=n,
        )
        assert type(after.value) is type(before.value)
    assert math.copysign(1, store.intents()[2].value) == -1  # type: ignore[arg-type]


def test_intents_are_copies(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.append(_intent({"b": [1]}))
    value = store.intents()[0].value
    assert isinstance(value, dict)
    inner = value["b"]
    assert isinstance(inner, list)
    inner.append(2)
    assert store.intents()[0].value == {"b": [1]}


def test_remove_deletes_by_seq_and_ignores_unknown_seqs(make_store: Callable[[], Store]) -> None:
    store = make_store()
    for n in range(4):
        store.append(_intent(n))
    store.remove([2, 4, 99])
    store.remove([])
    assert [intent.seq for intent in store.intents()] == [1, 3]


def test_append_removes_atomically_with_the_new_intent(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.append(_intent(1))
    store.append(_intent(2))
    assert store.append(_intent(3), remove=[1, 2]) == 3
    assert [intent.seq for intent in store.intents()] == [3]


def test_seqs_never_repeat_even_after_the_newest_was_removed(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    store.append(_intent(1))
    store.append(_intent(2))
    store.remove([2])
    assert store.append(_intent(3)) == 3


def test_intents_and_seqs_survive_a_reopen(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.append(_intent(1))
    store.append(_intent(2, shadow="cfg"))
    store.remove([1])
    if isinstance(store, SQLiteStore):
        store.close()
    reopened = make_store()
    assert [(intent.seq, intent.value) for intent in reopened.intents()] == [(2, 2)]
    assert reopened.append(_intent(3)) == 3


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda store: store.append("not an intent"), InvalidArgumentError),
        (lambda store: store.append(_intent(), remove=[1.5]), InvalidArgumentError),
        (lambda store: store.append(_intent(), remove=3), InvalidArgumentError),
        (lambda store: store.remove([-1]), InvalidArgumentError),
        (lambda store: store.remove(["1"]), InvalidArgumentError),
        (lambda store: store.remove(None), InvalidArgumentError),
    ],
)
def test_bad_arguments_raise_shadowsync_errors(
    make_store: Callable[[], Store], call: Callable[[Any], object], error: type[Exception]
) -> None:
    store = make_store()
    with pytest.raises(error):
        call(store)
    assert store.intents() == []


def test_concurrent_appends_from_threads_get_distinct_seqs(
    make_store: Callable[[], Store],
) -> None:
    store = make_store()
    seqs: list[int] = []
    lock = threading.Lock()

    def work(offset: int) -> None:
        for n in range(25):
            seq = store.append(_intent(offset + n))
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=work, args=(100 * n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seqs) == list(range(1, 101))
    assert [intent.seq for intent in store.intents()] == list(range(1, 101))


# --- the shadow cache ---


def test_the_cache_keeps_document_and_base_per_shadow(make_store: Callable[[], Store]) -> None:
    store = make_store()
    document: dict[str, Any] = {"state": {"reported": {"on": True}}, "version": 7, "timestamp": 1}
    store.put_cache("lamp", None, document=document, base={"on": True})
    store.put_cache("lamp", "cfg", document=None, base={"mode": "eco", "ratio": 1.0})
    assert store.get_cache("lamp", None) == CacheEntry(
        thing_name="lamp", shadow_name=None, document=document, base={"on": True}
    )
    named = store.get_cache("lamp", "cfg")
    assert named is not None
    assert named.document is None
    assert named.base == {"mode": "eco", "ratio": 1.0}
    assert type(named.base["ratio"]) is float
    assert store.get_cache("pump", None) is None


def test_put_cache_replaces_and_delete_cache_forgets(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.put_cache("lamp", None, document={"version": 1}, base=None)
    store.put_cache("lamp", None, document={"version": 2}, base={})
    entry = store.get_cache("lamp", None)
    assert entry is not None
    assert entry.document == {"version": 2}
    assert entry.base == {}
    store.delete_cache("lamp", None)
    store.delete_cache("lamp", None)
    assert store.get_cache("lamp", None) is None


def test_the_cache_returns_copies(make_store: Callable[[], Store]) -> None:
    store = make_store()
    base: dict[str, Any] = {"a": [1]}
    store.put_cache("lamp", None, document=None, base=base)
    base["a"].append(2)
    entry = store.get_cache("lamp", None)
    assert entry is not None
    assert entry.base == {"a": [1]}
    assert entry.base is not None
    entry.base["a"].append(3)  # type: ignore[union-attr]
    again = store.get_cache("lamp", None)
    assert again is not None
    assert again.base == {"a": [1]}


def test_the_cache_survives_a_reopen(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.put_cache("lamp", "cfg", document={"version": 3}, base={"x": 1})
    if isinstance(store, SQLiteStore):
        store.close()
    entry = make_store().get_cache("lamp", "cfg")
    assert entry is not None
    assert entry.document == {"version": 3}


@pytest.mark.parametrize(
    "bad",
    [
        {"x": math.nan},
        {"x": math.inf},
        {1: "non-string key"},
        {"x": {1, 2}},
        {"x": "\ud800"},
        {"\udfff": 1},
        {"x": b"bytes"},
        {"x": [10**5000]},
        ["not", "an", "object"],
        "text",
    ],
)
def test_the_cache_takes_only_json_objects(make_store: Callable[[], Store], bad: Any) -> None:
    store = make_store()
    with pytest.raises(InvalidArgumentError):
        store.put_cache("lamp", None, document=bad, base=None)
    with pytest.raises(InvalidArgumentError):
        store.put_cache("lamp", None, document=None, base=bad)
    assert store.get_cache("lamp", None) is None


def test_the_cache_refuses_absurd_nesting(make_store: Callable[[], Store]) -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(InvalidArgumentError, match="nests more than"):
        make_store().put_cache("lamp", None, document=deep, base=None)


def test_a_bad_cache_value_is_named_by_where_it_is(make_store: Callable[[], Store]) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        make_store().put_cache("lamp", None, document=None, base={"a": [1, {"b": math.inf}]})
    assert str(caught.value) == "base.a[1].b holds inf, which is not JSON"


@pytest.mark.parametrize(
    ("thing", "shadow"), [("bad name", None), ("", None), ("lamp", "bad/name"), (3, None)]
)
def test_cache_names_follow_the_aws_rules(
    make_store: Callable[[], Store], thing: Any, shadow: Any
) -> None:
    store = make_store()
    with pytest.raises(InvalidNameError):
        store.put_cache(thing, shadow, document=None, base=None)
    with pytest.raises(InvalidNameError):
        store.get_cache(thing, shadow)


# --- closing ---


def test_a_closed_store_refuses_every_call(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.close()
    store.close()
    calls: list[Callable[[], object]] = [
        lambda: store.append(_intent()),
        lambda: store.remove([1]),
        store.intents,
        lambda: store.put_cache("lamp", None, document=None, base=None),
        lambda: store.get_cache("lamp", None),
        lambda: store.delete_cache("lamp", None),
    ]
    for call in calls:
        with pytest.raises(StoreError, match="closed"):
            call()


def test_stores_are_context_managers(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        store.append(_intent())
    with pytest.raises(StoreError):
        store.intents()
    with MemoryStore() as memory:
        memory.append(_intent())
    with pytest.raises(StoreError):
        memory.intents()


# --- SQLite specifics ---


def test_sqlite_uses_wal_and_full_synchronous_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.append(_intent())
        connection = store._connection()
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.path == str(path)
        assert "open" in repr(store)
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT version FROM shadowsync_schema").fetchall() == [(1,)]
    finally:
        raw.close()


def test_sqlite_creates_the_file_on_first_open(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    assert not path.exists()
    SQLiteStore(str(path)).close()
    assert path.exists()
    SQLiteStore(path).close()  # and opens it again without complaint


def _raw(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            connection.execute(statement)
    finally:
        connection.close()


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    _raw(path, "UPDATE shadowsync_schema SET version = 2")
    with pytest.raises(StoreSchemaError, match=r"schema version 2.*newer shadowsync") as info:
        SQLiteStore(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE shadowsync_schema SET version = 'one'",
        "UPDATE shadowsync_schema SET version = 0",
        "DELETE FROM shadowsync_schema",
        "INSERT INTO shadowsync_schema VALUES (1)",
        "DROP TABLE intents",
    ],
)
def test_a_damaged_schema_is_reported_as_corrupt(tmp_path: Path, statement: str) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    _raw(path, statement)
    with pytest.raises(StoreCorruptError, match=r"s\.db"):
        SQLiteStore(path)


def test_a_foreign_sqlite_database_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    _raw(path, "CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StoreSchemaError, match="not a shadowsync store"):
        SQLiteStore(path)
    _raw(path, "INSERT INTO customers VALUES (1)")  # left untouched and usable


def test_a_file_of_garbage_is_reported_as_corrupt_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database at all " * 200)
    with pytest.raises(StoreCorruptError) as info:
        SQLiteStore(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value.__cause__, sqlite3.Error)


def test_garbage_inside_a_real_store_fails_the_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        for n in range(300):
            store.append(_intent({"payload": "x" * 100, "n": n}, path=(f"k{n}",)))
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    # Scribble over a b-tree page in the middle of the file, leaving the header intact.
    data[3 * page : 3 * page + 200] = bytes(range(200))
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match=r"s\.db") as info:
        SQLiteStore(path)
    assert isinstance(info.value, ShadowSyncError)


def test_a_truncated_header_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.append(_intent())
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(StoreCorruptError):
        SQLiteStore(path)


def test_an_unreadable_row_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    _raw(
        path,
        "INSERT INTO intents (thing_name, shadow_name, kind, path, value, created_at, stamp)"
        " VALUES ('lamp', NULL, 'report', '[\"a\"]', '{not json', 1, 'stamp')",
    )
    with SQLiteStore(path) as store, pytest.raises(StoreCorruptError, match="seq 1"):
        store.intents()


def test_an_unreadable_cache_entry_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    _raw(path, "INSERT INTO shadow_cache VALUES ('lamp', '', '[1]', NULL)")
    with SQLiteStore(path) as store, pytest.raises(StoreCorruptError, match="cache entry"):
        store.get_cache("lamp", None)


def test_a_path_that_cannot_be_opened_raises_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        SQLiteStore(tmp_path / "missing-dir" / "s.db")
    assert not isinstance(info.value, StoreCorruptError)
    with pytest.raises(StoreError):
        SQLiteStore(tmp_path)  # a directory
    with pytest.raises(InvalidArgumentError):
        SQLiteStore(42)  # type: ignore[arg-type]


def test_a_locked_database_raises_a_store_error_not_a_sqlite_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path, timeout=0.05) as store:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreError, match="cannot append to") as info:
                store.append(_intent())
            assert not isinstance(info.value, StoreCorruptError)
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert store.append(_intent()) == 1  # the failed append left nothing behind


def test_the_schema_is_created_once_even_when_opened_twice_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as first, SQLiteStore(path) as second:
        first.append(_intent(1))
        second.append(_intent(2))
        assert [intent.value for intent in first.intents()] == [1, 2]


# --- named state (put_state / get_state) ---


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


# --- no database driver unless a SQLiteStore is opened ---


def test_a_queue_in_a_memory_store_loads_no_database_driver(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from shadowsync.stores import MemoryStore\n"
        "from shadowsync import OfflineQueue\n"
        "OfflineQueue(MemoryStore())\n"
        "loaded = sorted(name for name in sys.modules if 'sqlite' in name)\n"
        "import shadowsync.stores\n"
        "with shadowsync.stores.SQLiteStore(sys.argv[1]) as store:\n"
        "    store.put_cache('lamp', None, document=None, base={'on': True})\n"
        "    base = store.get_cache('lamp', None).base\n"
        "print(json.dumps([loaded, base, 'sqlite3' in sys.modules]))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "device.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == [[], {"on": True}, True]


def test_a_transaction_keeps_every_write_together(make_store: Callable[[], Store]) -> None:
    store: Any = make_store()
    with store.transaction():
        first = store.append(_intent(1, path=("a",)))
        with store.transaction():  # re-entrant: one transaction still
            second = store.append(_intent(2, path=("b",)), remove=[first])
        store.put_state("s", {"n": 1})
    assert [intent.seq for intent in make_store().intents()] == [second]
    assert make_store().get_state("s") == {"n": 1}


def test_a_transaction_that_raises_writes_nothing(make_store: Callable[[], Store]) -> None:
    store: Any = make_store()
    kept = store.append(_intent(1, path=("a",)))

    def half_way() -> None:
        with store.transaction():
            store.append(_intent(2, path=("b",)), remove=[kept])
            store.put_state("s", {"n": 2})
            raise RuntimeError("half way")

    before = store.rollbacks
    with pytest.raises(RuntimeError, match="half way"):
        half_way()
    assert store.rollbacks == before + 1  # a session writes its cache entry again after one
    assert [intent.seq for intent in make_store().intents()] == [kept]
    assert make_store().get_state("s") is None
    later = store.append(_intent(3, path=("c",)))
    assert later > kept


def test_a_transaction_that_need_not_wait_for_the_disk_still_commits_whole(
    make_store: Callable[[], Store],
) -> None:
    store: Any = make_store()
    with store.transaction(durable=False):
        first = store.append(_intent(1, path=("a",)))
        with store.transaction():  # nested: part of the outer block, which decides
            store.put_cache("lamp", None, document={"version": 2}, base=None)
    assert [intent.seq for intent in make_store().intents()] == [first]
    cached = make_store().get_cache("lamp", None)
    assert cached is not None
    assert cached.document == {"version": 2}


def test_a_transaction_takes_durable_as_a_bool_only(make_store: Callable[[], Store]) -> None:
    store: Any = make_store()
    with pytest.raises(InvalidArgumentError, match="durable"), store.transaction(durable=0):
        pass  # pragma: no cover - refused before the block runs


def test_sqlite_waits_for_the_disk_again_after_a_transaction_that_did_not(
    tmp_path: Path,
) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        connection = store._conn  # the test reads the connection's own setting
        assert connection is not None
        seen: list[str] = []
        connection.set_trace_callback(seen.append)
        with store.transaction(durable=False):
            pass
        assert seen == []  # nothing written: no transaction, no commit
        with store.transaction(durable=False):
            store.append(_intent(1))
        assert seen[:2] == ["PRAGMA synchronous=NORMAL", "BEGIN IMMEDIATE"]
        assert seen[-2:] == ["COMMIT", "PRAGMA synchronous=FULL"]

        def half_way() -> None:
            with store.transaction(durable=False):
                store.append(_intent(2))
                raise RuntimeError("half way")

        with pytest.raises(RuntimeError, match="half way"):
            half_way()
        assert seen[-2:] == ["ROLLBACK", "PRAGMA synchronous=FULL"]
        assert connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert [intent.value for intent in store.intents()] == [1]


def test_store_transaction_commits_durably_in_a_store_that_cannot_do_otherwise() -> None:
    class Plain(MemoryStore):
        @contextlib.contextmanager
        def transaction(self) -> Iterator[None]:  # type: ignore[override]
            with super().transaction():
                yield

    store = Plain()
    with store_transaction(store, durable=False):
        store.append(_intent(1))
    with store_transaction(object(), durable=False):
        pass
    assert [intent.value for intent in store.intents()] == [1]


class _Level(enum.IntEnum):
    HIGH = 1


@pytest.mark.parametrize(
    "bad", [{"x": (1, 2)}, {"x": _Level.HIGH}, {"x": {"y": collections.OrderedDict(a=1)}}]
)
def test_the_cache_refuses_what_is_not_exactly_json(
    make_store: Callable[[], Store], bad: Any
) -> None:
    with pytest.raises(InvalidArgumentError):
        make_store().put_cache("lamp", None, document=bad, base=None)


def test_store_transaction_reads_a_transaction_set_on_the_store_itself() -> None:
    store = MemoryStore()
    entered: list[str] = []

    @contextlib.contextmanager
    def plain() -> Iterator[None]:
        entered.append("plain")
        yield

    store.transaction = plain  # type: ignore[method-assign, assignment]
    with store_transaction(store, durable=False):
        store.append(_intent(1))
    assert entered == ["plain"]
    with store_transaction(MemoryStore(), durable=False):  # the class's own, which takes it
        pass


@given(shadow_states(), shadow_states(), st.integers(min_value=0, max_value=2**40))
def test_a_checked_cache_entry_is_written_as_an_unchecked_one_would_be(
    reported: JSONObject, desired: JSONObject, version: int
) -> None:
    # A session's entry: the base holds the very objects of the document's reported section
    # and metadata, which are encoded once for the two; the texts must not change by it.
    metadata: JSONObject = {"reported": {key: {"timestamp": 1} for key in reported}}
    state: JSONObject = {"desired": desired, "reported": reported}
    document = {"state": state, "metadata": metadata, "version": version, "timestamp": 7}
    base = {
        "lastSeenVersion": version,
        "acceptedDesired": desired,
        "acceptedMetadata": {},
        "baseReported": reported,
        "baseMetadata": metadata["reported"],
    }
    texts = _encode_entry(CheckedObject(document), CheckedObject(base))
    assert texts == (canonical_json(document), canonical_json(base))
    assert texts == (_encode_cache(document, "document"), _encode_cache(base, "base"))


def test_a_checked_cache_entry_reads_back_from_both_stores(tmp_path: Path) -> None:
    reported: JSONObject = {"on": True, "hvac": {"mode": "cool", "fan": [1, 2.5]}, "é": "ü"}
    metadata: JSONObject = {"on": {"timestamp": 1}, "hvac": {"mode": {"timestamp": 2}}}
    document = CheckedObject(
        state={"reported": reported}, metadata={"reported": metadata}, version=3, timestamp=9
    )
    base = CheckedObject(lastSeenVersion=3, baseReported=reported, baseMetadata=metadata)
    for store in (MemoryStore(), SQLiteStore(tmp_path / "cache.db")):
        store.put_cache("lamp", None, document=document, base=base)
        entry = store.get_cache("lamp", None)
        assert entry is not None
        assert entry.document == document
        assert entry.base == base
        store.close()
