"""The DynamoDB tables the adapters use: one key schema, on-demand billing, hashed sort keys."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from shadowsync.aws._errors import aws_call

__all__ = ["create_keyed_table", "key_hash"]


def key_hash(text: str) -> int:
    """52 bits of the SHA-256 of ``text``: where in its range of numeric sort keys an item
    named by ``text`` goes (a shadow's head, a request's answer, a review)."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:13], 16)


def create_keyed_table(
    client: Any,
    table_name: str,
    *,
    sort_key: str,
    sort_type: Literal["S", "N"],
    wait: bool,
) -> None:
    """Create an on-demand table keyed by ``thingName`` (a string) and ``sort_key``.

    With ``wait`` it returns once the table exists (polling once a second, a minute at most).
    """
    with aws_call("CreateTable"):
        client.create_table(
            TableName=table_name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "thingName", "AttributeType": "S"},
                {"AttributeName": sort_key, "AttributeType": sort_type},
            ],
            KeySchema=[
                {"AttributeName": "thingName", "KeyType": "HASH"},
                {"AttributeName": sort_key, "KeyType": "RANGE"},
            ],
        )
        if wait:
            client.get_waiter("table_exists").wait(
                TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
