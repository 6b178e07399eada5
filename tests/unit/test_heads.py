"""Which saved meter state a run starts from, decided without storage (``newest_head``,
``holds``); the moto suites hold the whole run (tests/reliability/test_checkpoint.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from qlumeter.paths import parse_key
from qlumeter.pipeline.ports import Head, Manifest, TenantState
from qlumeter.pipeline.usage import STALE_MARGIN, holds, newest_head
from tests.support import day

SAVED = datetime(2026, 1, 10, 2, 30, tzinfo=UTC)


def state(checkpoint: int | None, *heads: int, **more: Any) -> TenantState:
    return TenantState(
        "acme",
        checkpoint_day=day(checkpoint) if checkpoint is not None else None,
        heads={day(n): Head(SAVED, day(checkpoint) if checkpoint else None) for n in heads},
        **more,
    )


def manifest(on: date, arrived: datetime, name: str = "agents") -> Manifest:
    return Manifest(
        ref=parse_key(f"tenant=acme/source=cloud_agent/date={on}/{name}.csv"),
        version="v1",
        checksum="",
        rows=1,
        accepted=1,
        rejected=0,
        status="ok",
        ingested_at=arrived,
    )


def test_the_newest_head_between_the_checkpoint_and_the_as_of_day() -> None:
    # late_data_days 3: as of day 9 the checkpoint stands at day 6
    assert newest_head(state(6, 7, 8), day(9), day(6), day(0)) == day(8)
    assert newest_head(state(6, 7, 8, 10), day(9), day(6), day(0)) is None  # a later rerun's
    assert newest_head(state(6), day(9), day(6), day(0)) is None  # no head saved


def test_no_head_while_the_checkpoint_must_move() -> None:
    assert newest_head(state(5, 7, 8), day(9), day(6), day(0)) is None
    assert newest_head(state(None, 1), day(2), day(0), day(0)) is None  # none taken yet
    # before late_data_days have passed no checkpoint is due: the head serves
    assert newest_head(state(None, 1), day(2), day(-1), day(0)) == day(1)


def test_a_head_holds_without_later_arrivals() -> None:
    head = Head(SAVED, day(6))
    before = manifest(day(8), SAVED - timedelta(hours=1))
    assert holds(state(6), head, [before], STALE_MARGIN)
    late = manifest(day(7), SAVED + timedelta(hours=1), "late")
    assert not holds(state(6), head, [before, late], STALE_MARGIN)


def test_arrivals_are_compared_a_margin_early() -> None:
    head = Head(SAVED, day(6))
    just_before = manifest(day(8), SAVED - timedelta(seconds=30))
    assert not holds(state(6), head, [just_before], STALE_MARGIN)
    assert holds(state(6), head, [just_before], timedelta(0))


def test_files_the_checkpoint_reports_as_too_late_do_not_void_a_head() -> None:
    at = SAVED - timedelta(days=1)
    reported = state(6, checkpoint_at=at)
    too_late = manifest(day(5), SAVED + timedelta(hours=1))
    assert holds(reported, Head(SAVED, day(6)), [too_late], STALE_MARGIN)
    folded = state(6, checkpoint_at=at, checkpoint_files=[f"{too_late.ref.key}#v1"])
    assert not holds(folded, Head(SAVED, day(6)), [too_late], STALE_MARGIN)
