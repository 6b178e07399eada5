"""Meter a tenant: daily values, windows and utilization for every subscribed product."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction

from .catalog import MARKS, PRODUCTS, DayValue, Product
from .config import Subscription
from .observation import Observation
from .paths import FileRef
from .timeline import Timeline
from .vocabulary import PRODUCT_CODES
from .windows import WindowResult, avg90, interval_of, peak15, rolling_start, sum90


@dataclass
class ProductUsage:
    """One product as of a day: its window, utilization and the daily values behind it."""

    product: Product
    ratio: Decimal
    window: WindowResult
    components: dict[str, Fraction]
    daily: dict[date, DayValue] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return self.product.code


@dataclass
class Metering:
    as_of: date
    products: list[ProductUsage]


def effective_as_of(sub: Subscription, as_of: date) -> date:
    """An as-of day after ``end_date`` is metered as of ``end_date``."""
    if as_of < sub.start_date:
        raise ValueError(
            f"as-of day {as_of} is before the subscription start_date {sub.start_date}"
        )
    return min(as_of, sub.end_date) if sub.end_date else as_of


def first_needed_day(sub: Subscription, code: str, as_of: date) -> date:
    """The earliest day whose value the product's window as of ``as_of`` reads."""
    start = sub.product_start(code)
    if PRODUCTS[code].window == "peak15":
        return max(start, interval_of(sub.start_date, as_of)[0])
    return rolling_start(start, as_of)


def meter(
    sub: Subscription,
    files: Iterable[FileRef],
    observations: Iterable[Observation],
    as_of: date,
    *,
    all_days: bool = True,
    detail_day: date | None = None,
) -> Metering:
    """Meter every subscribed product as of ``as_of`` from readable files and their rows.

    ``all_days`` evaluates every day from the product's start (for reports); otherwise
    only the days the windows read. ``detail_day`` keeps the counted entities of that day.
    """
    as_of = effective_as_of(sub, as_of)
    files, observations = list(files), list(observations)
    groups: dict[date, list[str]] = defaultdict(list)
    for code in PRODUCT_CODES:
        if code in sub.products:
            groups[sub.product_start(code)].append(code)
    daily: dict[str, dict[date, DayValue]] = {
        code: {} for codes in groups.values() for code in codes
    }
    for start, codes in sorted(groups.items()):
        if start > as_of:
            continue
        first = start if all_days else min(first_needed_day(sub, c, as_of) for c in codes)
        timeline = Timeline(sub, start, as_of, files, observations, MARKS)
        for view in timeline.days(first, as_of):
            for code in codes:
                daily[code][view.day] = PRODUCTS[code].rule.evaluate(view, view.day == detail_day)
    usages = [
        _usage(sub, code, as_of, daily[code], files) for code in PRODUCT_CODES if code in daily
    ]
    return Metering(as_of, usages)


def _usage(
    sub: Subscription, code: str, as_of: date, daily: dict[date, DayValue], files: list[FileRef]
) -> ProductUsage:
    product, start = PRODUCTS[code], sub.product_start(code)
    series = {day: value.value for day, value in daily.items()}
    if product.window == "peak15":
        window = peak15(series, sub.start_date, start, as_of, sub.end_date)
        components = daily[window.peak_day].components if window.peak_day else {}
    elif product.window == "avg90":
        covered = {ref.day for ref in files if ref.source == product.coverage}
        window = avg90(series, start, as_of, covered.__contains__)
        components = {}
    else:
        window = sum90(series, start, as_of)
        components = {}
    return ProductUsage(product, sub.products[code].ratio, window, dict(components), daily)
