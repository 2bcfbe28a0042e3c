"""Laws of the three-way merge: fast-forwards, idempotence, disjoint edits, commutativity of the
strategies that claim it, priority, review, report consistency and value provenance."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

import attrs
from hypothesis import given
from hypothesis import strategies as st

from shadowsync import JSONObject, ShadowDocument
from shadowsync._conflict.merge import (
    ChangeClass,
    MergeResult,
    merge,
    merge_policy,
    merge_sections,
    same,
    stamps_at,
    stamps_from_metadata,
)
from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync.rules import PathPattern, RuleSet
from shadowsync.strategies import (
    LastWriterWins,
    OwnerWins,
    Priority,
    Severity,
    Strategy,
)
from tests.strategies import merge as sm
from tests.strategies import related_values, retyped, shadow_documents

if TYPE_CHECKING:
    from collections.abc import Mapping

Triple = tuple[JSONObject, JSONObject, JSONObject]
Section = Literal["desired", "reported"]
Stamps = dict[sm.Path, int]

sections_ = st.sampled_from(sm.SECTIONS)


@st.composite
def any_stamps(draw: st.DrawFn, *sections: Mapping[str, Any]) -> Stamps | None:
    """No stamps, or a stamp for every top-level key."""
    if draw(st.booleans()):
        return None
    return draw(sm.top_level_stamps(*sections))


def concurrent_paths(result: MergeResult) -> list[sm.Path]:
    return [c.path for c in result.changes if c.change is ChangeClass.CONCURRENT]


# --------------------------------------------------------------------------------------------
# Fast-forwards and idempotence
# --------------------------------------------------------------------------------------------


@given(sm.merge_triples(), sm.builtin_strategies(), sections_, sm.two_sources())
def test_merging_only_our_changes_fast_forwards_to_ours(
    triple: Triple, strategy: Strategy, section: Section, sources: tuple[str, str]
) -> None:
    base, ours, _ = triple
    result = merge(
        base,
        ours,
        base,
        policy=strategy,
        section=section,
        ours_source=sources[0],
        theirs_source=sources[1],
    )
    assert sm.same_value(result.merged, ours)
    assert not result.report


@given(sm.merge_triples(), sm.builtin_strategies(), sections_, sm.two_sources())
def test_merging_only_their_changes_fast_forwards_to_theirs(
    triple: Triple, strategy: Strategy, section: Section, sources: tuple[str, str]
) -> None:
    base, _, theirs = triple
    result = merge(
        base,
        base,
        theirs,
        policy=strategy,
        section=section,
        ours_source=sources[0],
        theirs_source=sources[1],
    )
    assert sm.same_value(result.merged, theirs)
    assert not result.report


@given(sm.merge_triples(), sm.builtin_strategies())
def test_merging_a_side_with_itself_is_that_side(triple: Triple, strategy: Strategy) -> None:
    base, ours, _ = triple
    result = merge(base, ours, copy.deepcopy(ours), policy=strategy)
    assert sm.same_value(result.merged, ours)
    assert not result.report


# --------------------------------------------------------------------------------------------
# Disjoint edits
# --------------------------------------------------------------------------------------------


@given(sm.disjoint_edits(), sm.builtin_strategies())
def test_disjoint_edits_keep_both_sides_edits(
    case: tuple[JSONObject, sm.Edits, sm.Edits], strategy: Strategy
) -> None:
    base, our_edits, their_edits = case
    ours = sm.with_edits(base, our_edits)
    theirs = sm.with_edits(base, their_edits)
    result = merge(base, ours, theirs, policy=strategy)
    assert sm.same_value(result.merged, sm.with_edits(ours, their_edits))
    assert not result.report


# --------------------------------------------------------------------------------------------
# Commutativity
# --------------------------------------------------------------------------------------------


commutative_cases: st.SearchStrategy[tuple[Strategy, tuple[str, str]]] = st.one_of(
    st.tuples(
        st.builds(OwnerWins, fallback=sm.last_writer_wins), sm.two_sources(("device", "cloud"))
    ),
    st.tuples(sm.priority_strategies(distinct=True), sm.two_sources()),
    st.tuples(
        sm.commutative_strategies(),
        st.tuples(st.sampled_from(sm.SOURCES), st.sampled_from(sm.SOURCES)),
    ),
)
"""A strategy that claims commutativity, or one that never needs its fallback (owner-wins
between the device and the cloud, priority with distinct priorities), with two sources."""


def swapped_merges(
    triple: Triple,
    strategy: Strategy | ResolutionPolicy,
    section: Section,
    sources: tuple[str, str],
    stamps: tuple[Stamps | None, Stamps | None, Stamps | None],
) -> tuple[MergeResult, MergeResult]:
    base, ours, theirs = triple
    ours_stamps, theirs_stamps, base_stamps = stamps
    forward = merge(
        base,
        ours,
        theirs,
        policy=strategy,
        section=section,
        ours_source=sources[0],
        theirs_source=sources[1],
        ours_stamps=ours_stamps,
        theirs_stamps=theirs_stamps,
        base_stamps=base_stamps,
    )
    backward = merge(
        base,
        theirs,
        ours,
        policy=strategy,
        section=section,
        ours_source=sources[1],
        theirs_source=sources[0],
        ours_stamps=theirs_stamps,
        theirs_stamps=ours_stamps,
        base_stamps=base_stamps,
    )
    return forward, backward


@given(sm.merge_triples(), commutative_cases, sections_, st.data())
def test_commutative_strategies_do_not_care_which_side_is_ours(
    triple: Triple, case: tuple[Strategy, tuple[str, str]], section: Section, data: st.DataObject
) -> None:
    strategy, sources = case
    stamps = (
        data.draw(any_stamps(*triple)),
        data.draw(any_stamps(*triple)),
        data.draw(any_stamps(*triple)),
    )
    forward, backward = swapped_merges(triple, strategy, section, sources, stamps)
    assert sm.same_value(forward.merged, backward.merged)


@given(sm.merge_triples(), sm.last_writer_wins, sections_, sm.two_sources(), st.data())
def test_last_writer_wins_with_distinct_stamps_is_commutative_in_value(
    triple: Triple,
    strategy: LastWriterWins,
    section: Section,
    sources: tuple[str, str],
    data: st.DataObject,
) -> None:
    ours_stamps = data.draw(sm.top_level_stamps(*triple))
    theirs_stamps = data.draw(sm.top_level_stamps(*triple, distinct_from=ours_stamps))
    stamps = (ours_stamps, theirs_stamps, None)
    forward, backward = swapped_merges(triple, strategy, section, sources, stamps)
    assert sm.same_value(forward.merged, backward.merged)


# --------------------------------------------------------------------------------------------
# Priority and review
# --------------------------------------------------------------------------------------------


def priority_of(strategy: Priority, path: sm.Path, source: str) -> int | None:
    for pattern, priorities in strategy.fields.items():
        if source in priorities and PathPattern.parse(pattern).matches(path):
            return priorities[source]
    return strategy.sources.get(source)


@given(
    sm.merge_triples(),
    sm.priority_strategies(distinct=False),
    st.tuples(st.sampled_from(sm.SOURCES), st.sampled_from(sm.SOURCES)),
    st.data(),
)
def test_a_lower_priority_source_never_overwrites_a_higher_one(
    triple: Triple, strategy: Priority, sources: tuple[str, str], data: st.DataObject
) -> None:
    base, ours, theirs = triple
    result = merge(
        base,
        ours,
        theirs,
        policy=strategy,
        ours_source=sources[0],
        theirs_source=sources[1],
        ours_stamps=data.draw(any_stamps(*triple)),
        theirs_stamps=data.draw(any_stamps(*triple)),
    )
    for record in result.report:
        mine = priority_of(strategy, record.path, sources[0])
        other = priority_of(strategy, record.path, sources[1])
        if mine is None or other is None or mine == other:
            continue
        winner = ours if mine > other else theirs
        assert sm.same_value(record.value, sm.at(winner, record.path))
        assert sm.same_value(sm.at(result.merged, record.path), sm.at(winner, record.path))


review_policies: st.SearchStrategy[Strategy | ResolutionPolicy] = st.one_of(
    sm.manual_review,
    st.builds(ResolutionPolicy, default=sm.builtin_strategies(), auto_resolve_threshold=st.just(0)),
    st.builds(
        ResolutionPolicy,
        default=sm.builtin_strategies(),
        default_severity=st.just(Severity.HIGH),
        manual_review_severity=st.sampled_from((Severity.LOW, Severity.HIGH)),
    ),
)
"""Policies under which every conflict must be held for a person."""


@given(sm.merge_triples(), review_policies, sections_)
def test_manual_review_never_changes_a_conflicting_field_silently(
    triple: Triple, policy: Strategy | ResolutionPolicy, section: Section
) -> None:
    base, ours, theirs = triple
    result = merge(base, ours, theirs, policy=policy, section=section)
    reviewed = [item.path for item in result.reviews]
    concurrent = concurrent_paths(result)
    assert sorted(record.path for record in result.report) == sorted(concurrent)
    for path in concurrent:
        kept = sm.same_value(sm.at(result.merged, path), sm.at(ours, path))
        assert kept or path in reviewed
        assert reviewed.count(path) == 1


@st.composite
def severity_policies(draw: st.DrawFn) -> ResolutionPolicy:
    patterns = st.sampled_from(sm.PATTERNS)
    levels = st.sampled_from(list(Severity))
    return ResolutionPolicy(
        default=draw(sm.builtin_strategies()),
        field_severity=draw(st.dictionaries(patterns, levels, max_size=3)),
        default_severity=draw(levels),
        manual_review_severity=draw(levels),
    )


@given(sm.merge_triples(), severity_policies())
def test_conflicts_at_or_above_the_review_severity_keep_ours_and_are_held(
    triple: Triple, policy: ResolutionPolicy
) -> None:
    base, ours, theirs = triple
    result = merge(base, ours, theirs, policy=policy)
    reviewed = {item.id: item for item in result.reviews}
    assert policy.manual_review_severity is not None
    for record in result.report:
        assert record.severity == policy.severity_for(record.path)
        if record.severity >= policy.manual_review_severity:
            assert record.review_id in reviewed
            assert reviewed[record.review_id].path == record.path
            assert sm.same_value(sm.at(result.merged, record.path), sm.at(ours, record.path))


@given(sm.merge_triples(), sm.builtin_strategies(), st.integers(0, 3))
def test_more_conflicts_than_the_threshold_hold_every_conflict(
    triple: Triple, strategy: Strategy, threshold: int
) -> None:
    base, ours, theirs = triple
    policy = ResolutionPolicy(default=strategy, auto_resolve_threshold=threshold)
    result = merge(base, ours, theirs, policy=policy)
    assert result.escalated == (len(result.report) > threshold)
    if result.escalated:
        assert len(result.reviews) == len(result.report)
        for record in result.report:
            assert record.review_id is not None
            assert sm.same_value(sm.at(result.merged, record.path), sm.at(ours, record.path))


# --------------------------------------------------------------------------------------------
# Report consistency and provenance of values
# --------------------------------------------------------------------------------------------

any_policies: st.SearchStrategy[Strategy | ResolutionPolicy] = st.one_of(
    sm.builtin_strategies(), sm.field_merge, review_policies, severity_policies()
)
"""Every built-in strategy and review policy; field merge (which combines arrays) often."""


@given(sm.merge_triples(), any_policies, st.data())
def test_every_reported_conflict_is_a_concurrent_change(
    triple: Triple, policy: Strategy | ResolutionPolicy, data: st.DataObject
) -> None:
    base, ours, theirs = triple
    result = merge(
        base,
        ours,
        theirs,
        policy=policy,
        ours_stamps=data.draw(any_stamps(*triple)),
        theirs_stamps=data.draw(any_stamps(*triple)),
        base_stamps=data.draw(any_stamps(*triple)),
    )
    concurrent = set(concurrent_paths(result))
    for record in result.report:
        assert record.path in concurrent


@given(sm.merge_triples(), any_policies, st.data())
def test_every_changed_path_is_classified_once(
    triple: Triple, policy: Strategy | ResolutionPolicy, data: st.DataObject
) -> None:
    base, ours, theirs = triple
    result = merge(
        base,
        ours,
        theirs,
        policy=policy,
        ours_stamps=data.draw(any_stamps(*triple)),
        theirs_stamps=data.draw(any_stamps(*triple)),
        base_stamps=data.draw(any_stamps(*triple)),
    )
    paths = [change.path for change in result.changes]
    assert len(paths) == len(set(paths))
    for path in paths:
        was = sm.at(base, path)
        assert not (
            sm.same_value(sm.at(ours, path), was) and sm.same_value(sm.at(theirs, path), was)
        )


@given(sm.merge_triples(), any_policies, st.data())
def test_merged_values_come_from_an_input_unless_merged(
    triple: Triple, policy: Strategy | ResolutionPolicy, data: st.DataObject
) -> None:
    base, ours, theirs = triple
    result = merge(
        base,
        ours,
        theirs,
        policy=policy,
        ours_stamps=data.draw(any_stamps(*triple)),
        theirs_stamps=data.draw(any_stamps(*triple)),
    )
    combined = [r.path for r in result.report if r.winner == "merged"]
    for path, value in sm.leaf_values(result.merged).items():
        if value == {} or any(path[: len(prefix)] == prefix for prefix in combined):
            continue
        assert any(sm.same_value(value, sm.at(side, path)) for side in (ours, theirs, base))


def tamper(value: Any) -> None:
    """Change every container inside ``value`` in place."""
    if isinstance(value, dict):
        for item in value.values():
            tamper(item)
        value["tampered"] = "yes"
    elif isinstance(value, list):
        for item in value:
            tamper(item)
        value.append("tampered")


def rendered(result: MergeResult) -> Any:
    return copy.deepcopy(
        (
            result.merged,
            result.report.to_json(),
            [item.to_json() for item in result.reviews],
            [(item.approve(), item.reject()) for item in result.reviews],
            result.changes,
            result.escalated,
        )
    )


@given(sm.merge_triples(), any_policies, st.data())
def test_the_result_is_unaffected_by_mutating_the_inputs_afterwards(
    triple: Triple, policy: Strategy | ResolutionPolicy, data: st.DataObject
) -> None:
    base, ours, theirs = triple
    stamps = [data.draw(any_stamps(*triple)) for _ in range(3)]
    result = merge(
        base,
        ours,
        theirs,
        policy=policy,
        ours_stamps=stamps[0],
        theirs_stamps=stamps[1],
        base_stamps=stamps[2],
    )
    before = rendered(result)
    for section in triple:
        tamper(section)
    for stamp_map in stamps:
        if stamp_map is not None:
            stamp_map.clear()
    assert rendered(result) == before


@given(sm.merge_triples(), any_policies)
def test_merging_never_changes_the_inputs(
    triple: Triple, policy: Strategy | ResolutionPolicy
) -> None:
    snapshot = copy.deepcopy(triple)
    merge(*triple, policy=policy)
    assert triple == snapshot


_GUARDS = RuleSet.from_dict(
    {
        "rules": [
            {"type": "range", "path": "target_c", "min": 10, "max": 30},
            {"type": "type", "path": "mode", "json_type": "string"},
            {"type": "one_of", "path": "fan", "values": ["auto", "low", "high", 0, 1]},
            {"type": "range", "path": "**.speed", "min": 0, "max": 5},
        ]
    }
)


@given(sm.merge_triples(), sm.builtin_strategies(), sections_)
def test_no_rule_violating_change_is_ever_in_a_merge_result(
    triple: Triple, strategy: Strategy, section: Section
) -> None:
    base, ours, theirs = triple
    result = merge(base, ours, theirs, policy=strategy, section=section, rules=_GUARDS)
    # Judged against the state in force (ours), nothing the merge changed breaks a rule.
    assert _GUARDS.evaluate(section, ours, result.merged, timestamp=0).ok
    assert result.rule_outcome is not None
    refused = {v.path for v in result.rule_outcome.violations}
    recorded = {r.path for r in result.report if r.kind.value == "business_rule_violation"}
    assert refused == recorded


@given(shadow_documents())
def test_stamps_at_agrees_with_the_stamps_of_the_whole_metadata(
    document: ShadowDocument,
) -> None:
    from shadowsync._conflict.merge import _stamp_at
    from shadowsync._tree import leaf_paths

    for section in ("desired", "reported"):
        metadata = document.section_metadata(section)
        whole = stamps_from_metadata(metadata)
        paths = leaf_paths(document.section(section))
        # Also ask for objects above the leaves and for paths the section does not hold.
        paths += [path[:-1] for path in paths if len(path) > 1]
        paths.append(("no-such-key",))
        expected = {}
        for path in paths:
            stamp = _stamp_at(whole, path) if path[0] in metadata else None
            if stamp is not None:
                expected[path] = stamp
        assert stamps_at(metadata, paths) == expected


_confusable = st.recursive(
    st.sampled_from((0, 1, 2, True, False, 0.0, -0.0, 1.0, 2.5, "a")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ab"), inner),
    max_leaves=6,
)
"""Values whose numbers and flags Python's == takes for one another (see `retyped`)."""

_retyped_pairs = related_values(3) | _confusable.map(lambda value: (value, retyped(value)))


@given(_retyped_pairs, st.booleans())
def test_a_value_changed_only_in_its_json_type_is_a_change(
    pair: tuple[Any, Any], theirs_changed: bool
) -> None:
    # The merge tells values apart by their JSON (`same`: 1 is 1.0, but True is not 1), not
    # by Python's ==: whichever side changed a value only in JSON type changed it.
    before, after = pair
    base = {"k": before}
    changed = {"k": copy.deepcopy(after)}
    ours, theirs = (copy.deepcopy(base), changed) if theirs_changed else (changed, base)
    result = merge(base, ours, theirs)
    if same(before, after):
        assert repr(result.merged) == repr(ours)
        assert result.changes == ()
    else:
        assert repr(result.merged) == repr(changed)
        change = ChangeClass.THEIRS_ONLY if theirs_changed else ChangeClass.OURS_ONLY
        assert [(c.path, c.change) for c in result.changes] == [(("k",), change)]


@given(sm.merge_triples(), sm.builtin_strategies(), sections_, st.data())
def test_a_merge_without_its_changes_is_the_same_merge(
    triple: Triple, strategy: Strategy, section: Section, data: st.DataObject
) -> None:
    # A decision asks `merge_sections` not to make the `PathChange` list it never reads: all
    # the rest is the merge with it, by repr.
    base, ours, theirs = triple
    stamps = data.draw(any_stamps(ours)), data.draw(any_stamps(theirs))
    results = [
        merge_sections(
            copy.deepcopy(base),
            copy.deepcopy(ours),
            copy.deepcopy(theirs),
            policy=merge_policy(strategy, section),
            section=section,
            thing_name="thing",
            shadow_name=None,
            ours_source="cloud",
            theirs_source="device",
            ours_stamps=stamps[0],
            theirs_stamps=stamps[1],
            changes=changes,
        )
        for changes in (True, False)
    ]
    assert results[1].changes == ()
    assert repr(attrs.evolve(results[1], changes=results[0].changes)) == repr(results[0])
    assert results[0] == merge(
        base,
        ours,
        theirs,
        policy=strategy,
        section=section,
        thing_name="thing",
        ours_source="cloud",
        theirs_source="device",
        ours_stamps=stamps[0],
        theirs_stamps=stamps[1],
    )
