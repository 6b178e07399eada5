"""Meter a tenant: daily values, windows and utilization for every subscribed product.

``Meter`` is the incremental form (one timeline per product start, checkpointable);
``meter`` runs it over a whole inventory at once.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from .catalog import PRODUCTS, DayValue, Product
from .config import Subscription
from .observation import Observation
from .paths import FileRef
from .plans import PlanDay
from .timeline import Explained, Timeline
from .vocabulary import PRODUCT_CODES
from .windows import (
    ROLLING_DAYS,
    WindowResult,
    avg90,
    interval_of,
    peak15,
    rolling_start,
    sum90,
)

Daily = dict[str, dict[date, DayValue]]


@dataclass
class ProductUsage:
    """One product as of a day: its window, utilization and the daily values behind it."""

    product: Product
    ratio: Decimal
    window: WindowResult
    components: dict[str, Fraction]
    daily: dict[date, DayValue] = field(default_factory=dict)
    covered: set[date] | None = None  # avg90: the days with a file of its source

    @property
    def code(self) -> str:
        return self.product.code


@dataclass
class Metering:
    as_of: date
    products: list[ProductUsage]
    plan: PlanDay | None = None  # the plan's measures on the as-of day (plans, consultants)
    #: each source's newest day with a readable file, up to the as-of day
    last_files: dict[str, date] = field(default_factory=dict)


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


class Meter:
    """A tenant's metering state: one timeline per product start day, replayed forward.
    Its stored form is ``checkpoint`` (versioned; never pickle)."""

    def __init__(self, sub: Subscription, judge_all: bool = False) -> None:
        """``judge_all``: every entity judged every day (see ``Timeline``)."""
        self.sub = sub
        self.groups: dict[date, list[str]] = defaultdict(list)
        for code in PRODUCT_CODES:
            if code in sub.products:
                self.groups[sub.product_start(code)].append(code)
        self.plans = bool(sub.plan_caps()) or sub.subscription_type == "consultant"
        if self.plans:
            self.groups[sub.start_date] += []  # the plan is measured from the start
        self.timelines = {
            start: Timeline(sub, start, codes, self.plans and start == sub.start_date, judge_all)
            for start, codes in self.groups.items()
        }
        self.plan_days: dict[date, PlanDay] = {}
        self.explained: Explained | None = None

    @property
    def day(self) -> date | None:
        """The last day replayed by every timeline that has started."""
        days = [t.day for t in self.timelines.values() if t.day is not None]
        return min(days) if days else None

    def add(self, files: Iterable[FileRef], observations: Iterable[Observation]) -> int:
        """Queue readable files and their rows; returns the rows of days already replayed."""
        files, observations = list(files), list(observations)
        return max((t.add(files, observations) for t in self.timelines.values()), default=0)

    def advance(
        self,
        through: date,
        evaluate_from: date,
        detail_day: date | None = None,
        explain: str | None = None,
    ) -> Daily:
        """Replay up to ``through``; every product's value on each day from
        ``evaluate_from``. On ``detail_day`` the counted entities are kept, and product
        ``explain``'s explanation of that day is kept in ``explained``."""
        daily: Daily = {code: {} for codes in self.groups.values() for code in codes}
        for start, codes in sorted(self.groups.items()):
            if start > through:
                continue
            timeline = self.timelines[start]
            for day in timeline.days(through):
                if day >= evaluate_from:
                    detail = day == detail_day
                    values = timeline.values(detail)
                    for code in codes:
                        daily[code][day] = values[code]
                    if timeline.plans:
                        self.plan_days[day] = timeline.plan_day()
                    if detail and explain in codes:
                        self.explained = timeline.explain(explain)
                timeline.end_day()
        oldest = through - timedelta(days=ROLLING_DAYS)
        self.plan_days = {d: p for d, p in self.plan_days.items() if d > oldest}
        return daily

    def covered_days(self, source: str) -> set[date]:
        """Days with a readable file of ``source`` (avg90 coverage)."""
        return {d for t in self.timelines.values() for d in t.covered_days(source)}

    def last_file_days(self, day: date) -> dict[str, date]:
        """Each source's newest day up to ``day`` with a readable file."""
        last: dict[str, date] = {}
        for timeline in self.timelines.values():
            for source, days in timeline.file_days.items():
                i = bisect.bisect_right(days, day)
                if i and days[i - 1] > last.get(source, date.min):
                    last[source] = days[i - 1]
        return last

    def compact(self) -> None:
        for timeline in self.timelines.values():
            if timeline.day is not None:
                timeline.compact()

    def dumps(self) -> bytes:
        """The stored form of this state (``checkpoint``)."""
        from .checkpoint import encode

        return encode(self)

    @classmethod
    def loads(cls, blob: bytes, sub: Subscription) -> Meter:
        """A stored state back, on the current subscription; raises ``StateUnusable`` when
        it cannot serve (another format, or the counting terms changed)."""
        from .checkpoint import decode

        return decode(blob, sub)


def counting_terms(sub: Subscription) -> dict[str, object]:
    """What decides daily values (not ratios, rounding, entitlement or alerts, nor the
    ``strict`` reading of files, which decides at ingest which files are readable)."""
    other = {
        "products",
        "entitlement_qlus",
        "alert_thresholds",
        "forecast_alert_days",
        "rounding",
        "late_data_days",
        "strict",
    }
    terms = sub.model_dump(exclude=other)
    terms["products"] = {code: sub.product_start(code) for code in sub.products}
    return terms


def usage_as_of(
    sub: Subscription,
    code: str,
    as_of: date,
    daily: Mapping[date, DayValue],
    covered: set[date],
) -> ProductUsage:
    """The product's window and utilization as of ``as_of`` from its daily values."""
    product, start = PRODUCTS[code], sub.product_start(code)
    series = {day: value.value for day, value in daily.items() if day <= as_of}
    components: dict[str, Fraction] = {}
    if product.window == "peak15":
        window = peak15(series, sub.start_date, start, as_of, sub.end_date)
        if window.peak_day:
            components = dict(daily[window.peak_day].components)
    elif product.window == "avg90":
        window = avg90(series, start, as_of, covered.__contains__)
    else:
        window = sum90(series, start, as_of)
    return ProductUsage(
        product,
        sub.products[code].ratio,
        window,
        components,
        dict(daily),
        covered if product.window == "avg90" else None,
    )


def metering_as_of(sub: Subscription, as_of: date, daily: Daily, meter: Meter) -> Metering:
    """Every subscribed product's usage as of ``as_of``."""
    usages = []
    for code in PRODUCT_CODES:
        if code in daily:
            coverage = PRODUCTS[code].coverage
            covered = meter.covered_days(coverage) if coverage else set()
            usages.append(usage_as_of(sub, code, as_of, daily[code], covered))
    return Metering(as_of, usages, meter.plan_days.get(as_of), meter.last_file_days(as_of))


#: One day's readable files and their rows.
Batch = tuple[date, Sequence[FileRef], Sequence[Observation]]


def meter_days(
    sub: Subscription,
    batches: Iterable[Batch],
    as_of: date,
    *,
    detail_day: date | None = None,
    explain: str | None = None,
) -> tuple[Metering, Meter]:
    """Meter every subscribed product as of ``as_of`` from the days' files and rows, given
    day by day in day order: each day is replayed as soon as its rows are in, and its rows
    are not kept. ``detail_day``, ``explain``: as ``Meter.advance``."""
    as_of = effective_as_of(sub, as_of)
    state = Meter(sub)
    daily: Daily = {}
    for day, files, rows in batches:
        state.add(files, rows)
        if day <= as_of:
            _merge(daily, state.advance(day, sub.start_date, detail_day, explain))
    _merge(daily, state.advance(as_of, sub.start_date, detail_day, explain))
    return metering_as_of(sub, as_of, daily, state), state


def _merge(into: Daily, more: Daily) -> None:
    for code, values in more.items():
        into.setdefault(code, {}).update(values)


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
    state = Meter(sub)
    state.add(files, observations)
    first = sub.start_date
    if not all_days:
        first = min((first_needed_day(sub, c, as_of) for c in sub.products), default=as_of)
    return metering_as_of(sub, as_of, state.advance(as_of, first, detail_day), state)
