"""Builders shared by the suites: observations, subscriptions, inventory folders, and the
stack of template.yaml on moto (``Pipeline``; the ``pipeline`` fixture is in conftest.py).

Every suite imports what it shares from here, never from another suite's modules."""

from __future__ import annotations

import csv
import io
import itertools
import json
import tracemalloc
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from qlumeter.config import Subscription, parse_subscription
from qlumeter.metering import Metering, meter
from qlumeter.observation import Observation, classify
from qlumeter.paths import FileRef, parse_key
from qlumeter.vocabulary import PRODUCT_CODES
from qlumeter_cli.stack import ACCOUNT, REGION, Stack

TENANT = "acme"
START = date(2026, 1, 1)
_lines = itertools.count(2)


def day(value: str | date | int) -> date:
    """A day: ISO text, a date, or the number of days after ``START`` (0 is ``START``)."""
    if isinstance(value, int):
        return START + timedelta(days=value)
    return value if isinstance(value, date) else date.fromisoformat(value)


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


def peak_memory(run: Callable[[], object]) -> int:
    """The peak of Python's allocations (``tracemalloc``, bytes) while ``run`` runs."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


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


def pipeline_subscription(tenant: str = TENANT, **terms: Any) -> dict[str, Any]:
    """The pipeline scenarios' subscription (four products) as JSON. It names no source:
    a source named in ``sources`` that never delivers is a ``source_missing`` alert."""
    return {
        "subscription_id": tenant,
        "start_date": START.isoformat(),
        "products": {
            "VMDR": {"ratio": "1.5"},
            "CSAM": {"ratio": "1"},
            "EDR": {"ratio": "2.85"},
            "CSPM": {"ratio": "12"},
        },
        **terms,
    }


#: acme's subscription in the integration scenario.
SUBSCRIPTION = pipeline_subscription(
    entitlement_qlus="40", late_data_days=10, sources={"scanner": {"mode": "delta"}}
)


def inventory(root: Path, days: int = 17) -> None:
    """Agents daily (growing), a weekly scanner (delta), CSPM on most days, one bad row."""
    for n in range(days):
        write_file(root, "cloud_agent", day(n), agents(3 + n // 4))
        if n % 7 == 0:
            scans = [
                {"asset_type": "host", "fqdn": "h0.corp.example", "modules": "vmdr"},
                {
                    "asset_type": "host",
                    "ip": f"10.0.0.{n + 1}",
                    "modules": "vmdr",
                    "vuln_count": 0,
                    "open_port_count": 0,
                },
                {"asset_type": "host", "ip": "10.0.0.999", "modules": "vmdr"},
            ]
            write_file(root, "scanner", day(n), scans, fmt="jsonl")
        if n % 5 != 4:
            vms = [
                {
                    "asset_type": "virtual_machine",
                    "cloud_provider": "aws",
                    "cloud_resource_id": f"i-{i}",
                }
                for i in range(2 + n % 3)
            ]
            write_file(root, "cspm", day(n), vms, fmt="json")


# --- generated host rows (hypothesis) -------------------------------------------------

#: Every product, ratio 1.
ALL = {code: {"ratio": "1"} for code in PRODUCT_CODES}
HOST_SOURCES = ["cloud_agent", "scanner", "csp_connector", "cmdb", "easm", "third_party"]


@st.composite
def host_rows(draw: st.DrawFn) -> list:
    """Host rows over 4 days whose identifiers overlap, so correlation has work to do."""
    rows = []
    for line in range(draw(st.integers(1, 25))):
        source = draw(st.sampled_from(HOST_SOURCES))
        ids = {}
        if draw(st.booleans()):
            ids["asset_id"] = f"as{draw(st.integers(0, 4))}"
        if source == "cloud_agent" or draw(st.booleans()):
            ids["agent_id"] = f"ag{draw(st.integers(0, 4))}"
        if draw(st.booleans()):
            ids["cloud_provider"], ids["cloud_resource_id"] = "aws", f"i{draw(st.integers(0, 3))}"
        if draw(st.booleans()):
            ids["fqdn"] = f"h{draw(st.integers(0, 4))}.corp.example"
        ips = [f"10.0.0.{draw(st.integers(1, 5))}" for _ in range(draw(st.integers(0, 2)))]
        if not ids and not ips:
            ips = ["10.0.0.9"]
        day = START + timedelta(days=draw(st.integers(0, 3)))
        rows.append(
            obs(
                source,
                day,
                draw(st.sampled_from(["host", "virtual_machine"])),
                name=f"f{draw(st.integers(0, 1))}",
                line=line + 2,
                ips=ips,
                modules=draw(
                    st.lists(st.sampled_from(["vmdr", "pc", "edr", "paf", "pm", "fim"]), max_size=3)
                ),
                status=draw(st.sampled_from(["active", "inactive", "terminated", "disabled"])),
                vuln_count=draw(st.none() | st.integers(0, 2)),
                open_port_count=draw(st.none() | st.integers(0, 2)),
                observed_at=f"{day}T{draw(st.integers(0, 23)):02d}:00:00+00:00",
                **ids,
            )
        )
        rows[-1].path = f"tenant=acme/source={source}/date={day}/f{line % 2}.csv"
    return rows


def host_fields(o: object) -> dict:
    """The fields of a host row ``host_rows`` sets, to build the same row again."""
    keys = (
        "asset_id",
        "agent_id",
        "cloud_provider",
        "cloud_resource_id",
        "fqdn",
        "ips",
        "modules",
        "status",
        "vuln_count",
        "open_port_count",
        "observed_at",
    )
    return {k: getattr(o, k) for k in keys}


# --- the stack of template.yaml on moto ------------------------------------------------

TEMPLATE = Path(__file__).parents[1] / "template.yaml"
INVENTORY_BUCKET = f"qlumeter-local-inventory-{ACCOUNT}-{REGION}"
ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


class RecordingQueue:
    """The ingest's meter queue, recording the late-data requests it sends."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.requests: list[tuple[str, str]] = []

    def send(self, requests: list[Any]) -> None:
        self.requests += [(r.subscription_id, r.as_of.isoformat()) for r in requests]
        self.queue.send(requests)


class Pipeline(Stack):
    """The stack, with the late-data requests ingest sends recorded (``late.requests``)."""

    def __init__(self, setenv: Callable[[str, str], None]) -> None:
        super().__init__(TEMPLATE, setenv, parameters={"LogLevel": "WARNING"})
        self.late = RecordingQueue(self.ingest.service.meter_queue)
        self.ingest.service.meter_queue = self.late
        assert self.inventory_bucket == INVENTORY_BUCKET
