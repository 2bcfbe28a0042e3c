"""deploy/template.yaml, proved without an AWS account.

The translated stack is created in moto (see ``conftest.py``); the handlers named by the
template's ``Handler:`` strings then run in process against its resources, with the environment
the template sets, on events shaped by the topic rules' SQL. Every AWS call they make is
recorded and checked against the roles' ``HandlerCalls`` policies, both ways.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import io
import json
import re
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import aws_lambda_powertools
import boto3
import pytest

from shadowsync import topics
from shadowsync.aws.entry import ConfigurationError, conflict_resolver, sync_manager
from tests.deploy.conftest import ACCOUNT, MOTO_CANNOT_CREATE, REGION, source_template

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.deploy.conftest import Stack

THING = "sensor-001"
INITIAL = {"samplingRate": 30, "alertThreshold": 80, "operatingMode": "normal"}
CLOUD = {"samplingRate": 60, "alertThreshold": 90, "operatingMode": "high_performance"}
DEVICE = {"samplingRate": 30, "alertThreshold": 85, "operatingMode": "power_save"}
_SQL = re.compile(r"^SELECT \*((?:, topic\(\d+\) AS \w+)*) FROM '([^']+)'$")
_SELECTED = re.compile(r"topic\((\d+)\) AS (\w+)")
# IAM's service prefix of each client the handlers create.
_IAM_PREFIX = {
    "iot-data": "iot",
    "dynamodb": "dynamodb",
    "events": "events",
    "cloudwatch": "cloudwatch",
}


# --- the topic rules ------------------------------------------------------------------------


def _parse_sql(sql: str) -> tuple[str, dict[str, int]]:
    match = _SQL.match(sql)
    assert match is not None, sql
    return match.group(2), {name: int(n) for n, name in _SELECTED.findall(match.group(1))}


def _matches(topic_filter: str, topic: str) -> bool:
    wanted, parts = topic_filter.split("/"), topic.split("/")
    return len(wanted) == len(parts) and all(
        w in ("+", p) for w, p in zip(wanted, parts, strict=False)
    )


def rule_event(sql: str, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What a rule with ``sql`` hands the resolver for ``payload`` published on ``topic``."""
    topic_filter, selected = _parse_sql(sql)
    assert _matches(topic_filter, topic), (topic_filter, topic)
    levels = topic.split("/")
    return {**payload, **{name: levels[n - 1] for name, n in selected.items()}}


def _rule_for(stack: Stack, shadow: str | None) -> str:
    for rule in stack.rules.values():
        topic_filter, _ = _parse_sql(rule["sql"])
        if _matches(topic_filter, topics.build(THING, "update", "delta", shadow_name=shadow)):
            return str(rule["sql"])
    raise AssertionError(f"no rule for the delta topic of shadow {shadow!r}")


@pytest.mark.parametrize("shadow", [None, "configuration"])
def test_the_rules_select_the_names_where_shadowsync_topics_puts_them(
    stack: Stack, shadow: str | None
) -> None:
    topic = topics.build("pump-7", "update", "delta", shadow_name=shadow)
    event = rule_event(_rule_for(stack, shadow), topic, {"state": {}})
    parsed = topics.parse(topic)
    assert event["thingName"] == parsed.thing_name == "pump-7"
    assert event.get("shadowName") == parsed.shadow_name == shadow


def test_each_rule_has_the_error_queue_and_the_resolver(stack: Stack) -> None:
    resolver_arn = stack.arn("ConflictResolver")
    queue = stack.physical["RuleErrorQueue"]
    assert len(stack.rules) == 2
    for rule in stack.rules.values():
        assert rule["actions"] == [{"lambda": {"functionArn": resolver_arn}}]
        assert rule["errorAction"]["sqs"]["queueUrl"] == queue
        assert rule["errorAction"]["sqs"]["roleArn"] == stack.arn("TopicRuleRole")


# --- the stack as created -------------------------------------------------------------------


def test_moto_created_every_declared_resource_it_can(stack: Stack) -> None:
    declared = {k: v["Type"] for k, v in stack.template["Resources"].items()}
    expected = {k: t for k, t in declared.items() if t not in MOTO_CANNOT_CREATE}
    assert stack.created == expected
    assert set(stack.rules) == {k for k, t in declared.items() if t == "AWS::IoT::TopicRule"}
    # Every type on the list is in the template, so the list stays short and true.
    assert set(declared.values()) >= MOTO_CANNOT_CREATE


def test_the_functions_are_configured_as_declared(stack: Stack) -> None:
    lam = stack.client("lambda")
    resolver = stack.physical["ConflictResolver"]
    assert lam.get_function_concurrency(FunctionName=resolver)["ReservedConcurrentExecutions"] == 20
    invoke_config = stack.template["Resources"]["ConflictResolverEventInvokeConfig"]
    assert invoke_config["Properties"]["DestinationConfig"]["OnFailure"] == {
        "Destination": {"Fn::GetAtt": ["ResolverFailureQueue", "Arn"]}
    }
    rules = stack.client("events").list_rules()["Rules"]
    schedule = next(r for r in rules if r["Name"] == stack.physical["SyncManagerHealthReport"])
    assert schedule["ScheduleExpression"] == "rate(15 minutes)"


def test_tables_keep_point_in_time_recovery(stack: Stack) -> None:
    # moto does not apply PointInTimeRecoverySpecification, so the template is read instead.
    for logical in ("HistoryTable", "DeviceConfigTable"):
        properties = source_template()["Resources"][logical]["Properties"]
        assert properties["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }


# --- the handlers in process ----------------------------------------------------------------


class Recorder:
    """The AWS calls of the handlers, as (IAM action, resource ARN, namespace or None)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []

    def __call__(self, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        prefix = _IAM_PREFIX[model.service_model.service_name]
        operation = model.name
        if operation == "TransactWriteItems":
            # IAM authorises each item with the action of its kind (Put: dynamodb:PutItem).
            for item in params["TransactItems"]:
                ((kind, body),) = item.items()
                self.calls.append((f"dynamodb:{kind}Item", _table_arn(body["TableName"]), None))
            return
        if operation in ("BatchGetItem", "BatchWriteItem"):
            # One call over several tables: IAM authorises it on each table it names.
            for table in params["RequestItems"]:
                self.calls.append((f"dynamodb:{operation}", _table_arn(table), None))
            return
        if prefix == "iot":
            resource = f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{params['thingName']}"
        elif prefix == "dynamodb":
            resource = _table_arn(params["TableName"])
        elif prefix == "events":
            buses = {entry.get("EventBusName", "default") for entry in params["Entries"]}
            (bus,) = buses
            resource = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}"
        else:
            resource = "*"
        self.calls.append((f"{prefix}:{operation}", resource, params.get("Namespace")))


def _table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


@pytest.fixture
def recorded(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """Each function's environment as the template sets it; every AWS call recorded."""
    recorder = Recorder()
    real_session = boto3.session.Session

    def recording_session(*args: Any, **kwargs: Any) -> Any:
        session = real_session(*args, **kwargs)
        session.events.register("before-parameter-build", recorder)
        return session

    monkeypatch.setattr(boto3.session, "Session", recording_session)
    # Lambda sets these; the template's IOT_DATA_ENDPOINT is empty (boto3's default), which
    # the test replaces with the moto server, as it does every other endpoint.
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint)
    monkeypatch.setenv("AWS_REGION", REGION)
    for entry in (conflict_resolver, sync_manager):
        entry.reset()
    yield recorder
    for entry in (conflict_resolver, sync_manager):
        entry.reset()


def _use_environment(stack: Stack, function: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The function's handler, imported from its Handler string, in its environment."""
    config = stack.client("lambda").get_function_configuration(
        FunctionName=stack.physical[function]
    )
    for name, value in config["Environment"]["Variables"].items():
        monkeypatch.setenv(name, str(value))  # Lambda passes every value as a string
    monkeypatch.setenv("IOT_DATA_ENDPOINT", stack.endpoint)
    module, _, name = config["Handler"].rpartition(".")
    return getattr(importlib.import_module(module), name)


def _policy(stack: Stack, role: str) -> list[dict[str, Any]]:
    iam = stack.client("iam")
    document = iam.get_role_policy(RoleName=stack.physical[role], PolicyName="HandlerCalls")
    policy = document["PolicyDocument"]
    if isinstance(policy, str):
        # URL-encoded JSON, as IAM answers; moto's CloudFormation stores the Python repr of
        # the statement it was given, which reads back as a literal.
        text = urllib.parse.unquote(policy)
        try:
            policy = json.loads(text)
        except ValueError:
            policy = ast.literal_eval(text)
    statements: list[dict[str, Any]] = policy["Statement"]
    return statements


def _allows(statement: dict[str, Any], call: tuple[str, str, str | None]) -> bool:
    action, resource, namespace = call
    actions = (
        statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    )
    if statement["Effect"] != "Allow" or action not in actions:
        return False
    if not fnmatch.fnmatchcase(resource, statement["Resource"]):
        return False
    condition = statement.get("Condition")
    if condition is None:
        return True
    assert condition == {"StringEquals": {"cloudwatch:namespace": "IoT/ShadowSync"}}, condition
    return namespace == "IoT/ShadowSync"


# Actions a handler needs on paths a single scenario does not reach, each with its path.
_OTHER_PATHS = {
    "dynamodb:BatchGetItem": "the head items of several shadows are read in one call",
    "dynamodb:DeleteItem": "a 409 takes back the records it stored, an approved review leaves "
    "the pending range (a transaction's Delete)",
    "dynamodb:BatchWriteItem": "a table written before head items is migrated on first use",
    "dynamodb:Query": "a thing without head items has its records read once to build them",
}


def assert_least_privilege(
    stack: Stack, role: str, calls: list[tuple[str, str, str | None]]
) -> None:
    """Every call is allowed, and every action a statement allows was needed by a call (or is
    one of `_OTHER_PATHS`, needed on a path the scenario does not take)."""
    statements = _policy(stack, role)
    for call in calls:
        assert any(_allows(s, call) for s in statements), f"{role} does not allow {call}"
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        for action in actions:
            if action in _OTHER_PATHS:
                continue
            assert any(c[0] == action and _allows(statement, c) for c in calls), (
                f"{role} allows {action} on {statement['Resource']}, which no call needed"
            )


def _messages(stack: Stack, queue: str, expected: int) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    url = stack.physical[queue]
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while len(found) < expected and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def _delta_payload(stack: Stack, shadow: str | None) -> dict[str, Any]:
    """The message AWS publishes on the delta topic (moto does not publish it)."""
    iot_data = stack.client("iot-data")
    names = {} if shadow is None else {"shadowName": shadow}
    document = json.loads(iot_data.get_thing_shadow(thingName=THING, **names)["payload"].read())
    return {
        "version": document["version"],
        "timestamp": document["timestamp"],
        "state": document["state"]["delta"],
        "metadata": document["metadata"]["desired"],
    }


def _update(stack: Stack, shadow: str | None, state: dict[str, Any]) -> None:
    names = {} if shadow is None else {"shadowName": shadow}
    stack.client("iot-data").update_thing_shadow(
        thingName=THING, payload=json.dumps({"state": state}).encode(), **names
    )


def test_a_missing_variable_fails_the_first_invocation_naming_it(
    stack: Stack, recorded: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = _use_environment(stack, "ConflictResolver", monkeypatch)
    monkeypatch.delenv("SHADOW_HISTORY_TABLE")
    with pytest.raises(ConfigurationError, match=r"^SHADOW_HISTORY_TABLE: is not set"):
        handler({"thingName": THING, "state": {}}, None)
    monkeypatch.setenv("AUTO_RESOLVE_THRESHOLD", "five")
    monkeypatch.setenv("SHADOW_HISTORY_TABLE", "t")
    with pytest.raises(ConfigurationError, match=r"^AUTO_RESOLVE_THRESHOLD: must be a whole"):
        handler({"thingName": THING, "state": {}}, None)
    assert recorded.calls == []


@pytest.mark.parametrize("shadow", [None, "configuration"])
def test_a_delta_from_either_rule_is_resolved_recorded_and_emitted(
    stack: Stack,
    recorded: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    shadow: str | None,
) -> None:
    log = io.StringIO()
    real_logger = aws_lambda_powertools.Logger
    # Powertools keeps one logging handler per service name, bound to the stream it was first
    # given; a service name of this test's own keeps its log lines apart.
    monkeypatch.setattr(
        aws_lambda_powertools,
        "Logger",
        lambda service: real_logger(service=f"{service}-{shadow}", stream=log),
    )
    stack.client("iot").create_thing(thingName=THING)
    handler = _use_environment(stack, "ConflictResolver", monkeypatch)
    sql = _rule_for(stack, shadow)
    topic = topics.build(THING, "update", "delta", shadow_name=shadow)
    _update(stack, shadow, {"desired": INITIAL, "reported": INITIAL})
    baseline = handler(rule_event(sql, topic, {"state": {}, "version": 1}), None)
    assert (baseline["statusCode"], baseline["decision"]) == (200, "accept")
    _update(stack, shadow, {"desired": CLOUD})
    _update(stack, shadow, {"reported": DEVICE})

    summary = handler(rule_event(sql, topic, _delta_payload(stack, shadow)), None)

    assert summary["statusCode"] == 200
    assert summary["recordsStored"] == 1
    assert (summary["eventsSent"], summary["eventsFailed"]) == (1, [])
    items = stack.client("dynamodb").query(
        TableName=stack.physical["HistoryTable"],
        # Records only: the thing's and the shadows' head items sit at sequence 0 and below.
        KeyConditionExpression="thingName = :t AND #s > :zero",
        ExpressionAttributeNames={"#s": "sequence"},
        ExpressionAttributeValues={":t": {"S": THING}, ":zero": {"N": "0"}},
    )["Items"]
    label = "$default" if shadow is None else shadow
    assert [i["shadowName"]["S"] for i in items][-2:] == [label, label]
    alerts = _messages(stack, "ConflictAlertQueue", 1)
    assert [a["detail-type"] for a in alerts] == ["Conflict Resolved"]
    assert alerts[0]["detail"]["thingName"] == THING
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    emf = [line["_aws"]["CloudWatchMetrics"] for line in lines if "_aws" in line]
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert emf, "no metrics written"
    for (directive,) in emf:
        assert (directive["Namespace"], directive["Dimensions"]) == ("IoT/ShadowSync", [[]])
    served = [line for line in lines if line.get("message") == "invocation served"]
    assert [(line["thingName"], line.get("shadowName"), line["decision"]) for line in served] == [
        (THING, shadow, "accept"),
        (THING, shadow, "merge"),
    ]
    assert summary["decision"] == "merge"  # so the resolver's every call was needed once
    assert_least_privilege(stack, "ConflictResolverRole", recorded.calls)


def test_the_scheduled_health_report_runs_with_the_schedule_payload(
    stack: Stack, recorded: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = stack.physical["SyncManagerHealthReport"]
    (target,) = stack.client("events").list_targets_by_rule(Rule=rule)["Targets"]
    assert target["Arn"] == stack.arn("SyncManager")
    handler = _use_environment(stack, "SyncManager", monkeypatch)

    response = handler(json.loads(target["Input"]), None)

    assert response["statusCode"] == 200, response
    body = json.loads(response["body"])
    assert [d["thingName"] for d in body["deviceHealth"]] == ["sync-demo-device"]
    assert {c[0] for c in recorded.calls} == {
        "iot:ListNamedShadowsForThing",
        "iot:GetThingShadow",
        "dynamodb:GetItem",
        "dynamodb:Query",
    }


def test_the_sync_manager_role_allows_exactly_what_its_operations_call(
    stack: Stack, recorded: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    thing = "offline-7"
    stack.client("iot").create_thing(thingName=thing)
    handler = _use_environment(stack, "SyncManager", monkeypatch)
    now = int(time.time())
    offline = handler(
        {
            "operation": "offline_sync",
            "thingName": thing,
            "offlineDurationSeconds": 600,
            "cachedChanges": [
                {"shadowName": "telemetry", "state": {"temperature": 21.5}, "timestamp": now}
            ],
        },
        None,
    )
    assert offline["statusCode"] == 200, offline
    summary = handler({"operation": "conflict_summary", "timeRangeHours": 24}, None)
    assert summary["statusCode"] == 200, summary
    report = handler({"operation": "health_report", "thingNames": [thing]}, None)
    assert report["statusCode"] == 200, report
    assert_least_privilege(stack, "SyncManagerRole", recorded.calls)


def test_clients_are_created_once_per_container(
    stack: Stack, recorded: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions: list[Any] = []
    recording_session = boto3.session.Session  # the fixture's, which records calls

    def counted(*args: Any, **kwargs: Any) -> Any:
        sessions.append(recording_session(*args, **kwargs))
        return sessions[-1]

    monkeypatch.setattr(boto3.session, "Session", counted)
    handler = _use_environment(stack, "SyncManager", monkeypatch)
    request = {"operation": "conflict_summary", "timeRangeHours": 1}
    assert handler(request, None)["statusCode"] == 200
    assert handler(request, None)["statusCode"] == 200
    assert len(sessions) == 1


def test_every_checkov_skip_gives_its_reason() -> None:
    skips = [
        (logical, skip)
        for logical, resource in source_template()["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for logical, skip in skips:
        assert set(skip) == {"id", "comment"}, (logical, skip)
        assert len(skip["comment"].split()) >= 5, (logical, skip)


# The Terraform module's variables (seed 001) and the parameters that stand for them.
TERRAFORM_VARIABLES = {
    "default_conflict_strategy": "DefaultConflictStrategy",
    "auto_resolve_threshold": "AutoResolveThreshold",
    "health_check_schedule": "HealthCheckSchedule",
    "log_retention_days": "LogRetentionDays",
    "conflict_resolver_memory": "ConflictResolverMemory",
    "conflict_resolver_timeout": "ConflictResolverTimeout",
    "sync_manager_memory": "SyncManagerMemory",
    "sync_manager_timeout": "SyncManagerTimeout",
    "dynamodb_billing_mode": "DynamoDBBillingMode",
    "dynamodb_read_capacity": "DynamoDBReadCapacity",
    "dynamodb_write_capacity": "DynamoDBWriteCapacity",
}
TERRAFORM_DEFAULTS = {
    "DefaultConflictStrategy": "field_level_merge",
    "AutoResolveThreshold": 5,
    "HealthCheckSchedule": "rate(15 minutes)",
    "LogRetentionDays": 14,
    "ConflictResolverMemory": 512,
    "ConflictResolverTimeout": 300,
    "SyncManagerMemory": 256,
    "SyncManagerTimeout": 300,
    "DynamoDBBillingMode": "PAY_PER_REQUEST",
    "DynamoDBReadCapacity": 5,
    "DynamoDBWriteCapacity": 5,
}


def test_the_terraform_variables_are_parameters_with_their_defaults() -> None:
    parameters = source_template()["Parameters"]
    assert set(TERRAFORM_VARIABLES.values()) <= set(parameters)
    for name, default in TERRAFORM_DEFAULTS.items():
        assert parameters[name]["Default"] == default, name
    strategies = parameters["DefaultConflictStrategy"]["AllowedValues"]
    assert strategies == [
        "last_writer_wins",
        "field_level_merge",
        "priority_based",
        "manual_review",
    ]
