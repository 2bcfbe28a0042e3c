"""What a device session knows of the cloud's copy of its shadow, kept in one object.

`CloudView` holds the last known cloud document, whether it is exactly the cloud's document at
its version, the desired values of deltas newer than it, the highest version seen, and the
last state both sides agreed on (the accepted desired state and the reported base of the
three-way merge). Those move together, and they are cached together in the store, so that a
device that reboots offline still knows what it last agreed with the cloud.

```pycon
>>> from shadowsync._limits import DEFAULT_LIMITS
>>> from shadowsync.stores import MemoryStore
>>> store = MemoryStore()
>>> view = CloudView(store, "lamp", None, limits=DEFAULT_LIMITS)
>>> view.apply_delta(4, {"on": True})
>>> view.theirs_desired(), view.last_seen
({'on': True}, None)
>>> view.see(4); view.persist()
>>> again = CloudView(store, "lamp", None, limits=DEFAULT_LIMITS)
>>> again.load() is None, again.last_seen
(True, 4)

```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._conflict.merge import same
from shadowsync._conflict.versioning import MessageClass, classify_message
from shadowsync._device.store import CheckedObject
from shadowsync._document import ShadowDocument, is_checked
from shadowsync._json import copy_json, copy_object, describe, json_equal, normalize_section
from shadowsync._tree import MISSING, holder
from shadowsync._update import apply_update
from shadowsync.errors import InvalidArgumentError, ShadowRejectedError, ShadowSyncError
from shadowsync.events import CacheReset

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shadowsync._device.intent import Intent
    from shadowsync._device.messages import Notification
    from shadowsync._json import JSONObject, JSONValue
    from shadowsync._limits import ShadowLimits
    from shadowsync._tree import Path
    from shadowsync.stores import Store

__all__ = ["Agreed", "CloudView", "apply_at", "apply_patch"]

_BASE_SECTIONS = ("acceptedDesired", "acceptedDesiredMetadata", "reported", "reportedMetadata")


@attrs.frozen(kw_only=True)
class Agreed:
    """What the device agreed with the cloud: the desired state it accepted (after the business
    rules) and the reported state both sides last agreed on (the base of the three-way merge),
    each with its metadata. The objects are live: callers copy before they change them.

    Every section is plain JSON, taken from checked documents, from a merge of checked sections
    or from a cache entry `from_cache` normalized: the cache entry is written without checking
    it again."""

    accepted_desired: JSONObject = attrs.field(factory=dict)
    accepted_metadata: JSONObject = attrs.field(factory=dict)
    base_reported: JSONObject = attrs.field(factory=dict)
    base_metadata: JSONObject = attrs.field(factory=dict)

    @classmethod
    def from_cache(cls, base: Mapping[str, Any]) -> Agreed:
        """The sections of a cache entry's ``base``, checked: a `ShadowSyncError` if one is
        not a usable section."""
        desired, desired_meta, reported, reported_meta = (
            normalize_section(base.get(name, {}), section=name, max_depth=64, nulls=False)
            for name in _BASE_SECTIONS
        )
        return cls(
            accepted_desired=desired,
            accepted_metadata=desired_meta,
            base_reported=reported,
            base_metadata=reported_meta,
        )

    def sections(self) -> tuple[JSONObject, JSONObject, JSONObject, JSONObject]:
        """The live sections in the order of a cache entry's ``base``."""
        return (
            self.accepted_desired,
            self.accepted_metadata,
            self.base_reported,
            self.base_metadata,
        )


def apply_patch(target: JSONObject, patch: Mapping[str, Any]) -> None:
    """AWS update semantics, in place: objects merge, ``None`` deletes, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif type(value) is dict and type(target.get(key)) is dict:
            child = target[key]
            assert isinstance(child, dict)
            apply_patch(child, value)
        elif type(value) is dict:
            fresh: JSONObject = {}
            apply_patch(fresh, value)
            target[key] = fresh
        else:
            target[key] = copy_json(value)


def apply_at(tree: JSONObject, path: Path, value: JSONValue) -> None:
    """Apply ``{path: value}`` to ``tree`` with AWS update semantics, in place."""
    # As apply_patch(tree, nest(path, value)) does, without building the nested patch: what
    # is not an object on the way becomes a fresh one.
    apply_patch(holder(tree, path), {path[-1]: value})


class CloudView:
    """The device's knowledge of one shadow in the cloud; persisted in the store's cache.

    Reading: `document`, `version`, `last_seen`, `theirs_reported`, `agreed` (the live objects:
    callers copy before they change them), `is_fresh`, `theirs_desired`, `desired_version`,
    `device_reported`.

    Changing: `load` and `persist` (the cache), `see` (a version was mentioned), `expect_snapshot`,
    `take_snapshot`, `take_notification` (after `ignores`), `take_update` (what the cloud said),
    `accept_desired`, `rebase` (what the device agreed to), `doubt` (the view may be behind)
    and `forget` (the shadow was deleted).
    """

    def __init__(
        self, store: Store, thing_name: str, shadow_name: str | None, *, limits: ShadowLimits
    ) -> None:
        self._store = store
        self._thing_name = thing_name
        self._shadow_name = shadow_name
        self._limits = limits
        self._cloud: ShadowDocument | None = None
        self._exact = False  # the view is the cloud's document at its version
        self._overlay: JSONObject = {}  # desired values of deltas newer than the view
        self._overlay_version: int | None = None
        self._seen_at_get: int | None = None
        self._last_seen: int | None = None
        self._agreed = Agreed()
        # What the cache entry holds (document, last seen, agreed), when known.
        self._saved: tuple[ShadowDocument | None, int | None, Agreed] | None = None
        # The last `preview`: (view document, request, timestamp, the document it made).
        self._preview: tuple[ShadowDocument | None, object, int, ShadowDocument] | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def document(self) -> ShadowDocument | None:
        """The last known cloud document, ``None`` if the shadow does not exist (or is unknown)."""
        return self._cloud

    @property
    def version(self) -> int | None:
        """The version of `document`."""
        return None if self._cloud is None else self._cloud.version

    @property
    def last_seen(self) -> int | None:
        """The highest shadow version seen (``None`` before any, and after a delete)."""
        return self._last_seen

    @property
    def theirs_reported(self) -> JSONObject:
        """The cloud's reported state as far as known (empty if there is no document)."""
        return {} if self._cloud is None else self._cloud.reported

    @property
    def agreed(self) -> Agreed:
        """What the device agreed with the cloud (empty before anything was agreed)."""
        return self._agreed

    def is_fresh(self) -> bool:
        """Whether the view is the cloud's document and nothing newer was seen since."""
        if not self._exact:
            return False
        if self._cloud is None:
            return self._last_seen is None
        return self._last_seen is None or self._cloud.version >= self._last_seen

    def theirs_desired(self) -> JSONObject:
        """The cloud's desired state as far as known: the view plus newer deltas."""
        cloud = self._cloud
        if self._overlay_version is not None and (
            cloud is not None and cloud.version >= self._overlay_version
        ):
            self._overlay, self._overlay_version = {}, None
        desired = {} if cloud is None else cloud.desired
        if self._overlay_version is None:
            return desired
        combined = copy_object(desired)
        apply_patch(combined, self._overlay)
        return combined

    def desired_version(self) -> int:
        """The version the desired state of `theirs_desired` is at (0 if none)."""
        return max(0 if self._cloud is None else self._cloud.version, self._overlay_version or 0)

    def device_reported(self, pending: Iterable[Intent]) -> JSONObject:
        """A new object: the cloud's reported state with the ``pending`` intents applied."""
        reported = copy_object(self._cloud.reported) if self._cloud is not None else {}
        for intent in pending:
            apply_at(reported, intent.path, intent.value)
        return reported

    # -- the cache -------------------------------------------------------------------------

    def persist(self) -> None:
        """Write the view to the store's cache entry for this shadow, unless it is what was
        last written or read there."""
        # The document and the agreed state are values, replaced whenever they change: the
        # same objects and the same version mean the same cache entry.
        written = (self._cloud, self._last_seen, self._agreed)
        saved = self._saved
        if (
            saved is not None
            and saved[0] is written[0]
            and saved[1] == written[1]
            and saved[2] is written[2]
        ):
            return
        # The store encodes what it is given at once, and the view never changes a document
        # or an agreed state in place: the live objects go, not copies.
        agreed = self._agreed
        base = CheckedObject(lastSeenVersion=self._last_seen)
        base.update(zip(_BASE_SECTIONS, agreed.sections(), strict=True))
        self._store.put_cache(
            self._thing_name,
            self._shadow_name,
            document=None if self._cloud is None else _cache_form(self._cloud),
            base=base,
        )
        self._saved = written

    def forget_saved(self) -> None:
        """Write the cache entry at the next `persist`, changed or not (the store may have
        rolled back the last write)."""
        self._saved = None

    def load(self) -> CacheReset | None:
        """Read the view from the store's cache; the event to report if the entry was unusable
        (the view then stays empty)."""
        entry = self._store.get_cache(self._thing_name, self._shadow_name)
        if entry is None:
            self._saved = (self._cloud, self._last_seen, self._agreed)  # nothing to write yet
            return None
        try:
            document = entry.document
            cloud = (
                None
                if document is None
                else ShadowDocument.from_dict(document, limits=self._limits)
            )
            base = entry.base if entry.base is not None else {}
            if not isinstance(base, Mapping):
                raise InvalidArgumentError("the cached base is not an object")
            seen = base.get("lastSeenVersion")
            if seen is not None and (type(seen) is not int or seen < 0):
                raise InvalidArgumentError(f"lastSeenVersion is {describe(seen)}")
            agreed = Agreed.from_cache(base)
        except ShadowSyncError as exc:
            return CacheReset(reason=str(exc))
        self._cloud = cloud
        self._last_seen = seen if seen is not None else (None if cloud is None else cloud.version)
        self._agreed = agreed
        self._saved = (self._cloud, self._last_seen, self._agreed)
        return None

    # -- what the cloud said ---------------------------------------------------------------

    def see(self, version: int) -> None:
        """A message mentioned ``version``: the view is behind until it holds that version."""
        if self._last_seen is None or version > self._last_seen:
            self._last_seen = version

    def expect_snapshot(self) -> None:
        """A GET goes out: remember what was seen, to tell later whether its answer is the
        latest word."""
        self._seen_at_get = self._last_seen

    def take_snapshot(self, document: ShadowDocument | None) -> None:
        """The answer to the GET: ``document``, or ``None`` when the shadow does not exist."""
        self._cloud = document
        self._exact = True
        self._overlay, self._overlay_version = {}, None  # newer deltas are replayed after it
        if self._last_seen == self._seen_at_get:
            # Nothing newer arrived while the GET was out, so the snapshot is the latest word,
            # even below what was seen before: the shadow was deleted (and maybe re-created,
            # restarting its versions after 48 hours), or an earlier version was bogus.
            self._last_seen = None if document is None else document.version
        elif document is not None:
            self.see(document.version)  # newer messages arrived meanwhile: the view is behind

    def ignores(self, version: int, *, floor: int | None) -> str | None:
        """Why a notification at ``version`` adds nothing (``None`` if it may): it is covered by
        the snapshot at ``floor``, or older than a version already seen."""
        if floor is not None and version <= floor:
            return f"covered by snapshot {floor}"
        if classify_message(version, self._last_seen) is MessageClass.STALE:
            return f"stale: version {version} < {self._last_seen} seen"
        return None

    def take_notification(self, notification: Notification) -> bool:
        """Take a delta or documents notification that is not stale; whether versions were
        missed before it (a delta after a gap: the view cannot be trusted until refetched)."""
        version, document = notification.version, notification.document
        kind = classify_message(version, self._last_seen)
        if document is not None:
            self._take_document(document)
        elif notification.delta is not None:
            self.apply_delta(version, notification.delta)
        self.see(version)
        return kind is MessageClass.GAP and document is None

    def _take_document(self, document: ShadowDocument) -> None:
        """The current document of an ``update/documents`` message, unless the view is newer."""
        cloud = self._cloud
        if cloud is None or document.version >= cloud.version:
            if not _same_document(cloud, document):
                self._cloud = document  # else the view keeps its object, and its cache entry
            self._exact = True

    def apply_delta(self, version: int, delta: JSONObject) -> None:
        """Remember a delta newer than the view: its desired values count until the view
        catches up (a delta says nothing of reported, so the view itself stays as it is)."""
        if self._cloud is not None and version <= self._cloud.version:
            return  # already in the view; it is evaluated again as it is
        if self._overlay_version is None or version > self._overlay_version:
            self._overlay_version = version
        apply_patch(self._overlay, delta)

    def take_update(
        self, request: Mapping[str, Any], *, version: int, timestamp: int, create: bool
    ) -> None:
        """Our update ``request`` was accepted at ``version``: the view becomes the document
        the service computed, when that can be known. ``create`` is the empty update that
        creates the shadow: it may have met an existing one, so the view is fetched again."""
        if self._cloud is not None and self._cloud.version >= version:
            pass  # its documents message came first and brought the view up to date
        elif create:
            self._cloud = self._after(request, version, timestamp)
            self._exact = False
        else:
            view = self._after(request, version, timestamp)
            if view is not None and view.version == version:
                self._cloud = view
            else:
                self._exact = False
        self.see(version)

    def preview(self, request: Mapping[str, Any], timestamp: int) -> None:
        """Check our update ``request`` against the view before it is sent: raises the AWS
        rejection (400, 413) the service would answer, if the view is what the cloud holds."""
        cloud = self._cloud
        result = apply_update(
            cloud, request, timestamp=timestamp, limits=self._limits, previous_version=0
        )
        # When the service accepts it in the same second, on this view, `take_update` is
        # handed this very document: `apply_update` is a function of what is kept here.
        self._preview = (cloud, request, timestamp, result.document)

    def _after(
        self, request: Mapping[str, Any], version: int, timestamp: int
    ) -> ShadowDocument | None:
        """The cloud document after our accepted update, as the service computed it."""
        preview, self._preview = self._preview, None
        if (
            preview is not None
            and preview[0] is self._cloud
            and preview[1] is request
            and preview[2] == timestamp
            and preview[3].version == version
        ):
            return preview[3]
        try:
            result = apply_update(
                self._cloud,
                request,
                timestamp=timestamp,
                limits=self._limits,
                previous_version=max(0, version - 1),
            )
        except ShadowRejectedError:
            return None
        return result.document

    def doubt(self) -> None:
        """The cloud may have changed unseen (a disconnect, a timed-out update, a 409)."""
        self._exact = False

    def forget(self) -> None:
        """The shadow was deleted: nothing is known of it and nothing was agreed."""
        self._cloud = None
        self._exact = True
        self._overlay, self._overlay_version = {}, None
        self._last_seen = None
        self._agreed = Agreed()

    # -- what the device agreed to ---------------------------------------------------------

    def accept_desired(self, merged: JSONObject, theirs: JSONObject) -> None:
        """The device accepted ``merged`` as its desired state, judged from ``theirs``."""
        metadata = _metadata_for(
            merged,
            theirs,
            {} if self._cloud is None else self._cloud.desired_metadata,
            self._agreed.accepted_metadata,
        )
        agreed = self._agreed
        if not (
            json_equal(merged, agreed.accepted_desired)
            and json_equal(metadata, agreed.accepted_metadata)
        ):
            self._agreed = attrs.evolve(agreed, accepted_desired=merged, accepted_metadata=metadata)

    def rebase(self) -> None:
        """Device and cloud agree: the cloud's reported state becomes the merge base."""
        cloud, agreed = self._cloud, self._agreed
        if cloud is not None and self.is_fresh():
            if json_equal(cloud.reported, agreed.base_reported) and json_equal(
                cloud.reported_metadata, agreed.base_metadata
            ):
                return  # agreed already: the cache entry need not be written again
            # The document's own sections: neither side changes them, and the cache entry
            # then writes them once for the document and the base.
            self._agreed = attrs.evolve(
                agreed, base_reported=cloud.reported, base_metadata=cloud.reported_metadata
            )


def _cache_form(document: ShadowDocument) -> JSONObject:
    """``document.to_dict()`` without its copies: the live sections of the document (a
    `CheckedObject` when the document's values are known to be checked)."""
    state: JSONObject = {}
    metadata: JSONObject = {}
    for name in ("desired", "reported"):
        section = document.section(name)
        if section:
            state[name] = section
            metadata[name] = document.section_metadata(name)
    if document.delta is not None:
        state["delta"] = document.delta
    form: JSONObject = {
        "state": state,
        "metadata": metadata,
        "version": document.version,
        "timestamp": document.timestamp,
    }
    return CheckedObject(form) if is_checked(document) else form


def _same_document(view: ShadowDocument | None, document: ShadowDocument) -> bool:
    """Whether ``document`` is the view's document again (the ``update/documents`` message
    that follows our own accepted update, usually)."""
    return view is document or (
        view is not None
        and view.version == document.version
        and view.timestamp == document.timestamp
        and all(
            json_equal(view.section(name), document.section(name))
            and json_equal(view.section_metadata(name), document.section_metadata(name))
            for name in ("desired", "reported")
        )
    )


def _metadata_for(section: Any, cloud: Any, fresh: Any, old: Any) -> JSONObject:
    """Metadata of the accepted desired state: the cloud's where the cloud's value was taken,
    the previous metadata where a rule kept the old value."""
    out: JSONObject = {}
    for key, value in section.items():
        theirs = cloud.get(key, MISSING) if type(cloud) is dict else MISSING
        new_meta = fresh.get(key) if type(fresh) is dict else None
        old_meta = old.get(key) if type(old) is dict else None
        if type(value) is dict:
            out[key] = _metadata_for(value, theirs, new_meta, old_meta)
        elif new_meta is not None and same(value, theirs):
            out[key] = copy_json(new_meta)
        elif old_meta is not None:
            out[key] = copy_json(old_meta)
    return out
