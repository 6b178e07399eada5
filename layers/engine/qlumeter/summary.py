"""The v1 message (spec section 8, ``usage-summary.v1.schema.json``): the usage summary,
and the message about a file that could not be used."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from typing import Any

from .catalog import DayValue
from .config import Subscription
from .forecast import LOOKBACK_DAYS, Projection, first_crossing, horizon_end, project
from .metering import Metering, ProductUsage
from .numbers import fmt, fmt4, round_half_up
from .plans import plan_alerts, plan_entry
from .publishing import INGEST_FAILED, USAGE_SUMMARY, EventType
from .quality import FORECAST_ALERT, bound_alerts, source_missing
from .windows import day_range

SCHEMA_VERSION = "1"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every v1 message (``usage-summary.v1.schema.json``, packaged here:
    its product and event type enumerations are the catalog's and ``publishing``'s)."""
    text = resources.files(__package__).joinpath("schemas/usage-summary.v1.schema.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema


def billed_utilization(sub: Subscription, utilization: Fraction) -> Fraction:
    """The utilization the ratio multiplies: rounded half up to whole units, or exact."""
    if sub.rounding.utilization == "half_up":
        return Fraction(round_half_up(utilization))
    return utilization


def qlus(sub: Subscription, usage: ProductUsage) -> Decimal:
    """QLUs as shown: 4 decimals (``exact``) or whole QLUs (``half_up``), both half up."""
    return qlus_of(sub, usage.code, usage.window.utilization)


def qlus_of(sub: Subscription, code: str, utilization: Fraction) -> Decimal:
    """The QLUs of product ``code`` at window ``utilization`` (as ``qlus``)."""
    if code == "CSAM" and "ETM" in sub.products:
        return Decimal(0)
    raw = billed_utilization(sub, utilization) * Fraction(sub.products[code].ratio)
    return round_half_up(raw, 4 if sub.rounding.qlu == "exact" else 0)


def show_utilization(sub: Subscription, utilization: Fraction) -> str:
    if sub.rounding.utilization == "half_up":
        return fmt(round_half_up(utilization))
    return fmt4(utilization)


def product_entry(sub: Subscription, usage: ProductUsage) -> dict[str, Any]:
    window = usage.window
    entry: dict[str, Any] = {
        "product": usage.code,
        "name": usage.product.name,
        "window": usage.product.window,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "utilization": show_utilization(sub, window.utilization),
        "ratio": fmt(usage.ratio),
        "qlus": fmt(qlus(sub, usage)),
        "peak_day": window.peak_day.isoformat() if window.peak_day else None,
        "covered_days": window.covered_days,
        "components": {name: fmt4(value) for name, value in usage.components.items()},
        "included_with": "ETM" if usage.code == "CSAM" and "ETM" in sub.products else None,
    }
    return entry


def total_qlus(sub: Subscription, metering: Metering) -> Decimal:
    """The sum of the products' QLUs, each rounded first."""
    return sum((qlus(sub, usage) for usage in metering.products), Decimal(0))


def threshold_alerts(sub: Subscription, total: Decimal) -> list[dict[str, Any]]:
    """The entitlement thresholds that total QLUs have reached."""
    if sub.entitlement_qlus is None:
        return []
    return [
        {
            "type": "threshold",
            "threshold": fmt(t),
            "level_qlus": fmt(t * sub.entitlement_qlus),
            "total_qlus": fmt(total),
            "entitlement_qlus": fmt(sub.entitlement_qlus),
        }
        for t in sub.alert_thresholds
        if total >= t * sub.entitlement_qlus
    ]


def projections(sub: Subscription, metering: Metering) -> list[Projection]:
    """Every product's forecast from its daily values up to the as-of day."""
    return [
        project(sub, usage.code, metering.as_of, usage.daily, usage.covered)
        for usage in metering.products
    ]


def forecast_block(sub: Subscription, as_of: date, projected: list[Projection]) -> dict[str, Any]:
    """The summary's ``forecast``: each product's projected utilization and QLUs with their
    band, the total at the horizon's end, and the first day each threshold not reached yet
    is projected to be reached (``day``; ``earliest`` on the high bound, ``latest`` on the
    low)."""
    last = horizon_end(sub, as_of)
    totals = {
        day: tuple(
            sum((qlus_of(sub, p.code, p.path[day][i]) for p in projected), Decimal(0))
            for i in range(3)
        )
        for day in day_range(as_of, last)
    }
    crossings = []
    if sub.entitlement_qlus is not None:
        for t in sub.alert_thresholds:
            level = t * sub.entitlement_qlus
            if totals[as_of][0] >= level:
                continue
            found = [first_crossing({d: b[i] for d, b in totals.items()}, level) for i in range(3)]
            crossings.append(
                {
                    "threshold": fmt(t),
                    "level_qlus": fmt(level),
                    "day": _iso(found[0]),
                    "earliest": _iso(found[2]),
                    "latest": _iso(found[1]),
                }
            )
    return {
        "lookback_days": LOOKBACK_DAYS,
        "horizon_end": last.isoformat(),
        "products": [_projected_entry(sub, p) for p in projected],
        "total_qlus": {"day": last.isoformat(), **_shown(totals[last], fmt)},
        "crossings": crossings,
    }


def _projected_entry(sub: Subscription, p: Projection) -> dict[str, Any]:
    band = p.utilization
    rate = p.trend.rate
    return {
        "product": p.code,
        "day": p.day.isoformat(),
        "utilization": _shown(band, fmt4),
        "qlus": _shown(tuple(qlus_of(sub, p.code, v) for v in band), fmt),
        "trend": {
            "first_day": _iso(p.trend.first_day),
            "last_day": _iso(p.trend.last_day),
            "values": p.trend.points,
            "last_value": fmt4(p.trend.last_value),
            "rate": _shown(rate, fmt4),
        },
    }


def _shown(band: tuple[Any, ...], show: Callable[[Any], str]) -> dict[str, str]:
    return {"mid": show(band[0]), "low": show(band[1]), "high": show(band[2])}


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def forecast_alerts(
    sub: Subscription, as_of: date, forecast: dict[str, Any]
) -> list[dict[str, Any]]:
    """The thresholds projected to be reached within ``forecast_alert_days`` of ``as_of``."""
    days = sub.forecast_alert_days
    if days is None:
        return []
    return [
        {
            "type": FORECAST_ALERT,
            "threshold": c["threshold"],
            "level_qlus": c["level_qlus"],
            "day": c["day"],
            "days_ahead": (date.fromisoformat(c["day"]) - as_of).days,
        }
        for c in forecast["crossings"]
        if c["day"] is not None and (date.fromisoformat(c["day"]) - as_of).days <= days
    ]


def summary_alerts(
    sub: Subscription,
    metering: Metering,
    forecast: dict[str, Any],
    extra_alerts: Iterable[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Every alert in force as of the metering's day, unbounded (the stored report's list;
    a message carries them bounded: ``quality.bound_alerts``)."""
    return (
        threshold_alerts(sub, total_qlus(sub, metering))
        + plan_alerts(sub, metering.plan)
        + source_missing(sub, metering.as_of, metering.last_files)
        + forecast_alerts(sub, metering.as_of, forecast)
        + list(extra_alerts)
    )


def build_summary(
    sub: Subscription,
    metering: Metering,
    *,
    revision: int = 1,
    event_type: EventType = USAGE_SUMMARY,
    generated_at: datetime | None = None,
    extra_alerts: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The summary message for one metering run."""
    total = total_qlus(sub, metering)
    forecast = forecast_block(sub, metering.as_of, projections(sub, metering))
    return {
        "schema_version": SCHEMA_VERSION,
        "event_type": event_type,
        "subscription_id": sub.subscription_id,
        "as_of": metering.as_of.isoformat(),
        "revision": revision,
        "generated_at": _timestamp(generated_at or datetime.now(UTC)),
        "products": [product_entry(sub, usage) for usage in metering.products],
        "total_qlus": fmt(total),
        "entitlement_qlus": fmt(sub.entitlement_qlus) if sub.entitlement_qlus is not None else None,
        "alerts": bound_alerts(summary_alerts(sub, metering, forecast, extra_alerts)),
        **plan_entry(sub, metering.plan),
        "forecast": forecast,
    }


def failure_message(
    subscription_id: str,
    as_of: date,
    generated_at: datetime,
    *,
    key: str,
    version: str | None,
    reason: str,
    quarantined_as: str,
) -> dict[str, Any]:
    """The ``ingest_failed`` message about a refused or unreadable file: it carries no usage
    (no products, total 0), and names the object, why, and where it was quarantined."""
    return {
        "schema_version": SCHEMA_VERSION,
        "event_type": INGEST_FAILED,
        "subscription_id": subscription_id,
        "as_of": as_of.isoformat(),
        "revision": 1,
        "generated_at": _timestamp(generated_at),
        "products": [],
        "total_qlus": "0",
        "key": key,
        "version": version,
        "reason": reason,
        "quarantined_as": quarantined_as,
    }


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def daily_rows(daily: Mapping[date, DayValue], covered: set[date] | None) -> list[dict[str, Any]]:
    """Daily values shown to 4 decimals, with the exact fraction when 4 decimals round it,
    and for avg90 products whether a file of the coverage source covers the day."""
    rows = []
    for day, value in sorted(daily.items()):
        row: dict[str, Any] = {"day": day.isoformat(), "value": fmt4(value.value)}
        if Fraction(row["value"]) != value.value:
            row["exact"] = str(value.value)
        if covered is not None:
            row["covered"] = day in covered
        rows.append(row)
    return rows


def daily_table(metering: Metering) -> dict[str, list[dict[str, Any]]]:
    """Every evaluated day's value per product."""
    return {usage.code: daily_rows(usage.daily, usage.covered) for usage in metering.products}
