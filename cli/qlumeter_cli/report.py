"""The HTML report: one self-contained page (inline CSS, inline SVG charts, no script and
no network resource) that shows a billing analyst the numbers of a ``meter`` document.

The figures come from the document: the summary's strings as they are (the products,
the total, the current 15-day interval), and the daily values (4-decimal text) read as
``Fraction`` for the earlier intervals and the rolling lines, through the same window,
rounding and QLU functions as the summary. Floats only place things on the charts.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from html import escape
from math import ceil
from typing import Any

from qlumeter.catalog import PRODUCTS, DayValue
from qlumeter.config import Subscription
from qlumeter.forecast import Band, project
from qlumeter.metering import ProductUsage
from qlumeter.numbers import fmt, fmt4, round_half_up
from qlumeter.quality import DATA_WARNING, SOURCE_MISSING
from qlumeter.summary import qlus, show_utilization
from qlumeter.windows import avg90, day_range, interval_of, peak15, sum90

from .problems import crossing_lines, describe_alert, forecast_line, problems

MAX_REJECTS = 500

WINDOWS = {
    "peak15": "15-day peak: the highest daily value of the current 15-day interval",
    "avg90": "90-day average: the mean daily value over the covered days of the last 90",
    "sum90": "90-day sum: the sum of the daily values of the last 90 days",
}

# Chart geometry, in SVG user units.
WIDTH, HEIGHT = 960, 230
LEFT, TOP, BASE = 56, 12, 200  # the plot's left edge, top and bottom
AXIS, PAD = 56, 12  # right margin with and without a right axis
MAX_DAY_LABELS = 9


class Html(str):
    """Markup: made by ``_tag``, ``_join`` or ``_e`` only. Any other value placed in the
    page goes through ``_e`` (escaped), so a value can never become markup."""


def _e(value: object) -> Html:
    """A value as page content: markup as it is, anything else as escaped text (``None``
    shows as a dash). Every cell, caption, title and attribute goes through it."""
    if isinstance(value, Html):
        return value
    return Html("—" if value is None else escape(str(value)))


def _join(parts: Iterable[object], separator: str = "") -> Html:
    """Parts (each through ``_e``) one after the other, ``separator`` (text) between."""
    return Html(_e(separator).join(_e(part) for part in parts))


def _tag(name: str, *content: object, **attrs: object) -> Html:
    """An element around ``content`` (each part through ``_e``). Attributes: ``class_`` is
    ``class``, ``_`` is ``-``, floats show 2 decimals, None leaves the attribute out,
    values are escaped."""
    text = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{escape(_attr(value))}"'
        for key, value in attrs.items()
        if value is not None
    )
    return Html(f"<{name}{text}>{_join(content)}</{name}>")


def _attr(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _table(
    headers: Sequence[object],
    rows: Iterable[Sequence[object]],
    *,
    numeric: Iterable[int] = (),
    caption: object = None,
    marked: Container[int] = (),
    **attrs: object,
) -> Html:
    """A table (each cell, header and the caption through ``_e``): ``numeric`` columns
    right aligned, the rows whose index (from 0) is in ``marked`` highlighted."""
    right = set(numeric)

    def cells(row: Sequence[object], tag: str) -> Html:
        return _join(
            _tag(
                tag,
                cell,
                class_="num" if i in right else None,
                scope="col" if tag == "th" else None,
            )
            for i, cell in enumerate(row)
        )

    body = _join(
        _tag("tr", cells(row, "td"), class_="marked" if i in marked else None)
        for i, row in enumerate(rows)
    )
    head = _tag("thead", _tag("tr", cells(headers, "th")))
    return _tag(
        "table",
        _tag("caption", caption) if caption is not None else "",
        head,
        _tag("tbody", body),
        **attrs,
    )


@dataclass(frozen=True)
class Series:
    """A product's daily values up to the as-of day, and the days its window counts."""

    values: dict[date, Fraction]
    covered: set[date]


def read_series(rows: Iterable[Mapping[str, Any]], as_of: date) -> Series:
    """Daily rows (``day``, decimal ``value``, optional ``exact`` and ``covered``) up to
    ``as_of``; without ``covered``, a day present in the series is covered."""
    values: dict[date, Fraction] = {}
    covered: set[date] = set()
    for row in rows:
        day = date.fromisoformat(row["day"])
        if day <= as_of:
            values[day] = Fraction(row.get("exact", row["value"]))
            if row.get("covered", True):
                covered.add(day)
    return Series(values, covered)


def intervals(sub: Subscription, code: str, series: Series, as_of: date) -> list[ProductUsage]:
    """The product's 15-day intervals from its start to ``as_of``, each as of its last day
    (the current one as of ``as_of``)."""
    start, ratio = sub.product_start(code), sub.products[code].ratio
    first = interval_of(sub.start_date, start, sub.end_date)[0]
    found = []
    while first <= as_of:
        last = interval_of(sub.start_date, first, sub.end_date)[1]
        window = peak15(series.values, sub.start_date, start, min(last, as_of), sub.end_date)
        found.append(ProductUsage(PRODUCTS[code], ratio, window, {}))
        first = last + timedelta(days=1)
    return found


def rolling(sub: Subscription, code: str, series: Series) -> dict[date, Fraction]:
    """The product's avg90 or sum90 utilization as of each day of its series
    (avg90: only days with a covered day in their window)."""
    start, window = sub.product_start(code), PRODUCTS[code].window
    line: dict[date, Fraction] = {}
    for day in sorted(series.values):
        if window == "avg90":
            result = avg90(series.values, start, day, series.covered.__contains__)
            if result.covered_days:
                line[day] = result.utilization
        else:
            line[day] = sum90(series.values, start, day).utilization
    return line


# -- charts ---------------------------------------------------------------------------------


def _ticks(top: Fraction) -> list[Decimal]:
    """Round axis values from 0 to at least ``top``: about four steps of 1, 2, 2.5 or 5 x 10^n."""
    if top <= 0:
        return [Decimal(0), Decimal(1)]
    raw = Decimal(top.numerator) / Decimal(top.denominator) / 4
    unit = Decimal(1).scaleb(raw.adjusted())
    step = next(
        unit * m
        for m in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))
        if unit * m >= raw
    )
    return [step * i for i in range(ceil(top / Fraction(step)) + 1)]


class _Chart:
    """One chart's geometry: days across, values up (floats for coordinates only)."""

    def __init__(self, first: date, last: date, top: Fraction, right: Fraction | None = None):
        self.first, self.days = first, (last - first).days + 1
        self.ticks, self.right_ticks = _ticks(top), None if right is None else _ticks(right)
        self.end = float(WIDTH - (AXIS if right is not None else PAD))
        self.step = (self.end - LEFT) / self.days

    def x(self, day: date) -> float:
        """The left edge of the day's column."""
        return LEFT + (day - self.first).days * self.step

    def y(self, value: Fraction | Decimal, right: bool = False) -> float:
        top = (self.right_ticks if right and self.right_ticks else self.ticks)[-1]
        return TOP + (BASE - TOP) * (1 - float(value) / float(top))

    def column(self, first: date, last: date, title: str, **attrs: object) -> Html:
        """A full-height rectangle over the days ``first`` to ``last``."""
        x, width = self.x(first), self.step * ((last - first).days + 1)
        return _tag(
            "rect", _tag("title", title), x=x, y=TOP, width=width, height=BASE - TOP, **attrs
        )

    def axes(self) -> Html:
        """Grid lines, tick labels (left, and right when there is a right axis) and axes."""
        parts = []
        for tick in self.ticks:
            y = self.y(tick)
            parts.append(_tag("line", class_="grid", x1=LEFT, x2=self.end, y1=y, y2=y))
            parts.append(_text(LEFT - 6, y + 4, fmt(tick), "end"))
        for tick in self.right_ticks or ():
            parts.append(_text(self.end + 6, self.y(tick, right=True) + 4, fmt(tick), "start"))
        parts.append(_tag("line", class_="axis", x1=LEFT, x2=self.end, y1=BASE, y2=BASE))
        parts.append(_tag("line", class_="axis", x1=LEFT, x2=LEFT, y1=TOP, y2=BASE))
        return _join(parts)

    def labels(self, days: Sequence[date]) -> Html:
        """Day labels under the chart, thinned to at most ``MAX_DAY_LABELS``."""
        every = ceil(len(days) / MAX_DAY_LABELS) or 1
        return _join(
            _join(
                [
                    _tag("line", class_="axis", x1=self.x(d), x2=self.x(d), y1=BASE, y2=BASE + 4),
                    _text(self.x(d), BASE + 17, d.isoformat(), "middle"),
                ]
            )
            for d in days[::every]
        )

    def gaps(self, days: Iterable[date], note: str) -> Html:
        """Grey columns behind the bars, one per run of consecutive ``days``."""
        runs: list[list[date]] = []
        for day in sorted(days):
            if runs and (day - runs[-1][-1]).days == 1:
                runs[-1].append(day)
            else:
                runs.append([day])
        return _join(
            self.column(run[0], run[-1], f"{run[0]} to {run[-1]}: {note}", class_="gap")
            for run in runs
        )

    def bars(self, values: Mapping[date, Fraction], covered: Container[date]) -> Html:
        """A bar per daily value (greyed on a day not covered), its value as a tooltip."""
        width = max(self.step * 0.78, 0.5)
        return _join(
            _tag(
                "rect",
                _tag("title", f"{day}: {fmt4(value)}"),
                class_="bar" if day in covered else "bar uncovered",
                x=self.x(day) + (self.step - width) / 2,
                y=self.y(value),
                width=width,
                height=BASE - self.y(value),
            )
            for day, value in sorted(values.items())
        )

    def line(self, points: Mapping[date, Fraction], right: bool = False) -> Html:
        """A line through the points at the days' centres, broken where a day has none."""
        path, previous = [], None
        for day in sorted(points):
            move = "L" if previous and (day - previous).days == 1 else "M"
            path.append(f"{move}{self.x(day) + self.step / 2:.2f} {self.y(points[day], right):.2f}")
            previous = day
        return _tag("path", class_="rolling", d=" ".join(path)) if path else Html()

    def projection(self, path: Mapping[date, Band], right: bool = False) -> Html:
        """The forecast after the as-of day: its band (low to high) and a dashed line."""
        days = sorted(path)
        if not days:
            return Html()
        x = {d: self.x(d) + self.step / 2 for d in days}
        edge = [f"{x[d]:.2f} {self.y(path[d].high, right):.2f}" for d in days]
        edge += [f"{x[d]:.2f} {self.y(path[d].low, right):.2f}" for d in reversed(days)]
        line = " ".join(
            f"{'L' if i else 'M'}{x[d]:.2f} {self.y(path[d].mid, right):.2f}"
            for i, d in enumerate(days)
        )
        last = days[-1]
        note = (
            f"forecast {last}: {fmt4(path[last].mid)}"
            f" ({fmt4(path[last].low)} to {fmt4(path[last].high)})"
        )
        return _join(
            [
                _tag(
                    "path", _tag("title", note), class_="projband", d="M" + " L".join(edge) + " Z"
                ),
                _tag("path", _tag("title", note), class_="projected", d=line),
            ]
        )

    def svg(self, code: str, title: str, description: str, *content: Html) -> Html:
        """The chart element, labelled by its title and description."""
        ident = f"chart-{code}"
        return _tag(
            "svg",
            _tag("title", title, id=f"{ident}-t"),
            _tag("desc", description, id=f"{ident}-d"),
            *content,
            class_="chart",
            id=ident,
            viewBox=f"0 0 {WIDTH} {HEIGHT}",
            width=WIDTH,
            height=HEIGHT,
            role="img",
            aria_labelledby=f"{ident}-t {ident}-d",
        )


def _text(x: float, y: float, text: str, anchor: str) -> Html:
    """An axis label."""
    return _tag("text", text, class_="tick", x=float(x), y=float(y), text_anchor=anchor)


def peak_chart(
    code: str,
    series: Series,
    periods: Sequence[ProductUsage],
    as_of: date,
    ahead: Mapping[date, Band],
) -> Html:
    """Daily values over the 15-day intervals (bands) with each interval's peak marked, and
    the projected peak to the interval's end (``ahead``)."""
    first, last = periods[0].window.start, max(periods[-1].window.end, as_of)
    chart = _Chart(first, last, _top(series.values.values(), ahead))
    bands, peaks = [], []
    for i, usage in enumerate(periods):
        w = usage.window
        bands.append(
            chart.column(w.start, w.end, f"interval {w.start} to {w.end}", class_=f"band{i % 2}")
        )
        if w.peak_day is not None:
            x1, x2, y = chart.x(w.start), chart.x(w.end + timedelta(days=1)), chart.y(w.utilization)
            peak = f"peak of {w.start} to {w.end}: {fmt4(w.utilization)} on {w.peak_day}"
            peaks.append(_tag("line", class_="peak", x1=x1, x2=x2, y1=y, y2=y))
            peaks.append(
                _tag(
                    "circle",
                    _tag("title", peak),
                    class_="peak",
                    cx=chart.x(w.peak_day) + chart.step / 2,
                    cy=y,
                    r=4,
                )
            )
    return chart.svg(
        code,
        f"{code}: daily values and 15-day interval peaks",
        f"{len(series.values)} daily values in {len(periods)} intervals from {first} to {last}",
        _join(bands),
        chart.axes(),
        chart.bars(series.values, series.covered),
        _join(peaks),
        chart.projection(ahead),
        chart.labels([p.window.start for p in periods]),
    )


def rolling_chart(
    code: str,
    series: Series,
    line: Mapping[date, Fraction],
    first: date,
    as_of: date,
    ahead: Mapping[date, Band],
) -> Html:
    """Daily values and the rolling avg90 line (same axis) or sum90 line (right axis), and
    the line's projection (``ahead``)."""
    daily_top = max(series.values.values(), default=Fraction(0))
    line_top = _top(line.values(), ahead)
    last = max([as_of, *ahead])
    if PRODUCTS[code].window == "avg90":
        chart, name = _Chart(first, last, max(daily_top, line_top)), "90-day rolling average"
    else:
        chart, name = _Chart(first, last, daily_top, line_top), "90-day rolling sum (right axis)"
    days = day_range(first, last)
    gaps = [d for d in series.values if d not in series.covered]
    return chart.svg(
        code,
        f"{code}: daily values and {name}",
        f"{len(series.values)} daily values from {first} to {as_of}",
        chart.gaps(gaps, f"no {PRODUCTS[code].coverage} file: not in the average"),
        chart.axes(),
        chart.bars(series.values, series.covered),
        chart.line(line, right=chart.right_ticks is not None),
        chart.projection(ahead, right=chart.right_ticks is not None),
        chart.labels([d for d in days if d.day == 1 or d == first]),
    )


def _top(values: Iterable[Fraction], ahead: Mapping[date, Band]) -> Fraction:
    return max([*values, *(band.high for band in ahead.values())], default=Fraction(0))


def forecast_path(sub: Subscription, code: str, series: Series, as_of: date) -> dict[date, Band]:
    """The product's projected window after ``as_of`` through the day its forecast is read
    for (peak15: the interval's end; the rolling windows: the horizon's end)."""
    daily = {day: DayValue(value) for day, value in series.values.items()}
    covered = series.covered if PRODUCTS[code].window == "avg90" else None
    p = project(sub, code, as_of, daily, covered)
    return {d: band for d, band in p.path.items() if as_of < d <= p.day}


def _legend(*items: tuple[str, object]) -> Html:
    """A chart's legend: (swatch class, text) per item."""
    return _tag(
        "ul",
        *(_tag("li", _tag("span", class_=f"swatch {kind}"), text) for kind, text in items),
        class_="legend",
    )


# -- sections -------------------------------------------------------------------------------


def _gauge(summary: Mapping[str, Any], sub: Subscription) -> Html:
    """Total QLUs against the entitlement, with the alert thresholds marked."""
    total, entitlement = summary["total_qlus"], summary.get("entitlement_qlus")
    text = _join([_tag("strong", total), " QLUs"])
    if entitlement is None or Fraction(entitlement) == 0:
        return _tag("p", text, "; entitlement: ", entitlement or "not set", class_="total")
    used = Fraction(total) / Fraction(entitlement)
    reached = [t for t in sub.alert_thresholds if used >= t]
    level = "over" if used >= 1 else "warn" if reached else "ok"
    scale = max([Fraction(1), used, *(Fraction(t) for t in sub.alert_thresholds)])
    marks = [
        _tag(
            "span",
            _tag("span", f"{fmt(t * 100)}%"),
            class_="mark",
            style=f"left:{_percent(Fraction(t) / scale)}",
        )
        for t in sub.alert_thresholds
    ]
    fill = _tag("span", class_=f"fill {level}", style=f"width:{_percent(used / scale)}")
    share = fmt(round_half_up(used * 100, 2))
    return _join(
        [
            _tag(
                "p",
                text,
                " of ",
                entitlement,
                " entitled: ",
                _tag("strong", f"{share}%"),
                class_="total",
            ),
            _tag(
                "div",
                fill,
                *marks,
                class_="gauge",
                role="meter",
                aria_valuemin=0,
                aria_valuemax=entitlement,
                aria_valuenow=total,
                aria_label="total QLUs against the entitlement",
            ),
        ]
    )


def _forecast(forecast: Mapping[str, Any] | None) -> Html:
    """The projected total at the horizon and each threshold's projected crossing day."""
    if not forecast:
        return Html()
    lines = [forecast_line(forecast), *crossing_lines(forecast)]
    return _tag("ul", *(_tag("li", line) for line in lines), class_="forecast", id="forecast")


def _percent(share: Fraction) -> str:
    """A CSS percentage (a float: layout only)."""
    return f"{float(share) * 100:.2f}%"


def _section(
    ident: str, heading: object, *content: object, level: int = 2, **attrs: object
) -> Html:
    """A section headed by an ``h<level>`` it is labelled by."""
    title = _tag(f"h{level}", heading, id=f"h-{ident}")
    return _tag("section", title, *content, id=ident, aria_labelledby=f"h-{ident}", **attrs)


def _plan(plan: Mapping[str, Any] | None) -> Html:
    """The plan's counts against its caps on the as-of day (plans and consultants)."""
    if not plan:
        return Html()
    rows = [[m["measure"], m["count"], m["cap"]] for m in plan["measures"]]
    rows.append(["own-network addresses scanned", plan["own_network_addresses"], ""])
    caption = f"Plan {plan['plan']} ({plan['subscription_type']})"
    return _table(
        ("measure", "count", "cap"), rows, numeric=(1, 2), caption=caption, class_="plan", id="plan"
    )


def _problems(document: Mapping[str, Any]) -> Html:
    """The data problems (missing sources, unreadable files, warnings), first on the page."""
    lines = problems(document)
    if not lines:
        return Html()
    return _section(
        "problems",
        "Data problems: read these before the numbers",
        _tag("ul", *(_tag("li", line) for line in lines)),
        class_="problems",
    )


def _alerts(alerts: Sequence[Mapping[str, Any]]) -> Html:
    """Every alert of the summary: its type and its other fields."""
    if not alerts:
        return _tag("p", "No alerts.")
    rows = [
        (
            _tag("span", alert.get("type"), class_="alert"),
            describe_alert(alert)
            if alert.get("type") in (SOURCE_MISSING, DATA_WARNING)
            else _join(
                (_join([_tag("b", k), " ", v]) for k, v in alert.items() if k != "type"), "; "
            ),
        )
        for alert in alerts
    ]
    return _table(("type", "details"), rows, class_="alerts", id="alerts")


def _included(product: Mapping[str, Any]) -> Html:
    """The note for a product whose QLUs another product includes (CSAM with ETM)."""
    other = product.get("included_with")
    return _join([" ", _tag("span", f"included with {other}", class_="badge")]) if other else Html()


def _basis(product: Mapping[str, Any]) -> tuple[str, object] | None:
    """What the utilization comes from: the peak day (peak15) or the covered days (avg90)."""
    if product.get("peak_day"):
        return "peak day", product["peak_day"]
    if product.get("covered_days") is not None:
        return "covered days", product["covered_days"]
    return None


def _overview(products: Sequence[Mapping[str, Any]], total: str) -> Html:
    """The summary's products as one table, each linked to its section, and the total."""
    rows: list[Sequence[object]] = [
        (
            _tag("a", p["product"], href=f"#p-{p['product']}"),
            p["name"],
            p["window"],
            _tag("span", f"{p['window_start']} to {p['window_end']}", class_="nowrap"),
            p["utilization"],
            p["ratio"],
            _join([p["qlus"], _included(p)]),
            _tag("span", _join(_basis(p) or (), " "), class_="nowrap"),
        )
        for p in products
    ]
    rows.append((_tag("b", "total"), "", "", "", "", "", _tag("b", total), ""))
    headers = ("product", "name", "window", "period", "utilization", "ratio", "QLUs", "basis")
    return _table(headers, rows, numeric=(4, 5, 6), class_="overview", id="overview")


def _facts(product: Mapping[str, Any]) -> Html:
    """The product's figures from the summary."""
    window = f"{product['window']}: {product['window_start']} to {product['window_end']}"
    facts = [
        ("window", window),
        ("utilization", product["utilization"]),
        ("ratio", product["ratio"]),
        ("QLUs", _join([product["qlus"], _included(product)])),
        *filter(None, [_basis(product)]),
    ]
    items = (_tag("div", _tag("dt", name), _tag("dd", value)) for name, value in facts)
    return _tag("dl", *items, class_="facts")


def _components(product: Mapping[str, Any]) -> Html:
    """The named counts behind the utilization (peak15: of the peak day), if any."""
    components: Mapping[str, str] = product.get("components") or {}
    if not components:
        return Html()
    peak = product.get("peak_day")
    on = _join([" on the peak day ", _tag("span", peak, class_="nowrap")]) if peak else ""
    return _table(
        list(components),
        [list(components.values())],
        numeric=range(len(components)),
        caption=_join(["Components", on]),
        class_="components",
    )


def _daily_view(
    product: Mapping[str, Any], sub: Subscription, series: Series, as_of: date
) -> list[Html]:
    """The product's chart, its legend and (peak15) its intervals table."""
    code = str(product["product"])
    window = PRODUCTS[code].window
    ahead = forecast_path(sub, code, series, as_of)
    if window == "peak15":
        periods = intervals(sub, code, series, as_of)
        return [
            peak_chart(code, series, periods, as_of, ahead),
            _legend(
                ("bar", "daily value"),
                ("band0", "15-day interval"),
                ("peak", "interval peak"),
                ("projected", "projected peak, with its band"),
            ),
            _interval_table(product, sub, periods),
        ]
    line = rolling(sub, code, series)
    name = "90-day rolling average" if window == "avg90" else "90-day rolling sum"
    latest = f" ({as_of}: {fmt4(line[as_of])})" if as_of in line else ""
    items: list[tuple[str, object]] = [
        ("bar", "daily value"),
        ("rolling", name + latest),
        ("projected", "projected, with its band"),
    ]
    if any(day not in series.covered for day in series.values):
        coverage = PRODUCTS[code].coverage
        items.append(("gap", f"no {coverage} file that day: not in the average"))
    first = min(series.values, default=sub.product_start(code))
    return [rolling_chart(code, series, line, first, as_of, ahead), _legend(*items)]


def product_section(
    product: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], sub: Subscription, as_of: date
) -> Html:
    """One product: its figures, components, chart and (peak15) QLUs per interval."""
    code = str(product["product"])
    start = sub.product_start(code)
    if start > as_of:
        body = [_tag("p", f"Active from {start}: no day to show yet.")]
    else:
        body = _daily_view(product, sub, read_series(rows, as_of), as_of)
    heading = _join([product["name"], " ", _tag("span", code, class_="code")])
    window = _tag("p", f"{WINDOWS[PRODUCTS[code].window]}.", class_="window")
    return _section(
        f"p-{code}",
        heading,
        window,
        _facts(product),
        _components(product),
        *body,
        level=3,
        class_="product",
    )


def _interval_table(
    product: Mapping[str, Any], sub: Subscription, periods: Sequence[ProductUsage]
) -> Html:
    """Utilization and QLUs per 15-day interval: the current one (the last) as the summary
    shows it, each earlier one as the summary of its last day, from the daily values."""
    rows: list[list[object]] = [
        [
            str(i),
            usage.window.start,
            usage.window.end,
            usage.window.peak_day,
            show_utilization(sub, usage.window.utilization),
            fmt(qlus(sub, usage)),
        ]
        for i, usage in enumerate(periods, 1)
    ]
    current = rows[-1]
    current[0] = f"{current[0]} (current)"
    current[3:] = [product.get(key) for key in ("peak_day", "utilization", "qlus")]
    table = _table(
        ("interval", "from", "to", "peak day", "utilization", "QLUs"),
        rows,
        numeric=(4, 5),
        marked={len(rows) - 1},
        caption="QLUs per 15-day interval (the current one so far)",
        class_="intervals",
        id=f"intervals-{product['product']}",
    )
    if not product.get("included_with"):
        return table
    note = f"{product['product']} is included with {product['included_with']}."
    return _join([table, _tag("p", note, class_="note")])


def _ingest(ingest: Mapping[str, Any]) -> Html:
    """The files read (those with a problem marked) and the rejected rows (capped)."""
    files: Sequence[Mapping[str, Any]] = ingest.get("files", [])
    rejects: Sequence[Mapping[str, Any]] = ingest.get("rejects", [])
    columns = ("path", "status", "rows", "accepted", "rejected", "reason", "warnings")
    marked = {
        i
        for i, f in enumerate(files)
        if f.get("status") != "ok" or f.get("rejected") or f.get("warnings")
    }
    unreadable = sum(f.get("status") != "ok" for f in files)
    warned = sum(bool(f.get("warnings")) for f in files)
    files_table = _table(
        columns,
        [[f.get(k) for k in columns[:-1]] + ["; ".join(f.get("warnings", []))] for f in files],
        numeric=(2, 3, 4),
        marked=marked,
        class_="files",
        id="files",
    )
    reject_columns = ("path", "line", "field", "reason")
    shown = [[r.get(k) for k in reject_columns] for r in rejects[:MAX_REJECTS]]
    more = len(rejects) - len(shown)
    rejects_table = (
        _table(reject_columns, shown, numeric=(1,), class_="rejects", id="rejects")
        if rejects
        else _tag("p", "No rejected rows.")
    )
    counts = (
        f"{len(files)} files: {unreadable} unreadable,"
        f" {sum(bool(f.get('rejected')) for f in files)} with rejected rows,"
        f" {warned} with warnings; {len(rejects)} rejected rows."
    )
    return _section(
        "ingest",
        "Ingest",
        _tag("p", counts),
        _tag(
            "details",
            _tag("summary", f"Files ({len(files)})"),
            files_table,
            open="" if unreadable or len(files) <= 40 else None,
        ),
        _section("rejected", "Rejected rows", rejects_table, level=3),
        _tag("p", f"{more} more rejected rows not shown.", class_="note") if more else "",
    )


def _message(body: object) -> Mapping[str, Any]:
    """A message body as a mapping: a dict, or JSON text of one."""
    value = body
    if isinstance(body, str):
        try:
            value = json.loads(body)
        except ValueError:
            value = None
    return value if isinstance(value, Mapping) else {"event_type": f"(unreadable) {body!r:.200}"}


def _messages(messages: Sequence[object]) -> Html:
    """The published messages, one row each."""
    keys = ("event_type", "as_of", "revision", "total_qlus")
    rows = [[_message(m).get(k) for k in keys] for m in messages]
    table = _table(keys, rows, numeric=(2, 3), class_="messages", id="messages-table")
    return _section("messages", "Published messages", table)


def render_html(document: Mapping[str, Any], sub: Subscription) -> str:
    """The report page for a ``meter`` document (``summary``, ``daily``, ``ingest`` and
    optionally ``messages``) of the subscription ``sub``."""
    summary = document["summary"]
    if summary["subscription_id"] != sub.subscription_id:
        raise ValueError(
            f"the document is of {summary['subscription_id']!r}, not {sub.subscription_id!r}"
        )
    as_of = date.fromisoformat(summary["as_of"])
    daily: Mapping[str, Sequence[Mapping[str, Any]]] = document.get("daily", {})
    title = f"QLU usage of {summary['subscription_id']} as of {summary['as_of']}"
    sections = [
        product_section(p, daily.get(p["product"], []), sub, as_of) for p in summary["products"]
    ]
    meta = _join(
        [
            _join(["as of ", _tag("strong", summary["as_of"])]),
            f"revision {summary.get('revision')}",
            f"generated {summary.get('generated_at')}",
            f"subscription {sub.start_date} to {sub.end_date or 'open'}",
            f"rounding: utilization {sub.rounding.utilization}, QLUs {sub.rounding.qlu}",
        ],
        " · ",
    )
    messages = document.get("messages")
    head = _join(
        [
            Html('<meta charset="utf-8">'),
            Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
            _tag("title", title),
            _tag("style", Html(CSS)),
        ],
        "\n",
    )
    body = _join(
        [
            _tag(
                "header",
                _tag("h1", f"QLU usage: {summary['subscription_id']}"),
                _tag("p", meta, class_="meta"),
                _problems(document),
                _gauge(summary, sub),
                _forecast(summary.get("forecast")),
                _plan(summary.get("plan")),
                _section("alerts-section", "Alerts", _alerts(summary.get("alerts", []))),
            ),
            _tag(
                "main",
                _section(
                    "products",
                    "Products",
                    _overview(summary["products"], summary["total_qlus"]),
                    *sections,
                ),
                _ingest(document.get("ingest", {})),
                _messages(messages) if messages is not None else "",
            ),
        ],
        "\n",
    )
    page = _tag(
        "html",
        "\n",
        _tag("head", "\n", head, "\n"),
        "\n",
        _tag("body", "\n", body, "\n"),
        lang="en",
    )
    return f"<!DOCTYPE html>\n{page}\n"


CSS = """
:root{--ink:#1d2330;--muted:#5b6475;--line:#d9dde5;--bar:#3f6fb5;--band:#eef2f8;
--peak:#c0392b;--ok:#2e8b57;--warn:#d98e04;--over:#c0392b;--roll:#e07b00;--gap:#e4e6ea}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1080px;padding:24px;color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:24px;margin:0 0 4px}h3{font-size:16px;margin:0 0 4px}
h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid var(--line);padding-bottom:4px}
.meta,.window,.note{color:var(--muted)}.nowrap{white-space:nowrap}
.code{font:12px ui-monospace,monospace;background:#eef0f4;padding:1px 6px;border-radius:4px}
.total{font-size:16px;margin:12px 0 6px}
.gauge{position:relative;height:22px;background:#eceff3;border-radius:4px;margin:0 0 26px}
.gauge .fill{position:absolute;left:0;top:0;bottom:0;border-radius:4px}
.fill.ok{background:var(--ok)}.fill.warn{background:var(--warn)}.fill.over{background:var(--over)}
.gauge .mark{position:absolute;top:-3px;bottom:-3px;border-left:2px dashed var(--ink)}
.gauge .mark span{position:absolute;top:26px;left:-16px;font-size:11px;color:var(--muted)}
table{border-collapse:collapse;margin:8px 0 12px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--line);padding:3px 10px 3px 0;text-align:left;
vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px}
.num{text-align:right;padding-left:12px}
caption{text-align:left;color:var(--muted);font-size:12px;padding-bottom:2px}
tbody tr:nth-child(even){background:#f8f9fb}
.overview{width:100%}.intervals tr.marked{background:#fff6e0;font-weight:600}
.files tr.marked{background:#fdecea}
.problems{border:2px solid var(--over);border-radius:6px;padding:4px 16px;margin:12px 0}
.problems h2{border:0;color:var(--over);margin:8px 0 0}.problems li{overflow-wrap:anywhere}
.alert{background:#fdecea;color:var(--over);padding:1px 6px;border-radius:4px;font-weight:600}
.badge{background:#e8f3ec;color:var(--ok);padding:1px 6px;border-radius:4px;font-size:12px;
white-space:nowrap}
.product{border:1px solid var(--line);border-radius:6px;padding:14px 16px;margin:16px 0}
.facts{display:flex;flex-wrap:wrap;gap:4px 28px;margin:8px 0}
.facts dt{font-size:12px;color:var(--muted)}.facts dd{margin:0;font-weight:600}
svg.chart{display:block;width:100%;height:auto;margin-top:8px}
.chart .band0{fill:var(--band)}.chart .band1{fill:#f8f9fc}.chart .gap{fill:var(--gap)}
.chart .grid{stroke:#e3e6ec}.chart .axis{stroke:#8a93a3}
.chart .tick{font-size:11px;fill:var(--muted)}
.chart .bar{fill:var(--bar)}.chart .bar.uncovered{fill:#b3b9c4}
.chart line.peak{stroke:var(--peak);stroke-dasharray:4 3}.chart circle.peak{fill:var(--peak)}
.chart .rolling{fill:none;stroke:var(--roll);stroke-width:2.5}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:4px 18px;padding:0;margin:4px 0;
color:var(--muted);font-size:12px}
.swatch{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px}
.swatch.bar{background:var(--bar)}.swatch.peak{background:var(--peak)}
.swatch.band0{background:var(--band);border:1px solid var(--line)}
.swatch.rolling{background:var(--roll);height:3px;vertical-align:3px}
.swatch.gap{background:var(--gap);border:1px solid var(--line)}
.chart .projected{fill:none;stroke:var(--ink);stroke-width:2;stroke-dasharray:6 4}
.chart .projband{fill:var(--roll);fill-opacity:.18;stroke:none}
.swatch.projected{background:var(--roll);opacity:.5;border-top:2px dashed var(--ink)}
.forecast{margin:4px 0 12px}
.files td:first-child,.rejects td:first-child{font:12px ui-monospace,monospace;min-width:62ch;
overflow-wrap:anywhere}
details summary{cursor:pointer;color:var(--muted);margin:6px 0}
@media print{.product{break-inside:avoid}}
"""
