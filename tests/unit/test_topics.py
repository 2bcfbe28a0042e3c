"""The reserved MQTT topics of the shadow service (MQTT, TOPICS, DEVCOMM)."""

from __future__ import annotations

import pytest

from shadowsync import ShadowLimits, topics
from shadowsync.errors import TopicError
from shadowsync.topics import OPERATIONS, RESPONSES, ShadowTopic

VALID_PAIRS: list[tuple[topics.Operation, topics.Response | None]] = [
    ("update", None),
    ("update", "accepted"),
    ("update", "rejected"),
    ("update", "delta"),
    ("update", "documents"),
    ("get", None),
    ("get", "accepted"),
    ("get", "rejected"),
    ("delete", None),
    ("delete", "accepted"),
    ("delete", "rejected"),
]


def test_operations_and_responses() -> None:
    assert OPERATIONS == ("update", "get", "delete")
    assert RESPONSES == ("accepted", "rejected", "delta", "documents")


def test_mqtt_prefixes() -> None:
    assert topics.prefix("thermostat-42") == "$aws/things/thermostat-42/shadow"
    assert (
        topics.prefix("thermostat-42", "firmware")
        == "$aws/things/thermostat-42/shadow/name/firmware"
    )


@pytest.mark.parametrize(("operation", "response"), VALID_PAIRS)
@pytest.mark.parametrize("shadow", [None, "firmware"], ids=["classic", "named"])
def test_build_and_parse_round_trip(
    operation: topics.Operation, response: topics.Response | None, shadow: str | None
) -> None:
    topic = topics.build("thermostat-42", operation, response, shadow_name=shadow)
    base = (
        "$aws/things/thermostat-42/shadow"
        if shadow is None
        else "$aws/things/thermostat-42/shadow/name/firmware"
    )
    expected = f"{base}/{operation}" if response is None else f"{base}/{operation}/{response}"
    assert topic == expected
    parsed = topics.parse(topic)
    assert parsed == ShadowTopic(
        thing_name="thermostat-42", shadow_name=shadow, operation=operation, response=response
    )
    assert parsed.topic == topic
    assert parsed.is_request is (response is None)


def test_mqtt_literal_topics() -> None:
    assert topics.build("lamp-1", "update", "delta", shadow_name="config") == (
        "$aws/things/lamp-1/shadow/name/config/update/delta"
    )
    assert topics.parse("$aws/things/mySimulatedThing/shadow/name/simShadow1/get/accepted") == (
        ShadowTopic(
            thing_name="mySimulatedThing",
            shadow_name="simShadow1",
            operation="get",
            response="accepted",
        )
    )


@pytest.mark.parametrize(
    ("thing", "shadow"),
    [
        ("name", None),
        ("shadow", "name"),
        ("t", "update"),
        ("t", "$config"),
        ("x" * 128, "s" * 64),
    ],
)
def test_tricky_but_valid_names_round_trip(thing: str, shadow: str | None) -> None:
    for operation, response in VALID_PAIRS:
        topic = topics.build(thing, operation, response, shadow_name=shadow)
        parsed = topics.parse(topic)
        assert (parsed.thing_name, parsed.shadow_name) == (thing, shadow)
        assert (parsed.operation, parsed.response) == (operation, response)


@pytest.mark.parametrize(
    ("thing", "shadow"),
    [
        ("a/b", None),
        ("a+b", None),
        ("a#b", None),
        ("", None),
        ("x" * 129, None),
        ("ok", "a/b"),
        ("ok", "a+b"),
        ("ok", "#"),
        ("ok", ""),
        ("ok", "s" * 65),
    ],
    ids=[
        "thing-slash",
        "thing-plus",
        "thing-hash",
        "thing-empty",
        "thing-129",
        "shadow-slash",
        "shadow-plus",
        "shadow-hash",
        "shadow-empty",
        "shadow-65",
    ],
)
def test_names_that_would_change_a_topic_are_refused(thing: str, shadow: str | None) -> None:
    with pytest.raises(TopicError):
        topics.build(thing, "update", shadow_name=shadow)
    with pytest.raises(TopicError):
        topics.prefix(thing, shadow)
    with pytest.raises(TopicError):
        topics.subscriptions(thing, shadow)


@pytest.mark.parametrize(
    ("operation", "response"),
    [("get", "delta"), ("get", "documents"), ("delete", "delta"), ("delete", "documents")],
)
def test_only_update_has_delta_and_documents(operation: str, response: str) -> None:
    with pytest.raises(TopicError):
        topics.build("t", operation, response)  # type: ignore[arg-type]
    with pytest.raises(TopicError):
        topics.parse(f"$aws/things/t/shadow/{operation}/{response}")
    with pytest.raises(TopicError):
        ShadowTopic(thing_name="t", operation=operation, response=response)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("operation", "response"), [("list", None), ("update", "ack"), ("Update", None)]
)
def test_build_refuses_unknown_operations_and_responses(operation: str, response: str) -> None:
    with pytest.raises(TopicError):
        topics.build("t", operation, response)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "topic",
    [
        pytest.param("$aws/things/t/shadow/update/ack", id="unknown-response"),
        pytest.param("$aws/things/t/shadow/list", id="unknown-operation"),
        pytest.param("$aws/things/t/shadow/update/accepted/extra", id="too-many-levels"),
        pytest.param("$aws/things/t/shadow/update/", id="trailing-slash"),
        pytest.param("$aws/things/t/shadow", id="no-operation"),
        pytest.param("$aws/things/t/shadow/name/update", id="name-without-shadow"),
        pytest.param("$aws/things/t/shadow/name//get", id="empty-shadow-name"),
        pytest.param("$aws/things//shadow/get", id="empty-thing-name"),
        pytest.param("$aws/things/t/shadow/name/s/get/delta", id="named-get-delta"),
        pytest.param("$aws/things/t/jobs/get", id="jobs-topic"),
        pytest.param("$AWS/things/t/shadow/update", id="upper-case-aws"),
        pytest.param("$aws/Things/t/shadow/update", id="upper-case-things"),
        pytest.param("$aws/things/t/Shadow/update", id="upper-case-shadow"),
        pytest.param("$aws/things/t/shadow/UPDATE", id="upper-case-operation"),
        pytest.param("$aws/things/t/shadow/update/Accepted", id="upper-case-response"),
        pytest.param("$aws/things/t/shadow/Name/s/update", id="upper-case-name"),
        pytest.param("aws/things/t/shadow/update", id="no-dollar"),
        pytest.param("devices/t/telemetry", id="not-a-shadow-topic"),
        pytest.param("$aws/things/t/shadow/#", id="wildcard-hash"),
        pytest.param("$aws/things/+/shadow/update", id="wildcard-plus"),
        pytest.param("", id="empty"),
    ],
)
def test_parse_refuses_what_is_not_a_shadow_topic(topic: str) -> None:
    with pytest.raises(TopicError):
        topics.parse(topic)


def test_parse_refuses_non_strings() -> None:
    with pytest.raises(TopicError):
        topics.parse(b"$aws/things/t/shadow/update")  # type: ignore[arg-type]


def test_parse_and_build_respect_custom_limits() -> None:
    limits = ShadowLimits(max_thing_name_length=5)
    with pytest.raises(TopicError):
        topics.parse("$aws/things/toolong/shadow/update", limits=limits)
    with pytest.raises(TopicError):
        topics.build("toolong", "update", limits=limits)
    assert topics.parse("$aws/things/short/shadow/update", limits=limits).thing_name == "short"


@pytest.mark.parametrize("shadow", [None, "firmware"], ids=["classic", "named"])
def test_mqtt_subscriptions_are_spelled_out_without_wildcards(shadow: str | None) -> None:
    base = topics.prefix("thermostat-42", shadow)
    assert topics.subscriptions("thermostat-42", shadow) == [
        f"{base}/update/accepted",
        f"{base}/update/rejected",
        f"{base}/update/delta",
        f"{base}/update/documents",
        f"{base}/get/accepted",
        f"{base}/get/rejected",
        f"{base}/delete/accepted",
        f"{base}/delete/rejected",
    ]
    for topic in topics.subscriptions("thermostat-42", shadow):
        assert "#" not in topic
        assert "+" not in topic
        assert not topics.parse(topic).is_request
