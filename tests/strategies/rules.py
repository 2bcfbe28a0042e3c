"""Hypothesis strategies for business rules: sections, metadata, built-in rules, versions.

Keys come from a small alphabet so that generated rules and generated sections meet often.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from hypothesis import strategies as st

from shadowsync.rules import (
    AllowedTransitions,
    Change,
    Custom,
    MaxRateOfChange,
    NoFirmwareDowngrade,
    OneOf,
    PathPattern,
    Range,
    RuleSet,
    TypeIs,
)

if TYPE_CHECKING:
    from shadowsync import JSONObject, JSONValue

KEYS = ("mode", "t", "fw", "door", "lights", "a")
STATES = ("closed", "open", "locked", "ajar")
VERSIONS = ("1.9.0", "1.10.0", "v2.0.0-rc.1", "2.0.0", "1.0.0-alpha", "1.0.0+build.7", "latest")

keys = st.sampled_from(KEYS)

numbers = st.integers(min_value=-60, max_value=60) | st.floats(
    min_value=-60, max_value=60, allow_nan=False, allow_infinity=False
)

scalars: st.SearchStrategy[JSONValue] = st.one_of(
    numbers,
    st.booleans(),
    st.sampled_from(STATES + VERSIONS + ("heat", "cool", "off")),
)

leaves: st.SearchStrategy[JSONValue] = scalars | st.lists(scalars, max_size=3)


def _objects(children: st.SearchStrategy[JSONValue]) -> st.SearchStrategy[JSONValue]:
    return st.dictionaries(keys, children, max_size=4)


values: st.SearchStrategy[JSONValue] = st.recursive(leaves, _objects, max_leaves=8)

sections: st.SearchStrategy[JSONObject] = st.dictionaries(keys, values, max_size=4)
"""A desired or reported section (no nulls; objects nest a few levels)."""

timestamps = st.integers(min_value=1_700_000_000, max_value=1_700_000_100)


@st.composite
def metadata_for(draw: st.DrawFn, section: JSONObject) -> JSONObject:
    """Per-leaf ``{"timestamp": t}`` metadata for ``section``, as a shadow document keeps it."""

    def meta(value: JSONValue) -> Any:
        if isinstance(value, dict):
            return {key: meta(item) for key, item in value.items()}
        if isinstance(value, list):
            stamp = draw(timestamps)
            return [{"timestamp": stamp} for _ in value]
        return {"timestamp": draw(timestamps)}

    result = meta(section)
    assert isinstance(result, dict)
    return result


pattern_parts = st.lists(st.sampled_from((*KEYS, "*", "**")), min_size=1, max_size=3)
patterns = pattern_parts.map(lambda parts: PathPattern(parts=tuple(parts)))

# Keys a declarative config must be able to carry: dots and the empty key force the list form.
config_keys = st.sampled_from((*KEYS, "ip.v4", "", "with space", "*", "**"))
config_patterns = st.lists(config_keys, min_size=1, max_size=3).map(
    lambda parts: PathPattern(parts=tuple(parts))
)

names = st.none() | st.text(alphabet="abcdefghijklmnopqrstuvwxyz-:._", min_size=1, max_size=12)


def _named(name: str | None) -> dict[str, Any]:
    return {} if name is None else {"name": name}


@st.composite
def ranges(draw: st.DrawFn, paths: st.SearchStrategy[PathPattern] = patterns) -> Range:
    low = draw(st.none() | numbers)
    high = draw(st.none() | numbers)
    if low is None and high is None:
        high = draw(numbers)
    if low is not None and high is not None and high < low:
        low, high = high, low
    inclusive = draw(st.booleans()) if low != high else True
    return Range(
        path=draw(paths),
        minimum=low,
        maximum=high,
        inclusive=inclusive,
        **_named(draw(names)),
    )


@st.composite
def one_ofs(draw: st.DrawFn, paths: st.SearchStrategy[PathPattern] = patterns) -> OneOf:
    return OneOf(
        path=draw(paths),
        values=draw(st.lists(leaves, min_size=1, max_size=4)),
        **_named(draw(names)),
    )


@st.composite
def type_checks(draw: st.DrawFn, paths: st.SearchStrategy[PathPattern] = patterns) -> TypeIs:
    json_type = draw(st.sampled_from(("string", "number", "integer", "boolean", "object", "array")))
    return TypeIs(path=draw(paths), json_type=json_type, **_named(draw(names)))


@st.composite
def transitions(
    draw: st.DrawFn, paths: st.SearchStrategy[PathPattern] = patterns
) -> AllowedTransitions:
    table = draw(
        st.dictionaries(
            st.sampled_from(STATES),
            st.lists(st.sampled_from(STATES), max_size=3, unique=True),
            min_size=1,
        )
    )
    states = sorted(set(table) | {s for targets in table.values() for s in targets})
    initial = draw(st.booleans() | st.lists(st.sampled_from(states), max_size=2, unique=True))
    return AllowedTransitions(
        path=draw(paths), transitions=table, allow_initial=initial, **_named(draw(names))
    )


@st.composite
def firmware_rules(
    draw: st.DrawFn, paths: st.SearchStrategy[PathPattern] = patterns
) -> NoFirmwareDowngrade:
    return NoFirmwareDowngrade(path=draw(paths), **_named(draw(names)))


@st.composite
def rate_rules(
    draw: st.DrawFn, paths: st.SearchStrategy[PathPattern] = patterns
) -> MaxRateOfChange:
    rate = draw(
        st.integers(min_value=0, max_value=5)
        | st.floats(min_value=0, max_value=5, allow_nan=False, allow_infinity=False)
    )
    return MaxRateOfChange(path=draw(paths), max_delta_per_second=rate, **_named(draw(names)))


def _short_strings(change: Change) -> str | None:
    if isinstance(change.new, str) and len(change.new) > 5:
        return "strings longer than 5 characters are refused"
    return None


@st.composite
def custom_rules(draw: st.DrawFn) -> Custom:
    return Custom(name="short-strings", path=draw(patterns), func=_short_strings)


BuiltInRule: TypeAlias = (
    Range | OneOf | TypeIs | AllowedTransitions | NoFirmwareDowngrade | MaxRateOfChange
)


def built_in_rules(
    paths: st.SearchStrategy[PathPattern] = patterns,
) -> st.SearchStrategy[BuiltInRule]:
    """Any built-in rule (the ones with a declarative form) on a path drawn from ``paths``."""
    return st.one_of(
        ranges(paths),
        one_ofs(paths),
        type_checks(paths),
        transitions(paths),
        firmware_rules(paths),
        rate_rules(paths),
    )


rule_sets = st.lists(st.one_of(built_in_rules(), custom_rules()), max_size=5).map(
    lambda rules: RuleSet(rules=rules)
)
"""Rule sets mixing every rule type, custom rules included."""

serialisable_rule_sets = st.lists(built_in_rules(config_patterns), max_size=5).map(
    lambda rules: RuleSet(rules=rules)
)
"""Rule sets of built-in rules only, on paths with awkward keys."""


@st.composite
def semantic_versions(draw: st.DrawFn) -> str:
    """Semantic version strings from a few cores (so precedence ties are common)."""
    # Few cores, chosen so that numeric order differs from text order (1.9.0 < 1.10.0).
    core = draw(st.sampled_from(("0.0.0", "0.1.0", "1.0.0", "1.0.1", "1.9.0", "1.10.0", "2.0.0")))
    identifiers = st.sampled_from(("0", "1", "2", "11", "alpha", "beta", "rc", "a-1", "0a", "-"))
    prerelease = draw(st.lists(identifiers, max_size=3))
    build = draw(st.lists(st.sampled_from(("b1", "007", "exp-sha")), max_size=2))
    text = draw(st.sampled_from(("", "v"))) + core
    if prerelease:
        text += "-" + ".".join(prerelease)
    if build:
        text += "+" + ".".join(build)
    return text
