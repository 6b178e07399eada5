"""Data-quality alerts (spec section 12): a source that stopped delivering
(``source_missing``), the files of the day with unknown columns or keys
(``data_warning``); alerts of one kind, whatever the kind, are bounded in one message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from .config import Subscription
from .reader import field_warnings

SOURCE_MISSING = "source_missing"
DATA_WARNING = "data_warning"
#: A threshold projected to be reached soon (``summary.forecast_alerts``).
FORECAST_ALERT = "forecast_alert"
#: Entries of one kind a message lists; beyond, one entry summarizes them.
MAX_ENTRIES = 20
#: Entries, or files, given as a sample.
SAMPLE = 10
#: The field dating an alert kind's entries (a bounded entry's first and last day).
DAY_FIELDS = {"late_file_ignored": "day", SOURCE_MISSING: "last_day"}


def source_missing(
    sub: Subscription, as_of: date, last_days: Mapping[str, date]
) -> list[dict[str, Any]]:
    """The sources missing as of ``as_of``, by name: one whose newest readable file up to
    that day (``last_days``) is more than ``snapshot_carry_days`` old, and one named in
    the subscription's ``sources`` that never delivered (no last day; every day from
    ``start_date`` missing)."""
    alerts = []
    for source in sorted(set(last_days) | set(sub.sources)):
        last = last_days.get(source)
        missing = (as_of - sub.start_date).days + 1 if last is None else (as_of - last).days
        if last is None or missing > sub.snapshot_carry_days:
            alerts.append(
                {
                    "type": SOURCE_MISSING,
                    "source": source,
                    "last_day": last.isoformat() if last else None,
                    "days_missing": missing,
                }
            )
    return alerts


def data_warning(as_of: date, files: Iterable[tuple[str, Sequence[str]]]) -> list[dict[str, Any]]:
    """One alert when files (``(path, warnings)``) of ``as_of`` named unknown columns or
    keys: how many, and a sample of them with their warning."""
    flagged = [(path, found) for path, warnings in files if (found := field_warnings(warnings))]
    if not flagged:
        return []
    return [
        {
            "type": DATA_WARNING,
            "day": as_of.isoformat(),
            "count": len(flagged),
            "sample": [{"path": path, "warning": found[0]} for path, found in flagged[:SAMPLE]],
        }
    ]


def bound_alerts(alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts with each kind bounded (``bounded``), the kinds in their order."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        kinds.setdefault(alert["type"], []).append(alert)
    return [
        entry
        for kind, entries in kinds.items()
        for entry in bounded(entries, DAY_FIELDS.get(kind, "day"))
    ]


def overflowing(alerts: list[dict[str, Any]]) -> bool:
    """Whether some kind has more entries than a message lists (``bound_alerts`` cuts)."""
    return len(bound_alerts(alerts)) < len(alerts)


def bounded(entries: list[dict[str, Any]], day: str) -> list[dict[str, Any]]:
    """``entries`` (of one kind) when there are at most ``MAX_ENTRIES``; otherwise one entry
    with their count, the first and last of their ``day`` field and a sample."""
    if len(entries) <= MAX_ENTRIES:
        return entries
    days = sorted(d for entry in entries if (d := entry.get(day)) is not None)
    return [
        {
            "type": entries[0]["type"],
            "count": len(entries),
            "first_day": days[0] if days else None,
            "last_day": days[-1] if days else None,
            "sample": entries[:SAMPLE],
        }
    ]
