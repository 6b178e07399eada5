"""``qlumeter run --stack-name``: a deployed stack found by its outputs, driven remotely,
with the runtime dependencies only (the embedded runner, which imports moto, is not loaded)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from qlumeter_cli import remote
from qlumeter_cli.main import main
from qlumeter_cli.stack import REGION, Context
from tests.support import SUBSCRIPTION, Pipeline, inventory


def test_run_against_a_deployed_stack_equals_meter(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = {
        "InventoryBucketName": pipeline.inventory_bucket,
        "TopicArn": pipeline.topic_arn,
        "AdminFunctionName": "qlumeter-dev-admin",
        "DispatchFunctionName": "qlumeter-dev-dispatch",
        **{
            f"{name}TableName": pipeline.physical[f"{name}Table"]
            for name in ("Observations", "Files", "Usage", "Subscriptions")
        },
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="qlumeter-dev",
        TemplateBody=json.dumps(
            {
                "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()},
            }
        ),
    )

    def dispatch(event: dict[str, Any], context: Context) -> dict[str, Any]:
        answer = dict(pipeline.dispatch_app.handler(event, context))
        pipeline.work()  # the meter queue's event source
        return answer

    functions = {"qlumeter-dev-admin": pipeline.admin.handler, "qlumeter-dev-dispatch": dispatch}

    def invoke(self: Any, FunctionName: str, Payload: bytes) -> dict[str, Any]:
        result = functions[FunctionName](json.loads(Payload), Context(FunctionName))
        return {"Payload": io.BytesIO(json.dumps(result).encode())}

    # the deployed plumbing: Lambda invokes by name, and S3 -> SQS -> ingest between polls
    monkeypatch.setattr(
        remote.RemoteStack,
        "_invoke",
        lambda self, name, event: json.loads(
            invoke(self, outputs[name], json.dumps(event).encode())["Payload"].read()
        ),
    )
    monkeypatch.setattr(remote.time, "sleep", lambda seconds: pipeline.deliver())
    (tmp_path / "sub.json").write_text(json.dumps(SUBSCRIPTION))
    inventory(tmp_path, days=5)
    common = [
        "--subscription",
        str(tmp_path / "sub.json"),
        "--inventory",
        str(tmp_path),
        "--as-of",
        "2026-01-05",
        "--quiet",
    ]
    assert main(["meter", *common, "--out", str(tmp_path / "meter.json")]) == 0
    monkeypatch.delitem(sys.modules, "qlumeter_cli.embedded", raising=False)
    assert (
        main(
            [
                "run",
                *common,
                "--stack-name",
                "qlumeter-dev",
                "--region",
                REGION,
                "--out",
                str(tmp_path / "run.json"),
            ]
        )
        == 0
    )
    assert "qlumeter_cli.embedded" not in sys.modules
    metered = json.loads((tmp_path / "meter.json").read_text())
    ran = json.loads((tmp_path / "run.json").read_text())
    assert ran["summary"]["products"] == metered["summary"]["products"]
    assert ran["daily"] == metered["daily"]
    assert ran["ingest"] == metered["ingest"]
    queues = boto3.client("sqs", region_name=REGION).list_queues().get("QueueUrls", [])
    assert not any("qlumeter-run-" in url for url in queues)  # the run cleaned up
    # what-if on the deployed tenant: its stored terms and files, metered here, equal the
    # local what-if on the same folder
    monkeypatch.setattr(
        remote, "invoke", lambda client, name, event: functions[name](event, Context(name))
    )
    change = ["--as-of", "2026-01-05", "--set", "VMDR.ratio=2", "--remove", "CSPM", "--json"]
    out = io.StringIO()
    deployed = ["--stack-name", "qlumeter-dev", "--region", REGION, "--subscription-id", "acme"]
    assert main(["whatif", *deployed, *change, "--quiet"], out) == 0
    local = io.StringIO()
    assert main(["whatif", *common[:4], *change, "--quiet"], local) == 0
    assert json.loads(out.getvalue()) == json.loads(local.getvalue())
    vmdr = next(p for p in json.loads(out.getvalue())["products"] if p["product"] == "VMDR")
    (before,) = [p for p in metered["summary"]["products"] if p["product"] == "VMDR"]
    assert vmdr["current_qlus"] == before["qlus"] != vmdr["changed_qlus"]
    assert "qlumeter_cli.embedded" not in sys.modules
