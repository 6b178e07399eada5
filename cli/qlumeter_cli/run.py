"""``qlumeter run``: the whole pipeline on one machine, on the stack of ``template.yaml``.

The folder's files are uploaded as objects, their notifications delivered to the ingest
handler, the schedule run for every day up to the as-of day, and the published messages
collected from a subscribed queue. The report has the shape of ``qlumeter meter``'s plus
``messages``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from qlumeter.config import Subscription
from qlumeter.metering import Meter, metering_as_of
from qlumeter.paths import PathError, parse_key
from qlumeter.pipeline.dynamo import DynamoStore
from qlumeter.pipeline.ingest import INVENTORY_PREFIX, REJECTS_PREFIX
from qlumeter.pipeline.ports import Manifest
from qlumeter.publishing import CORRECTION, INGEST_FAILED, THRESHOLD_ALERT, USAGE_SUMMARY
from qlumeter.reader import FileReport, Reject
from qlumeter.summary import daily_table
from qlumeter.vocabulary import PRODUCT_CODES
from qlumeter.windows import day_range

from .local import LocalInventory, tenant_files

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

Progress = Callable[[str, int, int], None]  # (what, done, total)


class Driver(Protocol):
    """A stack to run on: the local one (moto) or a deployed one."""

    s3: S3Client
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
    days = day_range(sub.start_date, as_of)
    for done, day in enumerate(days, 1):
        stack.meter(subscription_id=sub.subscription_id, as_of=day.isoformat())
        messages.extend(stack.published())
        report("metered", done, len(days))
        for _ in stack.drain():  # late-data requests are run by the next day's schedule
            pass
    for message in messages:
        message.pop("_attributes", None)
    manifests = DynamoStore().manifests(sub.subscription_id, sub.start_date, as_of)
    return {
        "summary": latest_summary(messages, as_of),
        "daily": stored_daily(sub, as_of, manifests),
        "ingest": stored_ingest(stack, sub, manifests, messages).ingest_json(),
        "messages": messages,
    }


def latest_summary(messages: list[dict[str, Any]], as_of: date) -> dict[str, Any]:
    """The newest revision published for the as-of day."""
    kinds = (USAGE_SUMMARY, CORRECTION, THRESHOLD_ALERT)
    return max(
        (m for m in messages if m.get("as_of") == as_of.isoformat() and m["event_type"] in kinds),
        key=lambda m: m["revision"],
    )


def stored_daily(
    sub: Subscription, as_of: date, manifests: list[Manifest]
) -> dict[str, list[dict[str, Any]]]:
    """The daily values the meter stored, in the engine's daily table (``qlumeter meter``'s),
    avg90 coverage counted by the engine from the readable files."""
    codes = [c for c in PRODUCT_CODES if c in sub.products]
    daily = DynamoStore().daily(sub.subscription_id, codes, sub.start_date, as_of)
    files = Meter(sub)
    files.add([m.ref for m in manifests if m.status == "ok"], [])
    return daily_table(metering_as_of(sub, as_of, daily, files))


def stored_ingest(
    stack: Driver, sub: Subscription, manifests: list[Manifest], messages: list[dict[str, Any]]
) -> LocalInventory:
    """The manifests, refused objects and rejected rows as ``qlumeter meter``'s ingest."""
    reports = [
        FileReport(m.ref.key, m.status, m.rows, m.accepted, m.rejected, m.reason) for m in manifests
    ]
    known = {r.path for r in reports}
    for m in messages:
        path = m["key"].removeprefix(INVENTORY_PREFIX) if m["event_type"] == INGEST_FAILED else ""
        if path and path not in known:
            reports.append(FileReport(path, "unreadable", reason=m["reason"]))
    rejects: list[Reject] = []
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
            rejects.extend(Reject(**json.loads(line)) for line in body.read().decode().splitlines())
    return LocalInventory(
        reports=sorted(reports, key=lambda r: r.path),
        rejects=sorted(rejects, key=lambda r: (r.path, r.line)),
    )
