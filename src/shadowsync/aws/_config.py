"""`DeviceConfigTable`: the recipe's device-configuration table, read with a cache per container.

Items are keyed by ``thingName`` (S) and ``configType`` (S, ``conflict_resolution`` or
``business_rules``) and hold plain JSON in ``config`` (M); the item of thing ``$fleet`` is the
default of every thing without its own.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer

from shadowsync.aws._errors import aws_call
from shadowsync.aws._tables import create_keyed_table
from shadowsync.cloud import FLEET, POLICY_CONFIG, RULES_CONFIG
from shadowsync.cloud._config import parse_config
from shadowsync.errors import InvalidArgumentError
from shadowsync.rules import RuleSet

if TYPE_CHECKING:
    from collections.abc import Callable

    from shadowsync._conflict.policy import ResolutionPolicy

__all__ = ["DeviceConfigTable", "create_device_config_table"]


def create_device_config_table(client: Any, table_name: str, *, wait: bool = True) -> None:
    """Create the device-configuration table (on-demand billing), keyed as the recipe's."""
    create_keyed_table(client, table_name, sort_key="configType", sort_type="S", wait=wait)


class DeviceConfigTable:
    """Each thing's conflict policy and business rules from the device-configuration table.

    `policy_for` and `rules_for` are what the handler factories take. Each answer (a thing's
    own config or, when it has none, the fleet's; None when neither exists) is kept for
    ``ttl_seconds`` per container, so a warm Lambda reads each item at most once a minute by
    default; a change in the table is seen within that time. Numbers arrive from DynamoDB as
    `decimal.Decimal` and are accepted. A malformed config raises `InvalidArgumentError` (or
    its `PolicyConfigError` / `RuleConfigError` subclasses) naming the item.
    """

    def __init__(
        self,
        *,
        client: Any,
        table_name: str,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(ttl_seconds, (int, float)) or not ttl_seconds >= 0:
            raise InvalidArgumentError(f"ttl_seconds must be >= 0, got {ttl_seconds!r}")
        self.client = client
        self.table_name = table_name
        self.ttl_seconds = float(ttl_seconds)
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[float, ResolutionPolicy | RuleSet | None]] = {}

    def policy_for(self, thing_name: str) -> ResolutionPolicy | None:
        """The thing's policy, else the fleet's (None: the default, last writer wins)."""
        value = self._config(thing_name, POLICY_CONFIG)
        assert value is None or not isinstance(value, RuleSet)
        return value

    def rules_for(self, thing_name: str) -> RuleSet | None:
        """The thing's rules, else the fleet's (None: no rules)."""
        value = self._config(thing_name, RULES_CONFIG)
        assert value is None or isinstance(value, RuleSet)
        return value

    def _config(self, thing_name: str, config_type: str) -> Any:
        now = self.clock()
        key = (thing_name, config_type)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        value = self._read(thing_name, config_type)
        if value is None and thing_name != FLEET:
            value = self._config(FLEET, config_type)
        self._cache[key] = (now + self.ttl_seconds, value)
        return value

    def _read(self, thing_name: str, config_type: str) -> ResolutionPolicy | RuleSet | None:
        with aws_call("GetItem"):
            response = self.client.get_item(
                TableName=self.table_name,
                Key={"thingName": {"S": thing_name}, "configType": {"S": config_type}},
            )
        item = response.get("Item")
        if item is None or "config" not in item:
            return None
        config = TypeDeserializer().deserialize(item["config"])
        return parse_config(config_type, config, f"{self.table_name} {thing_name}/{config_type}")
