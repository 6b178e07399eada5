"""Meter requests: the deduplication ids that make the meter queue coalesce them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from qlumeter.pipeline.dynamo import state_from_json, state_to_json
from qlumeter.pipeline.ports import Head, RunProgress, TenantState
from qlumeter.pipeline.requests import MeterRequest, scheduled_day

AT = datetime(2026, 1, 16, 7, 12, 40, tzinfo=UTC)


def request(**fields: object) -> MeterRequest:
    data = {"subscription_id": "acme", "as_of": date(2026, 1, 15), "reason": "late_data"}
    return MeterRequest.model_validate(data | {"requested_at": AT} | fields)


def test_late_data_requests_of_five_minutes_share_one_id() -> None:
    first = request()
    assert request(requested_at=AT + timedelta(seconds=40)).deduplication_id() == (
        first.deduplication_id()
    )
    assert request(requested_at=AT + timedelta(minutes=5)).deduplication_id() != (
        first.deduplication_id()
    )
    assert request(as_of=date(2026, 1, 16)).deduplication_id() != first.deduplication_id()


def test_other_requests_differ_by_reason_and_tag() -> None:
    schedule = request(reason="schedule")
    assert schedule.deduplication_id() == "acme:2026-01-15:schedule:"
    assert request(reason="schedule", requested_at=AT + timedelta(hours=1)).deduplication_id() == (
        schedule.deduplication_id()
    )  # a schedule delivered twice is one request
    a, b = request(reason="continue", tag="r-1"), request(reason="continue", tag="r-2")
    assert a.deduplication_id() != b.deduplication_id()
    longest = request(subscription_id="x" * 64, reason="continue", tag="y" * 40)
    assert len(longest.deduplication_id()) <= 128  # SQS's limit


def test_a_request_is_validated() -> None:
    with pytest.raises(ValidationError):
        request(subscription_id="a/b")
    with pytest.raises(ValidationError):
        request(reason="whenever")
    assert MeterRequest.model_validate_json(request().body()) == request()


def test_a_schedule_tick_meters_the_day_before() -> None:
    assert scheduled_day(datetime(2026, 1, 16, 2, 30, tzinfo=UTC)) == date(2026, 1, 15)
    assert scheduled_day(datetime.fromisoformat("2026-01-16T00:30:00+01:00")) == date(2026, 1, 14)


def test_a_run_in_progress_is_stored_and_read_back() -> None:
    run = RunProgress(
        as_of=date(2026, 1, 15),
        started=AT,
        first_new=date(2026, 1, 1),
        base=None,
        next_day=date(2026, 1, 9),
        state_key="checkpoints/acme/run-2026-01-15.state",
        folded=["tenant=acme/source=scanner/date=2026-01-03/a.csv#v1"],
        late_basis=(date(2025, 12, 31), AT - timedelta(days=1), ["f#v"]),
        rows=120,
        days=8,
    )
    state = TenantState(
        "acme",
        checkpoint_day=date(2026, 1, 5),
        heads={date(2026, 1, 8): Head(AT, date(2026, 1, 5))},
        run=run,
        last_run_at=AT,
    )
    stored = state_to_json(state)
    assert stored["version"] == 2
    assert state_from_json("acme", stored) == state
