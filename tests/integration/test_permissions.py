"""The DynamoDB calls each function really makes, recorded on moto over a whole play (admin,
ingest with a late and an unreadable file, daily and late-data runs, the ledger), are
allowed by that function's policies in ``template.yaml``: a call the template does not
grant would fail only once deployed."""

from __future__ import annotations

import contextvars
import fnmatch
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.client
import pytest

from qlumeter_cli.stack import load_template
from tests.support import TEMPLATE, Pipeline, agents, day, pipeline_subscription, write_file

#: The actions of the SAM policy templates the template uses (aws-sam-translator's
#: policy_templates.json).
SAM_DYNAMODB = {
    "DynamoDBReadPolicy": {"GetItem", "Scan", "Query", "BatchGetItem", "DescribeTable"},
    "DynamoDBWritePolicy": {"PutItem", "UpdateItem", "BatchWriteItem"},
    "DynamoDBCrudPolicy": {
        "GetItem",
        "DeleteItem",
        "PutItem",
        "Scan",
        "Query",
        "UpdateItem",
        "BatchWriteItem",
        "BatchGetItem",
        "DescribeTable",
        "ConditionCheckItem",
    },
}
_function: contextvars.ContextVar[str] = contextvars.ContextVar("function", default="")


def granted(function: dict[str, Any]) -> set[tuple[str, str]]:
    """(operation, table logical id) pairs a function's policies allow."""
    allowed: set[tuple[str, str]] = set()
    for policy in function["Properties"]["Policies"]:
        for name, actions in SAM_DYNAMODB.items():
            if name in policy:
                table = policy[name]["TableName"]["Ref"]
                allowed |= {(action, table) for action in actions}
        for statement in policy.get("Statement", []):
            resource = statement["Resource"]
            if not (isinstance(resource, dict) and "Fn::GetAtt" in resource):
                continue
            table = resource["Fn::GetAtt"][0]
            for action in (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            ):
                if action.startswith("dynamodb:"):
                    allowed.add((action.removeprefix("dynamodb:"), table))
    return allowed


@pytest.fixture
def calls(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, set[Any]]]:
    """Every DynamoDB call during a handler, by the template's function logical id."""
    made: dict[str, set[tuple[str, str]]] = defaultdict(set)
    tables = {physical: logical for logical, physical in pipeline.physical.items()}
    real = botocore.client.BaseClient._make_api_call

    def record(client: Any, operation: str, params: dict[str, Any]) -> Any:
        function = _function.get()
        if function and client.meta.service_model.service_name == "dynamodb":
            names = [params["TableName"]] if "TableName" in params else params["RequestItems"]
            made[function] |= {(operation, tables[name]) for name in names}
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    for logical, module in (
        ("IngestFunction", pipeline.ingest),
        ("DispatchFunction", pipeline.dispatch_app),
        ("MeterFunction", pipeline.meter_app),
        ("LedgerFunction", pipeline.ledger),
        ("AdminFunction", pipeline.admin),
    ):
        monkeypatch.setattr(module, "handler", _as(logical, module.handler))
    yield made


def _as(logical: str, handler: Any) -> Any:
    def run(event: Any, context: Any) -> Any:
        token = _function.set(logical)
        try:
            return handler(event, context)
        finally:
            _function.reset(token)

    return run


def test_every_dynamodb_call_is_granted_by_the_template(
    pipeline: Pipeline, tmp_path: Path, calls: dict[str, set[Any]]
) -> None:
    tenant = "acme"
    assert pipeline.put_subscription(
        pipeline_subscription(
            tenant, entitlement_qlus="900", alert_thresholds=["0.5", "0.8", "1.0"], late_data_days=2
        )
    )["ok"]
    for n in range(5):
        write_file(tmp_path, "cloud_agent", day(n), agents(3 + n), tenant=tenant)
    pipeline.upload(tmp_path)
    pipeline.deliver()
    for n in range(5):
        pipeline.meter(subscription_id=tenant, as_of=day(n).isoformat())
    late = write_file(tmp_path, "cloud_agent", day(3), agents(9), name="late", tenant=tenant)
    pipeline.upload_file(late.relative_to(tmp_path).as_posix(), late.read_bytes())
    bad = f"inventory/tenant={tenant}/source=scanner/date={day(4)}/bad.csv.gz"
    pipeline.upload_file(bad, b"not gzip")
    pipeline.deliver()
    pipeline.work()  # the late-data request
    pipeline.meter(scheduled_time=f"{day(6)}T02:30:00Z")
    resources = load_template(TEMPLATE)["Resources"]
    assert set(calls) == {
        "IngestFunction",
        "DispatchFunction",
        "MeterFunction",
        "LedgerFunction",
        "AdminFunction",
    }
    for logical, made in calls.items():
        assert made - granted(resources[logical]) == set(), logical
    # the ledger's PutItem is further bound to receipt keys (dynamodb:LeadingKeys)
    statements = resources["LedgerFunction"]["Properties"]["Policies"][0]["Statement"]
    (receipts,) = [s for s in statements if s["Sid"] == "WriteReceipts"]
    assert calls["LedgerFunction"] == {("PutItem", "UsageTable")}
    pattern = receipts["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"][0]
    assert fnmatch.fnmatchcase(f"{tenant}#SENT", pattern)
