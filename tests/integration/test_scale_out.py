"""Scale-out on the stack of template.yaml (moto): one request per tenant on the FIFO meter
queue, a tenant's failures kept to that tenant, late files coalesced, runs that go on over
several invocations (deadline or death) publishing what one run would."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from qlumeter.config import parse_subscription
from qlumeter.pipeline.dynamo import DailyItem, DynamoStore
from qlumeter_cli.local import meter_folder
from qlumeter_cli.stack import Context, load_template, sqs_event
from tests.support import TEMPLATE, Pipeline, agents, day, pipeline_subscription, write_file

RESERVE_MS = 60_000  # the template's RESERVE_SECONDS


def _drop(p: Pipeline, root: Path, tenant: str, days: int, hosts: int = 3, name: str = "a") -> None:
    for n in range(days):
        path = write_file(root, "cloud_agent", day(n), agents(hosts + n), name=name, tenant=tenant)
        p.upload_file(path.relative_to(root).as_posix(), path.read_bytes())


def _summaries(p: Pipeline) -> Counter[tuple[str, str, str, int]]:
    """(tenant, as_of, event, revision) of every message the topic delivered."""
    return Counter(
        (m["subscription_id"], m["as_of"], m["event_type"], m["revision"]) for m in p.published()
    )


def test_two_hundred_tenants_one_failing_one_long(pipeline: Pipeline, tmp_path: Path) -> None:
    """One schedule tick: every tenant is metered and published once; the tenant whose run
    always fails ends in the failure queue (the template's alarm watches it) and delays no
    one; the tenant whose run outlasts its invocations goes on until it is done and
    publishes once."""
    tenants = [f"t{n:03d}" for n in range(200)]
    failing, long = "t013", "t042"
    for tenant in tenants:
        assert pipeline.put_subscription(pipeline_subscription(tenant))["ok"]
        _drop(pipeline, tmp_path, tenant, 6 if tenant == long else 1)
    list(pipeline.drain())
    run = pipeline.meter_app.service.run

    def failing_run(tenant: str, *args: Any, **kwargs: Any) -> Any:
        if tenant == failing:
            raise RuntimeError("this tenant's run fails every time")
        return run(tenant, *args, **kwargs)

    pipeline.meter_app.service.run = failing_run
    dispatched = pipeline.dispatch(scheduled_time=f"{day(6)}T02:30:00Z")
    assert dispatched == {"as_of": day(5).isoformat(), "reason": "schedule", "tenants": 200}

    def context(tenant: str) -> Context:  # the long tenant's invocations: one day each
        return Context("meter", remaining_ms=RESERVE_MS + 1 if tenant == long else 900_000)

    results = pipeline.work(raise_errors=False, context=context)
    by_status = Counter((r["tenant"] == long, r["status"]) for r in results)
    assert by_status == {(False, "metered"): 198, (True, "continued"): 5, (True, "metered"): 1}
    sent = _summaries(pipeline)
    assert all(n == 1 for n in sent.values())  # nothing published twice
    as_of = day(5).isoformat()
    # every tenant but the long one delivered on the first day only: its source is missing
    assert {(t, e) for t, a, e, _ in sent if a == as_of} == {
        (t, "usage_summary") for t in tenants if t != failing
    } | {(t, "threshold_alert") for t in tenants if t not in (failing, long)}
    (dead,) = pipeline.receive(pipeline.meter_dead_url)
    assert '"subscription_id":"t013"' in dead["Body"]
    alarm = load_template(TEMPLATE)["Resources"]["MeterDeadLetterQueueAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["MeterDeadLetterQueue", "QueueName"]}
    assert DynamoStore().get_state(long).run is None and len(DynamoStore().get_state(long).heads)


def test_fifty_late_files_cause_at_most_two_replays(pipeline: Pipeline, tmp_path: Path) -> None:
    tenant = "acme"
    assert pipeline.put_subscription(pipeline_subscription(tenant, late_data_days=5))["ok"]
    _drop(pipeline, tmp_path, tenant, 6)
    list(pipeline.drain())
    for n in range(6):
        pipeline.meter(subscription_id=tenant, as_of=day(n).isoformat())
    for k in range(50):
        path = write_file(
            tmp_path,
            "scanner",
            day(3),
            [{"asset_type": "host", "asset_id": f"late-{k}"}],
            name=f"late{k}",
            tenant=tenant,
        )
        pipeline.upload_file(path.relative_to(tmp_path).as_posix(), path.read_bytes())
    list(pipeline.drain())
    assert len(pipeline.late.requests) == 50  # one request per late file was sent ...
    results = pipeline.work()  # ... and the queue coalesced them
    replays = [r for r in results if r["status"] == "metered"]
    assert 1 <= len(replays) <= 2 and len(results) <= 2
    csam = {item.sk: item.value for item in DailyItem.query(f"{tenant}#CSAM")}
    assert csam[day(3).isoformat()] == str(3 + 3 + 50)  # every late host counted on its day


class Killed(BaseException):
    """The invocation dies (out of memory): no handler code runs after it."""


def _killer(countdown: Iterator[int]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(call: Callable[..., Any]) -> Callable[..., Any]:
        def dying(*args: Any, **kwargs: Any) -> Any:
            if next(countdown) == 0:
                raise Killed
            return call(*args, **kwargs)

        return dying

    return wrap


def _long_run(p: Pipeline, root: Path, kill: tuple[str, str, int] | None, deadline: bool) -> Any:
    """A first run of eight days, as of day 7: killed at the k-th call of one operation,
    and/or with an invocation's time for about one day. The dead invocation's request
    comes back after the queue's visibility timeout (the clock moves past its lease)."""
    tenant = "acme"
    assert p.put_subscription(pipeline_subscription(tenant, late_data_days=3))["ok"]
    _drop(p, root, tenant, 8)
    list(p.drain())
    service = p.meter_app.service
    later = timedelta(0)
    service.clock = lambda: datetime.now(UTC) + later
    if kill is not None:
        owner, operation, k = kill
        target = getattr(service, owner)
        countdown = itertools.count(k - 1, -1)  # 0 on the k-th call
        setattr(target, operation, _killer(countdown)(getattr(target, operation)))
    p.dispatch(subscription_id=tenant, as_of=day(7).isoformat())
    remaining = RESERVE_MS + 1 if deadline else 900_000
    deaths = 0
    while True:
        try:
            p.work(context=lambda tenant: Context("meter", remaining_ms=remaining))
            break
        except Killed:
            deaths += 1
            later += timedelta(minutes=16)  # the message is visible again, the lease is over
    daily = sorted(
        (code, item.sk, item.value)
        for code in ("VMDR", "CSAM", "EDR", "CSPM")
        for item in DailyItem.query(f"{tenant}#{code}")
    )
    continued = sum(result.status == "continued" for result in p.runs)
    return _summaries(p), daily, deaths, continued


KILLS = [
    ("store", "rows", 1),
    ("store", "rows", 5),
    ("store", "put_daily", 3),
    ("store", "put_state", 1),
    ("objects", "put", 1),  # the checkpoint
    ("objects", "put", 2),  # the head
    ("store", "put_published", 1),  # the pending record
    ("publisher", "publish", 1),
    ("store", "put_published", 2),  # the record as sent
]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from moto import mock_aws

    from tests.support import ENV

    mp = pytest.MonkeyPatch()
    for key, value in ENV.items():
        mp.setenv(key, value)
    with mock_aws():
        reference = _long_run(Pipeline(mp.setenv), tmp_path_factory.mktemp("clean"), None, False)
    mp.undo()
    return reference


@pytest.mark.parametrize("deadline", [False, True], ids=["whole", "deadline"])
@pytest.mark.parametrize("kill", [None, *KILLS], ids=lambda k: "-".join(map(str, k)) if k else "")
def test_a_run_killed_or_out_of_time_publishes_what_one_run_would(
    pipeline: Pipeline,
    tmp_path: Path,
    uninterrupted: Any,
    kill: tuple[str, str, int] | None,
    deadline: bool,
) -> None:
    if kill is None and not deadline:
        pytest.skip("the reference itself")
    published, daily, deaths, continued = _long_run(pipeline, tmp_path, kill, deadline)
    clean_published, clean_daily, _, _ = uninterrupted
    assert deaths == (kill is not None)
    assert continued == (7 if deadline else 0)  # eight days, one an invocation
    assert daily == clean_daily
    assert published == clean_published


def test_a_run_left_unfinished_is_finished_before_the_next_request(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A request of another day finds a run in progress: it finishes that run first, then
    its own, in the same invocation when time allows."""
    tenant = "acme"
    assert pipeline.put_subscription(pipeline_subscription(tenant))["ok"]
    _drop(pipeline, tmp_path, tenant, 4)
    list(pipeline.drain())
    pipeline.dispatch(subscription_id=tenant, as_of=day(2).isoformat())
    (message,) = pipeline.receive(pipeline.meter_url)  # taken off the queue: no continuation
    short = Context("meter", remaining_ms=RESERVE_MS + 1)
    pipeline.meter_app.handler(sqs_event([message], pipeline.meter_arn), short)
    assert pipeline.runs[-1].status == "continued"
    pipeline.receive(pipeline.meter_url)  # its continuation, lost
    assert DynamoStore().get_state(tenant).run is not None
    pipeline.dispatch(subscription_id=tenant, as_of=day(3).isoformat())
    pipeline.work()
    last = pipeline.runs[-1]
    assert (last.as_of, last.status) == (day(3), "metered")
    assert last.notes == [f"finished first the run as of {day(2)} left unfinished"]
    sent = _summaries(pipeline)
    assert {(a, e) for _, a, e, _ in sent} == {
        (day(2).isoformat(), "usage_summary"),
        (day(3).isoformat(), "usage_summary"),
    }


def test_a_state_of_the_previous_release_is_recomputed_with_a_note(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The previous release stored its meter state as a pickle (format 1): it is never
    unpickled; the run says so and recomputes from the stored rows, and its numbers are the
    engine's."""
    tenant = "acme"
    subscription = pipeline_subscription(tenant)
    assert pipeline.put_subscription(subscription)["ok"]
    _drop(pipeline, tmp_path, tenant, 3)
    list(pipeline.drain())
    key = f"checkpoints/{tenant}/head-{day(0)}.pickle"
    pipeline.s3.put_object(
        Bucket=pipeline.physical["StateBucket"],
        Key=key,
        Body=(Path(__file__).parents[1] / "fixtures/state/format1-head.pickle").read_bytes(),
    )
    state = {  # the previous release's tenant state, naming that head
        "checkpoint_day": str(day(0)),
        "checkpoint_key": key,
        "checkpoint_at": "2026-01-02T02:29:00+00:00",
        "checkpoint_files": [],
        "newest_metered": str(day(0)),
        "thresholds": [],
        "heads": {},
        "plan_levels": {},
    }
    pipeline.ddb.put_item(
        TableName=pipeline.physical["UsageTable"],
        Item={
            "pk": {"S": f"{tenant}#STATE"},
            "sk": {"S": "state"},
            "state": {"S": json.dumps(state)},
        },
    )
    (result,) = pipeline.meter(subscription_id=tenant, as_of=day(2).isoformat())["results"]
    assert result["status"] == "metered" and result["days_replayed"] == 3  # from the start
    (note,) = result["notes"]
    assert key in note and "format 1" in note
    expected, _, _ = meter_folder(parse_subscription(subscription), tmp_path, day(2))
    (summary,) = [m for m in pipeline.published() if m["as_of"] == day(2).isoformat()]
    assert summary["products"] == expected["summary"]["products"]
