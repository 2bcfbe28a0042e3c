"""A reconciler saved in a real SQLite store resumes after a reboot where it stopped."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shadowsync import Backoff
from shadowsync.errors import InvalidArgumentError
from shadowsync.reconcile import (
    Component,
    Phase,
    ReconcileConfig,
    Reconciler,
    ReconcilerState,
    ReconcileStateError,
)
from shadowsync.stores import SQLiteStore
from tests.reconcile_world import World, drive

if TYPE_CHECKING:
    from pathlib import Path

CONFIG = ReconcileConfig(
    max_attempts=3, backoff=Backoff(initial=0.5, multiplier=2, maximum=60, jitter=0)
)
COMPONENTS = [Component(name="web", path="web")]


def _boot(path: Path) -> tuple[SQLiteStore, Reconciler]:
    store = SQLiteStore(path)
    state = ReconcilerState.load(store)
    return store, Reconciler(COMPONENTS, random=lambda: 0.0, config=CONFIG, state=state)


def test_attempts_survive_reboots_so_a_failing_target_still_rolls_back(tmp_path: Path) -> None:
    database = tmp_path / "device.db"
    world = World({"web": ("web",)})
    store, reconciler = _boot(database)
    reconciler.observe(world.observed(), now=0)
    reconciler.set_target({"web": "v1"}, version=1, now=0)
    drive(reconciler, world, now=0)
    reconciler.snapshot().save(store)
    world.broken.add("v2")
    reconciler.set_target({"web": "v2"}, version=2, now=10)
    now = 10.0
    for boot in range(3):  # one failure per boot: the device reboots after each
        assert reconciler.status().attempts == ({"web": boot} if boot else {})
        while reconciler.status().attempts.get("web", 0) == boot:
            for step in reconciler.plan(now):
                world.answer(reconciler, step, now)
            if reconciler.status().rolled_back_from is not None:
                break
        reconciler.snapshot().save(store)
        store.close()
        deadline = reconciler.next_deadline()
        now = deadline if deadline is not None else now
        store, reconciler = _boot(database)
        reconciler.observe(world.observed(), now=now)
        if reconciler.status().rolled_back_from is not None:
            break
    status = reconciler.status()
    assert (status.phase, status.rolled_back_from, status.version) == (Phase.ROLLED_BACK, 2, 1)
    [ack] = reconciler.take_acknowledgements()
    assert ack.rejected[0].reason == "failed 3 times: v2 exited with status 1"
    drive(reconciler, world, now=now)
    assert world.observed() == {"web": "v1"}
    store.close()


def test_nothing_saved_means_a_fresh_start(tmp_path: Path) -> None:
    store, reconciler = _boot(tmp_path / "device.db")
    with store:
        assert reconciler.status().phase is Phase.IDLE
        assert ReconcilerState.load(store) is None


def test_a_damaged_saved_state_is_refused_by_name(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "device.db") as store:
        store.put_state("reconciler", {"format": 1, "attempts": {"web": "many"}})
        with pytest.raises(ReconcileStateError, match=r"state\.attempts\.web"):
            ReconcilerState.load(store)


def test_saving_needs_a_state_store() -> None:
    with pytest.raises(InvalidArgumentError, match="put_state"):
        ReconcilerState().save(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"attempts": {"web": "many"}}, r"attempts\['web'\]"),
        ({"attempts": 5}, "attempts"),
        ({"retry_at": {"web": float("nan")}}, "retry_at"),
        ({"version": -1}, "version"),
        ({"target": "web"}, "target"),
        ({"acknowledgements": [1]}, "acknowledgements"),
        ({"last_error": 3}, "last_error"),
    ],
)
def test_a_state_built_from_bad_values_is_refused_by_name(
    fields: dict[str, object], named: str
) -> None:
    with pytest.raises(ReconcileStateError, match=f"ReconcilerState.{named}"):
        ReconcilerState(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [5, None, '{"format": 1, "baseline": {"web": NaN}}'])
def test_saved_text_that_is_not_json_is_refused(text: object) -> None:
    with pytest.raises(ReconcileStateError, match="reconciler state"):
        ReconcilerState.from_json(text)  # type: ignore[arg-type]
