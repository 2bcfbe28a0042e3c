"""The declarative form of the built-in rules: `rule_from_dict` reads one from a plain dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias, cast

from shadowsync.rules._builtin import (
    AllowedTransitions,
    MaxRateOfChange,
    NoFirmwareDowngrade,
    OneOf,
    Range,
    TypeIs,
)
from shadowsync.rules._model import RuleConfigError, show

# At run time, so that typing.get_type_hints(rule_from_dict) resolves its return type.
from shadowsync.rules._rule import Rule  # noqa: TC001

_BuiltIn: TypeAlias = (
    Range | OneOf | TypeIs | AllowedTransitions | NoFirmwareDowngrade | MaxRateOfChange
)

# config key -> constructor argument, per rule type (and the keys that must be present).
_CONFIG: dict[str, tuple[type[Any], dict[str, str], tuple[str, ...]]] = {
    "range": (
        Range,
        {"path": "path", "min": "minimum", "max": "maximum", "inclusive": "inclusive"},
        ("path",),
    ),
    "one_of": (OneOf, {"path": "path", "values": "values"}, ("path", "values")),
    "type": (TypeIs, {"path": "path", "json_type": "json_type"}, ("path", "json_type")),
    "transitions": (
        AllowedTransitions,
        {"path": "path", "allowed": "transitions", "allow_initial": "allow_initial"},
        ("path", "allowed"),
    ),
    "no_firmware_downgrade": (NoFirmwareDowngrade, {"path": "path"}, ("path",)),
    "max_rate": (
        MaxRateOfChange,
        {"path": "path", "per_second": "max_delta_per_second"},
        ("path", "per_second"),
    ),
}


def _config_path(value: object) -> str | tuple[str, ...]:
    """A config path: a dotted string or a list of keys (JSON has no tuples)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(part, str) for part in value):
        return tuple(value)
    raise RuleConfigError(f"expected a dotted string or a list of keys, got {show(value)}")


def rule_from_dict(config: Mapping[str, Any], *, index: int | None = None) -> Rule:
    """Build a built-in rule from its declarative form.

    ``config`` has a ``type`` and that type's keys: ``range`` (``path``, ``min``, ``max``,
    ``inclusive``), ``one_of`` (``path``, ``values``), ``type`` (``path``, ``json_type``),
    ``transitions`` (``path``, ``allowed``, ``allow_initial``), ``no_firmware_downgrade``
    (``path``) and ``max_rate`` (``path``, ``per_second``); every type also takes an optional
    ``name``. ``path`` is a dotted string or a list of keys. Errors are
    `RuleConfigError`, located at ``rules[index]`` when ``index`` is given.

    ```pycon
    >>> rule_from_dict({"type": "one_of", "path": "mode", "values": ["heat", "off"]}).name
    'one_of:mode'
    >>> try:
    ...     rule_from_dict({"type": "one_of", "path": "mode", "value": ["heat"]})
    ... except RuleConfigError as err:
    ...     print(err)
    rule.value: unknown key for a one_of rule (allowed: type, path, values, name)

    ```
    """

    def fail(problem: str, key: str | None = None) -> RuleConfigError:
        return RuleConfigError(problem, index=index, key=key, owner="rule")

    if not isinstance(config, Mapping):
        raise fail(f"expected an object with a type, got {show(config)}")
    if "type" not in config:
        raise fail("missing required key", "type")
    kind = config["type"]
    if not isinstance(kind, str) or kind not in _CONFIG:
        if kind == "custom":
            raise fail("custom rules cannot be read from a config; build Custom in Python", "type")
        raise fail(f"unknown rule type {show(kind)} (known: {', '.join(_CONFIG)})", "type")
    cls, keys, required = _CONFIG[kind]
    allowed = ("type", *keys, "name")
    for key in config:
        if key not in allowed:
            raise fail(f"unknown key for a {kind} rule (allowed: {', '.join(allowed)})", str(key))
    for key in required:
        if key not in config:
            raise fail("missing required key", key)
    arguments: dict[str, Any] = {}
    for key, value in config.items():
        if key == "type":
            continue
        if key == "path":
            try:
                value = _config_path(value)
            except RuleConfigError as err:
                raise fail(err.problem, "path") from None
        arguments[keys.get(key, key)] = value
    try:
        return cast("Rule", cls(**arguments))
    except RuleConfigError as err:
        back = {argument: key for key, argument in keys.items()}
        where = back.get(err.key, err.key) if err.key is not None else None
        raise err.located(index=index, key=where) from None
