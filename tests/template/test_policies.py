"""The resource policies of template.yaml, evaluated: the KMS key serves AWS services on
behalf of this account only, the inventory bucket refuses uploads under another key, and
only the stack's own publishers reach the topic (the ledger trusts what it delivers).

moto does not enforce resource policies: here their statements are evaluated against
request contexts (the condition operators they use, with IAM's semantics for missing keys).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest

from qlumeter_cli.stack import load_template

TEMPLATE = Path(__file__).parents[2] / "template.yaml"
ACCOUNT = "123456789012"
DATA_KEY = "<DataKey.Arn>"
METER_ROLE, INGEST_ROLE = "<MeterFunctionRole.Arn>", "<IngestFunctionRole.Arn>"
SUBSTITUTED = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "StageName": "dev",
}


def resolve(value: Any) -> Any:
    """Template values as strings a request context can hold."""
    if isinstance(value, dict) and list(value) == ["Fn::GetAtt"]:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if isinstance(value, dict) and list(value) == ["Ref"]:
        return ACCOUNT if value["Ref"] == "AWS::AccountId" else f"<{value['Ref']}>"
    if isinstance(value, dict) and list(value) == ["Fn::Sub"]:
        text = str(value["Fn::Sub"])
        for name, known in SUBSTITUTED.items():
            text = text.replace(f"${{{name}}}", known)
        return text
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def _values(expected: Any) -> list[str]:
    return [str(v) for v in (expected if isinstance(expected, list) else [expected])]


def condition_holds(operator: str, key: str, expected: Any, context: dict[str, str]) -> bool:
    """One condition of a statement. A key missing from the request makes a negated
    operator (and an ...IfExists one) hold, and any other operator fail."""
    present = key in context
    values = _values(resolve(expected))
    if operator == "Null":
        return (not present) == (values == ["true"])
    if operator.endswith("IfExists") and not present:
        return True
    base = operator.removesuffix("IfExists")
    negated = "Not" in base
    if not present:
        return negated
    matched = context[key] in values
    if base in ("StringEquals", "ArnEquals", "StringNotEquals", "ArnNotEquals", "Bool"):
        return not matched if negated else matched
    if base == "ArnLike":
        return any(fnmatch.fnmatchcase(context[key], v) for v in values)
    raise AssertionError(f"operator {operator} not evaluated here")


def applies(statement: dict[str, Any], context: dict[str, str]) -> bool:
    """Whether every condition of ``statement`` holds for the request."""
    return all(
        condition_holds(operator, key, expected, context)
        for operator, conditions in statement.get("Condition", {}).items()
        for key, expected in conditions.items()
    )


def policy(logical: str) -> list[dict[str, Any]]:
    resources = load_template(TEMPLATE)["Resources"]
    document = resources[logical]["Properties"].get("PolicyDocument") or resources[logical][
        "Properties"
    ].get("KeyPolicy")
    return list(document["Statement"])


def denied(logical: str, action: str, context: dict[str, str]) -> bool:
    """An explicit Deny of the resource policy applies to the request."""
    return any(
        s["Effect"] == "Deny"
        and action in _values(s["Action"])
        and applies(s, {"aws:SecureTransport": "true", **context})
        for s in policy(logical)
    )


def test_kms_service_principals_are_bound_to_the_account() -> None:
    """Every statement of the key policy that lets an AWS service use the key holds only
    for this account's resources: ``aws:SourceAccount`` (CloudWatch Logs: the log group in
    the encryption context, an ARN of this account)."""
    for statement in policy("DataKey"):
        service = statement["Principal"].get("Service")
        if service is None:
            continue
        for account in (ACCOUNT, "999999999999"):
            arn = f"arn:aws:{{}}:eu-west-1:{account}:{{}}"
            context = {  # the stack's topic and log groups, in that account
                "aws:SourceAccount": account,
                "aws:SourceArn": arn.format("sns", "qlumeter-dev-events"),
                "kms:EncryptionContext:aws:logs:arn": arn.format("logs", "log-group:l"),
            }
            expected = account == ACCOUNT
            assert applies(statement, context) is expected, (statement["Sid"], account)
        assert not applies(statement, {}), statement["Sid"]  # no source: not granted


UPLOADS = {
    "no encryption header (the bucket's default: the stack's key)": ({}, False),
    "the stack's key, by its ARN": (
        {
            "s3:x-amz-server-side-encryption": "aws:kms",
            "s3:x-amz-server-side-encryption-aws-kms-key-id": DATA_KEY,
        },
        False,
    ),
    "another KMS key": (
        {
            "s3:x-amz-server-side-encryption": "aws:kms",
            "s3:x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:eu-west-1:1:key/x",
        },
        True,
    ),
    "aws:kms without a key id (the AWS managed key aws/s3)": (
        {"s3:x-amz-server-side-encryption": "aws:kms"},
        True,
    ),
    "SSE-S3": ({"s3:x-amz-server-side-encryption": "AES256"}, True),
    "dual-layer KMS": ({"s3:x-amz-server-side-encryption": "aws:kms:dsse"}, True),
    "a customer-provided key (SSE-C)": (
        {"s3:x-amz-server-side-encryption-customer-algorithm": "AES256"},
        True,
    ),
}


@pytest.mark.parametrize("upload", UPLOADS)
def test_kms_an_upload_under_another_key_is_refused_at_upload(upload: str) -> None:
    """The ingest function can decrypt objects under the stack's key only: the bucket
    refuses an inventory upload under any other encryption, rather than accept a file that
    would then be unreadable."""
    context, refused = UPLOADS[upload]
    assert denied("InventoryBucketPolicy", "s3:PutObject", context) is refused


PUBLISHERS = {
    "the meter function's role": ({"aws:PrincipalArn": METER_ROLE}, False),
    "the ingest function's role": ({"aws:PrincipalArn": INGEST_ROLE}, False),
    "CloudWatch alarms": ({"aws:PrincipalServiceName": "cloudwatch.amazonaws.com"}, False),
    "another role of the account": ({"aws:PrincipalArn": "arn:aws:iam::1:role/other"}, True),
    "an administrator": ({"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:root"}, True),
    "another AWS service": ({"aws:PrincipalServiceName": "events.amazonaws.com"}, True),
}


@pytest.mark.parametrize("publisher", PUBLISHERS)
def test_sns_only_the_stack_s_publishers_reach_the_topic(publisher: str) -> None:
    """The ledger records what the topic delivers as the receipt of a message the meter
    published: the topic policy denies every other publisher, so none can forge one."""
    context, refused = PUBLISHERS[publisher]
    assert denied("EventsTopicPolicy", "sns:Publish", context) is refused
