"""template.yaml: least-privilege IAM, and consistency with the code it deploys.

Reads the template with cfn-lint's decoder (CloudFormation short tags). `make template-check` also
points PEOPLENET_EXPANDED_TEMPLATE at the template expanded by aws-sam-translator, so the IAM rules
are checked on what SAM generates too.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from aws_stack import REPO_ROOT

TEMPLATE = REPO_ROOT / "template.yaml"
# Actions that support no resource-level permissions: "*" is the only valid Resource for them.
NO_RESOURCE_SCOPE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "cloudwatch:PutMetricData"}


def load(path: Path) -> dict[str, Any]:
    if path.suffix == ".json":
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    from cfnlint.decode import decode_str

    template, matches = decode_str(path.read_text())
    assert not matches, matches
    return json.loads(json.dumps(template))  # plain dicts


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(resource name, statement) for every IAM statement: roles, policies and resource policies."""
    found = []
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in props.get("Policies", []) if "PolicyDocument" in p]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        if resource["Type"] == "AWS::IAM::Role":
            documents.append(props["AssumeRolePolicyDocument"])
        for document in documents:
            found += [(name, statement) for statement in _listify(document["Statement"])]
    return found


def iam_problems(template: dict[str, Any]) -> list[str]:
    """Allow statements with a wildcard action, NotAction/NotResource, or Resource "*" where a scope exists."""
    problems = []
    for name, statement in policy_statements(template):
        if statement.get("Effect") != "Allow":
            continue  # a Deny may be as broad as it likes (the bucket's TLS-only rule is)
        sid = f"{name}/{statement.get('Sid', '?')}"
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{sid}: NotAction/NotResource in an Allow")
        actions = [a for a in _listify(statement.get("Action", [])) if isinstance(a, str)]
        problems += [f"{sid}: wildcard action {a!r}" for a in actions if a == "*" or a.endswith(":*")]
        if "Principal" in statement:
            continue  # resource policies: the resource is the one they are attached to
        resources = _listify(statement.get("Resource", []))
        if "*" in resources and not set(actions) <= NO_RESOURCE_SCOPE:
            problems.append(f"{sid}: Resource '*' for {sorted(set(actions) - NO_RESOURCE_SCOPE)}")
    return problems


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load(TEMPLATE)


def _templates() -> list[Path]:
    expanded = os.environ.get("PEOPLENET_EXPANDED_TEMPLATE")
    return [TEMPLATE, *([REPO_ROOT / expanded] if expanded else [])]


@pytest.mark.parametrize("path", _templates(), ids=lambda p: p.name)
def test_iam_is_least_privilege(path: Path) -> None:
    assert iam_problems(load(path)) == []


def test_the_iam_check_catches_broad_statements(template: dict[str, Any]) -> None:
    broken = copy.deepcopy(template)
    statements = broken["Resources"]["DatasetTriggerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements += [
        {"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"},
        {"Sid": "B", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"},
        {"Sid": "C", "Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Sid": "D", "Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"},
    ]
    problems = iam_problems(broken)
    for sid in ("A", "B", "C", "D"):
        assert any(p.startswith(f"DatasetTriggerRole/{sid}:") for p in problems), (sid, problems)


def test_functions_use_explicit_roles(template: dict[str, Any]) -> None:
    # SAM's generated roles attach managed policies whose statements allow their actions on "*".
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert "Role" in resource["Properties"] and "Policies" not in resource["Properties"], name


def test_bucket_is_private_encrypted_tls_only_and_notifies_manifests(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    bucket = resources["DataBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (notification,) = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    rules = {r["Name"]: r["Value"] for r in notification["Filter"]["S3Key"]["Rules"]}
    assert rules == {"prefix": "datasets/", "suffix": "manifest.json"}
    (deny,) = resources["DataBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_queues_have_dead_letter_queues_and_enough_visibility(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    function = resources["DatasetTriggerFunction"]["Properties"]
    for queue, dlq in (("TriggerQueue", "TriggerDeadLetterQueue"), ("JobsQueue", "JobsDeadLetterQueue")):
        redrive = resources[queue]["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
        assert redrive["maxReceiveCount"] >= 3
    # Lambda's SQS integration: visibility >= 6 x the function timeout, or messages reappear mid-run.
    assert resources["TriggerQueue"]["Properties"]["VisibilityTimeout"] >= 6 * function["Timeout"]
    mapping = function["Events"]["DatasetManifests"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_function_matches_the_code(template: dict[str, Any]) -> None:
    from lambdas.dataset_trigger import app
    from lambdas.dataset_trigger.environment import _REQUIRED

    function = template["Resources"]["DatasetTriggerFunction"]
    props = function["Properties"]
    assert template["Globals"]["Function"]["Runtime"] == "python3.11"  # what CI can build
    assert function["Metadata"]["BuildMethod"] == "makefile"
    module, _, handler = props["Handler"].rpartition(".")
    assert module == app.__name__ and callable(getattr(app, handler))
    assert set(props["Environment"]["Variables"]) == set(_REQUIRED)
    assert props["ReservedConcurrentExecutions"] >= 1


def test_idempotency_table_matches_powertools(template: dict[str, Any]) -> None:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    layer = DynamoDBPersistenceLayer(table_name="t", boto3_client=object())  # type: ignore[arg-type]
    table = template["Resources"]["IdempotencyTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": layer.key_attr, "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": layer.expiry_attr, "Enabled": True}


def test_worker_user_data_sets_valid_settings(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_worker.config import Settings

    user_data = template["Resources"]["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
    script = user_data["Fn::Base64"]["Fn::Sub"]
    env = dict(re.findall(r"^(PEOPLENET_[A-Z_]+)=(.*)$", script, flags=re.MULTILINE))
    assert {"PEOPLENET_MODE", "PEOPLENET_AWS__BUCKET", "PEOPLENET_AWS__JOBS_QUEUE_URL"} <= set(env)
    for name in list(os.environ):
        if name.startswith("PEOPLENET_"):
            monkeypatch.delenv(name)
    defaults = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    for name, value in env.items():  # CloudFormation fills ${...}: parameters take their defaults, names "x"
        monkeypatch.setenv(name, re.sub(r"\$\{([^}]+)\}", lambda m: defaults.get(m.group(1), "x"), value))
    settings = Settings()
    assert settings.mode == "aws" and settings.aws.bucket == "x"
    assert "peoplenet-retrain worker" in script


def test_outputs_name_everything_a_user_needs(template: dict[str, Any]) -> None:
    outputs = set(template["Outputs"])
    assert {
        "DataBucketName",
        "JobsQueueUrl",
        "JobsDeadLetterQueueUrl",
        "JobsTableName",
        "EventsTopicArn",
        "TriggerQueueUrl",
        "DatasetTriggerFunctionName",
    } <= outputs
