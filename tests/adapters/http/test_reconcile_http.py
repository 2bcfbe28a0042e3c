"""The target poller's stdlib adapter against a real HTTP server on 127.0.0.1, feeding a
reconciler: ETag and 304, a server that goes away, and a restart that keeps the ETag."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from shadowsync import Backoff
from shadowsync.reconcile import (
    Component,
    PollConfig,
    PollerState,
    Reconciler,
    TargetPoller,
)
from shadowsync.reconcile.http import fetch_target
from shadowsync.stores import SQLiteStore
from tests.reconcile_world import World, drive

if TYPE_CHECKING:
    from pathlib import Path

    from tests.adapters.http.conftest import TargetServer


def _poller(url: str, state: PollerState | None = None) -> TargetPoller:
    config = PollConfig(
        url=url,
        interval=30,
        jitter=0.1,
        timeout=2,
        backoff=Backoff(initial=0.5, multiplier=2, maximum=30, jitter=0),
    )
    return TargetPoller(config, random=lambda: 0.5, state=state)


def test_polls_feed_the_reconciler_and_an_unchanged_target_costs_a_304(
    server: TargetServer, tmp_path: Path
) -> None:
    now = [1000.0]
    poller = _poller(server.url)
    reconciler = Reconciler([Component(name="web", path="web")], random=lambda: 0.5)
    world = World({"web": ("web",)})
    reconciler.observe(world.observed(), now=now[0])

    polled = fetch_target(poller, lambda: now[0])
    assert polled is not None
    assert polled.changed
    assert reconciler.set_target(polled.target, version=polled.version, now=now[0])
    drive(reconciler, world, now[0])
    assert world.observed() == {"web": "v1"}

    assert fetch_target(poller, lambda: now[0]) is None  # not due yet
    deadline = poller.next_deadline()
    assert deadline is not None
    now[0] = deadline
    polled = fetch_target(poller, lambda: now[0])
    assert polled is not None
    assert not polled.changed
    assert not reconciler.set_target(polled.target, version=polled.version, now=now[0])
    assert server.seen == [(200, None), (304, '"1"')]

    server.version, server.target = 2, {"web": "v2"}
    now[0] = poller.next_deadline() or now[0]
    polled = fetch_target(poller, lambda: now[0])
    assert polled is not None
    assert polled.changed
    assert reconciler.set_target(polled.target, version=polled.version, now=now[0])
    drive(reconciler, world, now[0])
    assert world.observed() == {"web": "v2"}

    # A restart: the ETag and the target it names come back from the store.
    with SQLiteStore(tmp_path / "device.db") as store:
        poller.state.save(store)
    with SQLiteStore(tmp_path / "device.db") as store:
        restarted = _poller(server.url, PollerState.load(store))
    polled = fetch_target(restarted, lambda: now[0])
    assert polled is not None
    assert (polled.changed, polled.target) == (False, {"web": "v2"})
    assert server.seen[-1] == (304, '"2"')


def test_a_server_that_is_gone_backs_off_and_says_why(server: TargetServer) -> None:
    url = server.url
    server.shutdown()
    server.server_close()
    poller = _poller(url)
    start = time.time()
    assert fetch_target(poller, lambda: start) is None
    assert poller.last_error is not None
    assert "cannot reach" in poller.last_error
    assert poller.next_deadline() == start + 0.5


def test_a_missing_path_is_a_failed_poll(server: TargetServer) -> None:
    poller = _poller(server.url.replace("/target", "/nothing"))
    assert fetch_target(poller, lambda: 0.0) is None
    assert poller.last_error == "HTTP 404"
