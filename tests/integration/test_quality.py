"""Data the pipeline would otherwise absorb without a word, on the stack of template.yaml:
unknown columns (warned in the manifest, refused under ``strict``) and a source that stops
delivering (``source_missing`` in the summaries)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import jsonschema

from qlumeter.pipeline.dynamo import DynamoStore
from qlumeter.summary import json_schema
from tests.support import (
    INVENTORY_BUCKET,
    SUBSCRIPTION,
    Pipeline,
    agents,
    day,
    pipeline_subscription,
    write_file,
)

SCHEMA = json_schema()
KEY = "inventory/tenant=acme/source=cloud_agent/date=2026-01-01/retired.csv"
MISSPELLED = b"asset_type,agent_id,Status,module,vulns\nhost,r1,retired,vmdr,3\n"
WARNING = (
    "unknown columns ignored: Status (did you mean `status`?), module (did you mean "
    "`modules`?), vulns (did you mean `vuln_count`?)"
)


def test_unknown_columns_are_a_manifest_warning(pipeline: Pipeline) -> None:
    assert pipeline.put_subscription(SUBSCRIPTION)["ok"]
    pipeline.upload_file(KEY, MISSPELLED)
    assert pipeline.deliver()["batchItemFailures"] == []
    (manifest,) = DynamoStore().manifests("acme", day(0), day(0))
    assert (manifest.status, manifest.accepted, manifest.warnings) == ("ok", 1, [WARNING])
    assert pipeline.published() == []


def test_a_strict_subscription_refuses_a_file_with_unknown_columns(pipeline: Pipeline) -> None:
    assert pipeline.put_subscription(dict(SUBSCRIPTION, strict=True))["ok"]
    pipeline.upload_file(KEY, MISSPELLED)
    assert pipeline.deliver()["batchItemFailures"] == []
    (failed,) = pipeline.published()
    failed.pop("_attributes")
    jsonschema.validate(failed, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert (failed["event_type"], failed["key"]) == ("ingest_failed", KEY)
    assert failed["reason"] == f"refused (strict): {WARNING}"
    pipeline.s3.head_object(Bucket=INVENTORY_BUCKET, Key="quarantine/" + KEY)
    (manifest,) = DynamoStore().manifests("acme", day(0), day(0))
    assert (manifest.status, manifest.rows, manifest.accepted) == ("unreadable", 0, 0)
    # the same file with its columns spelt right is taken
    pipeline.upload_file(KEY, b"asset_type,agent_id,status,modules,vuln_count\nhost,r1,,vmdr,3\n")
    assert pipeline.deliver()["batchItemFailures"] == []
    (manifest,) = DynamoStore().manifests("acme", day(0), day(0))
    assert (manifest.status, manifest.accepted, manifest.warnings) == ("ok", 1, [])


def test_summaries_say_when_a_source_stopped_delivering(pipeline: Pipeline, tmp_path: Path) -> None:
    assert pipeline.put_subscription(SUBSCRIPTION)["ok"]  # snapshot_carry_days 3
    for n in range(2):
        write_file(tmp_path, "cloud_agent", day(n), agents(4))
    pipeline.upload(tmp_path)
    assert pipeline.deliver()["batchItemFailures"] == []
    for n in range(7):
        pipeline.meter(scheduled_time=f"{day(n + 1)}T06:00:00Z")
    summaries = [m for m in pipeline.published() if m["event_type"] == "usage_summary"]
    missing = {
        m["as_of"]: [
            (a["source"], a["last_day"], a["days_missing"])
            for a in m["alerts"]
            if a["type"] == "source_missing"
        ]
        for m in summaries
    }
    # the subscription names a delta scanner that never delivered: missing from the start
    assert missing == {
        day(n).isoformat(): [("cloud_agent", "2026-01-02", n - 1)] * (n > 4)
        + [("scanner", None, n + 1)]
        for n in range(7)
    }
    # what the alert says is what happened: the agents stopped counting that day
    totals = {m["as_of"]: m["total_qlus"] for m in summaries}
    assert totals["2026-01-05"] != "0" and totals["2026-01-06"] == totals["2026-01-05"]


def test_a_tenant_growing_toward_its_entitlement_is_told_once_ahead_then_when_it_crosses(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    terms = {"alert_thresholds": ["1"], "forecast_alert_days": 5, "entitlement_qlus": "15"}
    vmdr = {"VMDR": {"ratio": "1"}}
    assert pipeline.put_subscription(pipeline_subscription(products=vmdr, **terms))["ok"]
    for n in range(16):
        write_file(tmp_path, "cloud_agent", day(n), agents(2 + n))  # one host more a day
    pipeline.upload(tmp_path)
    assert pipeline.deliver()["batchItemFailures"] == []
    for n in range(16):
        pipeline.meter(scheduled_time=f"{day(n + 1)}T06:00:00Z")
    published = pipeline.published()
    alerts = [m for m in published if m["event_type"] == "threshold_alert"]
    for message in alerts:
        message.pop("_attributes")
        jsonschema.validate(message, SCHEMA, format_checker=jsonschema.FormatChecker())
    told = [(m["as_of"], [(a["type"], a.get("day")) for a in m["alerts"]]) for m in alerts]
    summaries = {m["as_of"]: m for m in published if m["event_type"] == "usage_summary"}
    crossed = next(d for d, m in sorted(summaries.items()) if Decimal(m["total_qlus"]) >= 15)
    projected = [
        d
        for d, m in sorted(summaries.items())
        if [a for a in m["alerts"] if a["type"] != "threshold"]
    ]
    assert told == [
        (projected[0], [("forecast_alert", crossed)]),
        (crossed, [("threshold", None)]),
    ]
    # the forecast alert was in force every day up to the crossing, told once
    assert projected == [d for d in sorted(summaries) if projected[0] <= d < crossed]
    first = summaries[projected[0]]["alerts"][0]
    assert first["days_ahead"] == (day(crossed) - day(projected[0])).days <= 5
