"""Metering a local folder laid out like the inventory bucket, in memory, day by day: the
files of one day are read, replayed and let go before the next day's are read."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from qlumeter.config import Subscription
from qlumeter.metering import Batch, Metering, meter_days
from qlumeter.observation import Observation
from qlumeter.paths import FileRef, PathError, parse_key
from qlumeter.reader import FileReport, Reject, collector_paused, read_file
from qlumeter.summary import build_summary, daily_table

_TENANT = re.compile(r"(?:^|/)tenant=([^/]*)/")

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
                for r in self.reports
            ],
            "rejects": [asdict(r) for r in self.rejects],
        }


def tenant_files(root: Path, tenant: str) -> Iterator[tuple[Path, str]]:
    """Files under ``root`` whose path names ``tenant=<tenant>/``, sorted, with that path."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        match = _TENANT.search(rel)
        if match and match.group(1) == tenant:
            yield path, rel[match.start() + (1 if rel[match.start()] == "/" else 0) :]


def read_days(
    root: Path,
    tenant: str,
    as_of: date,
    inventory: LocalInventory,
    progress: Progress | None = None,
) -> Iterator[Batch]:
    """The tenant's files dated up to ``as_of``, read one day at a time in day order (later
    files are not read); what each file gave is added to ``inventory``."""
    days: dict[date, list[tuple[Path, FileRef]]] = {}
    for path, key in tenant_files(root, tenant):
        try:
            ref = parse_key(key)
        except PathError as exc:
            inventory.reports.append(FileReport(path=key, status="unreadable", reason=str(exc)))
            continue
        if ref.day <= as_of:
            days.setdefault(ref.day, []).append((path, ref))
    for day in sorted(days):
        refs: list[FileRef] = []
        rows: list[Observation] = []
        for path, ref in days[day]:
            with path.open("rb") as stream:
                observations, rejects, report = read_file(ref, stream)
            inventory.reports.append(report)
            inventory.rejects.extend(rejects)
            if report.status == "ok":
                refs.append(ref)
                rows.extend(observations)
            if progress:
                progress(f"{ref.key}: {report.accepted} accepted, {report.rejected} rejected")
        inventory.readable.extend(refs)
        inventory.rows += len(rows)
        yield day, refs, rows
    inventory.reports.sort(key=lambda r: r.path)


def meter_folder(
    sub: Subscription, root: Path, as_of: date, progress: Progress | None = None
) -> tuple[dict[str, Any], Metering, LocalInventory]:
    """The CLI's ``meter`` job: the report document, the metering and the ingest."""
    inventory = LocalInventory()
    with collector_paused():
        days = read_days(root, sub.subscription_id, as_of, inventory, progress)
        metering, _ = meter_days(sub, days, as_of)
    document = {
        "summary": build_summary(sub, metering),
        "daily": daily_table(metering),
        "ingest": inventory.ingest_json(),
    }
    return document, metering, inventory
