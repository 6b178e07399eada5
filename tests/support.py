"""Builders shared by the tests: observations, subscriptions and inventory folders."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from qlumeter.config import Subscription, parse_subscription
from qlumeter.metering import Metering, meter
from qlumeter.observation import Observation, classify
from qlumeter.paths import FileRef, parse_key

TENANT = "acme"
_lines = itertools.count(2)


def day(text: str | date) -> date:
    return text if isinstance(text, date) else date.fromisoformat(text)


def obs(
    source: str, on: str | date, asset_type: str = "host", *, name: str = "f", **fields: Any
) -> Observation:
    """A classified observation as the reader would produce it."""
    d = day(on)
    at = fields.pop("observed_at", None)
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if at is None:
        at = datetime(d.year, d.month, d.day, tzinfo=UTC)
    if isinstance(fields.get("last_fim_event_at"), str):
        fields["last_fim_event_at"] = datetime.fromisoformat(fields["last_fim_event_at"])
    if "modules" in fields:
        fields["modules"] = frozenset(fields["modules"])
    if "ips" in fields:
        fields["ips"] = tuple(fields["ips"])
    if "vuln_count" in fields and "has_findings" not in fields:
        fields["has_findings"] = bool(fields["vuln_count"])
    if "ot_level" not in fields and asset_type == "ot_asset":
        fields["ot_level"] = "vulnerable" if fields.get("vuln_count") else "basic"
    o = Observation(
        source=source,
        day=d,
        path=f"tenant={TENANT}/source={source}/date={d}/{name}.csv",
        line=fields.pop("line", next(_lines)),
        observed_at=at,
        asset_type=asset_type,
        **fields,
    )
    classify(o)
    return o


def subscription(
    products: Mapping[str, Any] | Iterable[str] = ("VMDR",), **keys: Any
) -> Subscription:
    """A subscription starting 2026-01-01 with ratio 1 for the given products."""
    if not isinstance(products, Mapping):
        products = {code: {"ratio": "1"} for code in products}
    data = {"subscription_id": TENANT, "start_date": "2026-01-01", "products": dict(products)}
    data.update(keys)
    if data.get("fed_high") is None and {"WAS", "PM"} & set(products):
        data["fed_high"] = True
    return parse_subscription(data)


def files_of(observations: Iterable[Observation]) -> list[FileRef]:
    """One readable file per (source, day, name) the observations came from."""
    return [parse_key(path) for path in sorted({o.path for o in observations})]


def run(
    sub: Subscription,
    observations: list[Observation],
    as_of: str | date,
    files: Iterable[FileRef] | None = None,
    **kwargs: Any,
) -> Metering:
    if "detail_day" in kwargs:
        kwargs["detail_day"] = day(kwargs["detail_day"])
    return meter(
        sub, files_of(observations) if files is None else files, observations, day(as_of), **kwargs
    )


def series(metering: Metering, code: str) -> dict[str, str]:
    """Daily values of one product as {day: value}, values as fractions' text."""
    usage = next(u for u in metering.products if u.code == code)
    return {d.isoformat(): str(v.value) for d, v in sorted(usage.daily.items())}


def usage_of(metering: Metering, code: str) -> Any:
    return next(u for u in metering.products if u.code == code)


def value_on(metering: Metering, code: str, on: str) -> Any:
    return usage_of(metering, code).daily[day(on)].value


def write_file(
    root: Path,
    source: str,
    on: str | date,
    rows: list[dict[str, Any]],
    name: str = "export",
    fmt: str = "csv",
    tenant: str = TENANT,
) -> Path:
    """Write rows as an inventory file laid out like the bucket under ``root/inventory``."""
    folder = root / "inventory" / f"tenant={tenant}" / f"source={source}" / f"date={day(on)}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.{fmt}"
    if fmt == "csv":
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: ";".join(v) if isinstance(v, list | tuple) else v for k, v in row.items()}
            )
        path.write_text(buf.getvalue(), encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def agents(count: int, first: int = 0) -> list[dict[str, Any]]:
    """Cloud-agent host rows a{first}..: every other one with EDR, a few findings."""
    return [
        {
            "asset_type": "host",
            "agent_id": f"a{i}",
            "fqdn": f"h{i}.corp.example",
            "modules": ["vmdr", "edr"] if i % 2 else ["vmdr"],
            "vuln_count": i % 3,
            "open_port_count": 1,
        }
        for i in range(first, first + count)
    ]
