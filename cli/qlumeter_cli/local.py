"""Metering a local folder laid out like the inventory bucket, entirely in memory."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from qlumeter.config import Subscription
from qlumeter.metering import Metering, meter
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
    observations: list[Observation] = field(default_factory=list)

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


def load_folder(
    root: Path, tenant: str, as_of: date, progress: Progress | None = None
) -> LocalInventory:
    """Read every file of ``tenant`` dated up to ``as_of``; later files are not read."""
    inventory = LocalInventory()
    for path, key in tenant_files(root, tenant):
        try:
            ref = parse_key(key)
        except PathError as exc:
            inventory.reports.append(FileReport(path=key, status="unreadable", reason=str(exc)))
            continue
        if ref.day > as_of:
            continue
        with path.open("rb") as stream:
            observations, rejects, report = read_file(ref, stream)
        inventory.reports.append(report)
        inventory.rejects.extend(rejects)
        if report.status == "ok":
            inventory.readable.append(ref)
            inventory.observations.extend(observations)
        if progress:
            progress(f"{key}: {report.accepted} accepted, {report.rejected} rejected")
    return inventory


def meter_folder(
    sub: Subscription, root: Path, as_of: date, progress: Progress | None = None
) -> tuple[dict[str, Any], Metering, LocalInventory]:
    """The CLI's ``meter`` job: the report document, the metering and the ingest."""
    with collector_paused():
        inventory = load_folder(root, sub.subscription_id, as_of, progress)
        metering = meter(sub, inventory.readable, inventory.observations, as_of)
    document = {
        "summary": build_summary(sub, metering),
        "daily": daily_table(metering),
        "ingest": inventory.ingest_json(),
    }
    return document, metering, inventory
