"""Metering a local folder laid out like the inventory bucket, in memory, day by day: the
files of one day are read, replayed and let go before the next day's are read."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from qlumeter.config import Subscription
from qlumeter.metering import Batch, Metering, meter_days
from qlumeter.observation import Observation
from qlumeter.paths import FileRef, PathError, parse_key
from qlumeter.quality import data_warning
from qlumeter.reader import FileReport, Reject, collector_paused, read_file
from qlumeter.summary import build_summary, daily_table

_TENANT = re.compile(r"(?:^|/)tenant=([^/]*)/")
LAYOUT = "inventory/tenant=<subscription_id>/source=<source>/date=<YYYY-MM-DD>/<name>.csv"


class NoFiles(ValueError):
    """The inventory folder holds no file of the tenant: what it holds instead."""


Progress = Callable[[str], None]


@dataclass
class LocalInventory:
    """The files of one tenant read from a folder, and what they gave."""

    reports: list[FileReport] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    readable: list[FileRef] = field(default_factory=list)
    rows: int = 0  # accepted rows of the readable files

    def ingest_json(self) -> dict[str, Any]:
        return {
            "files": [
                {
                    k: getattr(r, k)
                    for k in ("path", "status", "rows", "accepted", "rejected", "reason")
                }
                | {"warnings": list(r.warnings)}
                for r in self.reports
            ],
            "rejects": [asdict(r) for r in self.rejects],
        }


def tenant_files(root: Path, tenant: str) -> list[tuple[Path, str]]:
    """Files under ``root`` whose path names ``tenant=<tenant>/``, sorted, with that path
    (from ``tenant=`` on). Raises NoFiles, saying what the folder holds, when there is
    none."""
    found: list[tuple[Path, str]] = []
    tenants: Counter[str] = Counter()
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    for path in paths:
        rel = path.relative_to(root).as_posix()
        match = _TENANT.search(rel)
        if match:
            tenants[match.group(1)] += 1
            if match.group(1) == tenant:
                found.append((path, rel[match.start() + (1 if rel[match.start()] == "/" else 0) :]))
    if not found:
        raise NoFiles(_what_is_there(root, tenant, len(paths), tenants))
    return found


def _what_is_there(root: Path, tenant: str, files: int, tenants: Counter[str]) -> str:
    """Why no file of ``tenant`` is under ``root``, and what to pass instead."""
    segments = root.resolve().parts
    inside = next((i for i, s in enumerate(segments) if s.startswith("tenant=")), None)
    if inside is not None:
        where = "a tenant folder" if inside == len(segments) - 1 else f"in {segments[inside]}"
        return (
            f"{root} is {where}: pass --inventory {Path(*segments[:inside])}"
            " (the folder that holds the tenant= folders)"
        )
    if tenants:
        found = ", ".join(f"{name} ({count} files)" for name, count in sorted(tenants.items()))
        return (
            f"no files for tenant {tenant!r} under {root}; found tenants: {found}"
            " (the subscription_id must equal the tenant= folder, case included)"
        )
    if files:
        return f"no tenant= folder under {root} ({files} files): lay them out as {root}/{LAYOUT}"
    return f"no files under {root}: expected {root}/{LAYOUT}"


def read_days(
    root: Path,
    tenant: str,
    as_of: date,
    inventory: LocalInventory,
    progress: Progress | None = None,
    strict: bool = False,
) -> Iterator[Batch]:
    """The tenant's files dated up to ``as_of``, read one day at a time in day order (later
    files are not read); what each file gave is added to ``inventory``. ``strict``: a file
    with a warning is unreadable. Raises NoFiles when the tenant has no file up to
    ``as_of``."""
    days: dict[date, list[tuple[Path, FileRef]]] = {}
    later: list[date] = []
    for path, key in tenant_files(root, tenant):
        try:
            ref = parse_key(key)
        except PathError as exc:
            inventory.reports.append(FileReport(path=key, status="unreadable", reason=str(exc)))
            continue
        if ref.day <= as_of:
            days.setdefault(ref.day, []).append((path, ref))
        else:
            later.append(ref.day)
    if not days and later:
        raise NoFiles(
            f"no file of tenant {tenant!r} under {root} is dated on or before {as_of}"
            f" (the first is dated {min(later)})"
        )
    for day in sorted(days):
        refs: list[FileRef] = []
        rows: list[Observation] = []
        for path, ref in days[day]:
            with path.open("rb") as stream:
                observations, rejects, report = read_file(ref, stream, strict=strict)
            inventory.reports.append(report)
            inventory.rejects.extend(rejects)
            if report.status == "ok":
                refs.append(ref)
                rows.extend(observations)
            if progress:
                progress(_progress_line(report))
        inventory.readable.extend(refs)
        inventory.rows += len(rows)
        yield day, refs, rows
    inventory.reports.sort(key=lambda r: r.path)


def _progress_line(report: FileReport) -> str:
    if report.status != "ok":
        return f"{report.path}: unreadable: {report.reason}"
    counts = f"{report.path}: {report.accepted} accepted, {report.rejected} rejected"
    return counts + (f", {len(report.warnings)} warnings" if report.warnings else "")


def meter_folder(
    sub: Subscription,
    root: Path,
    as_of: date,
    progress: Progress | None = None,
    strict: bool = False,
) -> tuple[dict[str, Any], Metering, LocalInventory]:
    """The CLI's ``meter`` job: the report document, the metering and the ingest.
    ``strict``: files with a warning are unreadable."""
    inventory = LocalInventory()
    with collector_paused():
        days = read_days(root, sub.subscription_id, as_of, inventory, progress, strict)
        metering, _ = meter_days(sub, days, as_of)
    warned = [
        (r.path, r.warnings)
        for r in inventory.reports
        if r.status == "ok" and parse_key(r.path).day == metering.as_of
    ]
    document = {
        "summary": build_summary(sub, metering, extra_alerts=data_warning(metering.as_of, warned)),
        "daily": daily_table(metering),
        "ingest": inventory.ingest_json(),
    }
    return document, metering, inventory
