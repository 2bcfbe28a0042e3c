"""The stack of deploy/template.yaml, translated offline and created in a moto server.

The SAM template is translated with aws-sam-translator (region set), then created in moto's
CloudFormation. What moto's CloudFormation cannot create is listed in `MOTO_CANNOT_CREATE`;
the IoT topic rules among them are created through moto's IoT API from the template's own
properties instead, so the handlers run against every resource the rules need.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import attrs
import boto3
import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# The adapter tests' moto server fixture (fake credentials, no AWS config), one for this package.
from tests.adapters.aws.conftest import moto_endpoint  # noqa: F401

pytest.importorskip("samtranslator", reason="the deploy extra is not installed")


TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
STACK = "shadowsync"
CODE_BUCKET = "shadowsync-code"
CODE_KEY = "package.zip"

MOTO_CANNOT_CREATE = frozenset(
    {
        # Created through moto's IoT API from the template's properties instead.
        "AWS::IoT::TopicRule",
        # Not in moto's CloudFormation: checked by cfn-lint and checkov only.
        "AWS::CloudWatch::Alarm",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::SQS::QueuePolicy",
    }
)
"""Resource types moto's CloudFormation skips (it warns and leaves them out of the stack)."""


class _NoManagedPolicies:
    """The template names no managed policy, so the translator never needs IAM's list."""

    def load(self) -> dict[str, str]:
        return {}


def source_template() -> dict[str, Any]:
    """deploy/template.yaml as data (the SAM source, before translation)."""
    parsed: dict[str, Any] = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    return parsed


def translated_template() -> dict[str, Any]:
    """The template as plain CloudFormation, translated offline.

    The code package is the S3 object `stack` uploads, as `sam deploy` would after its build.
    """
    template = source_template()
    template["Globals"]["Function"]["CodeUri"] = f"s3://{CODE_BUCKET}/{CODE_KEY}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", REGION)  # the translator reads the region from here
        translated: dict[str, Any] = transform(template, {}, _NoManagedPolicies())
    return translated


def lower_keys(value: Any) -> Any:
    """CloudFormation's PascalCase property names as the IoT API's camelCase ones."""
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: lower_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [lower_keys(item) for item in value]
    return value


@attrs.frozen(kw_only=True)
class Stack:
    """The created stack: its endpoint, a session on it, and where each resource went."""

    endpoint: str
    session: Any
    template: dict[str, Any]
    """The translated template the stack was created from."""
    physical: dict[str, str]
    """Logical id to physical id, for what moto's CloudFormation created."""
    created: dict[str, str]
    """Logical id to resource type, for what moto's CloudFormation created."""
    rules: dict[str, dict[str, Any]]
    """Topic rule logical id to the payload created through the IoT API."""

    def client(self, service: str) -> Any:
        """A client of ``service`` on the moto server."""
        return self.session.client(service, endpoint_url=self.endpoint)

    def resolve(self, value: Any) -> Any:
        """``Ref`` and ``Fn::GetAtt`` ... ``Arn`` in ``value`` resolved against the stack."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.physical[value["Ref"]]
        if set(value) == {"Fn::GetAtt"}:
            logical, attribute = value["Fn::GetAtt"]
            assert attribute == "Arn", attribute
            return self.arn(logical)
        return {key: self.resolve(item) for key, item in value.items()}

    def arn(self, logical: str) -> str:
        """The ARN of a created resource."""
        kind = self.template["Resources"][logical]["Type"]
        physical = self.physical[logical]
        if kind == "AWS::Lambda::Function":
            arn: str = self.client("lambda").get_function(FunctionName=physical)["Configuration"][
                "FunctionArn"
            ]
        elif kind == "AWS::IAM::Role":
            arn = self.client("iam").get_role(RoleName=physical)["Role"]["Arn"]
        elif kind == "AWS::SQS::Queue":
            arn = self.client("sqs").get_queue_attributes(
                QueueUrl=physical, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
        else:  # pragma: no cover - the rules only refer to the kinds above
            raise AssertionError(f"no ARN lookup for {kind}")
        return arn


def _code_package() -> bytes:
    # moto stores the code without running it: the handlers run in process.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("README.txt", "built by make deploy; unused by moto")
    return buffer.getvalue()


def _rule_arn(logical: str) -> dict[str, str]:
    prefix = "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}"
    return {"Fn::Sub": f"{prefix}:rule/{logical}"}


def create_stack(endpoint: str, session: Any) -> Stack:
    """Translate the template, create it in moto, then create its topic rules via IoT."""
    template = translated_template()
    body = copy.deepcopy(template)
    rules = {
        logical: body["Resources"].pop(logical)
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IoT::TopicRule"
    }
    # moto refuses a GetAtt of a resource it skips: the rule ARNs the Lambda permissions name
    # are built from the rule names the IoT API is given below.
    for resource in body["Resources"].values():
        source = resource.get("Properties", {}).get("SourceArn")
        if isinstance(source, dict) and source.get("Fn::GetAtt", [None])[0] in rules:
            resource["Properties"]["SourceArn"] = _rule_arn(source["Fn::GetAtt"][0])
    s3 = session.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=CODE_BUCKET)
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=_code_package())
    cloudformation = session.client("cloudformation", endpoint_url=endpoint)
    with warnings.catch_warnings():
        # moto warns, on every read of the stack, for each resource type it skips; the test
        # compares the created resources with the declared ones instead.
        warnings.filterwarnings("ignore", "Tried to parse", UserWarning)
        cloudformation.create_stack(
            StackName=STACK, TemplateBody=json.dumps(body), Capabilities=["CAPABILITY_IAM"]
        )
        status = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
        summaries = cloudformation.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    assert status == "CREATE_COMPLETE", status
    created = [item for item in summaries if item["LogicalResourceId"]]  # skipped: no id
    stack = Stack(
        endpoint=endpoint,
        session=session,
        template=template,
        physical={item["LogicalResourceId"]: item["PhysicalResourceId"] for item in created},
        created={item["LogicalResourceId"]: item["ResourceType"] for item in created},
        rules={},
    )
    iot = stack.client("iot")
    for logical, resource in rules.items():
        payload = lower_keys(stack.resolve(resource["Properties"]["TopicRulePayload"]))
        iot.create_topic_rule(ruleName=logical, topicRulePayload=payload)
        stack.rules[logical] = iot.get_topic_rule(ruleName=logical)["rule"]
    return stack


@pytest.fixture(scope="module")
def stack(moto_endpoint: str) -> Stack:  # noqa: F811
    """The stack in a moto server with fake credentials and no AWS config."""
    return create_stack(moto_endpoint, boto3.session.Session(region_name=REGION))
