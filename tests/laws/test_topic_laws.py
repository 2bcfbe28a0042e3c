"""Laws of the reserved shadow topics: build and parse are inverse, names cannot add levels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowsync import errors, topics
from tests.strategies import (
    invalid_shadow_names,
    invalid_thing_names,
    operation_response_pairs,
    shadow_names,
    thing_names,
)

optional_shadow_names = st.one_of(st.none(), shadow_names())
Pair = tuple[topics.Operation, topics.Response | None]


def _written_by_hand(thing: str, shadow: str | None, pair: Pair) -> str:
    operation, response = pair
    topic = f"$aws/things/{thing}/shadow"
    if shadow is not None:
        topic += f"/name/{shadow}"
    topic += f"/{operation}"
    if response is not None:
        topic += f"/{response}"
    return topic


@given(thing_names(), optional_shadow_names, operation_response_pairs())
def test_parse_inverts_build(thing: str, shadow: str | None, pair: Pair) -> None:
    operation, response = pair
    topic = topics.build(thing, operation, response, shadow_name=shadow)
    assert topics.parse(topic) == topics.ShadowTopic(
        thing_name=thing, shadow_name=shadow, operation=operation, response=response
    )


@given(thing_names(), optional_shadow_names, operation_response_pairs())
def test_build_writes_the_aws_topic_layout(thing: str, shadow: str | None, pair: Pair) -> None:
    operation, response = pair
    built = topics.build(thing, operation, response, shadow_name=shadow)
    assert built == _written_by_hand(thing, shadow, pair)


@given(thing_names(), optional_shadow_names, operation_response_pairs())
def test_build_inverts_parse(thing: str, shadow: str | None, pair: Pair) -> None:
    topic = _written_by_hand(thing, shadow, pair)
    parsed = topics.parse(topic)
    assert (
        topics.build(
            parsed.thing_name, parsed.operation, parsed.response, shadow_name=parsed.shadow_name
        )
        == topic
    )
    assert parsed.topic == topic


@given(thing_names(), optional_shadow_names, operation_response_pairs())
def test_a_topic_is_a_request_exactly_when_it_has_no_response(
    thing: str, shadow: str | None, pair: Pair
) -> None:
    parsed = topics.parse(_written_by_hand(thing, shadow, pair))
    assert parsed.is_request is (pair[1] is None)


@given(thing_names(), optional_shadow_names, operation_response_pairs())
def test_every_topic_of_a_shadow_starts_with_its_prefix(
    thing: str, shadow: str | None, pair: Pair
) -> None:
    topic = topics.build(thing, pair[0], pair[1], shadow_name=shadow)
    assert topic.startswith(topics.prefix(thing, shadow) + "/")


@given(thing_names(), optional_shadow_names, operation_response_pairs())
def test_names_never_add_topic_levels(thing: str, shadow: str | None, pair: Pair) -> None:
    topic = topics.build(thing, pair[0], pair[1], shadow_name=shadow)
    expected_levels = 5 + (2 if shadow is not None else 0) + (1 if pair[1] is not None else 0)
    assert len(topic.split("/")) == expected_levels
    assert not any(mark in topic for mark in ("+", "#"))


@given(thing_names(), optional_shadow_names)
def test_subscriptions_are_the_eight_response_topics_of_that_shadow(
    thing: str, shadow: str | None
) -> None:
    subscribed = topics.subscriptions(thing, shadow)
    parsed = [topics.parse(topic) for topic in subscribed]
    assert len(set(subscribed)) == 8
    assert all(not topic.is_request for topic in parsed)
    assert {(topic.thing_name, topic.shadow_name) for topic in parsed} == {(thing, shadow)}
    responses = {(topic.operation, topic.response) for topic in parsed}
    assert responses == {pair for pair in _all_pairs() if pair[1] is not None}


def _all_pairs() -> set[Pair]:
    pairs: set[Pair] = set()
    for operation in topics.OPERATIONS:
        pairs.add((operation, None))
        for response in topics.RESPONSES:
            if operation == "update" or response in ("accepted", "rejected"):
                pairs.add((operation, response))
    return pairs


@given(
    thing_names(),
    optional_shadow_names,
    st.sampled_from(("get", "delete")),
    st.sampled_from(("delta", "documents")),
)
def test_only_update_has_delta_and_documents_topics(
    thing: str, shadow: str | None, operation: topics.Operation, response: topics.Response
) -> None:
    with pytest.raises(errors.TopicError):
        topics.build(thing, operation, response, shadow_name=shadow)
    with pytest.raises(errors.TopicError):
        topics.parse(_written_by_hand(thing, shadow, (operation, response)))


@given(invalid_thing_names(), optional_shadow_names, operation_response_pairs())
def test_an_invalid_thing_name_is_never_built_into_a_topic(
    thing: str, shadow: str | None, pair: Pair
) -> None:
    with pytest.raises(errors.TopicError):
        topics.build(thing, pair[0], pair[1], shadow_name=shadow)


@given(thing_names(), invalid_shadow_names(), operation_response_pairs())
def test_an_invalid_shadow_name_is_never_built_into_a_topic(
    thing: str, shadow: str, pair: Pair
) -> None:
    with pytest.raises(errors.TopicError):
        topics.build(thing, pair[0], pair[1], shadow_name=shadow)


@given(thing_names(), optional_shadow_names, operation_response_pairs())
def test_topics_are_case_sensitive_in_the_operation_and_response_levels(
    thing: str, shadow: str | None, pair: Pair
) -> None:
    levels = _written_by_hand(thing, shadow, pair).split("/")
    levels[-1] = levels[-1].upper()
    with pytest.raises(errors.TopicError):
        topics.parse("/".join(levels))
