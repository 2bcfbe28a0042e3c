"""Version checks: is a message or a change stale, next, concurrent? Pure functions.

AWS IoT does not guarantee message order, and says to discard messages older than the version a
client tracks. Two mistakes are easy there: dropping a message *at* the tracked version (a
delta published again for the same version must be evaluated again, or a device misses
desired state it already saw but has not applied), and missing that messages were lost (a
version jump of more than one). `classify_message` makes both explicit.

`classify_change` and `classify_clocks` place a local change against a remote
state, from shadow versions or from vector clocks, so a caller can tell a fast-forward from
a true conflict.
"""

from __future__ import annotations

import enum

from shadowsync._conflict.clocks import Ordering, VectorClock
from shadowsync._json import describe
from shadowsync.errors import InvalidArgumentError


class MessageClass(enum.Enum):
    """Where an incoming message's version falls against the last version seen."""

    STALE = "stale"
    """Older than the last version seen: drop it."""
    CURRENT = "current"
    """The last version seen, delivered again: evaluate it again, never drop it."""
    NEXT = "next"
    """Exactly one newer: evaluate it, nothing was missed."""
    GAP = "gap"
    """More than one newer: evaluate it, but messages were missed; a GET is advisable."""

    @property
    def evaluate(self) -> bool:
        """Whether the message's content should be evaluated (all but `STALE`)."""
        return self is not MessageClass.STALE

    @property
    def resync(self) -> bool:
        """Whether messages were missed and the full document should be fetched."""
        return self is MessageClass.GAP


class Causality(enum.Enum):
    """How a local state relates to a remote one, seen from the local side."""

    STALE = "stale"
    """The remote state is older than our base: it brings nothing new; ignore it."""
    IN_SYNC = "in_sync"
    """Neither side moved since the base: nothing to do."""
    FAST_FORWARD = "fast_forward"
    """The remote moved and we did not: take the remote state as it is."""
    LOCAL_FAST_FORWARD = "local_fast_forward"
    """We moved and the remote did not: push ours as it is (with the base version)."""
    CONCURRENT = "concurrent"
    """Both moved since the base: a conflict to resolve (three-way merge against the base)."""


def _version(name: str, value: object) -> int:
    if type(value) is not int or value < 0:
        raise InvalidArgumentError(
            f"{name} must be a non-negative int (a shadow version), got {describe(value)}"
        )
    return value


def classify_message(message_version: int, last_seen_version: int | None) -> MessageClass:
    """Classify a message's shadow version against the last version seen.

    ``last_seen_version=None`` means no version was seen yet; it counts as version 0, the
    version before a new shadow's first. After a ``/delete/accepted``, reset it to ``None``:
    a shadow re-created more than 48 hours later starts again at version 1.

    ```pycon
    >>> classify_message(7, 8), classify_message(8, 8), classify_message(9, 8)
    (<MessageClass.STALE: 'stale'>, <MessageClass.CURRENT: 'current'>, <MessageClass.NEXT: 'next'>)
    >>> classify_message(11, 8).resync
    True
    >>> classify_message(1, None)
    <MessageClass.NEXT: 'next'>

    ```
    """
    message = _version("message_version", message_version)
    seen = 0 if last_seen_version is None else _version("last_seen_version", last_seen_version)
    if message < seen:
        return MessageClass.STALE
    if message == seen:
        return MessageClass.CURRENT
    if message == seen + 1:
        return MessageClass.NEXT
    return MessageClass.GAP


def classify_change(base_version: int, local_changed: bool, remote_version: int) -> Causality:
    """Classify a remote shadow version against our base version and whether we changed.

    ``base_version`` is the remote version our local state started from; ``local_changed``
    says whether we changed anything since.

    ```pycon
    >>> classify_change(5, False, 5), classify_change(5, False, 6)
    (<Causality.IN_SYNC: 'in_sync'>, <Causality.FAST_FORWARD: 'fast_forward'>)
    >>> classify_change(5, True, 5), classify_change(5, True, 7)
    (<Causality.LOCAL_FAST_FORWARD: 'local_fast_forward'>, <Causality.CONCURRENT: 'concurrent'>)
    >>> classify_change(5, True, 4)
    <Causality.STALE: 'stale'>

    ```
    """
    base = _version("base_version", base_version)
    remote = _version("remote_version", remote_version)
    if type(local_changed) is not bool:
        raise InvalidArgumentError(f"local_changed must be a bool, got {describe(local_changed)}")
    if remote < base:
        return Causality.STALE
    if remote == base:
        return Causality.LOCAL_FAST_FORWARD if local_changed else Causality.IN_SYNC
    return Causality.CONCURRENT if local_changed else Causality.FAST_FORWARD


_BY_ORDERING = {
    Ordering.EQUAL: Causality.IN_SYNC,
    Ordering.BEFORE: Causality.FAST_FORWARD,
    Ordering.AFTER: Causality.LOCAL_FAST_FORWARD,
    Ordering.CONCURRENT: Causality.CONCURRENT,
}


def classify_clocks(
    ours: VectorClock, theirs: VectorClock, *, base: VectorClock | None = None
) -> Causality:
    """Classify a remote state's vector clock against ours.

    Ours before theirs is `FAST_FORWARD`, ours after theirs
    `LOCAL_FAST_FORWARD`, equal `IN_SYNC`, concurrent
    `CONCURRENT`. Two clocks alone cannot tell "we are ahead" from "their
    state is older than one we already had"; pass ``base`` (the clock of the remote state we
    last synced from) and a remote clock strictly before it is `STALE`.

    ```pycon
    >>> base = VectorClock(entries={"cloud": 2})
    >>> ours = base.increment("device")
    >>> classify_clocks(ours, base.increment("cloud"))
    <Causality.CONCURRENT: 'concurrent'>
    >>> classify_clocks(ours, base)
    <Causality.LOCAL_FAST_FORWARD: 'local_fast_forward'>
    >>> classify_clocks(ours, VectorClock(entries={"cloud": 1}), base=base)
    <Causality.STALE: 'stale'>

    ```
    """
    for name, clock in (("ours", ours), ("theirs", theirs), ("base", base)):
        if not isinstance(clock, VectorClock) and not (name == "base" and clock is None):
            raise InvalidArgumentError(f"{name} must be a VectorClock, got {type(clock).__name__}")
    if base is not None and theirs.compare(base) is Ordering.BEFORE:
        return Causality.STALE
    return _BY_ORDERING[ours.compare(theirs)]
