"""`DeviceSettings`: each thing's conflict policy and business rules, and the fleet's default.

The recipe keeps them in a device-configuration table, one item per thing and config type
(``conflict_resolution``, ``business_rules``), with plain JSON in its ``config`` attribute. Read
through boto3 every number of such an item is a `decimal.Decimal`; `plain_config` turns them
back into ints and floats, so `ResolutionPolicy.from_dict` and `RuleSet.from_dict` take them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync._json import describe
from shadowsync.errors import InvalidArgumentError
from shadowsync.rules import RuleSet

if TYPE_CHECKING:
    from os import PathLike

    from shadowsync._json import JSONValue

__all__ = ["FLEET", "POLICY_CONFIG", "RULES_CONFIG", "DeviceSettings", "plain_config"]

FLEET = "$fleet"
"""The thing name under which the fleet's default settings are kept."""

POLICY_CONFIG = "conflict_resolution"
"""The config type of a thing's conflict policy (`ResolutionPolicy.from_dict`)."""

RULES_CONFIG = "business_rules"
"""The config type of a thing's business rules (`RuleSet.from_dict`)."""


def plain_config(value: object, *, where: str = "config") -> JSONValue:
    """``value`` with every `Decimal` made an int (when whole) or a float, sets made lists.

    Raises `InvalidArgumentError` for what JSON cannot hold (a NaN, bytes, other objects).
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidArgumentError(f"{where} is {value}, not a finite number")
        return int(value) if value == value.to_integral_value() else float(value)
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(f"{where} is {value}, not a finite number")
        return value
    if isinstance(value, Mapping):
        out: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgumentError(f"{where} has a key that is not a string: {key!r}")
            out[key] = plain_config(item, where=f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [plain_config(item, where=f"{where}[{i}]") for i, item in enumerate(items)]
    raise InvalidArgumentError(f"{where} is {describe(value)}, which JSON cannot hold")


def _config_map(value: object, where: str) -> dict[str, Any]:
    plain = plain_config(value, where=where)
    if not isinstance(plain, dict):
        raise InvalidArgumentError(f"{where} must be an object, got {describe(value)}")
    return plain


@attrs.frozen(kw_only=True)
class DeviceSettings:
    """Conflict policies and business rules per thing, with the fleet's default for the rest.

    `policy_for` and `rules_for` are what `SyncManager` and the Lambda handler factories take.

    ```pycon
    >>> from decimal import Decimal
    >>> settings = DeviceSettings.from_dict({
    ...     "fleet": {"conflict_resolution": {"strategy": "last_writer_wins"}},
    ...     "things": {"pump-7": {
    ...         "conflict_resolution": {"strategy": "field_level_merge",
    ...                                 "auto_resolve_threshold": Decimal("5")},
    ...         "business_rules": {"rules": [{"type": "range", "path": "rate",
    ...                                       "max": Decimal("300")}]}}}})
    >>> settings.policy_for("pump-7").auto_resolve_threshold
    5
    >>> settings.rules_for("pump-7").rules[0].name, settings.rules_for("fan-1")
    ('range:rate', None)

    ```
    """

    policies: dict[str, ResolutionPolicy] = attrs.field(factory=dict)
    rules: dict[str, RuleSet] = attrs.field(factory=dict)
    fleet_policy: ResolutionPolicy | None = None
    fleet_rules: RuleSet | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceSettings:
        """Settings from ``{"fleet": {type: config}, "things": {thing: {type: config}}}``,
        where a type is ``conflict_resolution`` or ``business_rules`` (`Decimal` accepted)."""
        top = _config_map(data, "settings")
        unknown = sorted(set(top) - {"fleet", "things"})
        if unknown:
            raise InvalidArgumentError(f"unknown settings keys {unknown}; expected fleet, things")
        fleet = _config_map(top.get("fleet") or {}, "settings.fleet")
        things = _config_map(top.get("things") or {}, "settings.things")
        policies: dict[str, ResolutionPolicy] = {}
        rules: dict[str, RuleSet] = {}
        for thing, configs in things.items():
            entry = _config_map(configs, f"settings.things.{thing}")
            policy, ruleset = _parse(entry, f"settings.things.{thing}")
            if policy is not None:
                policies[thing] = policy
            if ruleset is not None:
                rules[thing] = ruleset
        fleet_policy, fleet_rules = _parse(fleet, "settings.fleet")
        return cls(
            policies=policies, rules=rules, fleet_policy=fleet_policy, fleet_rules=fleet_rules
        )

    @classmethod
    def from_json_file(cls, path: str | PathLike[str]) -> DeviceSettings:
        """Settings from a JSON file in the `from_dict` form."""
        try:
            with open(path, encoding="utf-8") as file:  # not pathlib: it imports urllib
                data = json.load(file)
        except (OSError, ValueError) as exc:
            raise InvalidArgumentError(
                f"cannot read the settings file {str(path)!r}: {exc}"
            ) from None
        return cls.from_dict(data)

    def policy_for(self, thing_name: str) -> ResolutionPolicy | None:
        """The thing's policy, else the fleet's (None: the default, last writer wins)."""
        return self.policies.get(thing_name, self.fleet_policy)

    def rules_for(self, thing_name: str) -> RuleSet | None:
        """The thing's rules, else the fleet's (None: no rules)."""
        return self.rules.get(thing_name, self.fleet_rules)


def parse_config(config_type: str, config: object, where: str) -> ResolutionPolicy | RuleSet:
    """One config (`Decimal` accepted) as the policy or rule set its type names."""
    plain = _config_map(config, where)
    try:
        if config_type == POLICY_CONFIG:
            return ResolutionPolicy.from_dict(plain)
        if config_type == RULES_CONFIG:
            return RuleSet.from_dict(plain)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{where}: {exc}") from None
    raise InvalidArgumentError(
        f"{where}: unknown config type {config_type!r}; expected {POLICY_CONFIG} or {RULES_CONFIG}"
    )


def _parse(entry: dict[str, Any], where: str) -> tuple[ResolutionPolicy | None, RuleSet | None]:
    unknown = sorted(set(entry) - {POLICY_CONFIG, RULES_CONFIG})
    if unknown:
        raise InvalidArgumentError(
            f"{where}: unknown config types {unknown}; expected {POLICY_CONFIG}, {RULES_CONFIG}"
        )
    policy = entry.get(POLICY_CONFIG)
    rules = entry.get(RULES_CONFIG)
    parsed_policy = (
        parse_config(POLICY_CONFIG, policy, f"{where}.{POLICY_CONFIG}")
        if policy is not None
        else None
    )
    parsed_rules = (
        parse_config(RULES_CONFIG, rules, f"{where}.{RULES_CONFIG}") if rules is not None else None
    )
    assert parsed_policy is None or isinstance(parsed_policy, ResolutionPolicy)
    assert parsed_rules is None or isinstance(parsed_rules, RuleSet)
    return parsed_policy, parsed_rules
