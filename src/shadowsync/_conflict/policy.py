"""Which strategy settles a conflict: per thing, per shadow name, per section and per path."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from shadowsync._json import describe
from shadowsync.errors import InvalidArgumentError
from shadowsync.rules import PathPattern
from shadowsync.rules._paths import cached_pattern
from shadowsync.strategies import (
    FieldMerge,
    LastWriterWins,
    ManualReview,
    OwnerWins,
    Priority,
    Severity,
    Strategy,
)


class PolicyConfigError(InvalidArgumentError):
    """A resolution-policy configuration is malformed; the message names the offending key."""


_STRATEGY_NAMES = {
    "last_writer_wins": "last_writer_wins",
    "lww": "last_writer_wins",
    "field_merge": "field_merge",
    "field_level_merge": "field_merge",
    "field_level": "field_merge",
    "priority": "priority",
    "priority_based": "priority",
    "owner_wins": "owner_wins",
    "manual_review": "manual_review",
    "manual": "manual_review",
}

DEFAULT_SOURCE_PRIORITIES: Mapping[str, int] = {"operator": 3, "cloud": 2, "device": 1}


def strategy_from_name(
    name: object, *, source_priorities: Mapping[str, int] | None = None
) -> Strategy:
    """A built-in strategy from its name (``last_writer_wins``, ``field_merge``, ``priority``,
    ``owner_wins``, ``manual_review``; upper case and the aliases ``LWW``, ``FIELD_LEVEL_MERGE``,
    ``PRIORITY_BASED``, ``MANUAL`` are accepted).

    ```pycon
    >>> strategy_from_name("FIELD_LEVEL_MERGE").name
    'field_merge'

    ```
    """
    if not isinstance(name, str) or name.lower() not in _STRATEGY_NAMES:
        raise PolicyConfigError(
            f"unknown strategy {describe(name)}; expected one of "
            "last_writer_wins, field_merge, priority, owner_wins, manual_review"
        )
    canonical = _STRATEGY_NAMES[name.lower()]
    if canonical == "last_writer_wins":
        return LastWriterWins()
    if canonical == "field_merge":
        return FieldMerge()
    if canonical == "priority":
        return Priority(sources=dict(source_priorities or DEFAULT_SOURCE_PRIORITIES))
    if canonical == "owner_wins":
        return OwnerWins()
    return ManualReview()


def _optional_pattern(value: str | Sequence[str] | PathPattern | None) -> PathPattern | None:
    return None if value is None else PathPattern.of(value)


def _is_strategy(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Strategy):
        raise PolicyConfigError(f"{attribute.name} must be a Strategy, got {describe(value)}")


@attrs.frozen(kw_only=True)
class PolicyRule:
    """Use ``strategy`` where every given selector matches (``None`` matches anything).

    ``thing`` and ``shadow`` are shell-style patterns (``"pump-*"``); ``shadow=""`` selects the
    classic shadow; ``path`` is a `PathPattern` or a dotted string.
    """

    strategy: Strategy = attrs.field(validator=_is_strategy)
    thing: str | None = None
    shadow: str | None = None
    section: str | None = attrs.field(default=None)
    path: PathPattern | None = attrs.field(default=None, converter=_optional_pattern)

    @section.validator
    def _check_section(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in (None, "desired", "reported"):
            raise PolicyConfigError(f"section must be desired or reported, got {describe(value)}")

    def matches(
        self, *, thing: str | None, shadow: str | None, section: str, path: tuple[str, ...]
    ) -> bool:
        """Whether this rule applies to the given place."""
        if self.thing is not None and (thing is None or not fnmatch.fnmatchcase(thing, self.thing)):
            return False
        if self.shadow is not None and not fnmatch.fnmatchcase(shadow or "", self.shadow):
            return False
        if self.section is not None and section != self.section:
            return False
        return self.path is None or self.path.matches(path)


def _shadow_strategies(shadows: Mapping[Any, Any], strategy: Any) -> dict[str, Strategy]:
    out: dict[str, Strategy] = {}
    for name, value in shadows.items():
        if not isinstance(name, str):
            raise PolicyConfigError(f"shadows: shadow name {describe(name)} is not a string")
        try:
            out[name] = strategy(value)
        except InvalidArgumentError as exc:
            raise PolicyConfigError(f"shadows[{describe(name)}]: {exc}") from None
    return out


def _check_shadow_defaults(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Strategy) for k, v in value.items()
    ):
        raise PolicyConfigError("shadow_defaults must map shadow names to Strategy objects")


def _check_field_severity(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Severity) for k, v in value.items()
    ):
        raise PolicyConfigError("field_severity must map path patterns to Severity values")
    for pattern in value:
        PathPattern.of(pattern)


def _check_severity(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None and attribute.name == "manual_review_severity":
        return
    if not isinstance(value, Severity):
        raise PolicyConfigError(f"{attribute.name} must be a Severity, got {describe(value)}")


def _check_rules(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    for rule in value:  # type: ignore[attr-defined]
        if not isinstance(rule, PolicyRule):
            raise PolicyConfigError(f"rules must hold PolicyRule objects, got {describe(rule)}")


def _rule_tuple(rules: object) -> tuple[PolicyRule, ...]:
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Sequence):
        raise PolicyConfigError(f"rules must be a sequence of PolicyRule, got {describe(rules)}")
    return tuple(rules)


def _threshold(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise PolicyConfigError(
            f"{attribute.name} must be a non-negative int or None, got {describe(value)}"
        )


@attrs.frozen(kw_only=True)
class ResolutionPolicy:
    """How conflicts are settled: a default strategy, overrides, severities and escalation.

    The first `PolicyRule` in ``rules`` that matches a conflict's place wins, then the
    ``shadow_defaults`` entry for the shadow name, then ``default``. ``field_severity`` maps
    path patterns to the severity of conflicts there; a conflict at or above
    ``manual_review_severity`` is held for review, and a merge with more than
    ``auto_resolve_threshold`` conflicts holds all of them.

    ```pycon
    >>> policy = ResolutionPolicy.from_dict({
    ...     "strategy": "last_writer_wins",
    ...     "field_priorities": {"firmware.version": "high", "temperature": "low"},
    ...     "auto_resolve_threshold": 5,
    ...     "manual_review_severity": "high",
    ... })
    >>> policy.severity_for(("firmware", "version")).name
    'HIGH'

    ```
    """

    default: Strategy = attrs.field(factory=LastWriterWins, validator=_is_strategy)
    rules: tuple[PolicyRule, ...] = attrs.field(
        default=(), converter=_rule_tuple, validator=_check_rules
    )
    shadow_defaults: Mapping[str, Strategy] = attrs.field(
        factory=dict, validator=_check_shadow_defaults
    )
    field_severity: Mapping[str, Severity] = attrs.field(
        factory=dict, validator=_check_field_severity
    )
    default_severity: Severity = attrs.field(default=Severity.MEDIUM, validator=_check_severity)
    auto_resolve_threshold: int | None = attrs.field(default=None, validator=_threshold)
    manual_review_severity: Severity | None = attrs.field(default=None, validator=_check_severity)

    def strategy_for(
        self,
        *,
        section: str,
        path: tuple[str, ...],
        thing: str | None = None,
        shadow: str | None = None,
    ) -> Strategy:
        """The strategy for a conflict at ``path`` of ``section`` in this thing's shadow."""
        for rule in self.rules:
            if rule.matches(thing=thing, shadow=shadow, section=section, path=path):
                return rule.strategy
        if shadow is not None and shadow in self.shadow_defaults:
            return self.shadow_defaults[shadow]
        return self.default

    @classmethod
    def recommended(cls) -> ResolutionPolicy:
        """A sensible starting point for a fleet with the usual named shadows.

        The cloud owns ``desired`` and the device owns ``reported`` (`OwnerWins`); a
        ``configuration`` shadow is strict (every conflict is held for review) and a
        ``telemetry`` shadow keeps the latest write (`LastWriterWins`).

        ```pycon
        >>> policy = ResolutionPolicy.recommended()
        >>> policy.strategy_for(section="desired", path=("mode",), shadow="configuration").name
        'manual_review'
        >>> policy.strategy_for(section="reported", path=("rssi",), shadow="telemetry").name
        'last_writer_wins'
        >>> policy.strategy_for(section="desired", path=("mode",)).name
        'owner_wins'

        ```
        """
        return cls(
            default=OwnerWins(),
            shadow_defaults={"configuration": ManualReview(), "telemetry": LastWriterWins()},
        )

    def severity_for(self, path: tuple[str, ...]) -> Severity:
        """The severity of a conflict at ``path`` (the first matching ``field_severity``)."""
        for pattern, severity in self.field_severity.items():
            if cached_pattern(pattern).matches(path):
                return severity
        return self.default_severity

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> ResolutionPolicy:
        """Build a policy from plain data (a device's config item, a JSON file).

        Accepted keys: ``strategy``; ``field_priorities`` (path -> high/medium/low: the
        severity of conflicts there); ``auto_resolve_threshold``; ``manual_review_severity``;
        ``source_priorities`` (source -> int, for the priority strategy); ``shadows``
        (shadow name -> strategy name); ``paths`` (a list of ``{"path", "strategy"}`` with
        optional ``section``, ``thing``, ``shadow``). Unknown keys and bad values raise
        `PolicyConfigError`.
        """
        if not isinstance(config, Mapping):
            raise PolicyConfigError(f"a policy config must be an object, got {describe(config)}")
        known = {
            "strategy",
            "field_priorities",
            "auto_resolve_threshold",
            "manual_review_severity",
            "source_priorities",
            "shadows",
            "paths",
        }
        unknown = sorted(str(k) for k in config if k not in known)
        if unknown:
            raise PolicyConfigError(
                f"unknown policy keys {unknown}; expected some of {sorted(known)}"
            )
        sources = config.get("source_priorities")
        if sources is not None and (
            not isinstance(sources, Mapping)
            or not all(isinstance(k, str) and type(v) is int for k, v in sources.items())
        ):
            raise PolicyConfigError("source_priorities must map source names to ints")

        def strategy(name: object) -> Strategy:
            return strategy_from_name(name, source_priorities=sources)

        severities = config.get("field_priorities", {})
        if not isinstance(severities, Mapping):
            raise PolicyConfigError("field_priorities must map paths to high, medium or low")
        field_severity: dict[str, Severity] = {}
        for path, level in severities.items():
            try:
                PathPattern.of(path)
                field_severity[path] = Severity.parse(level)
            except InvalidArgumentError as exc:
                raise PolicyConfigError(f"field_priorities[{describe(path)}]: {exc}") from None
        review = config.get("manual_review_severity")
        try:
            review_severity = None if review is None else Severity.parse(review)
        except InvalidArgumentError as exc:
            raise PolicyConfigError(f"manual_review_severity: {exc}") from None
        shadows = config.get("shadows", {})
        if not isinstance(shadows, Mapping):
            raise PolicyConfigError("shadows must map shadow names to strategy names")
        rules: list[PolicyRule] = []
        paths = config.get("paths", [])
        if not isinstance(paths, Sequence) or isinstance(paths, str):
            raise PolicyConfigError("paths must be a list of {path, strategy} objects")
        for index, entry in enumerate(paths):
            if not isinstance(entry, Mapping) or "strategy" not in entry:
                raise PolicyConfigError(f"paths[{index}] must be an object with a strategy")
            extra = sorted(
                str(k) for k in entry if k not in {"path", "strategy", "section", "thing", "shadow"}
            )
            if extra:
                raise PolicyConfigError(f"paths[{index}] has unknown keys {extra}")
            try:
                rules.append(
                    PolicyRule(
                        strategy=strategy(entry["strategy"]),
                        path=entry.get("path"),
                        section=entry.get("section"),
                        thing=_optional_str(entry.get("thing"), f"paths[{index}].thing"),
                        shadow=_optional_str(entry.get("shadow"), f"paths[{index}].shadow"),
                    )
                )
            except InvalidArgumentError as exc:
                raise PolicyConfigError(f"paths[{index}]: {exc}") from None
        return cls(
            default=strategy(config.get("strategy", "last_writer_wins")),
            rules=tuple(rules),
            shadow_defaults=_shadow_strategies(shadows, strategy),
            field_severity=field_severity,
            auto_resolve_threshold=config.get("auto_resolve_threshold"),
            manual_review_severity=review_severity,
        )


def _optional_str(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise PolicyConfigError(f"{what} must be a string")
    return value
