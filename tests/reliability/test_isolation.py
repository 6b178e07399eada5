"""Tenant isolation: an object whose path says tenant A never changes tenant B's state;
malformed keys and subscription ids are refused everywhere; SNS message attributes let a
consumer subscribe to one tenant only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from qlumeter.config import ConfigError, parse_subscription
from qlumeter.paths import TENANT_ID_PATTERN, UNATTRIBUTED, PathError, parse_key
from qlumeter.pipeline.dynamo import FileItem, ObservationItem, SubscriptionItem
from qlumeter.pipeline.ingest import MARKER_SUFFIX
from tests.reliability.harness import (
    FIGURES,
    AfterTimeout,
    Driver,
    agents,
    bucket_of,
    day,
    engine_numbers,
    numbers,
    published_for,
    snapshot,
    subscription,
)
from tests.support import Pipeline, write_file

BAD_IDS = [
    "",
    "a" * 65,
    "acme corp",
    "acme/globex",
    "../globex",
    "..",
    "acme\n",
    "acme#STATE",  # '#' would reach into another key's DynamoDB partition
    "acme%2Fx",
    "acme.",
    "ａｃｍｅ",  # fullwidth letters
    "café",
    "acme\x00",
    "acme\\x",
]


def drop(p: Pipeline, key: str, body: bytes) -> None:
    p.s3.put_object(Bucket=bucket_of(p), Key=key, Body=body)


def csv_rows(rows: list[dict[str, Any]]) -> bytes:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = [",".join(columns)]
    lines += [",".join(str(row.get(c, "")).replace(",", ";") for c in columns) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def test_an_object_of_tenant_a_never_changes_tenant_b(pipeline: Pipeline, tmp_path: Path) -> None:
    p = pipeline
    for tenant in ("acme", "globex"):
        assert p.put_subscription(subscription(tenant))["ok"]
        write_file(tmp_path, "cloud_agent", day(0), agents(6), tenant=tenant)
    p.upload(tmp_path)
    driver = Driver(p)
    driver.drain()
    for tenant in ("acme", "globex"):
        driver.meter(tenant, day(0).isoformat())
    before = snapshot(p, "globex")
    before_messages = published_for(p, "globex")
    assert before_messages and before["rows"]
    p.published()  # drain the consumer queue
    # acme's files: rows naming globex (CSV column, JSON key), globex's own identifiers,
    # and a key that walks into globex's folder
    named = [dict(row, tenant="globex") for row in agents(4, first=100)]
    drop(p, "inventory/tenant=acme/source=cloud_agent/date=2026-01-01/named.csv", csv_rows(named))
    body = "".join(json.dumps(row) + "\n" for row in named)
    drop(p, "inventory/tenant=acme/source=cloud_agent/date=2026-01-01/named.jsonl", body.encode())
    drop(
        p, "inventory/tenant=acme/source=scanner/date=2026-01-01/same-ids.csv", csv_rows(agents(6))
    )
    walk = "inventory/tenant=acme/../tenant=globex/source=cloud_agent/date=2026-01-01/x.csv"
    drop(p, walk, csv_rows(agents(3, first=200)))
    driver.drain()
    for tenant in ("acme", "globex"):
        driver.meter(tenant, day(0).isoformat())
        driver.meter(tenant, day(1).isoformat())
    after = snapshot(p, "globex")
    assert after["manifests"] == before["manifests"] and after["rows"] == before["rows"]
    assert after["stored_items"] == before["stored_items"]
    assert [x for x in after["daily"] if x[1] == "2026-01-01"] == before["daily"]
    globex_now = published_for(p, "globex")
    assert [m["as_of"] for m in globex_now] == ["2026-01-02"]  # its own next day only
    assert numbers(globex_now[0]) == engine_numbers(tmp_path, "globex", "2026-01-02")
    acme = {m[0]: m for m in snapshot(p, "acme")["manifests"]}
    assert acme["2026-01-01#cloud_agent#named.csv"][2:4] == (0, 4)  # none accepted, 4 rejected
    assert acme["2026-01-01#cloud_agent#named.jsonl"][2:4] == (0, 4)
    rejects = p.s3.list_objects_v2(Bucket=bucket_of(p), Prefix="rejects/")["Contents"]
    reasons = {
        json.loads(line)["reason"]
        for obj in rejects
        for line in p.s3.get_object(Bucket=bucket_of(p), Key=obj["Key"])["Body"].read().splitlines()
    }
    assert reasons == {"'globex' is not the path's tenant 'acme'"}


REFUSED_KEYS = {
    "dot-dot": "inventory/tenant=acme/../tenant=globex/source=scanner/date=2026-01-02/x.csv",
    "dot": "inventory/tenant=acme/./source=scanner/date=2026-01-02/x.csv",
    "encoded slash": "inventory/tenant=acme/source=scanner/date=2026-01-02/a%2Fb.csv",
    "encoded backslash": "inventory/tenant=acme/source=scanner/date=2026-01-02/a%5cb.csv",
    "backslash": "inventory/tenant=acme/source=scanner/date=2026-01-02/a\\b.csv",
    "control character": "inventory/tenant=acme/source=scanner/date=2026-01-02/a\x07b.csv",
    "too long": "inventory/tenant=acme/source=scanner/date=2026-01-02/" + "n" * 990 + ".csv",
    "bad tenant": "inventory/tenant=acme corp/source=scanner/date=2026-01-02/x.csv",
    "long tenant": f"inventory/tenant={'a' * 65}/source=scanner/date=2026-01-02/x.csv",
    "empty segment": "inventory/tenant=acme//source=scanner/date=2026-01-02/x.csv",
    "unknown source": "inventory/tenant=acme/source=nmap/date=2026-01-02/x.csv",
    "bad date": "inventory/tenant=acme/source=scanner/date=2026-02-30/x.csv",
    "extra folder": "inventory/tenant=acme/source=scanner/date=2026-01-02/more/x.csv",
    "no tenant": "inventory/source=scanner/date=2026-01-02/x.csv",
    "bad extension": "inventory/tenant=acme/source=scanner/date=2026-01-02/x.xlsx",
}


def test_malformed_keys_are_quarantined_and_announced(pipeline: Pipeline) -> None:
    p = pipeline
    p.put_subscription(subscription("acme"))
    for key in REFUSED_KEYS.values():
        drop(p, key, csv_rows(agents(2)))
    driver = Driver(p)
    driver.drain()
    assert driver.failures == 0 and driver.dead == []
    failed = {m["key"]: m for m in p.published() if m["event_type"] == "ingest_failed"}
    assert set(failed) == set(REFUSED_KEYS.values())
    for key, message in failed.items():
        copied = len(f"quarantine/{key}".encode()) <= 1024  # S3's longest key
        assert message["reason"] and message["subscription_id"] in ("acme", UNATTRIBUTED)
        if copied:
            assert message["quarantined_as"] == "quarantine/" + key
        else:  # a marker named by the key's digest
            assert message["quarantined_as"].endswith(MARKER_SUFFIX)
        p.s3.head_object(Bucket=bucket_of(p), Key=message["quarantined_as"])
    assert ObservationItem.count() == 0 and FileItem.count() == 0
    FIGURES["isolation: malformed keys refused"] += len(failed)


def test_a_key_too_long_for_the_tables_is_refused_not_dead_lettered(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.reliability.harness import Faults

    Faults(monkeypatch)  # no faults: only backoff sleeps skipped
    p = pipeline
    p.put_subscription(subscription("acme"))
    key = "inventory/tenant=acme/source=scanner/date=2026-01-02/" + "n" * 952 + ".csv"
    assert len(key.encode()) <= 1024  # S3's limit
    drop(p, key, csv_rows(agents(2)))
    driver = Driver(p)
    driver.drain()
    assert driver.dead == []
    manifests = list(FileItem.query("acme"))
    failed = [m for m in p.published() if m["event_type"] == "ingest_failed"]
    assert (len(manifests), len(failed)) in ((1, 0), (0, 1))  # ingested, or refused


def test_a_key_that_is_not_utf8_is_refused(pipeline: Pipeline) -> None:
    p = pipeline
    p.put_subscription(subscription("acme"))
    drop(p, "inventory/tenant=acme/source=scanner/date=2026-01-02/cafe.csv", csv_rows(agents(2)))
    messages = [m for m in p.receive(p.queue_url) if "s3:TestEvent" not in m["Body"]]
    p.receive(p.queue_url)
    body = json.loads(messages[0]["Body"])
    notified = body["Records"][0]["s3"]["object"]
    notified["key"] = notified["key"].replace("cafe", "caf%E9")  # Latin-1 'é'
    messages[0]["Body"] = json.dumps(body)
    driver = Driver(p)
    driver.drain(messages[:1])
    assert driver.dead == []
    assert [m["event_type"] for m in p.published()] == ["ingest_failed"]


def test_parse_key_refuses_names_that_are_not_utf8() -> None:
    with pytest.raises(PathError):
        parse_key("tenant=acme/source=scanner/date=2026-01-02/caf\udce9.csv")


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_an_invalid_subscription_id_is_refused_everywhere(bad: str) -> None:
    assert not TENANT_ID_PATTERN.fullmatch(bad)
    with pytest.raises(ConfigError):
        parse_subscription(dict(subscription("acme"), subscription_id=bad))
    with pytest.raises(PathError):
        parse_key(f"tenant={bad}/source=scanner/date=2026-01-02/x.csv")
    FIGURES["isolation: invalid subscription ids refused"] += 1


def test_invalid_subscription_ids_are_refused_by_the_functions(pipeline: Pipeline) -> None:
    p = pipeline
    for bad in BAD_IDS:
        for action in ("put", "validate"):
            event = {"action": action, "subscription": dict(subscription("x"), subscription_id=bad)}
            response = p.admin.handler(event, AfterTimeout("admin"))
            assert response["ok"] is False and "subscription_id" in response["error"]
        with pytest.raises(ValidationError):
            p.meter(subscription_id=bad, as_of="2026-01-02")
        key = f"inventory/tenant={bad}/source=scanner/date=2026-01-02/x.csv"
        if "\x00" not in bad:
            drop(p, key, b"asset_type\nhost\n")
    assert SubscriptionItem.count() == 0
    driver = Driver(p)
    driver.drain()
    assert driver.failures == 0 and driver.dead == []
    refused = [m for m in p.published() if m["event_type"] == "ingest_failed"]
    assert len(refused) == len([b for b in BAD_IDS if "\x00" not in b])
    # announced to the tenant the key's tenant= segment names (acme/globex: acme's folder),
    # else to the reserved id that no subscription can have
    announced = {m["key"]: m["subscription_id"] for m in refused}
    walk = "inventory/tenant=acme/globex/source=scanner/date=2026-01-02/x.csv"
    assert announced.pop(walk) == "acme"
    assert set(announced.values()) == {UNATTRIBUTED}
    assert FileItem.count() == 0 and ObservationItem.count() == 0


def test_the_admin_get_refuses_invalid_ids(pipeline: Pipeline) -> None:
    for bad in [None, *BAD_IDS]:
        response = pipeline.admin.handler(
            {"action": "get", "subscription_id": bad}, AfterTimeout("admin")
        )
        assert response["ok"] is False and "subscription_id" in response.get("error", "")


def test_sns_filter_policies_deliver_one_tenant_only(pipeline: Pipeline, tmp_path: Path) -> None:
    p = pipeline
    queues = {
        t: p.subscribe_queue(f"only-{t}", {"subscription_id": [t]}) for t in ("acme", "globex")
    }
    for tenant, count in (("acme", 5), ("globex", 3)):
        assert p.put_subscription(subscription(tenant))["ok"]
        write_file(tmp_path, "cloud_agent", day(0), agents(count), tenant=tenant)
    p.upload(tmp_path)
    drop(p, "inventory/tenant=acme/source=scanner/date=2026-01-01/bad.csv.gz", b"not gzip")
    driver = Driver(p)
    driver.drain()
    for tenant in ("acme", "globex"):
        driver.meter(tenant, day(0).isoformat())
    got = {t: p.published(url) for t, url in queues.items()}
    for tenant, messages in got.items():
        assert messages
        assert {m["subscription_id"] for m in messages} == {tenant}
        assert {m["_attributes"]["subscription_id"] for m in messages} == {tenant}
    assert {m["event_type"] for m in got["acme"]} == {"ingest_failed", "usage_summary"}
    assert {m["event_type"] for m in got["globex"]} == {"usage_summary"}
    totals = {t: next(m["total_qlus"] for m in got[t] if "total_qlus" in m) for t in got}
    assert totals["acme"] != totals["globex"]  # each its own numbers
