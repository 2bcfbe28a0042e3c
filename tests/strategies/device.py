"""Hypothesis strategies for the device side (offline queue, stores, sync session) and oracles.

The queue strategies draw intents over a few things, shadows and keys, so that paths collide,
nest into each other and get reset then merged into; values include deletes, objects with
``null`` members (deletes inside a merge), arrays and scalars. The oracle
:func:`reference_reported` applies intents one update each, in stamp order, with
`apply_update` itself: the independent meaning of a queue that the replay laws compare against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from shadowsync import HLCStamp, ShadowDocument, ShadowLimits, apply_update
from shadowsync._device.intent import ACK_PATH, Intent

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from shadowsync._device.intent import IntentKind
    from shadowsync._device.replay import ReplayBatch
    from shadowsync._json import JSONObject, JSONValue

QUEUE_THINGS = ("lamp", "pump")
"""Thing names the queue strategies use."""

QUEUE_SHADOWS: tuple[str | None, ...] = (None, "config")
"""Shadow names the queue strategies use (``None`` is the classic shadow)."""

QUEUE_KEYS = ("a", "b", "c")
"""Object keys for intent paths and values: few, so that writes overlap often."""

QUEUE_START_MS = 1_700_000_000_000
"""Wall-clock milliseconds at which generated stamps start."""

QUEUE_NOW = QUEUE_START_MS // 1000 + 3600
"""A ``now`` (epoch seconds) after every generated ``created_at``, well within a week."""

REFERENCE_LIMITS = ShadowLimits(max_document_bytes=30 * 1024)
"""Roomy limits for oracles, so that a 413 never hides a difference."""

queue_scalars: st.SearchStrategy[JSONValue] = st.one_of(
    st.integers(-5, 5),
    st.sampled_from([0.5, True, False, "", "x", "long text " * 3]),
)
"""Scalars for intent values."""


def queue_values(*, nulls: bool = True, depth: int = 2) -> st.SearchStrategy[JSONValue]:
    """Intent values: scalars, arrays (no null inside), objects (``null`` members delete).

    With ``nulls`` the value itself may be ``None`` (a delete).
    """
    leaves: st.SearchStrategy[JSONValue] = st.one_of(
        queue_scalars, st.lists(queue_scalars, max_size=3)
    )
    members: st.SearchStrategy[JSONValue] = leaves | st.none()

    def extend(inner: st.SearchStrategy[JSONValue]) -> st.SearchStrategy[JSONValue]:
        return st.dictionaries(st.sampled_from(QUEUE_KEYS), inner | st.none(), max_size=3)

    tree = st.recursive(members, extend, max_leaves=6) if depth > 0 else members
    values = st.one_of(leaves, st.dictionaries(st.sampled_from(QUEUE_KEYS), tree, max_size=3))
    return values | st.none() if nulls else values


queue_paths: st.SearchStrategy[tuple[str, ...]] = st.lists(
    st.sampled_from(QUEUE_KEYS), min_size=1, max_size=3
).map(tuple)
"""Intent paths of one to three keys."""

acknowledgement_values: st.SearchStrategy[JSONValue] = st.builds(
    lambda version, applied: {
        "desiredVersion": version,
        "timestamp": QUEUE_NOW,
        "applied": applied,
        "rejected": [],
        "pending": [],
    },
    st.integers(1, 9),
    st.lists(st.sampled_from(["/a", "/b", "/c"]), max_size=2, unique=True),
)
"""Acknowledgement bodies as `shadowsync.rules.Acknowledgement.to_dict` writes them."""


@st.composite
def queue_intents(
    draw: st.DrawFn,
    *,
    things: Sequence[str] = QUEUE_THINGS,
    shadows: Sequence[str | None] = QUEUE_SHADOWS,
    paths: Sequence[tuple[str, ...]] | None = None,
    acks: bool = True,
) -> Intent:
    """One intent on a thing and shadow from the pools; an acknowledgement now and then.

    ``paths`` restricts report paths to a few (so that writes collide); by default any
    :data:`queue_paths`.
    """
    thing = draw(st.sampled_from(list(things)))
    shadow = draw(st.sampled_from(list(shadows)))
    wall = draw(st.integers(0, 50)) + QUEUE_START_MS
    stamp = HLCStamp(wall_ms=wall, counter=draw(st.integers(0, 2)), node="device")
    kind: IntentKind = "report"
    if acks and draw(st.integers(0, 9)) == 0:
        kind, path = "ack", ACK_PATH
        value = draw(acknowledgement_values | st.none())
    else:
        path = draw(st.sampled_from(list(paths)) if paths else queue_paths)
        value = draw(queue_values())
    return Intent(
        thing_name=thing,
        shadow_name=shadow,
        kind=kind,
        path=path,
        value=value,
        created_at=wall // 1000,
        stamp=stamp,
    )


@st.composite
def queue_intent_logs(
    draw: st.DrawFn,
    *,
    min_size: int = 0,
    max_size: int = 25,
    increasing: bool = False,
    things: Sequence[str] = QUEUE_THINGS,
    shadows: Sequence[str | None] = QUEUE_SHADOWS,
) -> list[Intent]:
    """Intents in put order; with ``increasing``, stamps strictly increase in put order.

    Without it stamps are drawn from a narrow range, so puts arrive out of stamp order and
    stamps tie (the put order then decides).
    """
    # A few paths and shadows per example, so that writes hit the same paths, nest into each
    # other, and reset then merge (the cases coalescing and replay must get right).
    pool = draw(st.lists(queue_paths, min_size=1, max_size=5, unique=True))
    thing_pool = draw(st.lists(st.sampled_from(list(things)), min_size=1, unique=True))
    shadow_pool = draw(st.lists(st.sampled_from(list(shadows)), min_size=1, unique=True))
    # Lengths spread evenly up to max_size: long logs are where coalescing matters.
    size = draw(st.integers(min_size, max_size))
    intents = draw(
        st.lists(
            queue_intents(things=thing_pool, shadows=shadow_pool, paths=pool),
            min_size=size,
            max_size=size,
        )
    )
    if not increasing:
        return intents
    out = []
    for position, intent in enumerate(intents):
        stamp = HLCStamp(wall_ms=QUEUE_START_MS + position, counter=0, node="device")
        out.append(_restamp(intent, stamp))
    return out


def _restamp(intent: Intent, stamp: HLCStamp) -> Intent:
    return Intent(
        thing_name=intent.thing_name,
        shadow_name=intent.shadow_name,
        kind=intent.kind,
        path=intent.path,
        value=intent.value,
        created_at=stamp.wall_ms // 1000,
        stamp=stamp,
    )


def _full_tree(depth: int, leaf: int) -> JSONObject:
    """Every key at every level down to ``depth``: any merge into it shows what it keeps."""
    if depth == 1:
        return {key: leaf + index for index, key in enumerate(QUEUE_KEYS)}
    return {key: _full_tree(depth - 1, leaf + 10 * index) for index, key in enumerate(QUEUE_KEYS)}


initial_reported: st.SearchStrategy[JSONObject] = st.one_of(
    st.just(_full_tree(3, 100)),
    st.just(_full_tree(2, 200)),
    st.dictionaries(
        st.sampled_from(QUEUE_KEYS),
        st.recursive(
            queue_scalars | st.lists(queue_scalars, max_size=2),
            lambda inner: st.dictionaries(st.sampled_from(QUEUE_KEYS), inner, max_size=3),
            max_leaves=8,
        ),
        max_size=3,
    ),
)
"""A reported state the cloud holds before the device replays (no nulls).

Two times in three it is a full tree (every key at two or three levels), so that a merge where
an exact value was due, or a lost write, always shows.
"""


def shadow_document(reported: JSONObject | None) -> ShadowDocument | None:
    """A shadow holding ``reported`` (``None``: no shadow yet)."""
    if reported is None:
        return None
    return apply_update(
        None, {"state": {"reported": reported}}, timestamp=1, limits=REFERENCE_LIMITS
    ).document


def reference_reported(
    intents: Iterable[tuple[int, Intent]], initial: JSONObject | None
) -> dict[tuple[str, str | None], JSONObject]:
    """Every intent applied as its own update, in ``(stamp, put position)`` order.

    ``intents`` pairs each intent with its position in put order. Returns the reported state of
    each shadow the intents touch, starting from ``initial`` on every shadow.
    """
    documents: dict[tuple[str, str | None], ShadowDocument | None] = {}
    for _, intent in sorted(intents, key=lambda pair: (pair[1].stamp, pair[0])):
        key = (intent.thing_name, intent.shadow_name)
        document = documents[key] if key in documents else shadow_document(initial)
        documents[key] = apply_update(
            document,
            {"state": {"reported": intent.reported_patch()}},
            timestamp=2,
            limits=REFERENCE_LIMITS,
        ).document
    return {key: _reported(document) for key, document in documents.items()}


def apply_batches(
    batches: Iterable[ReplayBatch],
    initial: JSONObject | None,
    documents: dict[tuple[str, str | None], ShadowDocument | None] | None = None,
) -> dict[tuple[str, str | None], ShadowDocument | None]:
    """Apply replayed update requests in order, as the cloud would; the documents per shadow.

    Pass ``documents`` to continue from an earlier call (shadows not in it start at
    ``initial``).
    """
    out = dict(documents or {})
    for batch in batches:
        key = (batch.thing_name, batch.shadow_name)
        document = out[key] if key in out else shadow_document(initial)
        out[key] = apply_update(
            document, batch.request, timestamp=3, limits=REFERENCE_LIMITS
        ).document
    return out


def reported_of(
    documents: dict[tuple[str, str | None], ShadowDocument | None],
) -> dict[tuple[str, str | None], JSONObject]:
    """The reported state of each document (``{}`` for a shadow that does not exist)."""
    return {key: _reported(document) for key, document in documents.items()}


def _reported(document: ShadowDocument | None) -> JSONObject:
    return {} if document is None else document.section("reported")


def token_counter(prefix: str = "t") -> Any:
    """A client-token factory: ``t1``, ``t2``, ... (a fresh counter per call)."""
    count = 0

    def token() -> str:
        nonlocal count
        count += 1
        return f"{prefix}{count}"

    return token


# --------------------------------------------------------------------------------------------
# The sync session and the loopback pair
# --------------------------------------------------------------------------------------------

SESSION_THING = "dev-1"
"""The thing the session strategies and tests use."""

SESSION_REPORT_KEYS = ("a", "b", "c")
"""Top-level reported keys the device owns (and ``n.x``, ``n.y`` below ``n``)."""

SESSION_DESIRED_KEYS = ("mode", "target")
"""Desired keys the cloud sets; with auto-report the device reports them back."""

SESSION_TARGET_RANGE = (0, 100)
"""The range a business rule allows for ``target`` (other values are acknowledged rejected)."""

SESSION_DELAYS = (0.01, 0.1, 1.0, 5.0, 40.0, 600.0, 86_400.0, 8 * 86_400.0)
"""Seconds of simulated time a step lets pass: up to more than a week (intents expire)."""


def session_reports() -> st.SearchStrategy[JSONObject]:
    """A device report: a few owned keys set or deleted, sometimes a nested ``n.x``/``n.y``."""
    values: st.SearchStrategy[JSONValue] = st.none() | st.integers(0, 3)
    flat = st.dictionaries(st.sampled_from(SESSION_REPORT_KEYS), values, min_size=1, max_size=2)
    nested = st.dictionaries(st.sampled_from(("x", "y")), st.none() | st.integers(5, 6), max_size=2)
    return st.builds(lambda top, inner: {**top, **({"n": inner} if inner else {})}, flat, nested)


def session_desired() -> st.SearchStrategy[JSONObject]:
    """A cloud-side desired change: a mode, or a target in or out of the allowed range."""
    mode: st.SearchStrategy[JSONValue] = st.none() | st.sampled_from(("heat", "cool", "off"))
    target: st.SearchStrategy[JSONValue] = st.none() | st.sampled_from((-5, 20, 50, 70, 150))
    return st.one_of(
        st.builds(lambda value: {"mode": value}, mode),
        st.builds(lambda value: {"target": value}, target),
    )


def session_fault_settings() -> st.SearchStrategy[dict[str, float]]:
    """Settings for `FaultInjector.configure`: drop, duplicate, reorder, delay."""
    return st.fixed_dictionaries(
        {
            "drop": st.sampled_from((0.0, 0.1, 0.3)),
            "duplicate": st.sampled_from((0.0, 0.1, 0.3)),
            "reorder": st.sampled_from((0.0, 0.2, 0.5)),
            "delay": st.sampled_from((0.0, 0.05, 0.3)),
        }
    )


def hostile_payloads() -> st.SearchStrategy[bytes]:
    """Payloads a broken or hostile peer might send: not UTF-8, not JSON, deep, huge, odd."""
    import json

    json_values: st.SearchStrategy[Any] = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=10,
    )
    fields = st.sampled_from(("state", "version", "clientToken", "code", "message", "current"))
    shaped = st.dictionaries(fields, json_values, max_size=4).map(
        lambda body: json.dumps(body, allow_nan=True).encode()
    )
    return st.one_of(
        st.binary(max_size=64),
        shaped,
        st.sampled_from(
            (
                b"",
                b"\xff\xfe",
                b"[" * 5000,
                b'{"version": 1e400, "state": {}}',
                b'{"version": NaN}',
                b'{"version": ' + b"9" * 5000 + b"}",
                b'{"state": {"a": [1, null]}, "version": 3}',
                b'{"current": {"state": {"desired": 5}, "version": 2}}',
                b'{"code": "409", "clientToken": 7}',
            )
        ),
    )
