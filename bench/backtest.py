"""How good is the forecast? It is made at each day from the days before only, and held
against what metering then gave: the projected interval peak of each peak15 product
(mean absolute error, and how often the truth fell inside low/high), and for the generated
tenant the projected day the total reaches each threshold. Prints figures; asserts nothing.

    python bench/backtest.py [--days 120]

The sample tenant (``qlumeter sample``) and a generated one: VMDR growing 2 a day with a
step of +60 on day 41 and a drop of -120 on day 81, a little noise, entitlement 300.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Mapping
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path

from qlumeter.catalog import PRODUCTS, DayValue
from qlumeter.config import Subscription, load_subscription, parse_subscription
from qlumeter.forecast import first_crossing, project
from qlumeter.summary import qlus_of
from qlumeter.windows import day_range, peak15
from qlumeter_cli.local import meter_folder
from qlumeter_cli.sample import write_sample

Daily = Mapping[date, DayValue]


class Score:
    """Absolute errors and how often the truth was inside the band."""

    def __init__(self) -> None:
        self.errors: list[Fraction] = []
        self.inside = 0

    def add(self, mid: Fraction, low: Fraction, high: Fraction, truth: Fraction) -> None:
        self.errors.append(abs(mid - truth))
        self.inside += low <= truth <= high

    def line(self, what: str) -> str:
        n = len(self.errors)
        if not n:
            return f"{what}: no forecast to score"
        mae = float(sum(self.errors, Fraction(0)) / n)
        return f"{what}: {n} forecasts, MAE {mae:.2f}, truth inside the band {self.inside / n:.0%}"


def peaks(sub: Subscription, daily: Mapping[str, Daily], first: date, last: date) -> Score:
    """Each peak15 product's interval peak projected on each day from ``first``, against
    the interval's actual peak (intervals ending after ``last`` are left out)."""
    score = Score()
    for code, values in daily.items():
        if PRODUCTS[code].window != "peak15":
            continue
        series = {d: v.value for d, v in values.items()}
        start = sub.product_start(code)
        for as_of in day_range(max(first, start), last):
            past = {d: v for d, v in values.items() if d <= as_of}
            p = project(sub, code, as_of, past)
            if p.day > last or p.day == as_of:
                continue
            truth = peak15(series, sub.start_date, start, p.day, sub.end_date).utilization
            score.add(*(p.utilization[i] for i in range(3)), truth=truth)
    return score


def crossings(sub: Subscription, values: Daily, first: date, last: date) -> list[str]:
    """One product's tenant: for each threshold, the projected day it is reached, made on
    each day before the actual day within the horizon, against the actual day."""
    assert sub.entitlement_qlus is not None
    code = next(iter(sub.products))
    start = sub.product_start(code)
    series = {d: v.value for d, v in values.items()}
    actual = {
        d: qlus_of(sub, code, peak15(series, sub.start_date, start, d).utilization)
        for d in day_range(start, last)
    }
    lines = []
    for t in sub.alert_thresholds:
        level = t * sub.entitlement_qlus
        reached = first_crossing(actual, level)
        if reached is None:
            lines.append(f"threshold {t}: not reached")
            continue
        errors, inside, missed = [], 0, 0
        for as_of in day_range(max(first, reached - timedelta(days=30)), reached - timedelta(1)):
            p = project(sub, code, as_of, {d: v for d, v in values.items() if d <= as_of})
            days = [
                first_crossing({d: qlus_of(sub, code, b[i]) for d, b in p.path.items()}, level)
                for i in range(3)
            ]
            if days[0] is None:
                missed += 1
            else:
                errors.append(abs((days[0] - reached).days))
            latest, earliest = days[1], days[2]
            inside += earliest is not None and earliest <= reached <= (latest or date.max)
        n = len(errors) + missed
        mae = sum(errors) / len(errors) if errors else float("nan")
        lines.append(
            f"threshold {t} ({level} QLUs) reached {reached}: {n} forecasts in the 30 days"
            f" before, day MAE {mae:.2f} days over {len(errors)}, {missed} saw no crossing,"
            f" actual day inside earliest/latest {inside / n:.0%}"
        )
    return lines


def generated(days: int) -> tuple[Subscription, Daily]:
    sub = parse_subscription(
        {
            "subscription_id": "growth",
            "start_date": "2026-01-01",
            "products": {"VMDR": {"ratio": "1"}},
            "entitlement_qlus": "300",
        }
    )
    values = {}
    for n in range(days):
        value = 100 + 2 * n + (60 if n >= 40 else 0) - (120 if n >= 80 else 0) + (n * 7) % 5 - 2
        values[sub.start_date + timedelta(days=n)] = DayValue(Fraction(value))
    return sub, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=120)
    args = parser.parse_args()
    sub, values = generated(args.days)
    first, last = sub.start_date + timedelta(days=14), sub.start_date + timedelta(args.days - 1)
    print(f"generated tenant, {args.days} days (forecasts from {first}):")
    print("  " + peaks(sub, {"VMDR": values}, first, last).line("interval peak"))
    for line in crossings(sub, values, first, last):
        print("  " + line)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        path, _ = write_sample(root)
        sample = load_subscription(path)
        end = sample.start_date + timedelta(days=89)
        _, metering, _ = meter_folder(sample, root / "inventory", end)
    daily = {u.code: u.daily for u in metering.products}
    first = sample.start_date + timedelta(days=14)
    print(f"sample tenant, 90 days (forecasts from {first}):")
    print("  " + peaks(sample, daily, first, end).line("interval peak, every peak15 product"))


if __name__ == "__main__":
    main()
