"""The recipe's device-configuration table: Decimal numbers, the fleet default, the TTL cache."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from shadowsync.aws import DeviceConfigTable, conflict_resolver_handler, create_device_config_table
from shadowsync.errors import InvalidArgumentError
from shadowsync.strategies import FieldMerge, LastWriterWins
from tests.adapters.aws.conftest import CountingClient

if TYPE_CHECKING:
    from tests.adapters.aws.conftest import Aws

CONFIG = "device-configuration"

# The recipe's own item (step 5), as its put-item sends it.
RECIPE_ITEM: dict[str, Any] = {
    "thingName": {"S": "sensor-001"},
    "configType": {"S": "conflict_resolution"},
    "config": {
        "M": {
            "strategy": {"S": "field_level_merge"},
            "field_priorities": {
                "M": {
                    "firmware_version": {"S": "high"},
                    "temperature": {"S": "medium"},
                    "configuration": {"S": "high"},
                    "telemetry": {"S": "low"},
                }
            },
            "auto_resolve_threshold": {"N": "5"},
            "manual_review_severity": {"S": "high"},
        }
    },
    "lastUpdated": {"S": "2026-12-07T00:00:00.000Z"},
}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _table(aws: Aws) -> tuple[CountingClient, Clock, DeviceConfigTable]:
    create_device_config_table(aws.dynamodb, CONFIG)
    aws.dynamodb.put_item(TableName=CONFIG, Item=RECIPE_ITEM)
    aws.dynamodb.put_item(
        TableName=CONFIG,
        Item={
            "thingName": {"S": "$fleet"},
            "configType": {"S": "business_rules"},
            "config": {
                "M": {
                    "rules": {
                        "L": [
                            {
                                "M": {
                                    "type": {"S": "range"},
                                    "path": {"S": "samplingRate"},
                                    "max": {"N": "3600"},
                                    "min": {"N": "0.5"},
                                }
                            }
                        ]
                    }
                }
            },
        },
    )
    counting, clock = CountingClient(aws.dynamodb), Clock()
    return (
        counting,
        clock,
        DeviceConfigTable(client=counting, table_name=CONFIG, ttl_seconds=60, clock=clock),
    )


def test_the_recipes_item_is_a_policy_and_the_fleet_item_a_default(aws: Aws) -> None:
    _, _, table = _table(aws)
    policy = table.policy_for("sensor-001")
    assert policy is not None
    assert policy.auto_resolve_threshold == 5
    assert isinstance(policy.default, FieldMerge)
    assert isinstance(policy.default.fallback, LastWriterWins)
    assert table.policy_for("sensor-002") is None  # no own item, no fleet policy
    for thing in ("sensor-001", "sensor-002"):
        rules = table.rules_for(thing)
        assert rules is not None
        assert [rule.name for rule in rules.rules] == ["range:samplingRate"]


def test_answers_are_cached_per_container_for_the_ttl(aws: Aws) -> None:
    counting, clock, table = _table(aws)
    table.policy_for("sensor-001")
    table.rules_for("sensor-001")  # its own item is missing: the fleet's is read
    assert counting.calls == ["GetItem", "GetItem", "GetItem"]
    for _ in range(5):
        table.policy_for("sensor-001")
        table.rules_for("sensor-001")
    assert len(counting.calls) == 3
    aws.dynamodb.delete_item(
        TableName=CONFIG,
        Key={"thingName": {"S": "sensor-001"}, "configType": {"S": "conflict_resolution"}},
    )
    clock.now = 59.0
    assert table.policy_for("sensor-001") is not None  # still cached
    clock.now = 61.0
    assert table.policy_for("sensor-001") is None  # read again: gone, and no fleet policy


def test_a_malformed_config_names_its_item(aws: Aws) -> None:
    _, _, table = _table(aws)
    aws.dynamodb.put_item(
        TableName=CONFIG,
        Item={
            "thingName": {"S": "bad"},
            "configType": {"S": "conflict_resolution"},
            "config": {"M": {"strategy": {"S": "coin_toss"}}},
        },
    )
    with pytest.raises(InvalidArgumentError, match=f"{CONFIG} bad/conflict_resolution"):
        table.policy_for("bad")
    with pytest.raises(InvalidArgumentError, match="ttl_seconds"):
        DeviceConfigTable(client=aws.dynamodb, table_name=CONFIG, ttl_seconds=-1)


def test_the_resolver_takes_its_rules_from_the_table(aws: Aws) -> None:
    _, _, table = _table(aws)
    aws.create_thing("sensor-001")
    initial = {"samplingRate": 30}
    aws.shadows.update("sensor-001", {"state": {"desired": initial, "reported": initial}})
    aws.shadows.update("sensor-001", {"state": {"desired": {"samplingRate": 7200}}})
    handler = conflict_resolver_handler(
        shadows=aws.shadows,
        history=aws.history,
        policy_for=table.policy_for,
        rules_for=table.rules_for,
        now=lambda: 1_700_000_000,
    )
    summary = handler(
        {"thingName": "sensor-001", "state": {"samplingRate": 7200}, "version": 2}, None
    )
    assert (summary["decision"], summary["update"]["state"]) == (
        "reject",
        {"desired": {"samplingRate": 30}},
    )
