"""``qlumeter run``: the whole pipeline on one machine, on the stack of ``template.yaml``.

The folder's files are uploaded as objects, their notifications delivered to the ingest
handler, the schedule run for every day up to the as-of day, and the published messages
collected from a subscribed queue. The report has the shape of ``qlumeter meter``'s plus
``messages``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

from qlumeter.catalog import PRODUCTS
from qlumeter.config import Subscription
from qlumeter.paths import PathError, parse_key
from qlumeter.pipeline.dynamo import DynamoStore
from qlumeter.pipeline.ingest import INVENTORY_PREFIX, REJECTS_PREFIX
from qlumeter.reader import Reject
from qlumeter.summary import daily_rows
from qlumeter.vocabulary import PRODUCT_CODES

from .local import tenant_files

Progress = Callable[[str, int, int], None]  # (what, done, total)


class Driver(Protocol):
    """A stack to run on: the local one (moto) or a deployed one."""

    s3: Any
    inventory_bucket: str

    def put_subscription(self, subscription: dict[str, Any]) -> dict[str, Any]: ...
    def upload_file(self, key: str, body: bytes) -> None: ...
    def drain(self) -> Iterator[Any]: ...
    def meter(self, **event: Any) -> dict[str, Any]: ...
    def published(self, url: str | None = None) -> list[dict[str, Any]]: ...


def default_template() -> Path:
    """``template.yaml`` of the checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "template.yaml"


def run_stack(
    stack: Driver, sub: Subscription, root: Path, as_of: date, progress: Progress | None = None
) -> dict[str, Any]:
    """Drive ``stack`` over the folder's files of ``sub``'s tenant; return the report."""
    report = progress or (lambda what, done, total: None)
    stack.put_subscription(sub.to_json_dict())
    files = []
    for path, key in tenant_files(root, sub.subscription_id):
        try:
            if parse_key(key).day > as_of:
                continue
        except PathError:
            pass  # uploaded all the same: the pipeline quarantines and reports it
        files.append((path, f"{INVENTORY_PREFIX}{key}"))
    for done, (path, key) in enumerate(files, 1):
        stack.upload_file(key, path.read_bytes())
        report("uploaded", done, len(files))
    for delivered, _ in enumerate(stack.drain(), 1):  # parts of large files come back
        report("ingested", delivered, max(delivered, len(files)))
    messages: list[dict[str, Any]] = []
    days = [sub.start_date + timedelta(days=n) for n in range((as_of - sub.start_date).days + 1)]
    for done, day in enumerate(days, 1):
        stack.meter(scheduled_time=f"{day + timedelta(days=1)}T02:30:00Z")
        messages.extend(stack.published())
        report("metered", done, len(days))
        for _ in stack.drain():  # late-data requests are run by the next day's schedule
            pass
    for message in messages:
        message.pop("_attributes", None)
    return {
        "summary": latest_summary(messages, as_of),
        "daily": stored_daily(sub, as_of),
        "ingest": stored_ingest(stack, sub, as_of, messages),
        "messages": messages,
    }


def latest_summary(messages: list[dict[str, Any]], as_of: date) -> dict[str, Any]:
    """The newest revision published for the as-of day."""
    kinds = ("usage_summary", "correction", "threshold_alert")
    return max(
        (m for m in messages if m.get("as_of") == as_of.isoformat() and m["event_type"] in kinds),
        key=lambda m: m["revision"],
    )


def stored_daily(sub: Subscription, as_of: date) -> dict[str, list[dict[str, Any]]]:
    """The daily values the meter stored, shown as ``qlumeter meter`` shows them."""
    store = DynamoStore()
    codes = [c for c in PRODUCT_CODES if c in sub.products]
    covered: dict[str, set[date]] = {}
    for m in store.manifests(sub.subscription_id, sub.start_date, as_of):
        if m.status == "ok":
            covered.setdefault(m.ref.source, set()).add(m.ref.day)
    return {
        code: daily_rows(
            days,
            covered.get(PRODUCTS[code].coverage or "", set())
            if PRODUCTS[code].window == "avg90"
            else None,
        )
        for code, days in store.daily(sub.subscription_id, codes, sub.start_date, as_of).items()
    }


def stored_ingest(
    stack: Driver, sub: Subscription, as_of: date, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    """Manifests, refused objects and rejected rows, as ``qlumeter meter`` reports them."""
    store = DynamoStore()
    manifests = store.manifests(sub.subscription_id, sub.start_date, as_of)
    files = [
        {
            "path": m.ref.key,
            "status": m.status,
            "rows": m.rows,
            "accepted": m.accepted,
            "rejected": m.rejected,
            "reason": m.reason,
        }
        for m in manifests
    ]
    known = {f["path"] for f in files}
    for m in messages:
        if m["event_type"] == "ingest_failed":
            path = m["key"].removeprefix(INVENTORY_PREFIX)
            if path not in known:
                files.append(
                    {
                        "path": path,
                        "status": "unreadable",
                        "rows": 0,
                        "accepted": 0,
                        "rejected": 0,
                        "reason": m["reason"],
                    }
                )
    rejects: list[dict[str, Any]] = []
    prefix = f"{REJECTS_PREFIX}{INVENTORY_PREFIX}tenant={sub.subscription_id}/"
    pages = stack.s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.inventory_bucket, Prefix=prefix
    )
    current = {f"{REJECTS_PREFIX}{INVENTORY_PREFIX}{m.ref.key}.{m.version}" for m in manifests}
    for page in pages:
        for obj in page.get("Contents", []):
            if not any(obj["Key"].startswith(c) for c in current):
                continue  # a replaced version's rejects
            body = stack.s3.get_object(Bucket=stack.inventory_bucket, Key=obj["Key"])["Body"]
            rejects.extend(
                asdict(Reject(**json.loads(line))) for line in body.read().decode().splitlines()
            )
    rejects.sort(key=lambda r: (r["path"], r["line"]))
    return {"files": sorted(files, key=lambda f: f["path"]), "rejects": rejects}
