"""`RuleSet`: a chain of rules judged against each change of a section, and its `RuleOutcome`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import attrs

from shadowsync._json import (
    JSONObject,
    JSONProblem,
    JSONValue,
    copy_json,
    describe,
    json_equal,
    kind_phrase,
)
from shadowsync._limits import MAX_CONFIGURABLE_DEPTH
from shadowsync._tree import MISSING, Path, copy_value, lookup
from shadowsync.errors import InvalidArgumentError
from shadowsync.rules._acknowledgement import Acknowledgement, Rejection
from shadowsync.rules._builtin import Custom
from shadowsync.rules._config import rule_from_dict
from shadowsync.rules._model import (
    DELETED,
    SECTIONS,
    RuleConfigError,
    Section,
    is_listlike,
    is_non_negative_int,
    json_copy,
    loads,
    show,
)
from shadowsync.rules._paths import PathPattern
from shadowsync.rules._rule import Change, Rule, Violation


def _check_rules(value: Iterable[Rule]) -> tuple[Rule, ...]:
    if not is_listlike(value):
        raise RuleConfigError(f"expected a list of rules, got {show(value)}", owner="RuleSet")
    rules = tuple(value)
    for index, rule in enumerate(rules):
        name = getattr(rule, "name", None)
        if (
            not isinstance(name, str)
            or not name
            or not isinstance(getattr(rule, "path", None), PathPattern)
            or not callable(getattr(rule, "check", None))
        ):
            raise RuleConfigError(
                "expected a rule: an object with a name (str), a path (PathPattern) and a "
                f"check method, got {describe(rule)}",
                index=index,
            )
    return rules


@attrs.frozen(kw_only=True)
class RuleOutcome:
    """The result of `RuleSet.evaluate`.

    ``accepted`` is the proposed section with every refused change reverted to its old value
    (a refused new key is removed, a refused deletion restored), so no refused value is in it.
    ``changes`` lists every change found, ``violations`` every violation (a change refused by
    two rules has two), and ``acknowledgement`` the per-path answer for the device to report.

    ```pycon
    >>> from shadowsync.rules import TypeIs
    >>> outcome = RuleSet(rules=[TypeIs(path="name", json_type="string")]).evaluate(
    ...     "reported", {"name": "hall"}, {"name": 7, "on": True}, timestamp=1700000000)
    >>> outcome.ok, outcome.accepted, [change.path for change in outcome.changes]
    (False, {'name': 'hall', 'on': True}, [('name',), ('on',)])

    ```
    """

    section: Section
    accepted: JSONObject = attrs.field(hash=False)
    changes: tuple[Change, ...]
    violations: tuple[Violation, ...]
    acknowledgement: Acknowledgement

    @property
    def ok(self) -> bool:
        """Whether every change was accepted."""
        return not self.violations


def _section_copy(value: object, what: str) -> JSONObject:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{what} must be a JSON object, got {kind_phrase(value)}")
    try:
        result = json_copy(value)
    except JSONProblem as bad:
        raise InvalidArgumentError(f"{what} is not a valid section: {bad.reason()}") from None
    assert isinstance(result, dict)
    return result


def _diff(old: JSONObject, new: JSONObject, prefix: Path, out: list[tuple[Path, Any, Any]]) -> None:
    """Leaf-by-leaf differences: objects recurse, anything else (arrays too) is one leaf."""
    for key, value in new.items():
        path = (*prefix, key)
        if key not in old:
            _whole(value, path, out, created=True)
            continue
        before = old[key]
        if type(before) is dict and type(value) is dict:
            _diff(before, value, path, out)
        elif not json_equal(before, value):
            out.append((path, before, value))
    for key, before in old.items():
        if key not in new:
            _whole(before, (*prefix, key), out, created=False)


def _whole(
    value: JSONValue, path: Path, out: list[tuple[Path, Any, Any]], *, created: bool
) -> None:
    if type(value) is dict and value:
        assert isinstance(value, dict)
        for key, item in value.items():
            _whole(item, (*path, key), out, created=created)
    elif created:
        out.append((path, MISSING, value))
    else:
        out.append((path, value, DELETED))


def _written_at(metadata: Mapping[str, Any] | None, path: Path) -> int | None:
    """When the value at ``path`` was last written, from per-leaf ``{"timestamp": t}`` metadata."""
    node: Any = metadata
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return _latest(node, MAX_CONFIGURABLE_DEPTH + 2)


def _latest(node: Any, budget: int) -> int | None:
    if budget <= 0:
        return None
    if isinstance(node, Mapping):
        stamp = node.get("timestamp")
        if is_non_negative_int(stamp):
            return cast("int", stamp)
        children: Iterable[Any] = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    found = [t for t in (_latest(child, budget - 1) for child in children) if t is not None]
    return max(found) if found else None


def _revert(accepted: JSONObject, old: JSONObject, change: Change) -> None:
    path = change.path
    if change.old is MISSING:
        parents: list[JSONObject] = [accepted]
        for key in path[:-1]:
            child = parents[-1][key]
            assert isinstance(child, dict)
            parents.append(child)
        del parents[-1][path[-1]]
        # Drop objects that exist only to hold refused keys, so the refusal leaves no trace.
        for depth in range(len(path) - 1, 0, -1):
            if parents[depth] or lookup(old, path[:depth]) is not MISSING:
                break
            del parents[depth - 1][path[depth - 1]]
        return
    node = accepted
    for key in path[:-1]:
        child = node.setdefault(key, {})
        assert isinstance(child, dict)
        node = child
    node[path[-1]] = copy_json(change.old)


@attrs.frozen(kw_only=True)
class RuleSet:
    """An ordered chain of rules, judged against each change of a section.

    ```pycon
    >>> from shadowsync.rules import AllowedTransitions
    >>> rules = RuleSet(rules=[AllowedTransitions(path="door", transitions={
    ...     "closed": ["open", "locked"], "open": ["closed"], "locked": ["closed"]})])
    >>> outcome = rules.evaluate("desired", {"door": "locked"}, {"door": "open"},
    ...                          timestamp=1700000000, desired_version=12)
    >>> outcome.accepted, outcome.acknowledgement.to_dict()["rejected"][0]["path"]
    ({'door': 'locked'}, '/door')

    ```
    """

    rules: tuple[Rule, ...] = attrs.field(default=(), converter=_check_rules)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> RuleSet:
        """Build a rule set from ``{"rules": [...]}`` (see `rule_from_dict`).

        ```pycon
        >>> RuleSet.from_dict({"rules": [{"type": "type", "path": "name", "json_type": "string"}]}
        ...                   ).rules[0].name
        'type:name'

        ```
        """
        if not isinstance(config, Mapping):
            raise RuleConfigError(f"expected an object with a rules list, got {show(config)}")
        for key in config:
            if key != "rules":
                raise RuleConfigError("unknown key (allowed: rules)", key=str(key))
        if "rules" not in config:
            raise RuleConfigError("missing required key", key="rules")
        entries = config["rules"]
        if not isinstance(entries, list):
            raise RuleConfigError(f"expected a list of rules, got {show(entries)}", key="rules")
        return cls(rules=[rule_from_dict(entry, index=i) for i, entry in enumerate(entries)])

    @classmethod
    def from_json(cls, text: str | bytes) -> RuleSet:
        """Build a rule set from JSON text (see `from_dict`)."""
        return cls.from_dict(loads(text, RuleConfigError, "the rule config is not JSON"))

    def to_dict(self) -> dict[str, Any]:
        """The declarative form; raises `RuleConfigError` for rules that have none."""
        out = []
        for index, rule in enumerate(self.rules):
            to_dict = getattr(rule, "to_dict", None)
            if isinstance(rule, Custom) or not callable(to_dict):
                raise RuleConfigError(
                    f"rule {describe(rule.name)} cannot be written to a config: only the built-in "
                    "rules have a declarative form (custom checks are Python functions)",
                    index=index,
                )
            out.append(to_dict())
        return {"rules": out}

    def check(self, change: Change) -> tuple[Violation, ...]:
        """Run ``change`` through the chain: the violations of every rule that matches its path."""
        found = []
        for rule in self.rules:
            if not rule.path.matches(change.path):
                continue
            violation = rule.check(change)
            if violation is None:
                continue
            if not isinstance(violation, Violation):
                raise InvalidArgumentError(
                    f"rule {rule.name!r} returned {describe(violation)}; "
                    "expected a Violation or None"
                )
            found.append(violation)
        return tuple(found)

    def evaluate(
        self,
        section: Section,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        *,
        timestamp: int,
        metadata: Mapping[str, Any] | None = None,
        desired_version: int = 0,
        thing_name: str | None = None,
        shadow_name: str | None = None,
    ) -> RuleOutcome:
        """Judge the change of a whole section from ``old`` to ``new``.

        ``old`` and ``new`` are complete sections (a deleted key is absent; ``null`` is refused).
        They are compared leaf by leaf: objects recurse, arrays and scalars are leaves, a new
        or removed object contributes each of its leaves. Every change is passed through
        `check`. ``metadata`` is the per-leaf metadata of ``old`` (as in a shadow
        document) and gives each change its ``old_timestamp``. ``desired_version`` is the
        version the acknowledgement answers (``0`` when there is none yet).

        ```pycon
        >>> RuleSet().evaluate("reported", {}, {"on": True}, timestamp=5).accepted
        {'on': True}

        ```
        """
        if section not in SECTIONS:
            raise InvalidArgumentError(
                f"section must be 'desired' or 'reported', got {describe(section)}"
            )
        if not is_non_negative_int(timestamp):
            raise InvalidArgumentError(
                f"timestamp must be a non-negative int (epoch seconds), got {describe(timestamp)}"
            )
        if not is_non_negative_int(desired_version):
            raise InvalidArgumentError(
                f"desired_version must be a non-negative int, got {describe(desired_version)}"
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidArgumentError(
                f"metadata must be an object or None, got {describe(metadata)}"
            )
        before = _section_copy(old, "old")
        after = _section_copy(new, "new")
        found: list[tuple[Path, Any, Any]] = []
        _diff(before, after, (), found)
        changes = tuple(
            Change(
                path=path,
                section=section,
                old=copy_value(old_value),
                new=copy_json(new_value) if new_value is not DELETED else DELETED,
                timestamp=timestamp,
                old_timestamp=None if old_value is MISSING else _written_at(metadata, path),
                thing_name=thing_name,
                shadow_name=shadow_name,
            )
            for path, old_value, new_value in found
        )
        accepted = after
        violations: list[Violation] = []
        applied: list[Path] = []
        rejected: list[Rejection] = []
        for change in changes:
            refused = self.check(change)
            if not refused:
                applied.append(change.path)
                continue
            violations.extend(refused)
            first = refused[0]
            rejected.append(Rejection(path=change.path, rule=first.rule, reason=first.reason))
            _revert(accepted, before, change)
        return RuleOutcome(
            section=section,
            accepted=accepted,
            changes=changes,
            violations=tuple(violations),
            acknowledgement=Acknowledgement(
                desired_version=desired_version,
                timestamp=timestamp,
                applied=applied,
                rejected=rejected,
            ),
        )
