"""What the reader of a report must know before trusting its numbers, one line each, for
the terminal and the top of the HTML report: sources that stopped delivering, unreadable
files, files with warnings (unknown columns or keys, unknown modules, rows of a type whose
key has no column)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qlumeter.quality import DATA_WARNING, FORECAST_ALERT, SOURCE_MISSING

#: Lines of one kind shown before the rest is counted.
SHOWN = 20


def describe_alert(alert: Mapping[str, Any]) -> str:
    """An alert in words; kinds without their own wording as ``type: key=value, ...``."""
    kind = alert.get("type")
    if kind == SOURCE_MISSING and "count" not in alert:
        source, last = alert["source"], alert["last_day"]
        since = f"since {last}" if last else "since the subscription started"
        return (
            f"source {source}: no readable file {since} ({alert['days_missing']} days"
            f" missing): check its exporter"
        )
    if kind == DATA_WARNING:
        first = alert["sample"][0] if alert.get("sample") else {}
        example = f", e.g. {first['path']}: {first['warning']}" if first else ""
        return (
            f"{alert['count']} files of {alert['day']} have unknown columns or keys, whose"
            f" values are ignored{example}"
        )
    if kind == FORECAST_ALERT:
        return (
            f"threshold {alert['threshold']} ({alert['level_qlus']} QLUs) is projected to be"
            f" reached on {alert['day']}, in {alert['days_ahead']} days"
        )
    details = ", ".join(f"{k}={v}" for k, v in alert.items() if k != "type")
    return f"{kind}: {details}"


def forecast_line(forecast: Mapping[str, Any]) -> str:
    """The projected total at the forecast's horizon, with its band."""
    total = forecast["total_qlus"]
    return (
        f"forecast: total QLUs {total['mid']} on {total['day']}"
        f" (band {total['low']} to {total['high']})"
    )


def crossing_lines(forecast: Mapping[str, Any]) -> list[str]:
    """Each threshold not reached yet: the day it is projected to be reached, or not."""
    lines = []
    for c in forecast["crossings"]:
        level = f"threshold {c['threshold']} ({c['level_qlus']} QLUs)"
        if c["day"] is None:
            when = f"not projected to be reached by {forecast['horizon_end']}"
        else:
            when = f"projected to be reached on {c['day']}"
        earliest, latest = c["earliest"], c["latest"]
        band = f" (band: from {earliest or 'beyond'} to {latest or 'beyond the horizon'})"
        lines.append(f"{level}: {when}{band if earliest else ''}")
    return lines


def problems(document: Mapping[str, Any]) -> list[str]:
    """The data problems of a report document: missing sources, unreadable files, files
    with warnings; beyond ``SHOWN`` of a kind, a line counts the rest."""
    alerts = document["summary"].get("alerts", [])
    files: Sequence[Mapping[str, Any]] = document.get("ingest", {}).get("files", [])
    missing = [describe_alert(a) for a in alerts if a.get("type") == SOURCE_MISSING]
    unreadable = [
        f"unreadable: {f['path']}: {f.get('reason')}" for f in files if f["status"] != "ok"
    ]
    warned = [
        f"warning: {f['path']}: {warning}"
        for f in files
        if f["status"] == "ok"
        for warning in f.get("warnings", [])
    ]
    lines: list[str] = []
    for group, what in ((missing, "missing sources"), (unreadable, "unreadable files"),
                        (warned, "warnings")):  # fmt: skip
        lines += group[:SHOWN]
        if len(group) > SHOWN:
            lines.append(f"... and {len(group) - SHOWN} more {what} (see the report)")
    return lines
