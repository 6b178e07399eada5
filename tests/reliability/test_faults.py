"""Fault injection on moto: after each kind of fault the stored state and the published
messages equal those of a clean run (tenant ``clean``, the same scenario without faults),
the final summaries equal the engine CLI's numbers, no row is lost or counted twice and no
(as_of, event_type, revision) is published twice.

The scenario (``harness.play``): nine files over days 0-3 (CSV, gzip, JSON, JSON Lines, a
file of several write batches, a file split into parts, rejected rows, an unreadable file),
runs on days 1 and 3, a late file for day 2 (a correction), a run on day 15 (an interval
closed), thresholds crossed.
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import (
    Driver,
    Faults,
    FirstTime,
    Outcome,
    by_identity,
    clean_reference,
    duplicates,
    engine_numbers,
    latest_by_day,
    numbers,
    outcome,
    play,
)
from tests.support import Pipeline

TENANT = "acme"
WRITES = ("BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem")


def tables(p: Pipeline) -> dict[str, str]:
    from qlumeter.pipeline.dynamo import TABLES

    names = {name: model.Meta.table_name for name, model in TABLES.items()}
    names["idempotency"] = p.ingest.settings.IDEMPOTENCY_TABLE
    return names


def assert_same_as_clean(got: Outcome, clean: Outcome, root: Path) -> None:
    assert duplicates(got.messages) == []
    assert got.snapshot["manifests"] == clean.snapshot["manifests"]
    assert got.snapshot["rows"] == clean.snapshot["rows"]  # none lost, none twice
    assert got.snapshot == clean.snapshot
    assert by_identity(got.messages) == by_identity(clean.messages)
    for as_of, summary in latest_by_day(got.messages).items():
        assert numbers(summary) == engine_numbers(root, TENANT, as_of), as_of


def pk_endswith(suffix: str) -> Any:
    return lambda params: params.get("Item", {}).get("pk", {}).get("S", "").endswith(suffix)


def usage_message(params: dict[str, Any]) -> bool:
    return bool(params["MessageAttributes"]["event_type"]["StringValue"] != "ingest_failed")


def sns_failing(faults: Faults, where: Any) -> Any:
    """SNS answering the matching publish with server errors past botocore's retries."""
    return faults.add(
        "throttle", "sns", "Publish", attempts=40, code="InternalError", status=500, where=where
    )


@pytest.fixture
def clean(pipeline: Pipeline, tmp_path: Path) -> Outcome:
    return clean_reference(pipeline, tmp_path)


@pytest.mark.budget(120)  # every call answered three times: about 55 s on a quiet machine
def test_transient_throttling_on_every_call_is_absorbed_by_retries(
    pipeline: Pipeline, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every DynamoDB write (observation batches, manifests, part counts, daily values,
    published records, tenant state, idempotency records) and every S3, SNS and SQS call
    is throttled twice before it goes through: botocore's retries absorb it all."""
    faults = Faults(monkeypatch)
    for op in WRITES:
        faults.add("throttle", "dynamodb", op, times=10**6, attempts=2)
    faults.add("throttle", "dynamodb", "Query", times=10**6, attempts=1)
    faults.add("throttle", "dynamodb", "GetItem", times=10**6, attempts=1)
    for op in ("PutObject", "GetObject", "CopyObject"):
        faults.add("throttle", "s3", op, times=10**6, attempts=2, code="SlowDown", status=503)
    faults.add("throttle", "sns", "Publish", times=10**6, attempts=2, code="Throttling")
    faults.add("throttle", "sqs", "SendMessageBatch", times=10**6, attempts=2, code="Throttling")
    driver = Driver(pipeline)
    play(driver, tmp_path, TENANT)
    assert driver.failures == 0 and driver.dead == []
    hit = {rule.operation for rule in faults.rules if rule.hit}
    assert set(WRITES) - {"DeleteItem"} <= hit  # nothing fails, so nothing is deleted
    assert {"Publish", "PutObject", "GetObject", "CopyObject", "SendMessageBatch"} <= hit
    assert faults.total > 100
    assert_same_as_clean(outcome(pipeline, TENANT, faults), clean, tmp_path)


def test_unprocessed_items_on_every_batch_write_are_resent(
    pipeline: Pipeline, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every BatchWriteItem (observation rows, daily values) stores only half its items
    and hands the rest back as UnprocessedItems, again on every resend."""
    faults = Faults(monkeypatch)
    names = tables(pipeline)
    rows = faults.add(
        "unprocessed", "dynamodb", "BatchWriteItem", table=names["observations"], times=10**6
    )
    daily = faults.add(
        "unprocessed", "dynamodb", "BatchWriteItem", table=names["usage"], times=10**6
    )
    driver = Driver(pipeline)
    play(driver, tmp_path, TENANT)
    assert rows.hit > 20 and daily.hit > 3
    assert driver.failures == 0 and driver.dead == []
    assert faults.clock.slept > 0  # backed off between resends
    assert_same_as_clean(outcome(pipeline, TENANT, faults), clean, tmp_path)


def test_throttling_beyond_every_retry_fails_the_invocation_and_the_retry_completes(
    pipeline: Pipeline, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One call on each write path of the ingest (observation batch, manifest, part counts,
    idempotency record, rejects file, ingest_failed message) and on the reads and the first
    writes of a run is throttled past botocore's and the store's retries (40 consecutive
    errors): the invocation fails, SQS redelivers the message (or the schedule retries the
    run), and the retry leaves exactly what a clean run leaves."""
    faults = Faults(monkeypatch)
    names = tables(pipeline)
    beyond = {"times": 1, "attempts": 40}
    plan = [
        # the second batch of the multi-batch file (some rows are already written), through
        # all 8 attempts of the store's own retry loop
        ("BatchWriteItem", names["observations"], {"skip": 1, "times": 8}),
        ("PutItem", names["files"], {"skip": 2}),  # a manifest
        ("UpdateItem", names["files"], {"skip": 1}),  # a part's counts, before applied
        ("PutItem", names["idempotency"], {"skip": 3}),  # the in-progress record
        ("GetItem", names["subscriptions"], {"skip": 4}),
        # a run, before it stores anything (see test_a_run_failing_after_it_stored_its_head)
        ("GetItem", names["usage"], {"skip": 1}),  # the tenant state
        ("Query", names["files"], {"skip": 2}),  # the manifests
        ("Query", names["observations"], {"skip": 40}),  # the replay
    ]
    rules = [
        faults.add("throttle", "dynamodb", op, table=table, **{**beyond, **extra})
        for op, table, extra in plan
    ]
    for prefix in ("rejects/", "checkpoints/"):  # not the test's own uploads
        faults.add(
            "throttle",
            "s3",
            "PutObject",
            times=1,
            attempts=40,
            code="SlowDown",
            status=503,
            where=lambda params, prefix=prefix: params["Key"].startswith(prefix),
        )
    refused = sns_failing(faults, lambda params: not usage_message(params))  # ingest_failed
    driver = Driver(pipeline)
    play(driver, tmp_path, TENANT)
    assert [rule.hit for rule in [*rules, refused]] == [8] + [1] * len(plan)
    assert driver.redeliveries >= 6 and driver.meter_failures >= 3
    assert driver.dead == []
    assert_same_as_clean(outcome(pipeline, TENANT, faults), clean, tmp_path)


def test_killed_mid_file_and_redelivered(
    pipeline: Pipeline, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function is killed (timeout) at several points: in the middle of a file after
    one batch was written, right after a manifest was stored, right after a rejects file
    was written; in a run during its replay, right after it saved a checkpoint, right
    after it stored the tenant state. Nothing runs after a kill (not even Powertools'
    clean-up); the message comes back after the timeout and the run is retried."""
    faults = Faults(monkeypatch)
    names = tables(pipeline)
    kills = [
        faults.add("kill", "dynamodb", "BatchWriteItem", table=names["observations"], skip=1),
        faults.add("kill", "dynamodb", "PutItem", table=names["files"], skip=3, when="after"),
        faults.add(
            "kill",
            "s3",
            "PutObject",
            when="after",
            where=lambda params: params["Key"].startswith("rejects/"),
        ),
        faults.add("kill", "dynamodb", "Query", table=names["observations"], skip=20),
        faults.add(
            "kill",
            "s3",
            "PutObject",
            when="after",
            where=lambda params: (
                re.fullmatch(r"checkpoints/\w+/[0-9-]{10}\.state", params["Key"]) is not None
            ),
        ),
        faults.add(
            "kill",
            "dynamodb",
            "PutItem",
            table=names["usage"],
            skip=1,
            when="after",
            where=pk_endswith("#STATE"),
        ),
    ]
    driver = Driver(pipeline)
    play(driver, tmp_path, TENANT)
    assert [rule.hit for rule in kills] == [1] * len(kills)
    assert driver.kills == 3 and driver.meter_failures == 3 and driver.dead == []
    assert_same_as_clean(outcome(pipeline, TENANT, faults), clean, tmp_path)


def test_sns_publish_failing_then_succeeding(
    pipeline: Pipeline, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SNS refuses every distinct message (usage_summary, threshold_alert, correction,
    interval_closed, ingest_failed) on its first attempt, throttled past botocore's
    retries: the run raises (or the ingest record fails) with the message recorded as not
    sent, the next attempt publishes it at once, once."""
    faults = Faults(monkeypatch)

    def identity(params: dict[str, Any]) -> str:
        message = json.loads(params["Message"])
        message.pop("generated_at", None)
        return json.dumps(message, sort_keys=True)

    rule = faults.add(
        "throttle",
        "sns",
        "Publish",
        times=10**6,
        attempts=40,
        code="Throttling",
        where=FirstTime(identity),
    )
    driver = Driver(pipeline)
    play(driver, tmp_path, TENANT)
    assert_same_as_clean(outcome(pipeline, TENANT, faults), clean, tmp_path)
    events = {m["event_type"] for m in clean.messages}
    assert events == {
        "usage_summary",
        "threshold_alert",
        "correction",
        "interval_closed",
        "ingest_failed",
    }
    assert rule.hit == len(clean.messages)
    assert driver.meter_failures == rule.hit - 1 and driver.redeliveries == 1  # ingest_failed
    assert driver.dead == []


@pytest.mark.parametrize("write", ["daily values", "tenant state"])
def test_a_run_failing_after_it_stored_its_head_is_retried_with_the_same_numbers(
    pipeline: Pipeline,
    tmp_path: Path,
    clean: Outcome,
    monkeypatch: pytest.MonkeyPatch,
    write: str,
) -> None:
    """The run of day 3 fails once it saved its head state: writing its daily values, or
    its tenant state, is throttled past every retry. The retried run must publish what a
    clean run publishes."""
    faults = Faults(monkeypatch)
    usage = tables(pipeline)["usage"]
    if write == "daily values":
        rule = faults.add(  # through every attempt of the store's retry loop
            "throttle", "dynamodb", "BatchWriteItem", table=usage, skip=1, times=8, attempts=40
        )
    else:
        rule = faults.add(
            "throttle",
            "dynamodb",
            "PutItem",
            table=usage,
            skip=1,
            attempts=40,
            where=pk_endswith("#STATE"),
        )
    driver = Driver(pipeline)
    play(driver, tmp_path, TENANT)
    assert rule.hit == (8 if write == "daily values" else 1)
    assert driver.meter_failures == 1
    assert_same_as_clean(outcome(pipeline, TENANT, faults), clean, tmp_path)


@pytest.mark.parametrize("error", ["connection reset", "read timeout"])
def test_get_object_failing_mid_stream(
    pipeline: Pipeline,
    tmp_path: Path,
    clean: Outcome,
    monkeypatch: pytest.MonkeyPatch,
    error: str,
) -> None:
    """The first read of every object, byte range and checkpoint breaks after 100 bytes
    (botocore's ResponseStreamingError, or ReadTimeoutError, an OSError): the record
    fails and is redelivered, the run is retried; never taken as a truncated file."""
    from botocore.exceptions import ReadTimeoutError

    from tests.reliability import harness

    if error == "read timeout":
        monkeypatch.setattr(
            harness.BrokenStream, "error", lambda self: ReadTimeoutError(endpoint_url="s3")
        )
    faults = Faults(monkeypatch)
    rule = faults.add(
        "break_stream",
        "s3",
        "GetObject",
        times=10**6,
        after_bytes=100,
        where=FirstTime(lambda p: (p["Bucket"], p["Key"], p.get("VersionId"), p.get("Range"))),
    )
    driver = Driver(pipeline)
    play(driver, tmp_path, TENANT)
    assert rule.hit >= 15
    assert driver.redeliveries >= 12 and driver.meter_failures >= 1 and driver.dead == []
    assert_same_as_clean(outcome(pipeline, TENANT, faults), clean, tmp_path)


@pytest.mark.parametrize("fault", ["record write throttled", "killed after publishing"])
def test_a_message_is_not_published_twice_when_its_record_is_not_written(
    pipeline: Pipeline,
    tmp_path: Path,
    clean: Outcome,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    """SNS took the day-1 usage summary, then writing its record as sent fails (throttled
    past the retries) or the function dies before it: the message stays pending, the
    ledger's receipt settles it and the retried run does not publish (2026-01-02,
    usage_summary, 1) a second time."""
    faults = Faults(monkeypatch)
    if fault == "record write throttled":
        rule = faults.add(
            "throttle",
            "dynamodb",
            "PutItem",
            table=tables(pipeline)["usage"],
            skip=1,  # the first is the pending record, written before the message goes out
            attempts=40,
            where=pk_endswith("#SUMMARY"),
        )
    else:
        rule = faults.add("kill", "sns", "Publish", when="after", where=usage_message)
    driver = Driver(pipeline)
    play(driver, tmp_path, TENANT)
    assert rule.hit == 1 and driver.meter_failures == 1
    assert_same_as_clean(outcome(pipeline, TENANT, faults), clean, tmp_path)


@pytest.mark.parametrize("fault", ["killed before SNS saw it", "SNS failing with 500"])
def test_a_message_that_may_not_have_gone_out_is_published_once_later(
    pipeline: Pipeline,
    tmp_path: Path,
    clean: Outcome,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    """The run dies right before SNS sees the day-1 usage summary (its pending record is
    written), or SNS answers it with server errors past botocore's retries (it may have
    taken it). The retry at once finds no receipt and waits (raises: the message may still
    be on its way to the ledger); the retry after CONFIRM_AFTER (2 s here) takes it as not
    sent and publishes it, once."""
    import qlumeter.pipeline.usage as usage

    monkeypatch.setattr(usage, "CONFIRM_AFTER", timedelta(seconds=2))
    faults = Faults(monkeypatch)
    if fault == "killed before SNS saw it":
        rule = faults.add("kill", "sns", "Publish", where=usage_message)
    else:
        rule = sns_failing(faults, usage_message)
    driver = Driver(pipeline, retry_after=lambda attempt: time.sleep(2.2 if attempt else 0))
    play(driver, tmp_path, TENANT)
    assert rule.hit == 1 and driver.kills == 0 and driver.meter_failures == 2
    assert_same_as_clean(outcome(pipeline, TENANT, faults), clean, tmp_path)


def test_a_split_object_redelivered_after_its_parts_were_queued(
    pipeline: Pipeline, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The invocation that split the large object dies right after queuing its parts: the
    parts are ingested, then the object's message comes back (after its visibility
    timeout) and is split again."""
    faults = Faults(monkeypatch)
    rule = faults.add("kill", "sqs", "SendMessageBatch", when="after")
    driver = Driver(pipeline)
    play(driver, tmp_path, TENANT)
    assert rule.hit == 1 and driver.kills == 1 and driver.dead == []
    assert_same_as_clean(outcome(pipeline, TENANT, faults), clean, tmp_path)


def test_a_part_redelivered_after_its_counts_were_added(
    pipeline: Pipeline, tmp_path: Path, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The invocation of the first part dies right after adding the part's counts to the
    manifest; the third part's first read fails. Redelivered, the first part comes back
    before the third."""
    faults = Faults(monkeypatch)
    names = tables(pipeline)
    kill = faults.add("kill", "dynamodb", "UpdateItem", table=names["files"], when="after")
    broken = faults.add(
        "break_stream",
        "s3",
        "GetObject",
        after_bytes=100,
        where=lambda params: params.get("Range", "").startswith("bytes=5"),
    )
    driver = Driver(pipeline)
    play(driver, tmp_path, TENANT)
    assert kill.hit == 1 and broken.hit == 1
    assert driver.dead == []
    assert_same_as_clean(outcome(pipeline, TENANT, faults), clean, tmp_path)


def test_two_runs_of_a_tenant_never_overlap(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late-data run starts while the daily run of the tenant is under way (it has read
    the manifests and the summary records): the tenant is leased, so the second run fails
    at once (Conflict) and changes nothing; the first publishes day 0's summary once, and
    the second's retry publishes nothing new."""
    from qlumeter.pipeline.ports import Conflict
    from tests.reliability.harness import agents, day, published_for, subscription
    from tests.support import write_file

    assert pipeline.put_subscription(subscription(TENANT))["ok"]
    path = write_file(tmp_path, "cloud_agent", day(0), agents(4), tenant=TENANT)
    pipeline.upload_file(path.relative_to(tmp_path).as_posix(), path.read_bytes())
    pipeline.deliver()
    service = pipeline.meter_app.service
    read = service.store.published
    second: list[Exception] = []

    def published(tenant: str, first: Any, last: Any) -> Any:
        records = read(tenant, first, last)
        if not second:
            with pytest.raises(Conflict) as refused:
                service.run(tenant, last)
            second.append(refused.value)
        return records

    monkeypatch.setattr(service.store, "published", published)
    first = service.run(TENANT, day(0))
    assert "another run holds the tenant" in str(second[0])
    assert first.published == [("usage_summary", day(0).isoformat(), 1)]
    (retry,) = pipeline.meter(subscription_id=TENANT, as_of=day(0).isoformat())["results"]
    assert retry["published"] == []
    messages = published_for(pipeline, TENANT)
    assert [(m["event_type"], m["as_of"], m["revision"]) for m in messages] == [
        ("usage_summary", day(0).isoformat(), 1)
    ]


def test_a_summary_record_changed_since_it_was_read_is_not_overwritten(
    pipeline: Pipeline,
) -> None:
    """Beneath the lease, each write of a summary record expects the record as the run
    last read or wrote it: absent, or at the version it had then (optimistic locking)."""
    from datetime import date

    from qlumeter.pipeline.dynamo import DynamoStore
    from qlumeter.pipeline.ports import Conflict, Pending, Published

    store, day0 = DynamoStore(), date(2026, 1, 1)
    first = Published(day0, 1, "d1", [], Pending("usage_summary", 1, {"total_qlus": "7"}, None))
    written = store.put_published(TENANT, first, None)
    assert written.version == 1
    with pytest.raises(Conflict):
        store.put_published(TENANT, Published(day0, 1, "d2", []), None)  # not absent now
    sent = Published(day0, 1, "d1", ["usage_summary"])
    (stored,) = store.published(TENANT, day0, day0).values()
    assert stored == written
    with pytest.raises(Conflict):  # a record like it, but not as read: no version
        store.put_published(TENANT, sent, Published(day0, 1, "d1", [], first.pending))
    again = store.put_published(TENANT, sent, stored)  # as read back
    with pytest.raises(Conflict):  # version 1 was read, 2 is stored
        store.put_published(TENANT, Published(day0, 3, "d3", []), stored)
    assert again.version == 2
    assert store.published(TENANT, day0, day0) == {day0: again}


def test_a_lease_ends_with_its_invocation_and_only_its_owner_releases_it(
    pipeline: Pipeline,
) -> None:
    """A run killed at its deadline leaves its lease behind: the lease has ended then, so
    the retry takes the tenant; a late release by the killed run leaves the new lease. A
    lease write retried by botocore after its answer was lost finds its own lease: taken."""
    from datetime import UTC, datetime

    from qlumeter.pipeline.dynamo import DynamoStore

    store, now = DynamoStore(), datetime(2026, 1, 2, 2, 30, tzinfo=UTC)
    assert store.lease(TENANT, "killed", now + timedelta(minutes=15), now)
    assert store.lease(TENANT, "killed", now + timedelta(minutes=15), now)  # a retried write
    assert not store.lease(TENANT, "retry", now + timedelta(minutes=16), now + timedelta(minutes=1))
    later = now + timedelta(minutes=16)
    assert store.lease(TENANT, "retry", later + timedelta(minutes=15), later)
    store.release(TENANT, "killed")
    assert not store.lease(TENANT, "third", later + timedelta(minutes=15), later)
    store.release(TENANT, "retry")
    assert store.lease(TENANT, "third", later + timedelta(minutes=15), later)
