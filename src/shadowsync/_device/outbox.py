"""What a device session still has to send for its shadow, and its plan to send it.

The `Outbox` is the session's side of the offline queue for one shadow: it queues the
shadow's intents (`put`, stamped by the node's hybrid logical clock), keeps them in the order
they compose, reports the drops, and makes the plan of updates that carries them (with
the desired changes made on the device) to the cloud. The plan is made by the merges and pure
functions of `shadowsync._device.plan` against the `CloudView`, and made again when the cloud
moves. `next_update` gives the next update to publish, settling on the way those the cloud
holds already and refusing those the service could never accept; `accepted` and `refuse`
settle an update by the service's answer. When to send is the session's business.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from shadowsync._conflict.clocks import HybridLogicalClock
from shadowsync._device.intent import Intent, report_intent, stored_intent
from shadowsync._device.plan import (
    escalation,
    fast_forward,
    merge_events,
    merge_reported,
    plan_updates,
    update_body,
)
from shadowsync._tree import leaves
from shadowsync.errors import ShadowRejectedError
from shadowsync.events import Dropped, IntentsConfirmed, IntentsQueued, UpdateRejected

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from shadowsync._conflict.merge import ReviewItem
    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync._device.desired import DesiredTracker
    from shadowsync._device.plan import Planned
    from shadowsync._device.queue import OfflineQueue
    from shadowsync._device.view import CloudView
    from shadowsync._json import JSONObject, JSONValue
    from shadowsync._tree import Path
    from shadowsync.events import Event, ReviewNeeded

__all__ = ["Outbox"]

_MAX_ROUNDS = 10_000


@attrs.define(kw_only=True, eq=False)
class Outbox:
    """The updates one session has to send, in order (see the module's description).

    ``token`` makes the client tokens of the updates; ``compare_and_set`` is the setting of
    `SessionConfig`. Methods that take ``out`` append the events for the application to it.
    """

    _queue: OfflineQueue
    _view: CloudView
    _desired: DesiredTracker
    _policy: ResolutionPolicy
    _compare_and_set: bool
    _token: Callable[[], str]
    _thing_name: str
    _shadow_name: str | None
    _node: str
    _plan: list[Planned] = attrs.field(init=False, factory=list)
    _plan_version: int | None = attrs.field(init=False, default=None)
    _last_reviews: tuple[ReviewItem, ...] = attrs.field(init=False, default=())
    # Drops from before the session started are not this session's news.
    _drops_seen: int = attrs.field(
        init=False, default=attrs.Factory(lambda self: self._queue.drop_count, takes_self=True)
    )
    _hlc: HybridLogicalClock = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # The clock goes on after the newest stamp this node gave an intent still queued.
        own = [intent.stamp for intent in self.pending() if intent.stamp.node == self._node]
        self._hlc = HybridLogicalClock(self._node, last=max(own) if own else None)

    # -- the queue -------------------------------------------------------------------------

    def put(
        self,
        items: Iterable[tuple[Literal["report", "ack"], Path, JSONValue]],
        now: float,
        out: list[Event],
    ) -> list[Intent]:
        """Queue ``items`` as intents stamped by this node; those queued, in order."""
        return self._queue_all(
            (Intent(kind=kind, **self._fields(path, value, now)) for kind, path, value in items),
            out,
        )

    def put_report(self, section: JSONObject, now: float, out: list[Event]) -> list[Intent]:
        """Queue a report, a reported section `read_changes` returned; the intents queued.

        Each top-level key becomes one intent carrying its whole value, so a report costs a
        few intents, not one per leaf. Where that intent would not supersede every pending
        intent it overlaps (an offline device reporting some leaves of an object it reported
        whole before), the key's leaves are queued one by one instead, so that each supersedes
        its own pending value: reporting the same paths again does not grow the queue.
        """
        intents: list[Intent] = []
        for key, value in section.items():
            whole = report_intent(**self._fields((key,), value, now))
            if type(value) is not dict or not value or self._queue.covers_pending(whole):
                intents.append(whole)
            else:
                intents.extend(
                    report_intent(**self._fields(path, leaf, now))
                    for path, leaf in leaves(value, (key,))
                )
        return self._queue_all(intents, out)

    def _fields(self, path: Path, value: JSONValue, now: float) -> dict[str, Any]:
        return {
            "thing_name": self._thing_name,
            "shadow_name": self._shadow_name,
            "path": path,
            "value": value,
            "created_at": int(now),
            "stamp": self._hlc.now(int(now * 1000)),
        }

    def _queue_all(self, intents: Iterable[Intent], out: list[Event]) -> list[Intent]:
        queued: list[Intent] = []
        # One store transaction: after a crash a multi-key report is queued whole or not at all.
        with self._queue.transaction():
            for intent in intents:
                result = self._queue.put(intent, now=intent.created_at)
                if result.seq is not None:
                    queued.append(stored_intent(intent, result.seq))
        if queued:
            out.append(IntentsQueued(intents=queued))
        self.collect_drops(out)  # refusals included: put records them as drops
        return queued

    def pending(self) -> list[Intent]:
        """This shadow's queued intents in the order the queue composes them."""
        intents = self._queue.pending(self._thing_name, self._shadow_name)
        return sorted(intents, key=lambda intent: (intent.stamp, intent.seq))

    def collect_drops(self, out: list[Event]) -> None:
        """Report the intents of this shadow that the queue dropped since the last call."""
        fresh = self._queue.drops(since=self._drops_seen)
        self._drops_seen = self._queue.drop_count
        mine = tuple(
            record
            for record in fresh
            if (record.intent.thing_name, record.intent.shadow_name)
            == (self._thing_name, self._shadow_name)
        )
        if mine:
            out.append(Dropped(records=mine))

    def expire(self, now: float, out: list[Event]) -> None:
        """Drop the intents that are too old at ``now``."""
        self._queue.expire(now=int(now))
        self.collect_drops(out)

    # -- the plan --------------------------------------------------------------------------

    def has_work(self) -> bool:
        """Whether anything waits to be sent: a planned update, desired changes, intents."""
        return bool(self._plan) or bool(self._desired.patch) or bool(self.pending())

    def forget_plan(self) -> None:
        """Plan again before the next update (the cloud may have changed)."""
        self._plan = []

    def next_update(self, now: float, out: list[Event]) -> tuple[Planned, dict[str, Any]] | None:
        """The next update to publish and its body; ``None`` when nothing is left to send."""
        if self._plan and self._plan_version != self._view.version:
            self._plan = []  # the cloud moved since the merge: merge again
        # Each round sends an update or settles one without sending, so this ends.
        for _ in range(_MAX_ROUNDS):
            if not self._plan:
                self._plan = self._make_plan(now, out)
            if not self._plan:
                return None
            planned = self._plan.pop(0)
            body = self._prepare(planned, now, out)
            if body is not None:
                return planned, body
        return None

    def _make_plan(self, now: float, out: list[Event]) -> list[Planned]:
        """Merge snapshot, base and queued intents; return the updates to send, in order."""
        batches = self._queue.replay(
            now=int(now),
            token=self._token,
            thing_name=self._thing_name,
            shadow_name=self._shadow_name,
        )
        self.collect_drops(out)
        cloud = self._view.document
        version = self._view.version
        target: JSONObject = {}
        if batches:
            base, pending = self._view.agreed.base_reported, self.pending()
            forward = fast_forward(base, pending, cloud)
            if forward is not None:
                self._last_reviews = ()
                target = forward
            else:
                result = merge_reported(
                    base=base,
                    pending=pending,
                    cloud=cloud,
                    policy=self._policy,
                    thing_name=self._thing_name,
                    shadow_name=self._shadow_name,
                )
                out += merge_events(result, version)
                self._last_reviews = result.reviews
                target = result.merged
        plan = plan_updates(
            batches=batches,
            target=target,
            desired_patch=self._desired.patch,
            create_first=cloud is None and self._compare_and_set,
            token=self._token,
        )
        self._plan_version = version
        return plan

    def _prepare(self, planned: Planned, now: float, out: list[Event]) -> dict[str, Any] | None:
        """The body that publishes ``planned``; ``None`` when it is settled without sending
        (the cloud holds it already) or refused by the pre-flight check against the view."""
        cloud = self._view.document
        body = update_body(planned, cloud, compare_and_set=self._compare_and_set)
        if body is None:
            seqs = self._queue.confirm(planned.token)
            if seqs:
                out.append(
                    IntentsConfirmed(seqs=seqs, client_token=None, version=self._view.version)
                )
            return None
        try:
            self._view.preview(body, int(now))
        except ShadowRejectedError as exc:
            self.refuse(planned, exc.code, exc.message, now, out, local=True)
            return None
        return body

    # -- the answers -----------------------------------------------------------------------

    def accepted(self, planned: Planned, version: int, out: list[Event]) -> None:
        """The service accepted ``planned`` at ``version``: its intents or changes are done."""
        self._plan_version = version
        if planned.kind == "reported":
            seqs = self._queue.confirm(planned.token)
            if seqs:
                out.append(IntentsConfirmed(seqs=seqs, client_token=planned.token, version=version))
        elif planned.kind == "desired":
            self._desired.sent(planned.state)

    def refuse(
        self,
        planned: Planned,
        code: int,
        message: str,
        now: float,
        out: list[Event],
        *,
        local: bool,
    ) -> None:
        """``planned`` can never be accepted (``local``: the pre-flight check said so): its
        intents are dropped, its desired changes given up."""
        out.append(
            UpdateRejected(
                code=code, message=message, client_token=planned.token, permanent=True, local=local
            )
        )
        if planned.kind == "reported":
            self._queue.fail(planned.token, reason=f"{code} {message}", now=int(now))
            self.collect_drops(out)
        elif planned.kind == "desired":
            self._desired.sent(planned.state)

    def escalation(self, *, conflicts: int, max_conflict_retries: int) -> ReviewNeeded:
        """What to hold for review when the updates keep meeting version conflicts."""
        return escalation(
            previous=self._last_reviews,
            pending=self.pending(),
            theirs=self._view.theirs_reported,
            base=self._view.agreed.base_reported,
            conflicts=conflicts,
            max_conflict_retries=max_conflict_retries,
        )
