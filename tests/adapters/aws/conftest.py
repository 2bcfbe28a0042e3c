"""A real moto server on 127.0.0.1 for the whole session; fresh state and clients per test."""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import TYPE_CHECKING, Any

import attrs
import boto3
import pytest
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from shadowsync.aws import DynamoDBHistoryStore, IotShadowClient, create_history_table

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

REGION = "us-east-1"
TABLE = "shadow-history"


class SerialMotoServer(ThreadedMotoServer):
    """A moto server that handles one request at a time.

    moto's backends are not thread-safe: concurrent requests can fail inside it ("dictionary
    changed size during iteration") or see each other's half-made changes. DynamoDB applies
    each request atomically, so serving requests one at a time is the faithful model; the
    clients stay concurrent (the race tests depend on that).
    """

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def one_at_a_time(environ: Any, start_response: Any) -> Any:
            with lock:
                return list(app(environ, start_response))

        self._server = make_server(
            self._ip_address, self._port, one_at_a_time, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a moto server started for this session (fake credentials, no AWS config)."""
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
        server = SerialMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@attrs.frozen(kw_only=True)
class Aws:
    """The clients of one test, all pointed at the moto server."""

    endpoint: str
    iot: Any
    iot_data: Any
    dynamodb: Any
    events: Any
    sqs: Any
    cloudwatch: Any
    shadows: IotShadowClient
    history: DynamoDBHistoryStore

    def create_thing(self, name: str) -> None:
        # moto's data plane only serves things in its registry (AWS upserts shadows).
        self.iot.create_thing(thingName=name)

    def event_queue(self, name: str = "shadow-events") -> str:
        """An SQS queue receiving every shadowsync event through an EventBridge rule."""
        url: str = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.events.put_rule(
            Name=f"{name}-rule", EventPattern=json.dumps({"source": ["iot.shadow.sync"]})
        )
        self.events.put_targets(Rule=f"{name}-rule", Targets=[{"Id": "queue", "Arn": arn}])
        return url

    def received(self, queue_url: str, expected: int) -> list[dict[str, Any]]:
        """The events on the queue, polling until ``expected`` arrived or a few seconds passed."""
        bodies: list[dict[str, Any]] = []
        for _ in range(20):
            if len(bodies) >= expected:
                break
            response = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            for message in response.get("Messages", []):
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies


def _reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.fixture
def aws(moto_endpoint: str) -> Iterator[Aws]:
    """Fresh moto state, the clients, and an empty history table."""
    _reset(moto_endpoint)
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    clients = {
        name: session.client(service, endpoint_url=moto_endpoint)
        for name, service in (
            ("iot", "iot"),
            ("iot_data", "iot-data"),
            ("dynamodb", "dynamodb"),
            ("events", "events"),
            ("sqs", "sqs"),
            ("cloudwatch", "cloudwatch"),
        )
    }
    create_history_table(clients["dynamodb"], TABLE)
    try:
        yield Aws(
            endpoint=moto_endpoint,
            shadows=IotShadowClient(client=clients["iot_data"]),
            history=DynamoDBHistoryStore(client=clients["dynamodb"], table_name=TABLE),
            **clients,
        )
    finally:
        for client in clients.values():
            client.close()


class CountingClient:
    """A dynamodb client that counts the items each call reads and writes.

    Items read are the items a response carries (``Item``, ``Items``, ``Responses``); items
    written are the items a request puts, updates or deletes.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.read = 0
        self.written = 0
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def reset(self) -> None:
        self.read = self.written = 0
        self.calls.clear()

    def get_item(self, **kwargs: Any) -> Any:
        response = self.client.get_item(**kwargs)
        self.calls.append("GetItem")
        self.read += 1 if "Item" in response else 0
        return response

    def batch_get_item(self, **kwargs: Any) -> Any:
        response = self.client.batch_get_item(**kwargs)
        self.calls.append("BatchGetItem")
        self.read += sum(len(items) for items in response.get("Responses", {}).values())
        return response

    def query(self, **kwargs: Any) -> Any:
        response = self.client.query(**kwargs)
        self.calls.append("Query")
        self.read += len(response.get("Items", []))
        return response

    def scan(self, **kwargs: Any) -> Any:
        response = self.client.scan(**kwargs)
        self.calls.append("Scan")
        self.read += len(response.get("Items", []))
        return response

    def transact_write_items(self, **kwargs: Any) -> Any:
        response = self.client.transact_write_items(**kwargs)
        self.calls.append("TransactWriteItems")
        self.written += len(kwargs["TransactItems"])
        return response

    def put_item(self, **kwargs: Any) -> Any:
        response = self.client.put_item(**kwargs)
        self.calls.append("PutItem")
        self.written += 1
        return response

    def update_item(self, **kwargs: Any) -> Any:
        response = self.client.update_item(**kwargs)
        self.calls.append("UpdateItem")
        self.written += 1
        return response

    def batch_write_item(self, **kwargs: Any) -> Any:
        response = self.client.batch_write_item(**kwargs)
        self.calls.append("BatchWriteItem")
        self.written += sum(len(requests) for requests in kwargs["RequestItems"].values())
        return response
