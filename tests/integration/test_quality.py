"""Data the pipeline would otherwise absorb without a word, on the stack of template.yaml:
unknown columns (warned in the manifest, refused under ``strict``) and a source that stops
delivering (``source_missing`` in the summaries)."""

from __future__ import annotations

from pathlib import Path

import jsonschema

from qlumeter.pipeline.dynamo import DynamoStore
from qlumeter.summary import json_schema
from tests.support import INVENTORY_BUCKET, SUBSCRIPTION, Pipeline, agents, day, write_file

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
