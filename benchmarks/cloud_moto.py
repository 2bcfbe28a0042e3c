"""The resolver Lambda handler against a moto server: invocations per second and DynamoDB items.

Run by ``python -m benchmarks.cloud`` (needs moto, a development dependency): a moto server on
127.0.0.1, a history table, one thing whose ``configuration`` shadow has a history of 1 and of
10,000 records (``--smoke``: 1 and 100), then delta events resolved one after another. Each
event is a new cloud-side desired value the device has yet to apply (a decision that records
and writes no update), then the same event delivered again (answered from its record). The
DynamoDB items are counted from the requests and responses, per invocation.

The items are the measure of cost: moto's TransactWriteItems deep-copies the whole table once
per item of the transaction (to roll back on failure), so against moto an invocation that writes
slows down with the size of the table, which DynamoDB does not; the retried events, which only
read, show the reads staying flat.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from typing import Any

from shadowsync.audit import AuditLog

T0 = 1_700_000_000
SHADOW = "configuration"


class _Counting:
    """A dynamodb client that counts the items its calls read and write."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.read = 0
        self.written = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_item(self, **kwargs: Any) -> Any:
        response = self.client.get_item(**kwargs)
        self.read += 1 if "Item" in response else 0
        return response

    def batch_get_item(self, **kwargs: Any) -> Any:
        response = self.client.batch_get_item(**kwargs)
        self.read += sum(len(items) for items in response.get("Responses", {}).values())
        return response

    def query(self, **kwargs: Any) -> Any:
        response = self.client.query(**kwargs)
        self.read += len(response.get("Items", []))
        return response

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.written += len(kwargs["TransactItems"])
        return self.client.transact_write_items(**kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        self.written += 1
        return self.client.update_item(**kwargs)


def _history(thing: str, length: int) -> AuditLog:
    log = AuditLog()
    for step in range(length):
        log.append(thing, SHADOW, previous_state=log.last_state(thing, SHADOW),
                   new_state={"desired": {"rate": step}, "reported": {"rate": step}},
                   version=1, timestamp=T0 + step, change_type="update", decision="accept",
                   reason=f"step {step}")  # fmt: skip
    return log


def run(lengths: tuple[int, ...], invocations: int) -> list[dict[str, Any]]:
    """One row per history length: invocations per second and items per invocation."""
    import boto3
    from moto.server import ThreadedMotoServer

    from shadowsync.aws import (
        DynamoDBHistoryStore,
        IotShadowClient,
        conflict_resolver_handler,
        create_history_table,
    )

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    rows = []
    try:
        host, port = server.get_host_and_port()
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        endpoint = f"http://{host}:{port}"
        iot = session.client("iot", endpoint_url=endpoint)
        shadows = IotShadowClient(client=session.client("iot-data", endpoint_url=endpoint))
        dynamodb = _Counting(session.client("dynamodb", endpoint_url=endpoint))
        create_history_table(dynamodb.client, "history")
        store = DynamoDBHistoryStore(client=dynamodb, table_name="history")
        handler = conflict_resolver_handler(shadows=shadows, history=store, now=lambda: T0 + 10**6)
        for length in lengths:
            thing = f"bench-{length}"
            iot.create_thing(thingName=thing)
            store.load(_history(thing, length))
            last = {"rate": length - 1}
            shadows.update(thing, {"state": {"desired": last, "reported": last}}, SHADOW)
            seconds: list[float] = []
            replay_seconds: list[float] = []
            reads: list[int] = []
            writes: list[int] = []
            replay_reads: list[int] = []
            replay_writes: list[int] = []
            for step in range(invocations):
                body = shadows.update(thing, {"state": {"desired": {"rate": 1000 + step}}}, SHADOW)
                event = {"thingName": thing, "shadowName": SHADOW,
                         "state": {"rate": 1000 + step}, "version": body["version"]}  # fmt: skip
                for times, read, written in (
                    (seconds, reads, writes),
                    (replay_seconds, replay_reads, replay_writes),
                ):
                    dynamodb.read = dynamodb.written = 0
                    start = time.perf_counter()
                    answer = handler(event, None)
                    times.append(time.perf_counter() - start)
                    if answer["statusCode"] != 200:
                        raise RuntimeError(f"the resolver failed: {answer}")
                    read.append(dynamodb.read)
                    written.append(dynamodb.written)
            rows.append(
                {
                    "history": length,
                    "per_second": 1 / statistics.median(seconds),
                    "read": max(reads),
                    "written": max(writes),
                    "replay_per_second": 1 / statistics.median(replay_seconds),
                    "replay_read": max(replay_reads),
                    "replay_written": max(replay_writes),
                }
            )
    finally:
        server.stop()
    return rows
