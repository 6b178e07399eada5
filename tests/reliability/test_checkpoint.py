"""Late files within ``late_data_days`` against the checkpoint that moves every day: whatever
order the daily runs, the late-data runs (on time, delayed past the next daily run) and
reruns of past days come in, every day's last published summary and every stored daily
value equal the engine CLI's numbers on the same folder, and nothing is left pending.

The checkpoint is taken from the head saved ``late_data_days`` earlier when that head has
every file it should, so these plays make heads go stale in each way a late file can:
after the heads of later days were saved, before a rerun of its own day, behind the newest
head.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from qlumeter.config import parse_subscription
from qlumeter.pipeline.dynamo import DynamoStore, FileItem
from qlumeter_cli.local import meter_folder
from tests.reliability.harness import (
    agents,
    day,
    engine_numbers,
    latest_by_day,
    numbers,
    published_for,
    snapshot,
    subscription,
    vms,
)
from tests.support import Pipeline, write_file

IP_ONLY = [
    {"asset_type": "host", "ip": f"10.0.0.{i}", "modules": "vmdr", "vuln_count": 0}
    for i in range(1, 9)
]
#: Each play: late_data_days, then steps: ("run", n) meters day n (a daily run, a
#: late-data run naming the newest day, or a rerun of a past day), ("file", source, n,
#: rows) drops a file for day n.
PLAYS: dict[str, tuple[int, list[tuple[Any, ...]]]] = {
    "late runs, then checkpoints taken past them": (
        3,
        [
            *[("run", n) for n in range(7)],
            ("file", "cspm", 4, vms(9)),
            ("run", 6),  # the late-data run
            ("run", 7),
            ("run", 8),
            ("file", "cspm", 8, vms(2)),
            ("run", 8),
            *[("run", n) for n in (9, 10, 11)],
        ],
    ),
    "a late-data run delayed past the next daily run": (
        2,
        [
            *[("run", n) for n in range(8)],
            ("file", "scanner", 6, IP_ONLY),  # arrived during the run of day 7
            ("run", 6),  # its late-data run, after it
            *[("run", n) for n in (8, 9, 10, 11)],
        ],
    ),
    "a rerun of a past day": (
        3,
        [
            *[("run", n) for n in range(7)],
            ("file", "scanner", 4, IP_ONLY),
            ("run", 4),  # an operator reruns day 4
            *[("run", n) for n in range(7, 12)],
        ],
    ),
}


def drop(p: Pipeline, root: Path, tenant: str, source: str, n: int, rows: Any) -> None:
    fmt = "json" if source == "cspm" else "csv"
    path = write_file(root, source, day(n), rows, fmt=fmt, tenant=tenant)
    p.upload_file(path.relative_to(root).as_posix(), path.read_bytes())
    assert p.deliver()["batchItemFailures"] == []


@pytest.mark.budget(120)
@pytest.mark.parametrize("name", list(PLAYS))
def test_late_files_within_the_window_count_whatever_the_run_order(
    pipeline: Pipeline, tmp_path: Path, name: str
) -> None:
    late_days, steps = PLAYS[name]
    tenant = "late"
    assert pipeline.put_subscription(dict(subscription(tenant), late_data_days=late_days))["ok"]
    for n in range(12):
        drop(pipeline, tmp_path, tenant, "cloud_agent", n, agents(3 + n % 4))
    for n in range(4):
        drop(pipeline, tmp_path, tenant, "cspm", n, vms(2))
    for step in steps:
        if step[0] == "run":
            pipeline.meter(subscription_id=tenant, as_of=day(step[1]).isoformat())
        else:
            drop(pipeline, tmp_path, tenant, *step[1:])
    latest = latest_by_day(published_for(pipeline, tenant))
    assert sorted(latest) == [day(n).isoformat() for n in range(12)]
    truth = {as_of: engine_numbers(tmp_path, tenant, as_of) for as_of in latest}
    assert {as_of: numbers(m) for as_of, m in latest.items()} == truth
    codes = list(subscription(tenant)["products"])
    stored = DynamoStore().daily(tenant, codes, day(0), day(11))
    document, _, _ = meter_folder(parse_subscription(subscription(tenant)), tmp_path, day(11))
    assert {
        code: {d.isoformat(): Fraction(v.value) for d, v in values.items()}
        for code, values in stored.items()
    } == {
        code: {row["day"]: Fraction(row["value"]) for row in document["daily"][code]}
        for code in codes
    }
    assert snapshot(pipeline, tenant)["pending"] == []


def test_a_manifest_read_after_the_time_it_carries_is_not_missed(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A file for day 4 whose manifest became readable only after the run of day 5 had
    read the manifests, though it carries an earlier time (clocks, visibility): within the
    margin, the head of day 5 is not trusted, the next run replays from the checkpoint and
    counts the file."""
    tenant = "seen-late"
    service = pipeline.meter_app.service
    service.margin = timedelta(minutes=1)
    assert pipeline.put_subscription(subscription(tenant))["ok"]
    for n in range(7):
        drop(pipeline, tmp_path, tenant, "cloud_agent", n, agents(3))
    for n in range(6):
        pipeline.meter(subscription_id=tenant, as_of=day(n).isoformat())
    saved = DynamoStore().get_state(tenant).heads[day(5)].saved
    drop(pipeline, tmp_path, tenant, "scanner", 4, IP_ONLY)
    (item,) = [i for i in FileItem.query(tenant) if "#scanner#" in i.file]
    item.update(actions=[FileItem.ingested_at.set(saved - timedelta(seconds=30))])
    late, result = pipeline.meter(subscription_id=tenant, as_of=day(6).isoformat())["results"]
    # the late-data request ingest queued runs first, as of day 5: from the checkpoint, the
    # head of day 5 being suspect; the run of day 6 moves the checkpoint (every file of this
    # quick test arrived within the margin of the head it would promote: it replays)
    late_days = subscription(tenant)["late_data_days"]
    assert (late["as_of"], late["days_replayed"]) == (day(5).isoformat(), late_days)
    assert (result["as_of"], result["days_replayed"]) == (day(6).isoformat(), 1 + late_days)
    (summary,) = [m for m in published_for(pipeline, tenant) if m["as_of"] == day(6).isoformat()]
    assert numbers(summary) == engine_numbers(tmp_path, tenant, day(6).isoformat())


def test_a_file_that_misses_the_checkpoint_it_predates_is_reported_not_lost(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The run of day 6 replays (a late file for day 4) and takes the checkpoint at day 4.
    While it runs, a file for day 4 arrives whose manifest carries a time just before the
    run started but is written after the run read the manifests: the checkpoint does not
    have it. Within the margin, the file counts as too late: the next run reports it
    (``late_file_ignored``) and applies nothing of it."""
    tenant = "missed"
    service = pipeline.meter_app.service
    service.margin = timedelta(minutes=1)
    assert pipeline.put_subscription(dict(subscription(tenant), late_data_days=2))["ok"]
    for n in range(8):
        drop(pipeline, tmp_path, tenant, "cloud_agent", n, agents(3))
    for n in range(6):
        pipeline.meter(subscription_id=tenant, as_of=day(n).isoformat())
    drop(pipeline, tmp_path, tenant, "scanner", 4, IP_ONLY)
    pipeline.sqs.purge_queue(QueueUrl=pipeline.meter_url)  # this test asks for the runs itself
    engine_root = tmp_path / "without"
    shutil.copytree(tmp_path / "inventory", engine_root / "inventory")
    read_rows = service.store.rows
    arrived: list[str] = []

    def rows(*args: Any) -> Any:
        if not arrived:  # the manifests are read: the file lands now
            arrived.append("cspm")
            drop(pipeline, tmp_path, tenant, "cspm", 4, vms(5))
        return read_rows(*args)

    service.store.rows = rows
    # the run of day 6, then the late-data request the file's arrival queued meanwhile
    result, late = pipeline.meter(subscription_id=tenant, as_of=day(6).isoformat())["results"]
    service.store.rows = read_rows
    assert (result["as_of"], late["as_of"]) == (day(6).isoformat(), day(5).isoformat())
    assert result["checkpoint_day"] == day(4).isoformat()
    state = DynamoStore().get_state(tenant)
    started = state.heads[day(6)].saved
    (item,) = [i for i in FileItem.query(tenant) if "#cspm#" in i.file]
    item.update(actions=[FileItem.ingested_at.set(started - timedelta(seconds=1))])
    pipeline.meter(subscription_id=tenant, as_of=day(7).isoformat())
    (summary,) = [m for m in published_for(pipeline, tenant) if m["as_of"] == day(7).isoformat()]
    ignored = [a["path"] for a in summary["alerts"] if a["type"] == "late_file_ignored"]
    assert [path.split("/", 1)[1] for path in ignored] == [item.key.split("/", 1)[1]]
    assert numbers(summary) == engine_numbers(engine_root, tenant, day(7).isoformat())
