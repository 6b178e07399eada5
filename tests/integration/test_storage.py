"""Items as the previous release wrote them (its attribute names and text forms, written here
with the low-level client) are read by this one: the tenant state, manifests, daily values,
summary records without a version, leases. What it writes back has the same shape."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from qlumeter.pipeline.dynamo import DynamoStore
from qlumeter.pipeline.ports import Conflict, Head, Published
from tests.support import Pipeline, day

TENANT = "acme"
STATE = {
    "checkpoint_day": "2026-01-05",
    "checkpoint_key": "checkpoints/acme/2026-01-05.pickle",
    "checkpoint_at": "2026-01-09T02:29:00+00:00",
    "checkpoint_files": ["tenant=acme/source=cloud_agent/date=2026-01-05/late.csv#v2"],
    "newest_metered": "2026-01-08",
    "thresholds": ["0.5"],
    "heads": {
        "2026-01-07": ["2026-01-08T02:30:00+00:00", "2026-01-04"],
        "2026-01-08": ["2026-01-09T02:30:00+00:00", ""],
    },
    "plan_levels": {"ip_addresses": "0.8"},
}


def put(pipeline: Pipeline, table: str, item: dict[str, Any]) -> None:
    """Write an item as it is stored: every value text (S) or a number (N)."""
    typed = {k: {"N": str(v)} if isinstance(v, int) else {"S": v} for k, v in item.items()}
    pipeline.ddb.put_item(TableName=pipeline.physical[table], Item=typed)


def stored_state(pipeline: Pipeline) -> str:
    item = pipeline.ddb.get_item(
        TableName=pipeline.physical["UsageTable"],
        Key={"pk": {"S": f"{TENANT}#STATE"}, "sk": {"S": "state"}},
    )["Item"]
    return str(item["state"]["S"])


def test_the_previous_releases_state_is_read_and_written_back_alike(pipeline: Pipeline) -> None:
    text = json.dumps(STATE)
    put(pipeline, "UsageTable", {"pk": f"{TENANT}#STATE", "sk": "state", "state": text})
    store = DynamoStore()
    state = store.get_state(TENANT)
    assert state.checkpoint_day == day(4) and state.newest_metered == day(7)
    assert state.checkpoint_at == datetime(2026, 1, 9, 2, 29, tzinfo=UTC)
    assert state.heads == {
        day(6): Head(datetime(2026, 1, 8, 2, 30, tzinfo=UTC), day(3)),
        day(7): Head(datetime(2026, 1, 9, 2, 30, tzinfo=UTC), None),
    }
    assert state.plan_levels == {"ip_addresses": "0.8"}
    store.put_state(state)
    # the same fields, and the version and the newest run's start this release adds
    assert json.loads(stored_state(pipeline)) == STATE | {
        "version": 2,
        "last_run_at": None,
        "missing_sources": [],
        "forecast": [],
    }
    # a release before kept the newest head's day apart ("head_day"): read, not kept
    older = dict(STATE, head_day="2026-01-08")
    put(
        pipeline, "UsageTable", {"pk": f"{TENANT}#STATE", "sk": "state", "state": json.dumps(older)}
    )
    assert store.get_state(TENANT) == state


def test_the_previous_releases_manifests_and_daily_values_are_read(pipeline: Pipeline) -> None:
    key = f"tenant={TENANT}/source=cloud_agent/date=2026-01-02/agents.csv"
    manifest = {
        "tenant": TENANT,
        "file": "2026-01-02#cloud_agent#agents.csv",
        "key": key,
        "version": "v1",
        "sequencer": "0055",
        "checksum": "abc",
        "rows": 10,
        "accepted": 9,
        "rejected": 1,
        "status": "ok",
        "warnings": "[]",
        "rejects_key": f"rejects/inventory/{key}.v1.jsonl",
        "ingested_at": "2026-01-02T03:04:05.000000+0000",
        "parts": 1,
        "parts_done": 0,
        "entities": 9,
    }
    put(pipeline, "FilesTable", manifest)
    older = {k: v for k, v in manifest.items() if k not in ("parts", "parts_done", "entities")}
    older |= {"file": "2026-01-02#cloud_agent#old.csv", "key": key.replace("agents", "old")}
    put(pipeline, "FilesTable", older)  # from before large files came in parts
    put(
        pipeline,
        "UsageTable",
        {"pk": f"{TENANT}#VMDR", "sk": "2026-01-02", "value": "7/2", "components": '{"A1": "3"}'},
    )
    store = DynamoStore()
    first, second = store.manifests(TENANT, day(1), day(1))
    assert (first.ref.key, first.version, first.rows, first.accepted, first.rejected) == (
        key,
        "v1",
        10,
        9,
        1,
    )
    assert first.ingested_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (first.parts, first.entities, first.sequencer) == (1, 9, "0055")
    (daily,) = store.daily(TENANT, ["VMDR"], day(1), day(1))["VMDR"].values()
    assert (str(daily.value), {k: str(v) for k, v in daily.components.items()}) == (
        "7/2",
        {"A1": "3"},
    )
    assert (second.ref.name, second.parts, second.entities) == ("old", 1, 0)


def test_a_summary_record_without_a_version_is_read_and_updated(pipeline: Pipeline) -> None:
    put(
        pipeline,
        "UsageTable",
        {
            "pk": f"{TENANT}#SUMMARY",
            "sk": "2026-01-02",
            "revision": 2,
            "digest": "d2",
            "events": '["correction", "usage_summary"]',
        },
    )
    store = DynamoStore()
    (legacy,) = store.published(TENANT, day(1), day(1)).values()
    assert legacy == Published(date(2026, 1, 2), 2, "d2", ["correction", "usage_summary"])
    assert legacy.version is None and legacy.pending is None
    with pytest.raises(Conflict):  # expected absent: it is there
        store.put_published(TENANT, Published(day(1), 1, "d1", []), None)
    closed = Published(day(1), 2, "d2", ["correction", "interval_closed", "usage_summary"])
    written = store.put_published(TENANT, closed, legacy)
    assert written.version == 1
    with pytest.raises(Conflict):  # the record as read before: it has a version now
        store.put_published(TENANT, closed, legacy)
    assert store.published(TENANT, day(1), day(1)) == {day(1): written}


def test_a_lease_the_previous_release_took_holds(pipeline: Pipeline) -> None:
    now = datetime(2026, 1, 2, 2, 30, tzinfo=UTC)
    until = int(now.timestamp()) + 600
    put(
        pipeline,
        "UsageTable",
        {"pk": f"{TENANT}#LEASE", "sk": "lease", "state": "old-run", "lease_until": until},
    )
    store = DynamoStore()
    assert not store.lease(TENANT, "new-run", now, now)
    store.release(TENANT, "old-run")  # as the old release would end it
    assert store.lease(TENANT, "new-run", now, now)
