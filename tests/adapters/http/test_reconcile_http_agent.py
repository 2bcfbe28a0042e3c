"""End to end: the device agent's processes driven by the HTTP poller instead of a shadow."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

from shadowsync import Backoff
from shadowsync.reconcile import (
    Action,
    Component,
    PollConfig,
    PollerState,
    ReconcileConfig,
    Reconciler,
    ReconcilerState,
    TargetPoller,
)
from shadowsync.reconcile.http import fetch_target
from shadowsync.stores import SQLiteStore
from tests.process_supervisor import ProcessSupervisor

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.adapters.http.conftest import TargetServer

COMPONENTS = [
    Component(name="db", path="db"),
    Component(name="web", path="web", depends_on=["db"], strategy="handover"),
]
TIMEOUT = 30.0


class PollingAgent:
    """Poll, reconcile, run steps on processes; state and ETag in one SQLite file."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.store = SQLiteStore(workdir / "device.db")
        config = PollConfig(
            url=url, interval=0.2, timeout=2, backoff=Backoff(initial=0.1, maximum=0.2)
        )
        self.poller = TargetPoller(config, random=random.random, state=PollerState.load(self.store))
        self.reconciler = Reconciler(
            COMPONENTS,
            random=random.random,
            config=ReconcileConfig(max_attempts=2, backoff=Backoff(initial=0.1, maximum=0.2)),
            state=ReconcilerState.load(self.store),
        )
        self.supervisor = ProcessSupervisor(workdir, {c.name: c.path for c in COMPONENTS})

    def turn(self) -> None:
        polled = fetch_target(self.poller, time.time)
        if polled is not None:
            self.poller.state.save(self.store)
            self.reconciler.set_target(polled.target, version=polled.version, now=time.time())
        self.reconciler.observe(self.supervisor.observed(), time.time())
        for step in self.reconciler.plan(time.time()):
            error = self.supervisor.run(step)
            observed = self.supervisor.observed()
            if error is None:
                self.reconciler.done(step, observed=observed, now=time.time())
                if step.action is Action.START:
                    self.reconciler.signal(step.component, time.time())
            else:
                self.reconciler.failed(step, error=error, observed=observed, now=time.time())
        self.reconciler.snapshot().save(self.store)

    def run_until(self, condition: Callable[[], bool]) -> bool:
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end:
            self.turn()
            if condition():
                return True
            time.sleep(0.02)
        return False

    def settled_on(self, target: dict[str, str]) -> Callable[[], bool]:
        return lambda: self.reconciler.status().converged and self.supervisor.observed() == target

    def power_off(self) -> None:
        self.supervisor.power_off()
        self.store.close()


def test_the_polled_target_runs_and_a_restart_keeps_the_etag(
    server: TargetServer, tmp_path: Path
) -> None:
    server.version, server.target = 1, {"db": "v1", "web": "v1"}
    agent = PollingAgent(server.url, tmp_path)
    try:
        assert agent.run_until(agent.settled_on(server.target))
        server.version, server.target = 2, {"db": "v1", "web": "v2"}
        assert agent.run_until(agent.settled_on(server.target))
        [old, new] = [i for i in agent.supervisor.instances if i.component == "web"]
        assert old.stopped_at is not None
        assert new.answered_at < old.stopped_at
        assert agent.run_until(lambda: (304, '"2"') in server.seen)
    finally:
        agent.power_off()
    seen = len(server.seen)
    rebooted = PollingAgent(server.url, tmp_path)
    try:
        assert rebooted.run_until(rebooted.settled_on(server.target))
        assert server.seen[seen] == (304, '"2"')  # the first poll after the restart
    finally:
        rebooted.power_off()
