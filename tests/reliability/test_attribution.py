"""Whose an object is, and what a tenant's data may say: keys name exactly one tenant's
folder, failed files are announced to their tenant (or to an id no subscription can
have), identifiers have one form, subscriptions are bounded, and an object the stack's
functions cannot read is quarantined and announced. The handlers of template.yaml's stack
run on moto."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qlumeter.paths import UNATTRIBUTED
from qlumeter.pipeline.dynamo import FileItem, ObservationItem, SubscriptionItem, unpack_rows
from qlumeter.pipeline.ingest import MARKER_SUFFIX
from qlumeter_cli.stack import Context
from tests.reliability.harness import Driver, Faults, bucket_of, subscription
from tests.support import Pipeline

FOLDER = "inventory/tenant=acme/source=cloud_agent/date=2026-01-01/"


def csv_body(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def failures(p: Pipeline) -> dict[str, dict[str, Any]]:
    return {m["key"]: m for m in p.published() if m["event_type"] == "ingest_failed"}


def test_keys_a_folder_before_tenant_is_refused_and_replaces_nothing(pipeline: Pipeline) -> None:
    """``inventory/x/tenant=acme/...`` is not acme's file of the same name: it is refused
    (announced under the reserved id: its key names no tenant's folder) and acme's file
    keeps counting."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    p.upload_file(FOLDER + "agents.csv", csv_body("asset_type,agent_id", "host,a1", "host,a2"))
    forged = "inventory/x/tenant=acme/source=cloud_agent/date=2026-01-01/agents.csv"
    p.upload_file(forged, csv_body("asset_type,agent_id", "host,z1"))
    driver = Driver(p)
    driver.drain()
    assert driver.dead == []
    (item,) = FileItem.query("acme")
    assert (item.key, int(item.accepted)) == (FOLDER.removeprefix("inventory/") + "agents.csv", 2)
    refused = failures(p)[forged]
    assert refused["subscription_id"] == UNATTRIBUTED
    assert refused["reason"].endswith("(no folder before tenant=)")
    p.s3.head_object(Bucket=bucket_of(p), Key=refused["quarantined_as"])


def test_attribution_a_failed_file_goes_to_its_tenant_or_to_the_reserved_id(
    pipeline: Pipeline,
) -> None:
    """A refused or unreadable file is announced to the tenant its ``tenant=`` segment
    names when that parses; otherwise to ``_unattributed``, which fits the summary schema's
    pattern but is refused as a subscription id (put, get, a meter request, a path)."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    keys = {
        "inventory/tenant=acme/source=nmap/date=2026-01-01/x.csv": "acme",
        "inventory/tenant=acme/source=scanner/date=2026-01-01/bad.csv.gz": "acme",
        "inventory/source=scanner/date=2026-01-01/x.csv": UNATTRIBUTED,
        "inventory/tenant=acme corp/source=scanner/date=2026-01-01/x.csv": UNATTRIBUTED,
        f"inventory/tenant={UNATTRIBUTED}/source=scanner/date=2026-01-01/x.csv": UNATTRIBUTED,
        "elsewhere/tenant=acme/source=scanner/date=2026-01-01/x.csv": UNATTRIBUTED,
    }
    for key in keys:
        p.upload_file(key, b"not gzip" if key.endswith(".gz") else b"asset_type\nhost\n")
    notifications = [m for m in p.receive(p.queue_url) if "TestEvent" not in m["Body"]]
    stray = json.loads(notifications[0]["Body"])  # the bucket notifies inventory/ only
    stray["Records"][0]["s3"]["object"]["key"] = next(k for k in keys if k.startswith("else"))
    notifications.append({**notifications[0], "Body": json.dumps(stray)})
    driver = Driver(p)
    driver.drain(notifications)
    assert driver.dead == []
    announced = {key: m["subscription_id"] for key, m in failures(p).items()}
    assert announced == keys
    reserved = dict(subscription("acme"), subscription_id=UNATTRIBUTED)
    for action in ("put", "validate"):
        answer = p.admin.handler({"action": action, "subscription": reserved}, Context("admin"))
        assert answer["ok"] is False and "reserved" in answer["error"]
    answer = p.admin.handler({"action": "get", "subscription_id": UNATTRIBUTED}, Context("admin"))
    assert answer["ok"] is False and "reserved" in answer["error"]
    with pytest.raises(ValueError, match="reserved"):
        p.meter(subscription_id=UNATTRIBUTED, as_of="2026-01-02")
    assert SubscriptionItem.count() == 1


def test_subscriptions_a_huge_one_is_answered_not_raised(pipeline: Pipeline) -> None:
    """A subscription of 30,000 own networks, or of 5,000 thresholds, or of numbers with
    thousands of digits: the admin function answers ``{"ok": false}`` with an error naming
    the key and the bound (put and validate); nothing is stored."""
    p = pipeline
    networks = [f"10.{i // 256 % 256}.{i % 256}.0/24" for i in range(30_000)]
    huge = {
        "own_networks": dict(
            subscription("acme"), subscription_type="consultant", own_networks=networks
        ),
        "alert_thresholds": dict(
            subscription("acme"), alert_thresholds=[f"0.{i:04d}" for i in range(1, 5_001)]
        ),
        "entitlement_qlus": dict(subscription("acme"), entitlement_qlus="9" * 5_000),
        "late_data_days": dict(subscription("acme"), late_data_days=10**9),
    }
    for key, document in huge.items():
        for action in ("put", "validate"):
            answer = p.admin.handler({"action": action, "subscription": document}, Context("a"))
            assert answer["ok"] is False and answer["error"].startswith(f"{key}: "), answer
            assert len(answer["error"]) < 200
    assert SubscriptionItem.count() == 0


def test_identifiers_have_one_form(pipeline: Pipeline) -> None:
    """JSON ``1E3`` in an identifier is rejected (``1000`` and ``"1000"`` are one id), a
    JSON object naming a key twice is rejected (as two CSV columns of one name make a file
    unreadable: never one of the values silently), and a NUL character in a value is
    rejected, in JSON and in CSV."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    lines = [
        '{"asset_type": "host", "agent_id": 1000}',
        '{"asset_type": "host", "agent_id": "1000"}',
        '{"asset_type": "host", "agent_id": 1E3}',
        '{"asset_type": "host", "agent_id": "a1", "agent_id": "a2"}',
        '{"asset_type": "host", "agent_id": "a\\u0000b"}',
        '{"asset_type": "host", "agent_id": "a3", "vuln_count": 1E1}',
    ]
    p.upload_file(FOLDER + "ids.jsonl", "\n".join(lines).encode() + b"\n")
    p.upload_file(FOLDER + "ids.csv", csv_body("asset_type,agent_id", "host,a\x00c", "host,a4"))
    driver = Driver(p)
    driver.drain()
    assert driver.dead == []
    rejects = {}
    for obj in p.s3.list_objects_v2(Bucket=bucket_of(p), Prefix="rejects/")["Contents"]:
        for line in p.s3.get_object(Bucket=bucket_of(p), Key=obj["Key"])["Body"].iter_lines():
            r = json.loads(line)
            rejects[r["path"].rsplit("/", 1)[1], r["line"]] = (r["field"], r["reason"])
    assert rejects == {
        ("ids.jsonl", 3): ("agent_id", "a number in exponent form (1E+3): write it as a string"),
        ("ids.jsonl", 4): ("_row", "duplicate keys in the JSON object: agent_id"),
        ("ids.jsonl", 5): ("agent_id", "NUL character (U+0000)"),
        ("ids.csv", 2): ("agent_id", "NUL character (U+0000)"),
    }
    stored = [
        json.loads(text) for item in ObservationItem.scan() for _, text in unpack_rows(item.row)
    ]
    assert sorted(row["agent_id"] for row in stored) == ["1000", "1000", "a3", "a4"]
    assert [row.get("vuln_count") for row in stored if row["agent_id"] == "a3"] == [10]
    (result,) = p.meter(subscription_id="acme", as_of="2026-01-01")["results"]
    assert result["status"] == "metered"


def test_kms_an_object_the_function_cannot_decrypt_is_quarantined_not_dead_lettered(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object under a KMS key the ingest function cannot use (the bucket policy refuses
    such uploads; one made before it, or by a principal it does not bind, still arrives):
    S3 answers AccessDenied to every read. The object gets a marker under ``quarantine/``
    (it cannot be copied either) and an ``ingest_failed`` message; acme's next file is
    counted."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    faults = Faults(monkeypatch)
    faults.add(
        "throttle",
        "s3",
        "GetObject",
        where=lambda params: params["Key"].endswith("foreign.csv"),
        times=100,
        code="AccessDenied",
        status=403,
    )
    p.upload_file(FOLDER + "foreign.csv", csv_body("asset_type,agent_id", "host,a1"))
    driver = Driver(p)
    driver.drain()
    assert driver.dead == []
    (failed,) = failures(p).values()
    assert failed["reason"].startswith("S3 refused to read the object: AccessDenied")
    assert failed["quarantined_as"] == f"quarantine/{FOLDER}foreign.csv{MARKER_SUFFIX}"
    p.s3.head_object(Bucket=bucket_of(p), Key=failed["quarantined_as"])
    p.upload_file(FOLDER + "next.csv", csv_body("asset_type,agent_id", "host,a2"))
    driver.drain()
    (item,) = [i for i in FileItem.query("acme") if i.file.endswith("next.csv")]
    assert (item.status, int(item.accepted)) == ("ok", 1)
