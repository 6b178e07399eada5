"""The pipeline on moto: S3 drop -> SQS -> ingest -> DynamoDB -> meter -> SNS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from qlumeter.config import parse_subscription
from qlumeter.pipeline.dynamo import ObservationItem
from qlumeter.summary import json_schema
from qlumeter_cli.local import meter_folder
from tests.support import (
    INVENTORY_BUCKET,
    SUBSCRIPTION,
    Pipeline,
    agents,
    day,
    inventory,
    write_file,
)

SCHEMA = json_schema()


def run_schedule(p: Pipeline, last: int) -> None:
    for n in range(last + 1):
        p.meter(scheduled_time=f"{day(n + 1)}T06:00:00Z")


def numbers(summary: dict[str, Any]) -> tuple[Any, ...]:
    products = [
        (x["product"], x["utilization"], x["qlus"], x["components"]) for x in summary["products"]
    ]
    return (*products, summary["total_qlus"])


def test_end_to_end_equals_the_engine_cli(pipeline: Pipeline, tmp_path: Path) -> None:
    assert pipeline.put_subscription(SUBSCRIPTION)["ok"]
    inventory(tmp_path)
    keys = pipeline.upload(tmp_path)
    response = pipeline.deliver()
    assert response["batchItemFailures"] == []
    run_schedule(pipeline, 16)
    messages = pipeline.published()
    for message in messages:
        attributes = message.pop("_attributes")
        jsonschema.validate(message, SCHEMA, format_checker=jsonschema.FormatChecker())
        assert attributes == {"subscription_id": "acme", "event_type": message["event_type"]}
    summaries = [m for m in messages if m["event_type"] == "usage_summary"]
    assert [m["as_of"] for m in summaries] == [day(n).isoformat() for n in range(17)]
    closed = [m for m in messages if m["event_type"] == "interval_closed"]
    assert [m["as_of"] for m in closed] == ["2026-01-15"]
    expected, _, _ = meter_folder(parse_subscription(SUBSCRIPTION), tmp_path, day(16))
    assert numbers(summaries[-1]) == numbers(expected["summary"])
    cli_closed, _, _ = meter_folder(parse_subscription(SUBSCRIPTION), tmp_path, day(14))
    assert numbers(closed[0]) == numbers(cli_closed["summary"])
    manifests = pipeline.s3.list_objects_v2(Bucket=INVENTORY_BUCKET, Prefix="rejects/")
    assert len(manifests["Contents"]) == 3  # the scanner files' bad rows
    assert len(keys) == len({k for k in keys})
    # a rerun with no new data publishes nothing new
    pipeline.meter(scheduled_time=f"{day(17)}T06:00:00Z")
    assert pipeline.published() == []


def test_each_daily_run_replays_one_day_and_keeps_the_checkpoint_at_the_late_window(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """With no late data a daily run replays only its own day from the last head, and the
    head saved late_data_days earlier becomes the checkpoint: it stands at as_of - 10."""
    pipeline.put_subscription(SUBSCRIPTION)
    inventory(tmp_path, days=14)
    pipeline.upload(tmp_path)
    pipeline.deliver()
    for n in range(14):
        (result,) = pipeline.meter(scheduled_time=f"{day(n + 1)}T06:00:00Z")["results"]
        assert result["as_of"] == day(n).isoformat()
        assert result["days_replayed"] == 1
        assert result["checkpoint_day"] == (day(n - 10).isoformat() if n >= 10 else None)
    # a rerun of a past day (a late schedule) replays from the checkpoint, publishes
    # nothing, and leaves the newest head in place for the next daily run
    (rerun,) = pipeline.meter(as_of=day(5).isoformat())["results"]
    assert (rerun["days_replayed"], rerun["published"]) == (2, [])
    (result,) = pipeline.meter(as_of=day(14).isoformat())["results"]
    assert (result["days_replayed"], result["checkpoint_day"]) == (1, day(4).isoformat())


def test_duplicate_delivery_is_ingested_once(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.put_subscription(SUBSCRIPTION)
    inventory(tmp_path, days=2)
    pipeline.upload(tmp_path)
    messages = pipeline.receive(pipeline.queue_url)
    pipeline.deliver(messages)
    rows = ObservationItem.count()
    pipeline.deliver(messages)  # the same notifications again
    pipeline.deliver(list(reversed(messages)))
    assert ObservationItem.count() == rows
    assert (
        pipeline.meter(as_of="2026-01-02")["results"][0]["total_qlus"]
        == pipeline.meter(as_of="2026-01-02")["results"][0]["total_qlus"]
    )


def test_out_of_order_days_give_the_same_numbers(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.put_subscription(SUBSCRIPTION)
    inventory(tmp_path, days=8)
    files = sorted((tmp_path / "inventory").rglob("*.*"), key=lambda p: p.parts[-2], reverse=True)
    for path in files:  # newest day first
        key = path.relative_to(tmp_path).as_posix()
        pipeline.s3.put_object(Bucket=INVENTORY_BUCKET, Key=key, Body=path.read_bytes())
        pipeline.deliver()
    result = pipeline.meter(as_of="2026-01-08")["results"][0]
    expected, _, _ = meter_folder(parse_subscription(SUBSCRIPTION), tmp_path, day(7))
    assert result["total_qlus"] == expected["summary"]["total_qlus"]


def test_late_file_corrects_published_days_with_a_new_revision(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.put_subscription(SUBSCRIPTION)
    inventory(tmp_path, days=17)
    pipeline.upload(tmp_path)
    pipeline.deliver()
    run_schedule(pipeline, 16)
    pipeline.published()
    # a scanner file for day 10 arrives late, naming new hosts
    late = [
        {"asset_type": "host", "asset_id": f"late-{i}", "modules": "vmdr", "vuln_count": 1}
        for i in range(5)
    ]
    write_file(tmp_path, "scanner", day(9), late, name="late")
    key = "inventory/tenant=acme/source=scanner/date=2026-01-10/late.csv"
    pipeline.s3.put_object(Bucket=INVENTORY_BUCKET, Key=key, Body=(tmp_path / key).read_bytes())
    pipeline.deliver()
    assert pipeline.late.requests == [("acme", "2026-01-17")]
    pipeline.work()  # the late-data request ingest queued
    corrections = [m for m in pipeline.published() if m["event_type"] == "correction"]
    assert {m["as_of"] for m in corrections} == {day(n).isoformat() for n in range(9, 17)}
    assert {m["revision"] for m in corrections} == {2}
    closed_fix = next(m for m in corrections if m["as_of"] == "2026-01-15")
    expected, _, _ = meter_folder(parse_subscription(SUBSCRIPTION), tmp_path, day(14))
    assert numbers(closed_fix) == numbers(expected["summary"])
    # another run as of that day changes nothing
    pipeline.meter(subscription_id="acme", as_of="2026-01-17")
    assert pipeline.published() == []


def test_a_new_version_replaces_the_old_contribution(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.put_subscription(SUBSCRIPTION)
    key = "inventory/tenant=acme/source=cloud_agent/date=2026-01-01/agents.jsonl"
    body = "".join(json.dumps(r) + "\n" for r in agents(10))
    pipeline.s3.put_object(Bucket=INVENTORY_BUCKET, Key=key, Body=body.encode())
    pipeline.deliver()
    body = "".join(json.dumps(r) + "\n" for r in agents(4))
    pipeline.s3.put_object(Bucket=INVENTORY_BUCKET, Key=key, Body=body.encode())
    pipeline.deliver()
    result = pipeline.meter(as_of="2026-01-01")["results"][0]
    assert result["total_qlus"] == "15.7"  # 4 agents: VMDR 6 + CSAM 4 + EDR 2 x 2.85


def test_poison_file_is_quarantined_and_reported(pipeline: Pipeline) -> None:
    pipeline.put_subscription(SUBSCRIPTION)
    bad = "inventory/tenant=acme/source=scanner/date=2026-01-02/scan.csv.gz"
    pipeline.s3.put_object(Bucket=INVENTORY_BUCKET, Key=bad, Body=b"this is not gzip")
    wrong = "inventory/tenant=acme/source=nmap/date=2026-01-02/scan.csv"
    pipeline.s3.put_object(Bucket=INVENTORY_BUCKET, Key=wrong, Body=b"asset_type\nhost\n")
    assert pipeline.deliver()["batchItemFailures"] == []
    failed = pipeline.published()
    assert sorted((m["event_type"], m["key"]) for m in failed) == sorted(
        [("ingest_failed", bad), ("ingest_failed", wrong)]
    )
    for key in (bad, wrong):
        pipeline.s3.head_object(Bucket=INVENTORY_BUCKET, Key="quarantine/" + key)


def test_a_failing_record_is_reported_for_redelivery(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.put_subscription(SUBSCRIPTION)
    inventory(tmp_path, days=1)
    pipeline.upload(tmp_path)
    messages = pipeline.receive(pipeline.queue_url)
    real_open = pipeline.ingest.service.objects.open
    calls = {"n": 0}

    def flaky_open(bucket: str, key: str, version: str | None) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("GetObject failed")
        return real_open(bucket, key, version)

    monkeypatch.setattr(pipeline.ingest.service.objects, "open", flaky_open)
    first = next(m for m in messages if "s3:TestEvent" not in m["Body"])
    response = pipeline.deliver(messages)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [first["MessageId"]]
    assert pipeline.deliver([first])["batchItemFailures"] == []  # redelivered: ok
    expected, _, _ = meter_folder(parse_subscription(SUBSCRIPTION), tmp_path, day(0))
    total = pipeline.meter(as_of="2026-01-01")["results"][0]["total_qlus"]
    assert total == expected["summary"]["total_qlus"]


def test_unprocessed_items_are_retried_nothing_lost(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.put_subscription(SUBSCRIPTION)
    inventory(tmp_path, days=1)
    connection = ObservationItem._get_connection()
    real = connection.batch_write_item
    state = {"calls": 0}

    def throttled(put_items: list[Any], **kwargs: Any) -> Any:
        state["calls"] += 1
        if state["calls"] % 2:  # every other call: half the items come back unprocessed
            done = real(put_items=put_items[: len(put_items) // 2], **kwargs)
            rest = [{"PutRequest": {"Item": i}} for i in put_items[len(put_items) // 2 :]]
            done.setdefault("UnprocessedItems", {})[ObservationItem.Meta.table_name] = rest
            return done
        return real(put_items=put_items, **kwargs)

    monkeypatch.setattr(connection, "batch_write_item", throttled)
    monkeypatch.setattr("qlumeter.pipeline.dynamo.time.sleep", lambda s: None)
    pipeline.upload(tmp_path)
    assert pipeline.deliver()["batchItemFailures"] == []
    assert state["calls"] > 1
    expected, _, inventory_read = meter_folder(parse_subscription(SUBSCRIPTION), tmp_path, day(0))
    stored = sum(len(json.loads(item.row)) for item in ObservationItem.scan())
    assert stored == inventory_read.rows
    total = pipeline.meter(as_of="2026-01-01")["results"][0]["total_qlus"]
    assert total == expected["summary"]["total_qlus"]


def test_filter_policies_select_by_event_type_and_tenant(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    closed_only = pipeline.subscribe_queue("closed", {"event_type": ["interval_closed"]})
    other_tenant = pipeline.subscribe_queue("other", {"subscription_id": ["globex"]})
    pipeline.put_subscription(SUBSCRIPTION)
    inventory(tmp_path, days=17)
    pipeline.upload(tmp_path)
    pipeline.deliver()
    run_schedule(pipeline, 16)
    assert [m["event_type"] for m in pipeline.published(closed_only)] == ["interval_closed"]
    assert pipeline.published(other_tenant) == []


def test_threshold_alert_once_per_crossing(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.put_subscription(
        dict(SUBSCRIPTION, entitlement_qlus="50", alert_thresholds=["0.8", "1.0"])
    )
    inventory(tmp_path, days=12)
    pipeline.upload(tmp_path)
    pipeline.deliver()
    run_schedule(pipeline, 11)
    messages = pipeline.published()
    reached: set[str] = set()
    missing: set[str] = set()
    crossings, episodes = [], []
    for summary in (m for m in messages if m["event_type"] == "usage_summary"):
        now = {a["threshold"] for a in summary["alerts"] if a["type"] == "threshold"}
        gone = {a["source"] for a in summary["alerts"] if a["type"] == "source_missing"}
        if now - reached:
            crossings.append(summary["as_of"])
        if gone - missing:  # the weekly scanner: missing past snapshot_carry_days
            episodes.append(summary["as_of"])
        reached, missing = now, gone
    alerts = [m["as_of"] for m in messages if m["event_type"] == "threshold_alert"]
    assert alerts == sorted(set(crossings) | set(episodes))
    assert crossings and episodes


def test_a_large_object_is_split_into_byte_ranges(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.put_subscription(SUBSCRIPTION)
    pipeline.ingest.service.split_bytes, pipeline.ingest.service.part_bytes = 4096, 1500
    rows = agents(120)
    rows[57]["vuln_count"] = -3  # a bad row deep in the file keeps its line number
    rows[90]["fqdn"] = 'odd "quoted",\nname.corp.example'  # a quoted cell across lines
    write_file(tmp_path, "cloud_agent", day(0), rows, name="big")
    write_file(tmp_path, "scanner", day(0), rows[:80], name="big", fmt="jsonl")
    pipeline.upload(tmp_path)
    first = pipeline.receive(pipeline.queue_url)
    assert pipeline.deliver(first)["batchItemFailures"] == []
    parts = pipeline.receive(pipeline.queue_url)
    assert len(parts) >= 6 and all("qlumeter_part" in m["Body"] for m in parts)
    assert pipeline.meter(as_of="2026-01-01")["results"][0]["total_qlus"] == "0"  # partial
    assert pipeline.deliver(parts + parts[:2])["batchItemFailures"] == []  # with repeats
    expected, _, read = meter_folder(parse_subscription(SUBSCRIPTION), tmp_path, day(0))
    total = pipeline.meter(as_of="2026-01-01")["results"][0]["total_qlus"]
    assert total == expected["summary"]["total_qlus"]
    stored = sum(len(json.loads(item.row)) for item in ObservationItem.scan())
    assert stored == read.rows
    rejects = [
        json.loads(line)
        for obj in pipeline.s3.list_objects_v2(Bucket=INVENTORY_BUCKET, Prefix="rejects/")[
            "Contents"
        ]
        for line in pipeline.s3.get_object(Bucket=INVENTORY_BUCKET, Key=obj["Key"])["Body"]
        .read()
        .decode()
        .splitlines()
    ]
    assert sorted((r["path"], r["line"], r["field"]) for r in rejects) == sorted(
        (r["path"], r["line"], r["field"]) for r in expected["ingest"]["rejects"]
    )


def test_plan_caps_and_own_networks_alert_once_per_crossing(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.put_subscription(
        dict(
            SUBSCRIPTION,
            plan="custom",
            caps={"ip_addresses": 5},
            subscription_type="consultant",
            own_networks=["192.168.0.0/16", "2001:db8::/32"],
        )
    )

    def scan(n: int, ips: list[str], status: str = "active") -> None:
        rows = [
            {
                "asset_type": "host",
                "asset_id": f"s-{ip}",
                "ip": ip,
                "status": status,
                "modules": "vmdr",
            }
            for ip in ips
        ]
        write_file(tmp_path, "scanner", day(n), rows, name=f"scan{n}-{status}")

    scan(0, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"])  # 4 of 5: 0.8
    scan(1, ["10.0.0.4"], "decommissioned")  # 3: below
    scan(2, ["10.0.0.4"])  # 4 again: 0.8 crossed again
    scan(2, ["2001:db8::7"], "inactive")  # an own network scanned (inactive: not counted)
    scan(3, ["10.0.0.5"])  # 5: 1.0
    scan(4, ["10.0.0.5"])  # still 1.0: no new crossing
    pipeline.upload(tmp_path)
    pipeline.deliver()
    run_schedule(pipeline, 4)
    alerts = {
        m["as_of"]: m["alerts"]
        for m in pipeline.published()
        if m["event_type"] == "threshold_alert"
    }
    assert sorted(alerts) == ["2026-01-01", "2026-01-03", "2026-01-04"]
    assert {a["type"]: a.get("level") for a in alerts["2026-01-03"]} == {
        "plan_cap": "0.8",
        "own_network_scanned": None,
    }
    assert [a for a in alerts["2026-01-03"] if a["type"] == "own_network_scanned"] == [
        {"type": "own_network_scanned", "count": 1, "sample": ["2001:db8::7"]}
    ]
    assert [a["level"] for a in alerts["2026-01-04"] if a["type"] == "plan_cap"] == ["1.0"]
