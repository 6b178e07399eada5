"""The forecast (pure, exact): each product's window projected from its recent daily values.

A product's trend is read from its daily values of the last ``LOOKBACK_DAYS`` days up to
the as-of day: the rate is the change from the first to the last of them per day, the band
the lowest and highest change per day between two consecutive ones. The daily values after
the as-of day are the last value moved by the rate (never below zero), and the product's
window is evaluated on them as of each day of the horizon, as metering would: a peak15
interval's peak so far is a floor, and the rolling windows drop their oldest days.
``docs/metering.md`` (the forecast) says what this cannot foresee.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from typing import NamedTuple

from .catalog import PRODUCTS, DayValue
from .config import Subscription
from .numbers import ZERO
from .windows import HORIZON_DAYS, avg90, day_range, interval_of, peak15, sum90

#: The days up to the as-of day whose values give the trend.
LOOKBACK_DAYS = 14


class Band(NamedTuple):
    """A projected value and its low and high bounds."""

    mid: Fraction
    low: Fraction
    high: Fraction


@dataclass(frozen=True)
class Trend:
    """The inputs of a product's projection: the recent values read and the rates."""

    first_day: date | None  # the oldest value read (None: no value in the lookback)
    last_day: date | None
    last_value: Fraction
    points: int
    rate: Band  # change per day

    def value(self, day: date, rate: Fraction) -> Fraction:
        """The projected daily value of ``day`` (after ``last_day``) at ``rate``."""
        assert self.last_day is not None
        return max(ZERO, self.last_value + rate * (day - self.last_day).days)


@dataclass(frozen=True)
class Projection:
    """One product's forecast: its trend, and its window's utilization as of each day of
    the horizon (``path``); ``day`` is the day the product's projection is read for (peak15:
    the end of the current interval; the rolling windows: the horizon's end)."""

    code: str
    trend: Trend
    day: date
    path: dict[date, Band]

    @property
    def utilization(self) -> Band:
        return self.path[self.day]


def lookback_start(as_of: date) -> date:
    """The first day whose value the trend as of ``as_of`` reads."""
    return as_of - timedelta(days=LOOKBACK_DAYS - 1)


def trend(series: Mapping[date, Fraction], as_of: date) -> Trend:
    """The trend of the values of ``series`` in the lookback ending ``as_of`` (days without a
    value are skipped; the rate between two values spans the days between them)."""
    first = lookback_start(as_of)
    days = sorted(d for d in series if first <= d <= as_of)
    if not days:
        return Trend(None, None, ZERO, 0, Band(ZERO, ZERO, ZERO))
    last = series[days[-1]]
    if len(days) == 1:
        return Trend(days[0], days[0], last, 1, Band(ZERO, ZERO, ZERO))
    steps = [(series[b] - series[a]) / (b - a).days for a, b in pairwise(days)]
    mid = (last - series[days[0]]) / (days[-1] - days[0]).days
    return Trend(days[0], days[-1], last, len(days), Band(mid, min(steps), max(steps)))


def horizon_end(sub: Subscription, as_of: date) -> date:
    """The last day forecast: ``HORIZON_DAYS`` after ``as_of``, cut at ``end_date``."""
    end = as_of + timedelta(days=HORIZON_DAYS)
    return min(end, sub.end_date) if sub.end_date else end


def project(
    sub: Subscription,
    code: str,
    as_of: date,
    daily: Mapping[date, DayValue],
    covered: set[date] | None = None,
) -> Projection:
    """The product's projection from its daily values up to ``as_of`` (``covered``: an
    avg90 product's days with a file of its source; its trend reads those days only)."""
    product, start = PRODUCTS[code], sub.product_start(code)
    known = {d: v.value for d, v in daily.items() if d <= as_of}
    readable = known if covered is None else {d: v for d, v in known.items() if d in covered}
    recent = trend(readable, as_of)
    last = horizon_end(sub, as_of)
    future = day_range(as_of + timedelta(days=1), last) if recent.last_day else []
    paths: list[dict[date, Fraction]] = []
    for rate in recent.rate:
        series = known | {d: recent.value(d, rate) for d in future}
        paths.append({d: _window(sub, code, start, series, d, as_of, covered) for d in future})
    path = {as_of: _current(sub, code, start, known, as_of, covered)}
    for d in day_range(as_of + timedelta(days=1), last):
        path[d] = Band(*(p[d] for p in paths)) if future else path[as_of]
    day = interval_of(sub.start_date, as_of, sub.end_date)[1]
    if product.window != "peak15" or day > last:
        day = last
    return Projection(code, recent, day, path)


def _current(
    sub: Subscription,
    code: str,
    start: date,
    known: dict[date, Fraction],
    as_of: date,
    covered: set[date] | None,
) -> Band:
    value = _window(sub, code, start, known, as_of, as_of, covered)
    return Band(value, value, value)


def _window(
    sub: Subscription,
    code: str,
    start: date,
    series: Mapping[date, Fraction],
    day: date,
    as_of: date,
    covered: set[date] | None,
) -> Fraction:
    """The product's window utilization as of ``day`` over ``series``; a projected day
    (after ``as_of``) counts as covered."""
    window = PRODUCTS[code].window
    if day < start:
        return ZERO
    if window == "peak15":
        return peak15(series, sub.start_date, start, day, sub.end_date).utilization
    if window == "avg90":
        seen: Callable[[date], bool] = lambda d: d > as_of or d in (covered or ())  # noqa: E731
        return avg90(series, start, day, seen).utilization
    return sum90(series, start, day).utilization


def first_crossing(path: Mapping[date, Decimal], level: Decimal) -> date | None:
    """The first day of ``path`` (in day order) whose value reaches ``level``."""
    return next((d for d in sorted(path) if path[d] >= level), None)
