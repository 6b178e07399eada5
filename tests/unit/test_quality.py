"""Spec section 12's data-quality alerts on the engine: ``source_missing`` and
``data_warning``, bounded per kind."""

from __future__ import annotations

from datetime import date, timedelta

import jsonschema

from qlumeter.quality import (
    MAX_ENTRIES,
    bound_alerts,
    bounded,
    data_warning,
    overflowing,
    source_missing,
)
from qlumeter.summary import build_summary, json_schema
from qlumeter.vocabulary import SOURCES
from tests.support import day, obs, run, series, subscription

SCHEMA = json_schema()


def agents(on: int, count: int = 2) -> list:
    return [obs("cloud_agent", day(on), agent_id=f"a{i}", modules=["vmdr"]) for i in range(count)]


def missing(summary: dict) -> list[dict]:
    return [a for a in summary["alerts"] if a["type"] == "source_missing"]


def test_a_source_is_missing_once_its_snapshot_stops_carrying() -> None:
    sub = subscription(["VMDR", "CSAM"])  # snapshot_carry_days 3
    rows = agents(0) + agents(1)
    for as_of, expected in ((4, []), (5, [("cloud_agent", "2026-01-02", 4)])):
        summary = build_summary(sub, run(sub, rows, day(as_of)))
        assert [(a["source"], a["last_day"], a["days_missing"]) for a in missing(summary)] == (
            expected
        )
        jsonschema.validate(summary, SCHEMA, format_checker=jsonschema.FormatChecker())
    # the alert says what the numbers show: the carried snapshot ends with it
    metering = run(sub, rows, day(5))
    assert series(metering, "CSAM")["2026-01-05"] == "2"
    assert series(metering, "CSAM")["2026-01-06"] == "0"


def test_the_alert_follows_the_carry_setting_and_any_source_mode() -> None:
    rows = agents(0)
    longer = subscription(["VMDR"], snapshot_carry_days=10)
    assert missing(build_summary(longer, run(longer, rows, day(10)))) == []
    assert [
        a["days_missing"] for a in missing(build_summary(longer, run(longer, rows, day(11))))
    ] == [11]
    delta = subscription(["VMDR"], sources={"cloud_agent": {"mode": "delta"}})
    summary = build_summary(delta, run(delta, rows, day(30)))
    assert [(a["source"], a["days_missing"]) for a in missing(summary)] == [("cloud_agent", 30)]


def test_a_named_source_that_never_delivered_is_missing_from_the_start() -> None:
    sub = subscription(["VMDR"], sources={"scanner": {"mode": "delta"}})
    summary = build_summary(sub, run(sub, agents(0) + agents(1), day(1)))
    assert missing(summary) == [
        {"type": "source_missing", "source": "scanner", "last_day": None, "days_missing": 2}
    ]


def test_files_after_the_as_of_day_do_not_hide_a_gap() -> None:
    sub = subscription(["VMDR"])
    rows = agents(0) + agents(20)
    summary = build_summary(sub, run(sub, rows, day(10)))  # day 20's file is not read
    assert [(a["last_day"], a["days_missing"]) for a in missing(summary)] == [("2026-01-01", 10)]


def test_source_missing_lists_every_source_by_name() -> None:
    sub = subscription(["VMDR"])
    last = {"scanner": date(2026, 1, 1), "cloud_agent": date(2026, 1, 2), "cmdb": date(2026, 1, 9)}
    alerts = source_missing(sub, date(2026, 1, 10), last)
    assert [(a["source"], a["days_missing"]) for a in alerts] == [
        ("cloud_agent", 8),
        ("scanner", 9),
    ]


def test_more_than_twenty_entries_of_a_kind_are_one_entry() -> None:
    sub = subscription(["VMDR"])
    first = date(2026, 1, 1)
    last = {s: first + timedelta(days=i) for i, s in enumerate(sorted(SOURCES))}
    every = source_missing(sub, date(2026, 3, 1), last)
    assert len(SOURCES) > MAX_ENTRIES and len(every) == len(SOURCES)
    late = [{"type": "late_file_ignored", "path": f"f{i}", "day": "2026-01-02"} for i in range(3)]
    alerts = bound_alerts([*every, *late])
    assert alerts[1:] == late  # three of a kind stay as they are
    alerts = alerts[:1]
    assert overflowing(every) and not overflowing(late)
    (entry,) = alerts
    assert (entry["type"], entry["count"], entry["first_day"], entry["last_day"]) == (
        "source_missing",
        len(SOURCES),
        "2026-01-01",
        (first + timedelta(days=len(SOURCES) - 1)).isoformat(),
    )
    assert [s["source"] for s in entry["sample"]] == sorted(SOURCES)[:10]
    few = [{"type": "x", "day": "2026-01-01"}] * MAX_ENTRIES
    assert bounded(few, "day") == few
    summary = build_summary(sub, run(sub, agents(0), day(1))) | {"alerts": alerts}
    jsonschema.validate(summary, SCHEMA, format_checker=jsonschema.FormatChecker())


def test_data_warning_counts_the_files_with_unknown_columns_and_samples_them() -> None:
    files = [
        (f"tenant=acme/source=scanner/date=2026-01-05/f{i}.csv", [f"unknown columns ignored: c{i}"])
        for i in range(12)
    ]
    files.append(("tenant=acme/source=cmdb/date=2026-01-05/x.csv", ["unknown modules ignored: q"]))
    (alert,) = data_warning(date(2026, 1, 5), files)
    assert (alert["type"], alert["day"], alert["count"]) == ("data_warning", "2026-01-05", 12)
    assert alert["sample"][0] == {
        "path": "tenant=acme/source=scanner/date=2026-01-05/f0.csv",
        "warning": "unknown columns ignored: c0",
    }
    assert len(alert["sample"]) == 10
    assert data_warning(date(2026, 1, 5), files[-1:]) == []
    sub = subscription(["VMDR"])
    summary = build_summary(sub, run(sub, agents(4), day(4)), extra_alerts=[alert])
    jsonschema.validate(summary, SCHEMA, format_checker=jsonschema.FormatChecker())
