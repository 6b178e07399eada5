"""The recorded events in ``events/`` drive the real handlers (as ``sam local invoke`` would)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from qlumeter.pipeline.dynamo import DynamoStore
from qlumeter_cli.stack import Context, sqs_event
from tests.support import Pipeline

EVENTS = Path(__file__).parents[2] / "events"


def event(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


def test_recorded_events_drive_every_handler(pipeline: Pipeline) -> None:
    admin = pipeline.admin.handler(event("admin_put_subscription.json"), Context("admin"))
    assert admin["ok"] and admin["subscription"]["subscription_id"] == "acme"

    created = event("sqs_s3_object_created.json")
    body = json.loads(created["Records"][0]["body"])
    s3 = body["Records"][0]["s3"]
    key = unquote_plus(s3["object"]["key"])
    rows = "asset_type,agent_id,modules,vuln_count\nhost,a1,vmdr;edr,2\nhost,a2,vmdr,0\n"
    version = pipeline.s3.put_object(Bucket=pipeline.inventory_bucket, Key=key, Body=rows.encode())[
        "VersionId"
    ]
    s3["bucket"]["name"] = pipeline.inventory_bucket  # the recorded bucket is a deployed one
    s3["object"]["versionId"] = version
    created["Records"][0]["body"] = json.dumps(body)
    response = pipeline.ingest.handler(created, Context("ingest"))
    assert response == {"batchItemFailures": []}
    assert pipeline.ingest.handler(event("sqs_s3_test_event.json"), Context("ingest")) == {
        "batchItemFailures": []
    }
    (manifest,) = DynamoStore().manifests("acme", date(2026, 1, 1), date(2026, 1, 1))
    assert (manifest.accepted, manifest.entities, manifest.status) == (2, 2, "ok")

    scheduled = pipeline.dispatch_app.handler(event("scheduler_dispatch.json"), Context("dispatch"))
    assert scheduled == {"as_of": "2026-01-15", "reason": "schedule", "tenants": 1}
    (request,) = pipeline.receive(pipeline.meter_url)  # what the dispatch queued
    run = pipeline.meter_app.handler(sqs_event([request], pipeline.meter_arn), Context("meter"))
    assert run == {"batchItemFailures": []}
    assert pipeline.runs[-1].total_qlus == "7.85"  # VMDR 2 x 1.5, CSAM 2, EDR 2.85
    late = pipeline.meter_app.handler(event("sqs_meter_late_data.json"), Context("meter"))
    assert late == {"batchItemFailures": []}
    assert pipeline.runs[-1].status == "covered"  # the run since started after the request

    # the ledger: the recorded usage message is the one the topic delivered to its queue
    # (raw), the second record names no valid subscription and is reported as failed
    recorded = event("sqs_sns_usage_messages.json")
    delivered, alert = pipeline.receive(pipeline.ledger_url)  # cloud_agent: 14 days missing
    assert json.loads(alert["Body"])["event_type"] == "threshold_alert"
    bodies = [json.loads(r["body"]) | {"generated_at": None} for r in recorded["Records"]]
    assert bodies[0] == json.loads(delivered["Body"]) | {"generated_at": None}
    response = pipeline.ledger.handler(recorded, Context("ledger"))
    bad = recorded["Records"][1]["messageId"]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad}]}
    assert DynamoStore().receipts("acme", date(2026, 1, 15)) == {("usage_summary", 1)}


def test_ledger_messages_that_always_fail_end_dead_lettered(pipeline: Pipeline) -> None:
    """A batch whose every record fails (the handler raises) comes back like a partial
    failure, five times, then is dead-lettered; the meter run it follows is unaffected."""
    for body in ('{"subscription_id": "a/b"}', "not json"):
        pipeline.sqs.send_message(QueueUrl=pipeline.ledger_url, MessageBody=body)
    pipeline.confirm()
    assert sorted(pipeline.ledger_dead) == sorted(['{"subscription_id": "a/b"}', "not json"])
    assert pipeline.receive(pipeline.ledger_url) == []
