"""Laws of business-rule evaluation, semantic version precedence and the declarative form."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from shadowsync import JSONObject, json_equal
from shadowsync.rules import RuleSet, SemanticVersion, rule_from_dict
from tests.strategies import rules as sr


@st.composite
def proposals(draw: st.DrawFn) -> tuple[RuleSet, JSONObject, JSONObject, JSONObject, int]:
    """A rule set, an old section with its metadata, a proposed new section, and a time."""
    rules = draw(sr.rule_sets)
    old = draw(sr.sections)
    new = draw(sr.sections)
    metadata = draw(sr.metadata_for(old))
    timestamp = draw(sr.timestamps) + 200
    return rules, old, new, metadata, timestamp


@given(proposals())
def test_no_refused_value_reaches_the_accepted_section(
    case: tuple[RuleSet, JSONObject, JSONObject, JSONObject, int],
) -> None:
    rules, old, new, metadata, timestamp = case
    outcome = rules.evaluate("desired", old, new, timestamp=timestamp, metadata=metadata)
    again = rules.evaluate("desired", old, outcome.accepted, timestamp=timestamp, metadata=metadata)
    assert again.violations == ()


@given(proposals())
def test_evaluating_the_accepted_section_again_changes_nothing(
    case: tuple[RuleSet, JSONObject, JSONObject, JSONObject, int],
) -> None:
    rules, old, new, metadata, timestamp = case
    first = rules.evaluate("desired", old, new, timestamp=timestamp, metadata=metadata)
    second = rules.evaluate("desired", old, first.accepted, timestamp=timestamp, metadata=metadata)
    assert json_equal(second.accepted, first.accepted)


@given(sr.sections, sr.sections, sr.timestamps)
def test_a_rule_set_without_rules_accepts_everything_unchanged(
    old: JSONObject, new: JSONObject, timestamp: int
) -> None:
    outcome = RuleSet().evaluate("reported", old, new, timestamp=timestamp)
    assert json_equal(outcome.accepted, new)
    assert outcome.violations == ()
    assert outcome.acknowledgement.applied == tuple(change.path for change in outcome.changes)


def _spec_compare(a: str, b: str) -> int:
    """Semantic Versioning 2.0.0, section 11, followed step by step."""

    def split(text: str) -> tuple[list[int], list[str] | None]:
        text = text.removeprefix("v").split("+", 1)[0]
        core, _, pre = text.partition("-")
        return [int(n) for n in core.split(".")], (pre.split(".") if pre else None)

    (core_a, pre_a), (core_b, pre_b) = split(a), split(b)
    if core_a != core_b:
        return -1 if core_a < core_b else 1
    if pre_a is None or pre_b is None:
        return (pre_a is None) - (pre_b is None)
    for x, y in zip(pre_a, pre_b, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return (len(pre_a) > len(pre_b)) - (len(pre_a) < len(pre_b))


@given(sr.semantic_versions(), sr.semantic_versions())
def test_semver_precedence_follows_the_spec(a: str, b: str) -> None:
    assert SemanticVersion.parse(a).compare(SemanticVersion.parse(b)) == _spec_compare(a, b)


@given(sr.semantic_versions(), sr.semantic_versions())
def test_semver_precedence_is_antisymmetric(a: str, b: str) -> None:
    x, y = SemanticVersion.parse(a), SemanticVersion.parse(b)
    if x <= y and y <= x:
        assert x.compare(y) == 0
        assert x.precedence == y.precedence


@given(sr.semantic_versions(), sr.semantic_versions(), sr.semantic_versions())
def test_semver_precedence_is_transitive(a: str, b: str, c: str) -> None:
    versions = [SemanticVersion.parse(v) for v in (a, b, c)]
    for x, y, z in itertools.permutations(versions):
        if x <= y and y <= z:
            assert x <= z


@given(sr.semantic_versions(), sr.semantic_versions())
def test_semver_precedence_is_total(a: str, b: str) -> None:
    x, y = SemanticVersion.parse(a), SemanticVersion.parse(b)
    assert [x < y, x.compare(y) == 0, x > y].count(True) == 1


@given(sr.built_in_rules(sr.config_patterns))
def test_a_built_in_rule_survives_its_declarative_form(rule: sr.BuiltInRule) -> None:
    config = json.loads(json.dumps(rule.to_dict()))
    assert rule_from_dict(config) == rule


@given(sr.serialisable_rule_sets)
def test_a_rule_set_survives_its_declarative_form(rules: RuleSet) -> None:
    assert RuleSet.from_json(json.dumps(rules.to_dict())) == rules
