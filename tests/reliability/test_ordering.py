"""At-least-once and ordering: the notifications of a set of files are delivered in a
random order, some several times, some after their day was metered (within
``late_data_days``), with the daily schedule and the late-data runs at random points
between them; the final summaries, daily values and manifests equal those of a clean
in-order run, no (as_of, event_type, revision) is published twice and each day's
revisions run 1, 2, 3... without a gap.

Each example plays a new tenant in the same moto account (tenants share nothing), so the
function-scoped ``pipeline`` fixture serves every example.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.reliability.harness import (
    FIGURES,
    Driver,
    agents,
    day,
    duplicates,
    engine_numbers,
    latest_by_day,
    numbers,
    published_for,
    scanner,
    snapshot,
    subscription,
    vms,
)
from tests.support import Pipeline, write_file

LATE_DAYS = 2
LAST_RUN = 7  # the schedule meters days 0..7: checkpoints are taken from heads 5 times
File = tuple[str, int, str, str, list[dict[str, Any]]]  # source, day, name, format, rows
#: The files in upload order.
FILES: list[File] = [
    ("cloud_agent", 0, "agents", "csv", agents(6)),
    ("scanner", 0, "scan", "jsonl", scanner(0)),
    ("cloud_agent", 1, "agents", "csv", agents(8)),
    ("cspm", 1, "vms", "json", vms(3)),
    ("cloud_agent", 2, "agents", "jsonl", agents(7)),
    ("scanner", 2, "scan", "csv", scanner(2)),
    ("cloud_agent", 3, "agents", "csv", agents(9, first=1)),
]
#: The same, with a second version of day 3's agents file uploaded last.
VERSIONED: list[File] = [*FILES, ("cloud_agent", 3, "agents", "csv", agents(4, first=2))]
_tenants = itertools.count()
_REFERENCE: dict[str, Any] = {}


def sub(tenant: str) -> dict[str, Any]:
    return dict(subscription(tenant), late_data_days=LATE_DAYS)


def upload(p: Pipeline, root: Path, tenant: str, files: list[File]) -> list[dict[str, Any]]:
    """Put the files one after the other; their notifications in upload order, with the
    version id and the increasing sequencer S3 sends for a versioned bucket (moto's
    notifications carry neither: without them every delivery would read the newest
    version, and the order of versions would go untested)."""
    from tests.reliability.harness import bucket_of

    messages = []
    for n, (source, on, name, fmt, rows) in enumerate(files):
        path = write_file(root, source, day(on), rows, name=name, fmt=fmt, tenant=tenant)
        key = path.relative_to(root).as_posix()
        put = p.s3.put_object(Bucket=bucket_of(p), Key=key, Body=path.read_bytes())
        (message,) = [m for m in p.receive(p.queue_url) if "s3:TestEvent" not in m["Body"]]
        body = json.loads(message["Body"])
        notified = body["Records"][0]["s3"]["object"]
        notified.update(versionId=put["VersionId"], sequencer=f"{0x617F0829932900 + n:016X}")
        message["Body"] = json.dumps(body)
        messages.append(message)
    return messages


def play(p: Pipeline, tenant: str, messages: list[dict[str, Any]], plan: dict[str, Any]) -> None:
    """Deliver each message at its points (``at[i]``: before the run of that day, or after
    the last run), honour the late-data requests (at once, before the next daily run, or
    delayed past it), run the schedule for days 0..LAST_RUN, then once more for the last
    day."""
    assert p.put_subscription(sub(tenant))["ok"]
    driver = Driver(p)
    for run in range(LAST_RUN + 2):
        for i in plan["order"]:
            for _ in range(plan["at"][i].count(run)):
                driver.drain([messages[i]])
                if plan["late"] == "at once":
                    driver.honour_late()
        if plan["late"] != "after the next run":
            driver.honour_late()
        driver.meter(tenant, day(min(run, LAST_RUN)).isoformat())
        if plan["late"] == "after the next run":
            driver.honour_late()
    driver.honour_late()
    assert driver.failures == 0 and driver.dead == []


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    """Delivery points per message: the first no later than ``late_data_days`` runs after
    its day's run (later is ignored by design: ``late_file_ignored``), up to two more
    anywhere; a random order within a point; late requests honoured at once, before the
    next daily run or after it."""
    at = []
    for _, on, *_ in FILES:
        first = draw(st.integers(0, min(on + LATE_DAYS, LAST_RUN + 1)), label="first")
        extra = draw(st.lists(st.integers(first, LAST_RUN + 1), max_size=2), label="again")
        at.append([first, *extra])
    order = draw(st.permutations(range(len(FILES))), label="order")
    late = draw(st.sampled_from(["at once", "before the next run", "after the next run"]))
    return {"at": at, "order": order, "late": late}


def in_order_plan(files: list[File]) -> dict[str, Any]:
    return {
        "at": [[on] for _, on, *_ in files],
        "order": list(range(len(files))),
        "late": "at once",
    }


def summary_view(message: dict[str, Any]) -> tuple[Any, ...]:
    return (*numbers(message), json.dumps(message["alerts"], sort_keys=True))


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without what depends on the delivery history: revisions and events, and
    which meter states (head, checkpoint) a run could start from (where the checkpoint
    stands is checked by test_a_file_older_than_the_late_window_is_reported_not_replayed)."""
    out = dict(state)
    out["summaries"] = [(as_of, digest) for as_of, _, digest, _ in state["summaries"]]
    out.pop("receipts")  # one per message published: checked against the messages in check()
    out["state"] = {
        k: v for k, v in state["state"].items() if not k.startswith(("checkpoint_", "head_"))
    }
    return out


def reference(p: Pipeline, root: Path, files: list[File], tenant: str) -> dict[str, Any]:
    """The clean in-order run (once per process and file set), checked against the
    engine CLI on the same folder."""
    if tenant not in _REFERENCE:
        play(p, tenant, upload(p, root, tenant, files), in_order_plan(files))
        messages = published_for(p, tenant)
        latest = latest_by_day(messages)
        assert sorted(latest) == [day(n).isoformat() for n in range(LAST_RUN + 1)]
        for as_of, message in latest.items():
            assert numbers(message) == engine_numbers(root, tenant, as_of)
        _REFERENCE[tenant] = {
            "latest": {d: summary_view(m) for d, m in latest.items()},
            "state": comparable(snapshot(p, tenant)),
        }
    return _REFERENCE[tenant]


def check(p: Pipeline, tenant: str, expected: dict[str, Any]) -> None:
    published = published_for(p, tenant)
    assert duplicates(published) == []
    revisions: dict[str, list[int]] = defaultdict(list)
    for m in published:
        revisions[m["as_of"]].append(m["revision"])
    for as_of, seen in revisions.items():
        assert sorted(set(seen)) == list(range(1, max(seen) + 1)), as_of
    latest = {d: summary_view(m) for d, m in latest_by_day(published).items()}
    assert latest == expected["latest"]
    state = snapshot(p, tenant)
    assert comparable(state) == expected["state"]
    sent = sorted(
        f"{m['as_of']}#{m['event_type']}#{m['revision']}"
        for m in published
        if m["event_type"] != "ingest_failed"
    )
    assert state["receipts"] == sent and state["pending"] == []


@pytest.mark.budget(150)
@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: bounded time
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans())
def test_random_order_duplicates_and_late_arrivals_end_like_a_clean_run(
    pipeline: Pipeline, tmp_path: Path, plan: dict[str, Any]
) -> None:
    expected = reference(pipeline, tmp_path, FILES, "inorder")
    tenant = f"h{next(_tenants)}"
    play(pipeline, tenant, upload(pipeline, tmp_path, tenant, FILES), plan)
    FIGURES["ordering: random plans played"] += 1
    FIGURES["ordering: notifications delivered"] += sum(len(points) for points in plan["at"])
    check(pipeline, tenant, expected)


def test_a_new_version_within_the_late_window_replaces_the_old_one(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Days 0-7 are delivered and metered in order, except day 3's agents file, which
    arrives after the run of day 4 (its late run saves a checkpoint at day 2, with day 3's
    rows queued) and is then replaced (version 2: 4 rows instead of 9), both within
    late_data_days. Every day's numbers must be version 2's, as in a run that had version 2
    from the start."""
    expected = reference(pipeline, tmp_path, VERSIONED, "versions")
    plan = in_order_plan(VERSIONED)
    plan["at"][6] = [3 + LATE_DAYS]  # day 3's agents file, late: a checkpoint is saved
    plan["at"][7] = [3 + LATE_DAYS]  # then its version 2
    play(pipeline, "late-v2", upload(pipeline, tmp_path, "late-v2", VERSIONED), plan)
    check(pipeline, "late-v2", expected)


def test_a_file_older_than_the_late_window_is_reported_not_replayed(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Days 0-7 are metered in order (late_data_days = 2): the checkpoint stands at day 5.
    Day 0's scanner file then arrives: it is older than the late window, so it is kept,
    reported (late_file_ignored) and changes nothing already published."""
    from qlumeter.pipeline.dynamo import DynamoStore

    plan = in_order_plan(FILES)
    plan["at"][1] = []  # day 0's scanner file is held back
    tenant = "too-late"
    messages = upload(pipeline, tmp_path, tenant, FILES)
    play(pipeline, tenant, messages, plan)
    before = published_for(pipeline, tenant)
    assert DynamoStore().get_state(tenant).checkpoint_day == day(LAST_RUN - LATE_DAYS)
    driver = Driver(pipeline)
    driver.drain([messages[1]])
    driver.honour_late()
    driver.meter(tenant, day(LAST_RUN + 1).isoformat())
    after = published_for(pipeline, tenant)
    assert before and [m["event_type"] for m in after] == ["usage_summary"]
    alerts = [a for a in after[0]["alerts"] if a["type"] == "late_file_ignored"]
    assert [a["path"] for a in alerts] == [f"tenant=T/source=scanner/date={day(0)}/scan.jsonl"]
