"""Fuzzing topics and names: hostile topics and names get a ShadowSyncError, never anything else.

A topic that parses must be exactly the topic its parts build (no alias can slip through), and
a name accepted anywhere must match the AWS pattern.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shadowsync import DEFAULT_LIMITS, errors, topics
from shadowsync.testing import InMemoryShadowService, ManualClock
from tests.strategies import (
    hostile_names,
    hostile_payloads,
    hostile_strings,
    hostile_topics,
    outcome,
    python_objects,
    shadow_names,
    thing_names,
)

THING_PATTERN = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
SHADOW_PATTERN = re.compile(r"[$a-zA-Z0-9:_-]{1,64}")

names = st.one_of(hostile_names(), thing_names(), shadow_names())
optional_names = st.one_of(st.none(), names)
operations = st.one_of(st.sampled_from(topics.OPERATIONS), hostile_strings(), python_objects())
responses = st.one_of(st.none(), st.sampled_from(topics.RESPONSES), hostile_strings())


def _valid(pattern: re.Pattern[str], name: object) -> bool:
    return isinstance(name, str) and pattern.fullmatch(name) is not None


def _service() -> InMemoryShadowService:
    service = InMemoryShadowService(clock=ManualClock(1_700_000_000))
    service.update("thing-1", {"state": {"reported": {"on": True}}}, shadow_name="config")
    return service


@given(st.one_of(hostile_topics(), python_objects()))
def test_topics_parse_raises_only_topic_errors(topic: Any) -> None:
    result = outcome(lambda: topics.parse(topic))
    if isinstance(result, errors.ShadowSyncError):
        assert isinstance(result, errors.TopicError), repr(result)


@given(hostile_topics())
def test_a_topic_that_parses_is_exactly_the_topic_its_parts_build(topic: str) -> None:
    parsed = outcome(lambda: topics.parse(topic))
    if isinstance(parsed, topics.ShadowTopic):
        rebuilt = topics.build(
            parsed.thing_name, parsed.operation, parsed.response, shadow_name=parsed.shadow_name
        )
        assert rebuilt == topic


@given(names, operations, responses, optional_names)
def test_topics_build_raises_only_topic_errors(
    thing: Any, operation: Any, response: Any, shadow: Any
) -> None:
    result = outcome(lambda: topics.build(thing, operation, response, shadow_name=shadow))
    if isinstance(result, errors.ShadowSyncError):
        assert isinstance(result, errors.TopicError), repr(result)


@given(names, operations, responses, optional_names)
def test_a_built_topic_has_valid_names_and_parses_back(
    thing: Any, operation: Any, response: Any, shadow: Any
) -> None:
    built = outcome(lambda: topics.build(thing, operation, response, shadow_name=shadow))
    if isinstance(built, str):
        assert _valid(THING_PATTERN, thing)
        assert shadow is None or _valid(SHADOW_PATTERN, shadow)
        parsed = topics.parse(built)
        assert (parsed.thing_name, parsed.shadow_name) == (thing, shadow)
        assert (parsed.operation, parsed.response) == (operation, response)


@given(names, optional_names)
def test_prefix_and_subscriptions_raise_only_topic_errors(thing: Any, shadow: Any) -> None:
    for call in (topics.prefix, topics.subscriptions):
        result = outcome(functools.partial(call, thing, shadow))
        if isinstance(result, errors.ShadowSyncError):
            assert isinstance(result, errors.TopicError), repr(result)


@given(names)
def test_check_thing_name_accepts_exactly_the_aws_pattern(name: Any) -> None:
    result = outcome(lambda: DEFAULT_LIMITS.check_thing_name(name))
    if _valid(THING_PATTERN, name):
        assert result == name
    else:
        assert isinstance(result, errors.InvalidNameError)
        assert (result.code, result.message) == (400, "Invalid thing name")


@given(names)
def test_check_shadow_name_accepts_exactly_the_aws_pattern(name: Any) -> None:
    result = outcome(lambda: DEFAULT_LIMITS.check_shadow_name(name))
    if _valid(SHADOW_PATTERN, name):
        assert result == name
    else:
        assert isinstance(result, errors.InvalidNameError)
        assert (result.code, result.message) == (400, "Invalid shadow name")


@given(names, optional_names)
def test_service_data_plane_refuses_bad_names_with_invalid_name_error(
    thing: Any, shadow: Any
) -> None:
    service = _service()
    valid = _valid(THING_PATTERN, thing) and (shadow is None or _valid(SHADOW_PATTERN, shadow))
    calls = [
        lambda: service.update(thing, {"state": {}}, shadow),
        lambda: service.get(thing, shadow),
        lambda: service.document(thing, shadow),
        lambda: service.seed(thing, {"state": {}}, shadow),
        lambda: service.delete(thing, shadow),
    ]
    for call in calls:
        result = outcome(call)
        if not valid:
            assert isinstance(result, errors.InvalidNameError), repr(result)
        elif isinstance(result, errors.ShadowSyncError):
            assert isinstance(result, errors.ShadowNotFoundError), repr(result)


@given(
    names,
    st.one_of(st.none(), hostile_strings(), python_objects()),
    st.one_of(st.none(), st.integers(), python_objects()),
)
def test_list_named_shadows_raises_only_shadowsync_errors(
    thing: Any, next_token: Any, page_size: Any
) -> None:
    service = _service()
    result = outcome(
        lambda: service.list_named_shadows(thing, next_token=next_token, page_size=page_size)
    )
    if isinstance(result, dict):
        assert isinstance(result["results"], list)
        json.dumps(result)


@given(st.one_of(hostile_topics(), python_objects()), hostile_payloads())
def test_service_handle_of_a_hostile_topic_answers_only_on_shadow_response_topics(
    topic: Any, payload: Any
) -> None:
    service = _service()
    replies = outcome(lambda: service.handle(topic, payload))
    assert isinstance(replies, list)
    for reply_topic, body in replies:
        assert not topics.parse(reply_topic).is_request
        assert isinstance(json.loads(body.decode("utf-8")), dict)
