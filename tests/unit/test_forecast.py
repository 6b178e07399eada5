"""The forecast (docs/metering.md, the forecast): trends and projections on constructed
series, exact values; the summary's forecast block and forecast alerts."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import jsonschema
import pytest

from qlumeter import publishing
from qlumeter.catalog import DayValue
from qlumeter.config import ConfigError
from qlumeter.forecast import Band, project, trend
from qlumeter.metering import Metering, usage_as_of
from qlumeter.pipeline.dynamo import state_from_json, state_to_json
from qlumeter.pipeline.ports import TenantState
from qlumeter.summary import build_summary, json_schema
from tests.support import subscription

JAN = date(2026, 1, 1)


def day(n: int) -> date:
    """Day ``n`` of the subscription (1: 2026-01-01)."""
    return JAN + timedelta(days=n - 1)


def series(values: dict[int, int]) -> dict[date, DayValue]:
    return {day(n): DayValue(Fraction(v)) for n, v in values.items()}


def test_a_flat_series_projects_itself_with_no_band() -> None:
    sub = subscription(["VMDR"])
    p = project(sub, "VMDR", day(20), series(dict.fromkeys(range(1, 21), 10)))
    assert p.trend.rate == Band(0, 0, 0)
    assert (p.trend.first_day, p.trend.last_day, p.trend.points) == (day(7), day(20), 14)
    assert p.day == day(30)  # the end of the interval of 2026-01-16
    assert p.utilization == Band(10, 10, 10)
    assert p.path[day(50)] == Band(10, 10, 10)


def test_linear_growth_is_continued_into_the_next_intervals() -> None:
    sub = subscription(["VMDR"])
    p = project(sub, "VMDR", day(20), series({n: n for n in range(1, 21)}))
    assert p.trend.rate == Band(1, 1, 1)
    assert p.utilization == Band(30, 30, 30)
    assert p.path[day(31)] == Band(31, 31, 31)  # a new interval: its first day's value
    assert max(p.path) == day(50)  # 30 days ahead
    assert p.path[day(50)] == Band(50, 50, 50)


def test_a_step_gives_a_band_from_no_change_to_the_step_every_day() -> None:
    sub = subscription(["VMDR"])
    values = {n: 10 if n <= 17 else 20 for n in range(1, 21)}
    p = project(sub, "VMDR", day(20), series(values))
    assert p.trend.rate == Band(Fraction(10, 13), 0, 10)
    assert p.utilization == Band(20 + Fraction(100, 13), 20, 120)


def test_a_drop_keeps_the_interval_peak_as_a_floor() -> None:
    sub = subscription(["VMDR"])
    values = {n: 50 if n <= 18 else 10 for n in range(1, 21)}
    p = project(sub, "VMDR", day(20), series(values))
    assert p.trend.rate == Band(Fraction(-40, 13), -40, 0)
    assert p.utilization == Band(50, 50, 50)
    # the interval of 2026-02-15: the falling value has reached zero; the high bound stays
    assert p.path[day(50)] == Band(0, 0, 10)


def test_gaps_are_skipped_and_the_rate_spans_them() -> None:
    t = trend({day(1): Fraction(10), day(5): Fraction(18), day(7): Fraction(18)}, day(10))
    assert (t.first_day, t.last_day, t.points) == (day(1), day(7), 3)
    assert t.rate == Band(Fraction(4, 3), 0, 2)
    assert t.value(day(12), t.rate.mid) == Fraction(74, 3)  # from the last value read
    assert trend({day(1): Fraction(3)}, day(30)).points == 0  # older than the lookback


def test_avg90_reads_the_covered_days_and_counts_projected_days_as_covered() -> None:
    sub = subscription(["CSPM"])
    daily = series({n: n if n % 2 == 0 else 0 for n in range(1, 11)})
    covered = {day(n) for n in range(2, 11, 2)}
    p = project(sub, "CSPM", day(10), daily, covered)
    assert (p.trend.points, p.trend.rate) == (5, Band(1, 1, 1))
    assert p.day == day(40)
    # covered 2+4+6+8+10, projected 11..40, over 35 days
    assert p.utilization == Band(Fraction(159, 7), Fraction(159, 7), Fraction(159, 7))


def test_sum90_drops_the_days_that_leave_the_window() -> None:
    sub = subscription(["CIS"])
    daily = series({n: 2 if n <= 30 else 1 for n in range(1, 101)})
    p = project(sub, "CIS", day(100), daily)
    assert p.path[day(100)] == Band(110, 110, 110)  # 20 days of 2 and 70 of 1
    assert p.utilization == Band(90, 90, 90)  # 30 days on: the days of 2 have left


def test_a_new_intervals_first_day_and_a_single_value() -> None:
    sub = subscription(["VMDR"])
    p = project(sub, "VMDR", day(16), series({n: n for n in range(1, 17)}))
    assert p.path[day(16)] == Band(16, 16, 16)
    assert (p.day, p.utilization) == (day(30), Band(30, 30, 30))
    first = project(sub, "VMDR", day(1), series({1: 5}))
    assert (first.trend.points, first.trend.rate) == (1, Band(0, 0, 0))
    assert (first.day, first.utilization) == (day(15), Band(5, 5, 5))
    empty = project(sub, "VMDR", day(3), {})
    assert (empty.trend.points, empty.utilization) == (0, Band(0, 0, 0))


def test_the_horizon_stops_at_end_date() -> None:
    sub = subscription(["VMDR"], end_date="2026-01-25")
    p = project(sub, "VMDR", day(20), series({n: n for n in range(1, 21)}))
    assert (max(p.path), p.day, p.utilization) == (day(25), day(25), Band(25, 25, 25))


def _summary(**keys: object) -> dict[str, object]:
    sub = subscription({"VMDR": {"ratio": "1"}}, entitlement_qlus="40", **keys)
    usage = usage_as_of(sub, "VMDR", day(20), series({n: n for n in range(1, 21)}), set())
    return build_summary(sub, Metering(day(20), [usage]))


def test_the_summary_forecast_names_each_thresholds_crossing_day() -> None:
    summary = _summary()
    forecast = summary["forecast"]
    assert isinstance(forecast, dict)
    assert forecast["horizon_end"] == "2026-02-19"
    assert forecast["products"][0]["utilization"] == {"mid": "30", "low": "30", "high": "30"}
    assert forecast["products"][0]["trend"]["rate"] == {"mid": "1", "low": "1", "high": "1"}
    assert forecast["total_qlus"] == {"day": "2026-02-19", "mid": "50", "low": "50", "high": "50"}
    assert forecast["crossings"] == [
        {
            "threshold": "0.8",
            "level_qlus": "32",
            "day": "2026-02-01",
            "earliest": "2026-02-01",
            "latest": "2026-02-01",
        },
        {
            "threshold": "1",
            "level_qlus": "40",
            "day": "2026-02-09",
            "earliest": "2026-02-09",
            "latest": "2026-02-09",
        },
    ]
    assert summary["alerts"] == []  # forecast alerts are off by default
    jsonschema.validate(summary, json_schema(), format_checker=jsonschema.FormatChecker())


def test_a_forecast_alert_names_the_thresholds_projected_within_the_setting() -> None:
    summary = _summary(forecast_alert_days=14)
    assert summary["alerts"] == [
        {
            "type": "forecast_alert",
            "threshold": "0.8",
            "level_qlus": "32",
            "day": "2026-02-01",
            "days_ahead": 12,
        }
    ]
    jsonschema.validate(summary, json_schema(), format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("value", [0, 31, "7"])
def test_forecast_alert_days_is_bounded_and_named(value: object) -> None:
    with pytest.raises(ConfigError, match="forecast_alert_days"):
        subscription(["VMDR"], forecast_alert_days=value)


def test_messages_without_a_forecast_still_validate() -> None:
    """A message of the previous release (no forecast block, no forecast alert) is v1."""
    old = {k: v for k, v in _summary().items() if k != "forecast"}
    jsonschema.validate(old, json_schema(), format_checker=jsonschema.FormatChecker())
    bad = dict(_summary(), forecast={"horizon_end": "2026-02-19"})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema())


def test_a_stored_state_without_projected_thresholds_loads_with_none() -> None:
    stored = state_to_json(TenantState("acme", missing_sources=["scanner"]))
    del stored["forecast"]
    state = state_from_json("acme", stored)
    assert (state.missing_sources, state.forecast) == (["scanner"], [])
    stored = state_to_json(TenantState("acme", forecast=["1"]))
    assert state_from_json("acme", stored).forecast == ["1"]


def test_a_projected_threshold_is_a_crossing_once_per_episode() -> None:
    ahead = [{"type": "forecast_alert", "threshold": "1", "level_qlus": "40"}]
    assert publishing.projected(ahead) == ["1"]
    assert publishing.level_crossed(ahead, [], {}, [], [])
    assert not publishing.level_crossed(ahead, [], {}, [], ["1"])  # in force already
    assert not publishing.level_crossed([], [], {}, [], ["1"])  # the episode ended
