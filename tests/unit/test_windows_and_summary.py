"""Windows (section 5), activation and term (section 2), rounding and the v1 summary (8)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import jsonschema
import pytest

from qlumeter.numbers import fmt, round_half_up
from qlumeter.summary import build_summary, json_schema
from qlumeter.windows import avg90, interval_of, peak15, sum90
from tests.support import obs, run, subscription, usage_of

SCHEMA = json_schema()
START = date(2026, 1, 1)


def days(n: int, first: date = START) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


def test_intervals_are_anchored_at_start_date() -> None:
    assert interval_of(START, date(2026, 1, 15)) == (date(2026, 1, 1), date(2026, 1, 15))
    assert interval_of(START, date(2026, 1, 16)) == (date(2026, 1, 16), date(2026, 1, 30))
    assert interval_of(date(2026, 3, 10), date(2026, 4, 1)) == (date(2026, 3, 25), date(2026, 4, 8))
    assert interval_of(START, date(2026, 1, 20), end=date(2026, 1, 22))[1] == date(2026, 1, 22)


def test_peak15_takes_the_interval_maximum_so_far_and_earliest_peak_day() -> None:
    values = dict(zip(days(20), [3, 7, 7, 2] + [1] * 11 + [9, 4, 4, 4, 4], strict=True))
    series = {d: Fraction(v) for d, v in values.items()}
    w = peak15(series, START, START, date(2026, 1, 10))
    assert (w.utilization, w.peak_day) == (7, date(2026, 1, 2))
    w = peak15(series, START, START, date(2026, 1, 20))
    assert (w.start, w.end, w.utilization, w.peak_day) == (
        date(2026, 1, 16),
        date(2026, 1, 30),
        9,
        date(2026, 1, 16),
    )


def test_peak15_ignores_days_before_active_from() -> None:
    series = {d: Fraction(10 if d < date(2026, 1, 5) else 2) for d in days(15)}
    w = peak15(series, START, date(2026, 1, 5), date(2026, 1, 15))
    assert (w.utilization, w.peak_day) == (2, date(2026, 1, 5))
    w = peak15({}, START, date(2026, 2, 1), date(2026, 1, 15))
    assert (w.utilization, w.peak_day) == (0, None)


def test_avg90_averages_covered_days_only() -> None:
    series = {d: Fraction(100) for d in days(120)}
    covered = {START + timedelta(days=i) for i in (95, 100, 110)}
    series[START + timedelta(days=100)] = Fraction(40)
    w = avg90(series, START, START + timedelta(days=119), covered.__contains__)
    assert (w.start, w.utilization, w.covered_days) == (START + timedelta(days=30), 80, 3)
    w = avg90(series, START, START + timedelta(days=119), lambda d: False)
    assert (w.utilization, w.covered_days) == (0, 0)


def test_sum90_sums_the_last_ninety_days() -> None:
    series = {d: Fraction(1) for d in days(200)}
    assert sum90(series, START, START + timedelta(days=199)).utilization == 90
    assert sum90(series, START, START + timedelta(days=9)).utilization == 10


def test_round_half_up_and_format() -> None:
    assert round_half_up(Fraction(5, 2)) == 3
    assert round_half_up(Fraction(-5, 2)) == -3
    assert round_half_up(Fraction(1300, 3), 4) == Decimal("433.3333")
    assert fmt(Decimal("187.500")) == "187.5"
    assert fmt(Decimal("0.000")) == "0"
    assert fmt(Decimal("1.5E+4")) == "15000"


def ot_rows(enriched: int, vulnerable: int, on: str = "2026-01-01") -> list:
    rows = [
        obs("ot_sensor", on, "ot_asset", asset_id=f"e{i}", ot_level="enriched")
        for i in range(enriched)
    ]
    return rows + [
        obs("ot_sensor", on, "ot_asset", asset_id=f"v{i}", ot_level="vulnerable")
        for i in range(vulnerable)
    ]


@pytest.mark.parametrize(
    ("rounding", "utilization", "qlus"),
    [
        ({"utilization": "half_up", "qlu": "exact"}, "433", "649.5"),
        ({"utilization": "half_up", "qlu": "half_up"}, "433", "650"),
        ({"utilization": "exact", "qlu": "exact"}, "433.3333", "650"),
        ({"utilization": "exact", "qlu": "half_up"}, "433.3333", "650"),
    ],
)
def test_rounding_settings(rounding: dict, utilization: str, qlus: str) -> None:
    sub = subscription({"VMDR_OT": {"ratio": "1.5"}}, rounding=rounding)
    product = build_summary(sub, run(sub, ot_rows(200, 300), "2026-01-01"))["products"][0]
    assert (product["utilization"], product["qlus"]) == (utilization, qlus)


def test_exact_qlus_show_four_decimals() -> None:
    sub = subscription({"VMDR_OT": {"ratio": "0.333"}}, rounding={"utilization": "exact"})
    product = build_summary(sub, run(sub, ot_rows(1, 0), "2026-01-01"))["products"][0]
    assert (product["utilization"], product["qlus"]) == ("0.6667", "0.222")


def test_active_from_starts_the_product_later() -> None:
    rows = [
        obs("cloud_agent", "2026-01-02", agent_id="early", modules=["vmdr"]),
        obs("cloud_agent", "2026-01-20", agent_id="late", modules=["vmdr"]),
    ]
    sub = subscription(
        {"VMDR": {"ratio": "1", "active_from": "2026-01-18"}, "CSAM": {"ratio": "1"}}
    )
    m = run(sub, rows, "2026-01-20")
    vmdr = usage_of(m, "VMDR")
    assert min(vmdr.daily) == date(2026, 1, 18)  # windows never reach before it
    assert vmdr.window.utilization == 1  # the early agent is ignored
    assert (vmdr.window.start, vmdr.window.end) == (date(2026, 1, 16), date(2026, 1, 30))
    m = run(sub, rows, "2026-01-10")
    assert usage_of(m, "VMDR").window.utilization == 0  # interval entirely before it


def test_end_date_caps_the_as_of_day_and_the_last_interval() -> None:
    rows = [
        obs("cloud_agent", "2026-01-17", agent_id="a", modules=["vmdr"]),
        obs("cloud_agent", "2026-01-21", agent_id="b", modules=["vmdr"]),
    ]
    sub = subscription(["VMDR"], end_date="2026-01-20")
    m = run(sub, rows, "2026-02-10")
    assert m.as_of == date(2026, 1, 20)
    w = usage_of(m, "VMDR").window
    assert (w.start, w.end, w.utilization) == (date(2026, 1, 16), date(2026, 1, 20), 1)


def test_as_of_before_start_is_an_error() -> None:
    with pytest.raises(ValueError, match="before the subscription start_date"):
        run(subscription(["VMDR"]), [], "2025-12-31")


def test_summary_matches_the_v1_schema_with_totals_and_alerts() -> None:
    rows = [
        obs("cloud_agent", "2026-01-01", agent_id=f"a{i}", modules=["vmdr", "edr"], vuln_count=1)
        for i in range(10)
    ]
    sub = subscription(
        {"VMDR": {"ratio": "1.5"}, "EDR": {"ratio": "2.85"}, "CSPM": {"ratio": "12"}},
        entitlement_qlus="50",
    )
    summary = build_summary(sub, run(sub, rows, "2026-01-01"))
    jsonschema.validate(summary, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert summary["total_qlus"] == "43.5"
    assert [a["threshold"] for a in summary["alerts"]] == ["0.8"]
    cspm = summary["products"][2]
    assert (cspm["window"], cspm["covered_days"], cspm["utilization"]) == ("avg90", 0, "0")
