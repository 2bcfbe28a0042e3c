"""Writers sharing one DynamoDB history table (a moto server) can never fork a thing's chain.

Three writers, each with its own `DynamoDBHistoryStore` over its own boto3 client, read the
histories of two things (each with a classic and a named shadow) into local views, decide on
top of those views, which may have gone stale, and append. A model keeps each thing's chain as
it must be stored: an append extends it by exactly its records when the writer's view was
current, and leaves it alone with `HistoryConflictError` when another writer had appended since
the view was read. A race rule lets a second writer append between the first writer's chain
check and its transaction, so that only the conditional write stands between them. Altered
records and batches over the transaction limit are refused before anything is written.
Throughout, the table holds exactly the model's chains, each verifies, and replaying it gives
the latest state of every shadow.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import attrs
import boto3
import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from moto.server import ThreadedMotoServer

from shadowsync.audit import AuditLog, ChangeType, Decision, HistoryRecord
from shadowsync.aws import DynamoDBHistoryStore, HistoryConflictError, create_history_table
from shadowsync.errors import InvalidArgumentError
from tests.strategies import capped_examples

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from shadowsync._json import JSONObject, JSONValue

REGION = "us-east-1"
THINGS = ("pump-7", "fan-1")
SHADOWS: tuple[str | None, ...] = (None, "config")
WRITERS = 3
T0 = 1_700_000_000
MAX_BATCH = 100  # TransactWriteItems' limit, which the store enforces

# Every step makes five to a dozen HTTP round trips to the moto server (about 30 ms); beyond
# this many examples the run costs more than the few interleavings left to find are worth.
MAX_EXAMPLES = 40
SETTINGS = settings(capped_examples(MAX_EXAMPLES), stateful_step_count=15)

Change = tuple[str, str, "JSONValue"]
"""One leaf change: section (desired or reported), key, new value (None deletes the key)."""

KINDS: tuple[tuple[ChangeType, Decision], ...] = (
    ("update", "accept"),
    ("conflict_resolved", "merge"),
    ("rule_rejected", "reject"),
    ("delete", "accept"),
)

changes = st.tuples(
    st.sampled_from(("desired", "reported")),
    st.sampled_from(("on", "level", "mode")),
    st.none() | st.booleans() | st.integers(-5, 120) | st.sampled_from(("eco", "boost")),
)


@attrs.frozen(kw_only=True)
class RecordStep:
    """What one record of a batch does to which shadow, before it is chained to anything."""

    shadow: str | None
    kind: tuple[ChangeType, Decision]
    changes: list[Change]
    version_step: int
    time_step: int


steps = st.builds(
    RecordStep,
    shadow=st.sampled_from(SHADOWS),
    kind=st.sampled_from(KINDS),
    changes=st.lists(changes, min_size=1, max_size=2),
    version_step=st.integers(0, 2),
    time_step=st.integers(0, 30),
)

batches = st.lists(steps, min_size=1, max_size=3)
writers = st.integers(0, WRITERS - 1)
things = st.sampled_from(THINGS)


def empty_state() -> JSONObject:
    return {"desired": {}, "reported": {}}


def changed(state: JSONObject, step: RecordStep) -> JSONObject:
    """The state a record of ``step`` leaves, as the model computes it (not through patches)."""
    change_type, _ = step.kind
    if change_type == "delete":
        return empty_state()
    desired, reported = state["desired"], state["reported"]
    assert isinstance(desired, dict)
    assert isinstance(reported, dict)
    result: JSONObject = {"desired": dict(desired), "reported": dict(reported)}
    if change_type == "rule_rejected":
        return result
    for section, key, value in step.changes:
        target = result[section]
        assert isinstance(target, dict)
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return result


def build(
    view: AuditLog, thing: str, batch: list[RecordStep]
) -> tuple[list[HistoryRecord], dict[str | None, JSONObject]]:
    """Records continuing ``view`` (the thing's chain as a writer last saw it), and the state
    each touched shadow is left in."""
    log = AuditLog(view.records)  # a copy: the view stays as it was read
    states: dict[str | None, JSONObject] = {}
    records = []
    for step in batch:
        before = log.last_state(thing, step.shadow) or empty_state()
        earlier = log.records_for(thing, step.shadow)
        version = (earlier[-1].version if earlier else 0) + step.version_step
        timestamp = (earlier[-1].timestamp if earlier else T0) + step.time_step
        after = changed(before, step)
        change_type, decision = step.kind
        records.append(
            log.append(
                thing,
                step.shadow,
                previous_state=before,
                new_state=None if change_type == "delete" else after,
                version=version,
                timestamp=timestamp,
                change_type=change_type,
                decision=decision,
                reason=f"{decision} {len(log)}",
            )
        )
        states[step.shadow] = after
    return records, states


class InterleavingClient:
    """A dynamodb client that can run another writer's append just before its own transaction:
    after this writer's chain check, so only the conditional write can stop it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.before_write: Callable[[], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook()
        return self.client.transact_write_items(**kwargs)


_tables = itertools.count(1)


class HistoryWriters(RuleBasedStateMachine):
    def __init__(self, clients: tuple[Any, ...]) -> None:
        super().__init__()
        # A table per example: examples never see each other's records.
        self.table = f"history-{next(_tables)}"
        create_history_table(clients[0], self.table)
        self.clients = [InterleavingClient(client) for client in clients]
        self.stores = [
            DynamoDBHistoryStore(client=client, table_name=self.table) for client in self.clients
        ]
        self.model: dict[str, list[HistoryRecord]] = {thing: [] for thing in THINGS}
        self.states: dict[tuple[str, str | None], JSONObject] = {}
        # Each writer's view of each thing; an empty table is what every writer starts from.
        self.views = [{thing: AuditLog() for thing in THINGS} for _ in clients]

    def stale(self, writer: int, thing: str) -> bool:
        return len(self.views[writer][thing]) != len(self.model[thing])

    # Rules

    @rule(writer=writers, thing=things)
    def read(self, writer: int, thing: str) -> None:
        view = self.stores[writer].read(thing)
        assert list(view.records) == self.model[thing]
        self.views[writer][thing] = view

    @rule(writer=writers, thing=things)
    def read_the_head(self, writer: int, thing: str) -> None:
        chain = self.model[thing]
        assert self.stores[writer].head(thing) == (len(chain), chain[-1] if chain else None)

    @rule(writer=writers, thing=things, batch=batches)
    def decide(self, writer: int, thing: str, batch: list[RecordStep]) -> None:
        view = self.views[writer][thing]
        records, states = build(view, thing, batch)
        if self.stale(writer, thing):
            # Another writer appended since this view was read: nothing of the batch may go in.
            with pytest.raises(HistoryConflictError, match="changed since it was read"):
                self.stores[writer].append(records)
            event("decide: refused, the view was stale")
            return
        # A current view: the append must extend the chain (a conflict here fails the test).
        self.stores[writer].append(records)
        event("decide: stored")
        self.model[thing].extend(records)
        for shadow, state in states.items():
            self.states[thing, shadow] = state
        # The writer knows what it just wrote: its view is current again.
        self.views[writer][thing] = AuditLog(self.model[thing])

    @rule(
        first=writers,
        offset=st.integers(1, WRITERS - 1),
        thing=things,
        first_batch=batches,
        second_batch=batches,
    )
    def race(
        self,
        first: int,
        offset: int,
        thing: str,
        first_batch: list[RecordStep],
        second_batch: list[RecordStep],
    ) -> None:
        second = (first + offset) % WRITERS
        for writer in (first, second):
            self.read(writer, thing)
        mine, _ = build(self.views[first][thing], thing, first_batch)
        theirs, states = build(self.views[second][thing], thing, second_batch)

        def second_writer_appends() -> None:
            self.stores[second].append(theirs)

        self.clients[first].before_write = second_writer_appends
        with pytest.raises(HistoryConflictError, match="same time"):
            self.stores[first].append(mine)
        assert self.clients[first].before_write is None
        self.model[thing].extend(theirs)
        for shadow, state in states.items():
            self.states[thing, shadow] = state
        self.views[second][thing] = AuditLog(self.model[thing])

    @rule(
        writer=writers,
        thing=things,
        batch=batches,
        index=st.integers(0, 2),
        field=st.sampled_from(("reason", "version", "patch")),
    )
    def append_an_altered_record(
        self, writer: int, thing: str, batch: list[RecordStep], index: int, field: str
    ) -> None:
        records, _ = build(self.views[writer][thing], thing, batch)
        index %= len(records)
        data = records[index].to_json()
        if field == "reason":
            data["reason"] = f"{data['reason']} (edited)"
        elif field == "version":
            version = data["version"]
            assert isinstance(version, int)
            data["version"] = version + 1
        else:
            data["patch"] = [{"op": "add", "path": "/desired/forged", "value": True}]
        # from_json keeps the stored checksum, which no longer matches the content.
        records[index] = HistoryRecord.from_json(data)
        assert not records[index].intact
        with pytest.raises(InvalidArgumentError, match="altered"):
            self.stores[writer].append(records)

    @rule(writer=writers, thing=things)
    def append_a_batch_over_the_limit(self, writer: int, thing: str) -> None:
        batch = [
            RecordStep(
                shadow="config",
                kind=("update", "accept"),
                changes=[("reported", "level", level)],
                version_step=1,
                time_step=1,
            )
            for level in range(MAX_BATCH + 1)
        ]
        records, _ = build(self.views[writer][thing], thing, batch)
        with pytest.raises(InvalidArgumentError, match=f"at most {MAX_BATCH} records"):
            self.stores[writer].append(records)

    # Invariants

    @invariant()
    def each_thing_holds_exactly_the_model_chain(self) -> None:
        for index, thing in enumerate(THINGS):
            # Every writer's client sees the same table.
            stored = self.stores[index % WRITERS].read(thing)
            assert list(stored.records) == self.model[thing]
            assert stored.verify().ok
            for shadow in SHADOWS:
                if (thing, shadow) in self.states:
                    assert stored.replay(thing, shadow) == self.states[thing, shadow]

    @invariant()
    def a_scan_holds_every_chain_in_order(self) -> None:
        everything = self.stores[WRITERS - 1].read(None)
        assert list(everything.records) == [
            record for thing in sorted(THINGS) for record in self.model[thing]
        ]

    def teardown(self) -> None:
        self.clients[0].delete_table(TableName=self.table)


@pytest.fixture(scope="module")
def dynamodb_clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ...]]:
    """One dynamodb client per writer, all pointed at a moto server started for this module."""
    empty: Path = tmp_path_factory.mktemp("aws-config") / "none"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SECURITY_TOKEN": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(empty),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        }.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            session = boto3.session.Session(
                aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
            )
            clients = tuple(
                session.client("dynamodb", endpoint_url=f"http://{host}:{port}")
                for _ in range(WRITERS)
            )
            try:
                yield clients
            finally:
                for client in clients:
                    client.close()
        finally:
            server.stop()


def test_writers_never_fork_a_chain(dynamodb_clients: tuple[Any, ...]) -> None:
    class OnMoto(HistoryWriters):
        def __init__(self) -> None:
            super().__init__(dynamodb_clients)

    run_state_machine_as_test(OnMoto, settings=SETTINGS)
