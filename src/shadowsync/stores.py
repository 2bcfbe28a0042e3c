"""Where a device keeps its offline queue and its shadow cache: in memory, or in SQLite.

A `Store` is a durable log of `shadowsync.OfflineQueue` intents plus a small cache
of the last known document and the last synced base of each shadow (for three-way merges after
a reconnect), and named JSON documents for other device state (a reconciler's target, a
poller's ETag). `SQLiteStore` is the embedded default for device agents; it uses only the
standard library's `sqlite3`. `MemoryStore` behaves the same without a disk, for tests and for
devices that have none.

```pycon
>>> import os, tempfile
>>> from shadowsync.stores import SQLiteStore
>>> directory = tempfile.TemporaryDirectory()
>>> path = os.path.join(directory.name, "device.db")
>>> with SQLiteStore(path) as store:
...     store.put_cache("lamp", None, document={"state": {}, "version": 3}, base={"on": True})
>>> with SQLiteStore(path) as store:  # opened again, e.g. after a reboot
...     store.get_cache("lamp", None).base
{'on': True}
>>> directory.cleanup()

```

SQLite details: the database runs in WAL mode with ``synchronous=FULL``, so a transaction that
has committed survives a crash of the process and, on storage that honours ``fsync``, a loss of
power; every write is one transaction, or part of the `SQLiteStore.transaction` in progress
(``transaction(durable=False)`` commits without waiting for the disk, see there). Opening a
file runs ``PRAGMA integrity_check`` and checks the schema version: a damaged file raises
`StoreCorruptError`, a file written by a newer shadowsync raises `StoreSchemaError`, and no
raw `sqlite3` error escapes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from shadowsync._conflict.clocks import HLCStamp
from shadowsync._device.intent import Intent, stored_intent
from shadowsync._device.store import (
    CacheEntry,
    CheckedObject,
    Store,
    StoreCorruptError,
    StoreError,
    StoreSchemaError,
)
from shadowsync._json import (
    JSONObject,
    JSONProblem,
    canonical_json,
    describe,
    dumps_compact,
    plain_json,
)
from shadowsync._limits import DEFAULT_LIMITS
from shadowsync.errors import InvalidArgumentError, ShadowSyncError

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "CacheEntry",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreSchemaError",
]

_SCHEMA_VERSION = 1
"""The schema version this release writes (and the newest it reads)."""

_MAX_CACHE_DEPTH = 64


# --------------------------------------------------------------------------------------------
# Encoding shared by both stores
# --------------------------------------------------------------------------------------------


def _check_names(thing_name: object, shadow_name: object) -> tuple[str, str | None]:
    thing = DEFAULT_LIMITS.check_thing_name(thing_name)
    shadow = None if shadow_name is None else DEFAULT_LIMITS.check_shadow_name(shadow_name)
    return thing, shadow


# How the stores word what `plain_json` finds wrong in a cached document.
_NOT_JSON = {
    "number": "holds {value}, which is not JSON",
    "digits": "holds an integer with more digits than this interpreter converts",
    "surrogate": "holds a lone surrogate (not UTF-8)",
    "key": "has a key that is not a str: {value}",
    "type": "holds a {type}, which is not JSON",
    "depth": f"nests more than {_MAX_CACHE_DEPTH} levels",
}


def _check_json(value: object, where: str) -> JSONObject:
    """A plain copy of ``value``: only what `json.dumps` writes and `json.loads` reads back
    unchanged (so no tuples, no subclasses, no lone surrogates)."""
    try:
        plain = plain_json(value, max_depth=_MAX_CACHE_DEPTH, lenient=False)
    except JSONProblem as bad:
        raise InvalidArgumentError(f"{bad.location(where)} {bad.reason(_NOT_JSON)}") from None
    assert type(plain) is dict
    return plain


def _encode_cache(value: object, where: str) -> str | None:
    if value is None:
        return None
    if type(value) is CheckedObject:
        return canonical_json(value)  # checked by the session that built it
    if isinstance(value, Mapping) and type(value) is not dict:
        value = dict(value)
    if type(value) is not dict:
        raise InvalidArgumentError(
            f"{where} must be a JSON object or None, got {type(value).__name__}"
        )
    return canonical_json(_check_json(value, where))


def _encode_entry(document: object, base: object) -> tuple[str | None, str | None]:
    """The texts of a cache entry's ``document`` and ``base``, as `_encode_cache` writes them.

    The base a session hands over usually holds the very objects of its document's reported
    section and metadata: when both are checked, each object is encoded once for the two.
    """
    if type(document) is CheckedObject and type(base) is CheckedObject:
        texts: dict[int, str] = {}
        return _shared_canonical(document, texts, 2), _shared_canonical(base, texts, 2)
    return _encode_cache(document, "document"), _encode_cache(base, "base")


_encode_key = json.encoder.encode_basestring_ascii


def _shared_canonical(value: object, texts: dict[int, str], levels: int) -> str:
    """``canonical_json(value)``, taking the text of a container met before from ``texts`` (by
    identity, the objects alive for the call) and keeping each new one there; the objects of
    the first ``levels`` levels are written member by member, so that theirs can be shared."""
    kind = type(value)
    if kind is CheckedObject:
        kind = dict
    elif kind is not dict and kind is not list:
        return canonical_json(value)
    text = texts.get(id(value))
    if text is None:
        if levels and kind is dict:
            members = cast("dict[str, object]", value)
            text = (
                "{"
                + ",".join(
                    _encode_key(key) + ":" + _shared_canonical(members[key], texts, levels - 1)
                    for key in sorted(members)
                )
                + "}"
            )
        else:
            text = canonical_json(value)
        texts[id(value)] = text
    return text


def _decode_cache(text: str | None) -> JSONObject | None:
    if text is None:
        return None
    value = json.loads(text)
    if type(value) is not dict:
        raise ValueError("not an object")
    return value


_MAX_STATE_NAME = 128


def _check_state_name(name: object) -> str:
    if type(name) is not str or not name or len(name) > _MAX_STATE_NAME:
        raise InvalidArgumentError(
            f"a state name must be a str of 1 to {_MAX_STATE_NAME} characters, got {describe(name)}"
        )
    return name


def _encode_state(value: object) -> str:
    if value is None:
        raise InvalidArgumentError("a state value must be a JSON object, got None")
    text = _encode_cache(value, "the state value")
    assert text is not None
    return text


@functools.lru_cache(maxsize=4096)
def _encode_path(path: tuple[str, ...]) -> str:
    # A device queues the same few paths over and over.
    return dumps_compact(list(path))


def _encode_intent(intent: Intent) -> tuple[str, str | None, str, str, str, int, str]:
    return (
        intent.thing_name,
        intent.shadow_name,
        intent.kind,
        _encode_path(intent.path),
        dumps_compact(intent.value),
        intent.created_at,
        str(intent.stamp),
    )


def _decode_intent(seq: int, row: tuple[Any, ...]) -> Intent:
    thing_name, shadow_name, kind, path, value, created_at, stamp = row
    return Intent(
        thing_name=thing_name,
        shadow_name=shadow_name,
        kind=kind,
        path=tuple(json.loads(path)),
        value=json.loads(value),
        created_at=created_at,
        stamp=HLCStamp.parse(stamp),
        seq=seq,
    )


def _check_intent(intent: object) -> Intent:
    if not isinstance(intent, Intent):
        raise InvalidArgumentError(f"append takes an Intent, got {type(intent).__name__}")
    return intent


def _check_seqs(seqs: Iterable[int]) -> list[int]:
    try:
        items = list(seqs)
    except TypeError:
        raise InvalidArgumentError(
            f"seqs must be an iterable of ints, got {type(seqs).__name__}"
        ) from None
    for seq in items:
        if type(seq) is not int or seq < 0:
            raise InvalidArgumentError(f"a seq must be a non-negative int, got {describe(seq)}")
    return items


def _check_durable(durable: object) -> None:
    if type(durable) is not bool:
        raise InvalidArgumentError(f"durable must be True or False, got {describe(durable)}")


_S = TypeVar("_S", bound="_Closing")


class _Closing:
    """What both stores are as context managers: ``with store:`` closes it at the end."""

    def close(self) -> None:
        raise NotImplementedError  # pragma: no cover - each store has its own

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


class MemoryStore(_Closing):
    """A `Store` in memory: the same behaviour as `SQLiteStore`, gone when the process ends.

    It keeps private copies: what goes in and what comes out share nothing mutable.

    ```pycon
    >>> from shadowsync import HLCStamp, Intent
    >>> store = MemoryStore()
    >>> stamp = HLCStamp(wall_ms=1, counter=0, node="d")
    >>> store.append(Intent(thing_name="t", shadow_name=None, kind="report", path=("a",),
    ...                     value=1, created_at=0, stamp=stamp))
    1
    >>> [intent.seq for intent in store.intents()]
    [1]

    ```
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._intents: dict[int, Intent] = {}
        self._cache: dict[tuple[str, str | None], tuple[str | None, str | None]] = {}
        self._state: dict[str, str] = {}
        self._last_seq = 0
        self._closed = False
        self._depth = 0
        self._undo: tuple[dict[int, Intent], dict[Any, Any], dict[str, str]] | None = None
        self.rollbacks = 0
        """How many transactions rolled back since the store was opened (see `Store`)."""

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """Every write inside happens together, or (if the block raises) none of them does.

        Re-entrant; other threads wait until it ends. The seqs handed out inside a block that
        raised are not handed out again. ``durable`` is accepted as `SQLiteStore` takes it;
        memory has no disk to wait for.
        """
        _check_durable(durable)
        with self._lock:
            self._check_open()
            if not self._depth:
                self._undo = None
            self._depth += 1
            try:
                yield
            except BaseException:
                if self._depth == 1:
                    self.rollbacks += 1
                    if self._undo is not None:
                        self._intents, self._cache, self._state = self._undo
                raise
            finally:
                self._depth -= 1
                if not self._depth:
                    self._undo = None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _writing(self) -> None:
        """Before a write: open, and inside a transaction, what to restore if it raises."""
        self._check_open()
        # Copied at the first write only: a transaction that writes nothing costs nothing.
        if self._depth and self._undo is None:
            self._undo = (dict(self._intents), dict(self._cache), dict(self._state))

    def append(self, intent: Intent, *, remove: Iterable[int] = ()) -> int:
        """Store ``intent`` and remove ``remove`` in one step; return the new seq."""
        _check_intent(intent)
        gone = _check_seqs(remove)
        with self._lock:
            self._writing()
            self._last_seq += 1
            self._intents[self._last_seq] = stored_intent(intent, self._last_seq)
            for seq in gone:
                self._intents.pop(seq, None)
            return self._last_seq

    def remove(self, seqs: Iterable[int]) -> None:
        """Remove intents by seq (unknown seqs are ignored)."""
        gone = _check_seqs(seqs)
        with self._lock:
            self._writing()
            for seq in gone:
                self._intents.pop(seq, None)

    def intents(self) -> list[Intent]:
        """Every stored intent in seq order."""
        with self._lock:
            self._check_open()
            stored = sorted(self._intents.items())
        return [stored_intent(intent, seq) for seq, intent in stored]

    def put_cache(
        self,
        thing_name: str,
        shadow_name: str | None,
        *,
        document: Mapping[str, Any] | None,
        base: Mapping[str, Any] | None,
    ) -> None:
        """Remember a shadow's last known document and last synced base."""
        key = _check_names(thing_name, shadow_name)
        entry = _encode_entry(document, base)
        with self._lock:
            self._writing()
            self._cache[key] = entry

    def get_cache(self, thing_name: str, shadow_name: str | None) -> CacheEntry | None:
        """A shadow's cache entry, or ``None``."""
        key = _check_names(thing_name, shadow_name)
        with self._lock:
            self._check_open()
            entry = self._cache.get(key)
        if entry is None:
            return None
        return CacheEntry(
            thing_name=key[0],
            shadow_name=key[1],
            document=_decode_cache(entry[0]),
            base=_decode_cache(entry[1]),
        )

    def delete_cache(self, thing_name: str, shadow_name: str | None) -> None:
        """Forget a shadow's cache entry."""
        key = _check_names(thing_name, shadow_name)
        with self._lock:
            self._writing()
            self._cache.pop(key, None)

    def put_state(self, name: str, value: Mapping[str, Any]) -> None:
        """Keep the JSON object ``value`` under ``name`` (a private copy)."""
        key = _check_state_name(name)
        text = _encode_state(value)
        with self._lock:
            self._writing()
            self._state[key] = text

    def get_state(self, name: str) -> JSONObject | None:
        """The JSON object kept under ``name``, or ``None``."""
        key = _check_state_name(name)
        with self._lock:
            self._check_open()
            text = self._state.get(key)
        return _decode_cache(text)

    def close(self) -> None:
        """Close the store; later calls raise `StoreError`."""
        with self._lock:
            self._closed = True


# --------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------

_CORRUPTION = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def _is_corruption(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file is damaged or not a database (not busy, not missing)."""
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if name is not None:
        return str(name).startswith(_CORRUPTION)
    text = str(exc)
    return "not a database" in text or "malformed" in text or "corrupt" in text


_SCHEMA = (
    "CREATE TABLE shadowsync_schema (version INTEGER NOT NULL)",
    "CREATE TABLE intents ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " thing_name TEXT NOT NULL,"
    " shadow_name TEXT,"
    " kind TEXT NOT NULL,"
    " path TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " stamp TEXT NOT NULL)",
    "CREATE TABLE shadow_cache ("
    " thing_name TEXT NOT NULL,"
    " shadow_name TEXT NOT NULL,"  # '' for the classic shadow: NULLs never match in a key
    " document TEXT,"
    " base TEXT,"
    " PRIMARY KEY (thing_name, shadow_name)) WITHOUT ROWID",
)
_TABLES = {"shadowsync_schema", "intents", "shadow_cache"}

# Added after the first release without a schema version bump: the table is created when a file
# lacks it (the migration of an older file), and an older release that opens a newer file
# ignores a table it does not know, so both keep reading each other's files.
_STATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS device_state ("
    " name TEXT PRIMARY KEY,"
    " value TEXT NOT NULL) WITHOUT ROWID"
)


class SQLiteStore(_Closing):
    """A `Store` in a SQLite file: WAL, ``synchronous=FULL``, schema version, integrity check.

    ``path`` is created with the current schema if it does not exist. Opening an existing file
    checks it first: `StoreCorruptError` if it is damaged or not a database,
    `StoreSchemaError` if it was written by a newer shadowsync or belongs to something else.
    One connection serves every thread, guarded by a lock. Use it as a context manager, or call
    `close`.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidArgumentError(f"path must be a str or a path, got {type(path).__name__}")
        # sqlite3 is imported when a SQLiteStore is opened, not with this module: a device that
        # keeps its queue in a MemoryStore (or its own Store) loads no database driver, as the
        # core promises, and SQLiteStore stays a plain class of this module for its users.
        import sqlite3

        self._path = os.fspath(path)
        self._lock = threading.RLock()
        self._depth = 0
        self.rollbacks = 0
        """How many transactions rolled back since the store was opened (see `Store`)."""
        # Inside a `transaction` that has not begun yet: its ``durable``; else None.
        self._waiting: bool | None = None
        self._durable = True
        self._conn: sqlite3.Connection | None = None
        # Every sqlite3 failure is caught as this, so the methods need no module of their own.
        self._sqlite_error: type[sqlite3.Error] = sqlite3.Error
        try:
            conn = sqlite3.connect(
                self._path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except self._sqlite_error as exc:
            raise StoreError(f"cannot open the store {self._path!r}: {exc}") from None
        try:
            self._open(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    def _fail(self, exc: sqlite3.Error, doing: str) -> StoreError:
        if _is_corruption(exc):
            return StoreCorruptError(f"the store {self._path!r} is damaged ({doing}): {exc}")
        return StoreError(f"cannot {doing} the store {self._path!r}: {exc}")

    def _open(self, conn: sqlite3.Connection) -> None:
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
        except self._sqlite_error as exc:
            raise self._fail(exc, "check") from None
        if problems != ["ok"]:
            shown = "; ".join(str(problem) for problem in problems[:5])
            raise StoreCorruptError(f"the store {self._path!r} failed its integrity check: {shown}")
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() not in ("wal", "memory"):
                raise StoreError(f"the store {self._path!r} cannot use WAL (journal mode {mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._check_schema(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except self._sqlite_error as exc:
            raise self._fail(exc, "open") from None

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        if not tables:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(_STATE_TABLE)
            conn.execute("INSERT INTO shadowsync_schema (version) VALUES (?)", (_SCHEMA_VERSION,))
            return
        if "shadowsync_schema" not in tables:
            raise StoreSchemaError(
                f"{self._path!r} is a SQLite database but not a shadowsync store "
                f"(tables: {', '.join(sorted(tables))})"
            )
        rows = conn.execute("SELECT version FROM shadowsync_schema").fetchall()
        if len(rows) != 1 or type(rows[0][0]) is not int or rows[0][0] < 1:
            raise StoreCorruptError(
                f"the store {self._path!r} has an unreadable schema version: {rows[:3]!r}"
            )
        version = rows[0][0]
        if version > _SCHEMA_VERSION:
            raise StoreSchemaError(
                f"the store {self._path!r} has schema version {version}, written by a newer "
                f"shadowsync; this one reads version {_SCHEMA_VERSION} (upgrade shadowsync)"
            )
        if not tables >= _TABLES:
            raise StoreCorruptError(
                f"the store {self._path!r} lacks the tables {', '.join(sorted(_TABLES - tables))}"
            )
        if "device_state" not in tables:
            conn.execute(_STATE_TABLE)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store {self._path!r} is closed")
        return self._conn

    def _write(
        self,
        doing: str,
        insert: tuple[str, tuple[Any, ...]] | None = None,
        delete: tuple[str, list[tuple[Any, ...]]] | None = None,
    ) -> int | None:
        """Run an insert and a batch of deletes in one immediate transaction (or in the
        `transaction` in progress); the new rowid."""
        with self._lock:
            conn = self._connection()
            try:
                if self._depth:
                    if self._waiting is not None:
                        self._begin(conn, durable=self._waiting)
                    return self._statements(conn, insert, delete)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    rowid = self._statements(conn, insert, delete)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except self._sqlite_error as exc:
                raise self._fail(exc, doing) from None
            return rowid

    @staticmethod
    def _statements(
        conn: sqlite3.Connection,
        insert: tuple[str, tuple[Any, ...]] | None,
        delete: tuple[str, list[tuple[Any, ...]]] | None,
    ) -> int | None:
        rowid = None
        if insert is not None:
            rowid = conn.execute(*insert).lastrowid
        if delete is not None:
            conn.executemany(*delete)
        return rowid

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """Every write inside is one SQLite transaction, committed at the end: all of it, or
        (after a crash, or if the block raises) none of it.

        With ``durable`` (the default) the commit waits for the disk (``synchronous=FULL``):
        the writes survive a loss of power once the block ends. With ``durable=False`` it does
        not wait: the writes survive a crash of the process at once, and a loss of power from
        the next durable commit (or checkpoint) on, which brings every earlier commit to the
        disk with it. The device session commits this way what it learns from the cloud (a
        confirmation, the cached document): losing that to a power cut only makes it send
        again what the cloud already holds, as after a cut while the update was in flight.

        Re-entrant; a block nested in another is part of it, and the outermost block's
        ``durable`` decides. Other threads wait until it ends. One commit for many writes is
        what makes a round trip cheap: the session writes each call's changes in one.
        """
        _check_durable(durable)
        with self._lock:
            conn = self._connection()
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            # The SQLite transaction begins at the first write: a block that writes nothing
            # (a message that changed nothing) costs no commit.
            self._depth, self._waiting = 1, durable
            try:
                yield
            except BaseException:
                self.rollbacks += 1
                self._end(conn, "ROLLBACK")
                raise
            try:
                self._end(conn, "COMMIT")
            except BaseException:
                self.rollbacks += 1  # a failed commit rolled the block back
                raise

    def _begin(self, conn: sqlite3.Connection, *, durable: bool) -> None:
        """Begin the `transaction` in progress (``self._waiting`` says it has not begun)."""
        if not durable:
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            if not durable:
                conn.execute("PRAGMA synchronous=FULL")
            raise
        self._waiting, self._durable = None, durable

    def _end(self, conn: sqlite3.Connection, how: str) -> None:
        """End the `transaction` in progress with ``COMMIT`` or ``ROLLBACK``, back to
        ``synchronous=FULL``."""
        begun, self._depth, self._waiting = self._waiting is None, 0, None
        if not begun:
            return
        try:
            try:
                conn.execute(how)
            except self._sqlite_error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise self._fail(exc, "commit to" if how == "COMMIT" else "roll back") from None
            finally:
                if not self._durable:
                    conn.execute("PRAGMA synchronous=FULL")
        except self._sqlite_error as exc:
            raise self._fail(exc, "end a transaction on") from None

    def append(self, intent: Intent, *, remove: Iterable[int] = ()) -> int:
        """Store ``intent`` and remove ``remove`` in one transaction; return the new seq.

        The transaction is committed with ``synchronous=FULL`` before this returns.
        """
        row = _encode_intent(_check_intent(intent))
        gone = _check_seqs(remove)
        seq = self._write(
            "append to",
            insert=(
                "INSERT INTO intents (thing_name, shadow_name, kind, path, value, created_at,"
                " stamp) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            ),
            delete=("DELETE FROM intents WHERE seq = ?", [(seq,) for seq in gone])
            if gone
            else None,
        )
        assert seq is not None
        return seq

    def remove(self, seqs: Iterable[int]) -> None:
        """Remove intents by seq in one transaction (unknown seqs are ignored)."""
        gone = _check_seqs(seqs)
        if gone:
            self._write(
                "remove from",
                delete=("DELETE FROM intents WHERE seq = ?", [(seq,) for seq in gone]),
            )

    def _read(self, doing: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            conn = self._connection()
            try:
                return conn.execute(sql, params).fetchall()
            except self._sqlite_error as exc:
                raise self._fail(exc, doing) from None

    def intents(self) -> list[Intent]:
        """Every stored intent in seq order."""
        rows = self._read(
            "read",
            "SELECT seq, thing_name, shadow_name, kind, path, value, created_at, stamp"
            " FROM intents ORDER BY seq",
        )
        out = []
        for seq, *row in rows:
            try:
                out.append(_decode_intent(seq, tuple(row)))
            except (ShadowSyncError, ValueError, TypeError) as exc:
                raise StoreCorruptError(
                    f"the store {self._path!r} holds an unreadable intent (seq {seq}): {exc}"
                ) from None
        return out

    def put_cache(
        self,
        thing_name: str,
        shadow_name: str | None,
        *,
        document: Mapping[str, Any] | None,
        base: Mapping[str, Any] | None,
    ) -> None:
        """Remember a shadow's last known document and last synced base (one transaction)."""
        thing, shadow = _check_names(thing_name, shadow_name)
        row = (thing, shadow or "", *_encode_entry(document, base))
        self._write(
            "write the cache of",
            insert=(
                "INSERT OR REPLACE INTO shadow_cache (thing_name, shadow_name, document, base)"
                " VALUES (?, ?, ?, ?)",
                row,
            ),
        )

    def get_cache(self, thing_name: str, shadow_name: str | None) -> CacheEntry | None:
        """A shadow's cache entry, or ``None``."""
        thing, shadow = _check_names(thing_name, shadow_name)
        rows = self._read(
            "read the cache of",
            "SELECT document, base FROM shadow_cache WHERE thing_name = ? AND shadow_name = ?",
            (thing, shadow or ""),
        )
        if not rows:
            return None
        try:
            return CacheEntry(
                thing_name=thing,
                shadow_name=shadow,
                document=_decode_cache(rows[0][0]),
                base=_decode_cache(rows[0][1]),
            )
        except (ValueError, TypeError) as exc:
            raise StoreCorruptError(
                f"the store {self._path!r} holds an unreadable cache entry for {thing}: {exc}"
            ) from None

    def delete_cache(self, thing_name: str, shadow_name: str | None) -> None:
        """Forget a shadow's cache entry."""
        thing, shadow = _check_names(thing_name, shadow_name)
        self._write(
            "write the cache of",
            delete=(
                "DELETE FROM shadow_cache WHERE thing_name = ? AND shadow_name = ?",
                [(thing, shadow or "")],
            ),
        )

    def put_state(self, name: str, value: Mapping[str, Any]) -> None:
        """Keep the JSON object ``value`` under ``name`` (one transaction, durable on return)."""
        row = (_check_state_name(name), _encode_state(value))
        self._write(
            "write the state of",
            insert=("INSERT OR REPLACE INTO device_state (name, value) VALUES (?, ?)", row),
        )

    def get_state(self, name: str) -> JSONObject | None:
        """The JSON object kept under ``name``, or ``None``."""
        key = _check_state_name(name)
        rows = self._read(
            "read the state of", "SELECT value FROM device_state WHERE name = ?", (key,)
        )
        if not rows:
            return None
        try:
            return _decode_cache(rows[0][0])
        except (ValueError, TypeError) as exc:
            raise StoreCorruptError(
                f"the store {self._path!r} holds an unreadable state {key!r}: {exc}"
            ) from None

    def close(self) -> None:
        """Close the connection; later calls raise `StoreError`. Closing twice is harmless."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except self._sqlite_error as exc:
                raise self._fail(exc, "close") from None

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"SQLiteStore({self._path!r}, {state})"
