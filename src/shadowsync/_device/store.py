"""The store contract: what the offline queue and the session need from durable storage.

`Store` is the protocol that `shadowsync.stores.MemoryStore` and `shadowsync.stores.SQLiteStore`
implement (and that a device agent may implement itself), with `CacheEntry`, what a store
remembers about one shadow, and the errors a store raises. It lives here, beside the queue and
the session that use it, so that the core depends on no store implementation; what ``__all__``
names is public as `shadowsync.stores`.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from shadowsync.errors import ShadowSyncError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from contextlib import AbstractContextManager

    from shadowsync._device.intent import Intent
    from shadowsync._json import JSONObject

__all__ = [
    "CacheEntry",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreSchemaError",
    "store_transaction",
]


class StoreError(ShadowSyncError):
    """A store cannot be opened, read or written (or is closed)."""


class StoreCorruptError(StoreError):
    """A store's file is damaged, or is not a database at all."""


class StoreSchemaError(StoreError):
    """A store's file has a schema this release does not read (newer, or not shadowsync's)."""


class CheckedObject(dict[str, Any]):
    """A JSON object that the session hands to `Store.put_cache` already checked: plain JSON
    only (``dict``, ``list``, ``str`` without lone surrogates, ``int``, finite ``float``,
    ``bool``, ``None``), nested at most 64 levels. Internal.

    To any store it is a ``dict``; the stores of `shadowsync.stores` encode it without walking
    it again to check it, which is most of the cost of writing a cache entry.
    """

    __slots__ = ()


@attrs.frozen(kw_only=True)
class CacheEntry:
    """What a store remembers about one shadow.

    ``document`` is the last known shadow document (a GetThingShadow body); ``base`` is the
    state both sides last agreed on, the base of the next three-way merge. Either may be
    ``None``. Both are plain JSON, yours to change.
    """

    thing_name: str
    """The thing."""
    shadow_name: str | None
    """The named shadow, or ``None`` for the classic shadow."""
    document: JSONObject | None
    """The last known shadow document, or ``None``."""
    base: JSONObject | None
    """The last synced base, or ``None``."""


@runtime_checkable
class Store(Protocol):
    """Durable storage for an offline queue, a shadow cache and named device state.

    ``append`` assigns increasing seqs and returns only when the intent is durable; ``remove``
    and ``append``'s own ``remove`` are atomic with it. ``intents`` lists what is stored in
    seq order, with the seqs it assigned. Implementations must be safe to call from several
    threads.

    A store may also offer ``transaction()``, a re-entrant context manager within which every
    write becomes durable together at its end, or not at all (both stores here do). The
    session uses it so that a multi-key report is queued whole or not at all, and so that each
    of its calls writes once; a store without it writes each change on its own. A store whose
    ``transaction`` takes ``durable=False`` may commit such a block without waiting for the
    disk (see `shadowsync.stores.SQLiteStore.transaction`): the session asks for that for what
    it learns from the cloud, never for what the application reports. A store with
    transactions may count those that rolled back in an int attribute ``rollbacks`` (both
    stores here do): a session that sees it grow writes its cache entry again, since the last
    write may have gone with the rollback.
    """

    def append(self, intent: Intent, *, remove: Iterable[int] = ()) -> int:
        """Store ``intent`` (its ``seq`` is ignored), remove ``remove``, atomically; the new seq."""
        ...

    def remove(self, seqs: Iterable[int]) -> None:
        """Remove intents by seq, atomically (unknown seqs are ignored)."""
        ...

    def intents(self) -> list[Intent]:
        """Every stored intent in seq order, each carrying its seq."""
        ...

    def put_cache(
        self,
        thing_name: str,
        shadow_name: str | None,
        *,
        document: Mapping[str, Any] | None,
        base: Mapping[str, Any] | None,
    ) -> None:
        """Remember the last known document and the last synced base of a shadow."""
        ...

    def get_cache(self, thing_name: str, shadow_name: str | None) -> CacheEntry | None:
        """What was last remembered about a shadow, or ``None``."""
        ...

    def delete_cache(self, thing_name: str, shadow_name: str | None) -> None:
        """Forget a shadow's cache entry (after the shadow was deleted)."""
        ...

    def put_state(self, name: str, value: Mapping[str, Any]) -> None:
        """Keep the JSON object ``value`` under ``name``, replacing what was there, atomically."""
        ...

    def get_state(self, name: str) -> JSONObject | None:
        """The JSON object last kept under ``name`` (a private copy), or ``None``."""
        ...

    def close(self) -> None:
        """Release the store; later calls raise `StoreError`. Closing twice is harmless."""
        ...


def store_transaction(store: object, *, durable: bool = True) -> AbstractContextManager[object]:
    """``store.transaction()`` if the store offers one, else a context that does nothing.

    ``durable=False`` is passed on to stores whose ``transaction`` takes it; other stores
    commit durably.
    """
    method = getattr(store, "transaction", None)
    if not callable(method):
        return contextlib.nullcontext()
    if not durable and _takes_durable(store, method):
        return method(durable=False)  # type: ignore[no-any-return]
    return method()  # type: ignore[no-any-return]


_TAKES_DURABLE: dict[type, bool] = {}


def _takes_durable(store: object, method: Callable[..., object]) -> bool:
    """Whether ``method``, the store's ``transaction``, takes a ``durable`` keyword (looked up
    once per class when the class defines it)."""
    # A transaction set on the object itself may differ from one object to the next.
    own = "transaction" in getattr(store, "__dict__", {})
    known = None if own else _TAKES_DURABLE.get(type(store))
    if known is None:
        try:
            parameters = list(inspect.signature(method).parameters.values())
        except (TypeError, ValueError):
            parameters = []
        known = any(
            parameter.name == "durable" or parameter.kind is inspect.Parameter.VAR_KEYWORD
            for parameter in parameters
        )
        if not own:
            _TAKES_DURABLE[type(store)] = known
    return known
