"""Three replicas of a StampedState writing and gossiping under a misbehaving physical clock.

Each replica stamps its writes with its own hybrid logical clock, read from one shared
physical clock plus a per-replica offset that jitters and jumps back on restart. Replicas
ship whole states (through the JSON form, as over a wire) in any order. A model keeps the
plain log of every write and which writes each replica has received; a replica's value must
always be the model's replay of exactly those writes, and at quiescence all replicas agree.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from shadowsync._conflict.clocks import HLCStamp, HybridLogicalClock
from shadowsync._conflict.stamped import StampedState
from tests.strategies.causality import (
    Operation,
    leaf_values,
    model_apply,
    model_value,
    paths,
    slow,
)

if TYPE_CHECKING:
    from shadowsync._json import JSONObject, JSONValue
    from shadowsync._tree import Path

NODES = ("device", "cloud", "app")
START_MS = 1_700_000_000_000

replicas = st.integers(0, len(NODES) - 1)


class Replicas(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.physical_ms = START_MS
        self.offsets = [0 for _ in NODES]
        self.clocks = [HybridLogicalClock(node) for node in NODES]
        self.states = [StampedState.empty() for _ in NODES]
        self.log: list[Operation] = []
        self.known: list[set[int]] = [set() for _ in NODES]
        self.models: list[JSONObject] = [{} for _ in NODES]

    def read_physical(self, replica: int) -> int:
        return max(0, self.physical_ms + self.offsets[replica])

    # The physical clock

    @rule(delta=st.integers(-120_000, 5_000))
    def physical_clock_moves(self, delta: int) -> None:
        self.physical_ms = max(0, self.physical_ms + delta)

    @rule(replica=replicas, offset=st.integers(-2_000, 2_000))
    def replica_clock_jitters(self, replica: int, offset: int) -> None:
        self.offsets[replica] = offset

    @rule(replica=replicas, offset=st.integers(-3_600_000, 0))
    def replica_restarts_with_its_clock_behind(self, replica: int, offset: int) -> None:
        persisted = self.clocks[replica].last
        self.clocks[replica] = HybridLogicalClock(NODES[replica], last=persisted)
        self.offsets[replica] = offset

    # Writes

    def write(self, replica: int, path: Path, value: JSONValue, deleted: bool) -> None:
        before = self.clocks[replica].last
        stamp = self.clocks[replica].now(self.read_physical(replica))
        assert before is None or stamp > before
        op = Operation(path=path, stamp=stamp, deleted=deleted, value=value)
        self.log.append(op)
        self.known[replica].add(len(self.log) - 1)
        self.states[replica] = op.apply_to(self.states[replica])
        # The new write is the latest this replica knows of, so it replays last.
        self.models[replica] = model_apply(self.models[replica], op)

    @rule(replica=replicas, path=paths, value=leaf_values)
    def set_value(self, replica: int, path: Path, value: JSONValue) -> None:
        self.write(replica, path, value, deleted=False)

    @rule(replica=replicas, path=paths)
    def delete_path(self, replica: int, path: Path) -> None:
        self.write(replica, path, None, deleted=True)

    # Gossip

    def send(self, source: int, target: int, *, replay_model: bool = True) -> None:
        wire = json.dumps(self.states[source].to_json())
        incoming = StampedState.from_json(json.loads(wire))
        if incoming.latest is not None:
            self.clocks[target].observe(incoming.latest, self.read_physical(target))
        self.states[target] = self.states[target].join(incoming)
        self.known[target] |= self.known[source]
        if replay_model:
            self.models[target] = model_value(self.log[index] for index in self.known[target])

    @rule(source=replicas, destination=replicas)
    def send_state(self, source: int, destination: int) -> None:
        self.send(source, destination)

    def exchange_all(self) -> None:
        # Gather everything into the first replica, then hand its state to the others.
        others = range(1, len(NODES))
        for source in others:
            self.send(source, 0, replay_model=False)
        for target in others:
            self.send(0, target, replay_model=False)
        assert all(known == set(range(len(self.log))) for known in self.known)
        expected = model_value(self.log)
        first, *rest = self.states
        assert all(state == first for state in rest)
        for index, state in enumerate(self.states):
            assert state.value() == expected
            self.models[index] = expected

    @rule()
    def quiesce(self) -> None:
        self.exchange_all()

    # Invariants

    @invariant()
    def each_replica_shows_exactly_the_writes_it_received(self) -> None:
        for state, model in zip(self.states, self.models, strict=False):
            assert state.value() == model

    @invariant()
    def each_clock_is_ahead_of_every_write_its_replica_knows(self) -> None:
        for clock, known in zip(self.clocks, self.known, strict=False):
            stamps: list[HLCStamp] = [self.log[index].stamp for index in known]
            if stamps:
                assert clock.last is not None
                assert clock.last >= max(stamps)

    @invariant()
    def stamps_are_unique(self) -> None:
        stamps = [op.stamp for op in self.log]
        assert len(set(stamps)) == len(stamps)

    def teardown(self) -> None:
        # Quiescence: once every replica has every state, all show the same value.
        self.exchange_all()


Replicas.TestCase.settings = slow
TestReplicas = Replicas.TestCase
