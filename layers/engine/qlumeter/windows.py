"""Billing windows over a daily series (spec section 5): ``peak15``, ``avg90``, ``sum90``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction

from .numbers import ZERO

ROLLING_DAYS = 90
INTERVAL_DAYS = 15
#: The days after the as-of day the forecast covers.
HORIZON_DAYS = 30


@dataclass(frozen=True)
class WindowResult:
    """The utilization of one window, with the day or days it came from."""

    start: date
    end: date
    utilization: Fraction
    peak_day: date | None = None
    covered_days: int | None = None


def interval_of(start: date, day: date, end: date | None = None) -> tuple[date, date]:
    """The 15-day interval holding ``day``, anchored at ``start``; cut at ``end``."""
    k = (day - start).days // INTERVAL_DAYS
    first = start + timedelta(days=INTERVAL_DAYS * k)
    last = first + timedelta(days=INTERVAL_DAYS - 1)
    return first, min(last, end) if end else last


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def peak15(
    series: Mapping[date, Fraction],
    start: date,
    active_from: date,
    as_of: date,
    end: date | None = None,
) -> WindowResult:
    """The highest daily value of the interval so far; the peak day is the earliest."""
    first, last = interval_of(start, as_of, end)
    days = [d for d in _days(max(first, active_from), as_of) if d in series]
    if not days:
        return WindowResult(first, last, ZERO)
    peak = max(series[d] for d in days)
    return WindowResult(first, last, peak, next(d for d in days if series[d] == peak))


def rolling_start(active_from: date, as_of: date) -> date:
    """First day of the 90-day window ending ``as_of``; never before the product's start."""
    return max(active_from, as_of - timedelta(days=ROLLING_DAYS - 1))


def avg90(
    series: Mapping[date, Fraction],
    active_from: date,
    as_of: date,
    covered: Callable[[date], bool],
) -> WindowResult:
    """Mean daily value over the covered days of the window; gaps are not zeros."""
    first = rolling_start(active_from, as_of)
    days = [d for d in _days(first, as_of) if covered(d)] if first <= as_of else []
    if not days:
        return WindowResult(first, as_of, ZERO, covered_days=0)
    total = sum((series.get(d, ZERO) for d in days), ZERO)
    return WindowResult(first, as_of, total / len(days), covered_days=len(days))


def sum90(series: Mapping[date, Fraction], active_from: date, as_of: date) -> WindowResult:
    """Sum of the daily values over the window."""
    first = rolling_start(active_from, as_of)
    days = _days(first, as_of) if first <= as_of else []
    return WindowResult(first, as_of, sum((series.get(d, ZERO) for d in days), ZERO))


def day_range(first: date, last: date) -> list[date]:
    """Every day from ``first`` through ``last`` (none when ``last`` is earlier)."""
    return _days(first, last)
