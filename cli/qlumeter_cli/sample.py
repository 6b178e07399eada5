"""A realistic sample tenant: three months of daily drops across products and sources.

It has what real exports have: agents and scanners seeing the same hosts, IP-only scan
results, a CMDB still listing retired servers, identities in two IdPs, cloud workloads
seen by posture, agentless and detection scanners, hourly container heartbeats, image
scans re-run in the pipeline, web apps under URL variants, and a few bad rows.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

TENANT = "acme-demo"
START = date(2026, 1, 1)
DAYS = 90
DEMO_DAYS = 30  # the demo runs the whole pipeline: every day is a scheduled run

SUBSCRIPTION = f"""\
subscription_id: {TENANT}
start_date: "{START}"
entitlement_qlus: "60000"
sources:
  scanner: {{mode: delta}}
  cmdb: {{mode: delta}}
container: {{heartbeat_minutes: 60, missed_heartbeats: 1}}
purge_rules: {{enabled: true, inactive_days: 30, terminated_days: 7}}
products:
  ETM: {{ratio: "3"}}
  CSAM: {{ratio: "1"}}
  ETM_ID: {{ratio: "1"}}
  VMDR: {{ratio: "1.5"}}
  VMDR_MOBILE: {{ratio: "1.5"}}
  VMDR_OT: {{ratio: "1.5"}}
  EDR: {{ratio: "2.85"}}
  ZLINUX: {{ratio: "60"}}
  CSPM: {{ratio: "12"}}
  CWP_AGENT: {{ratio: "1.5"}}
  CWP_FLEXSCAN: {{ratio: "3"}}
  CDR: {{ratio: "12"}}
  CS: {{ratio: "45"}}
  CIS: {{ratio: "0.12"}}
  SC: {{ratio: "3"}}
  SSPM: {{ratio: "1.5"}}
  TAS: {{ratio: "45"}}
  PC: {{ratio: "1.87"}}
  PAF: {{ratio: "0.95"}}
  FIM: {{ratio: "18"}}
  PCI: {{ratio: "1.5"}}
  ELIM: {{ratio: "5.7", active_from: "2026-02-01"}}
"""

Rows = list[dict[str, Any]]
MODULES = ["vmdr", "vmdr;pc", "vmdr;edr", "vmdr;pc;edr;fim", "vmdr;paf;pm", "vmdr;edr;isl;mtg"]


def _ip(i: int) -> str:
    return f"10.20.{i // 250}.{i % 250 + 1}"


def _host(i: int, day: date, rnd: random.Random) -> dict[str, Any]:
    row: dict[str, Any] = {
        "asset_type": "virtual_machine" if i % 5 == 0 else "host",
        "agent_id": f"ag-{i:05d}",
        "fqdn": f"srv{i:05d}.corp.example",
        "ip": _ip(i),
        "modules": MODULES[i % len(MODULES)],
        "vuln_count": rnd.randint(0, 30) if i % 9 else 0,
        "open_port_count": rnd.randint(1, 8) if i % 9 else 0,
        "observed_at": f"{day}T{i % 24:02d}:15:00Z",
    }
    if i % 5 == 0:
        row["cloud_provider"] = ("aws", "azure", "gcp")[i % 3]
        row["cloud_resource_id"] = f"vm-{i:05d}"
    if i % 97 == 0:
        row["agent_type"] = "zlinux"
    return row


def agents(day: date, n: int, rnd: random.Random) -> Rows:
    """A daily snapshot: hosts join over time, a few are decommissioned in February."""
    alive = 260 + n * 2
    rows = [_host(i, day, rnd) for i in range(alive) if not (150 <= i < 160 and n > 40)]
    if 30 <= n <= 40:
        rows += [dict(_host(i, day, rnd), status="decommissioned") for i in range(150, 160)]
    return rows


def scans(day: date, n: int, rnd: random.Random) -> Rows:
    """Weekly scans (delta): agent hosts by fqdn, scanner-only hosts, IP-only results."""
    rows = [
        {
            "fqdn": f"srv{i:05d}.corp.example",
            "ip": _ip(i),
            "modules": "vmdr;pc",
            "vuln_count": rnd.randint(0, 12),
            "open_port_count": rnd.randint(0, 5),
        }
        for i in range(0, 200, 2)
    ]
    rows += [
        {
            "netbios": f"PRN{i}",
            "ip": f"10.30.0.{i}",
            "modules": "vmdr",
            "vuln_count": 0 if i % 4 else 2,
            "open_port_count": 0 if i % 4 else 1,
        }
        for i in range(1, 60)
    ]
    rows.append({"fqdn": "bad.corp.example", "ip": "10.30.0.999", "modules": "vmdr"})
    rows.append({"asset_id": "x-1", "status": "retired", "modules": "vmdr"})
    return [dict(r, asset_type=r.get("asset_type", "host")) for r in rows]


def cmdb(day: date, n: int, rnd: random.Random) -> Rows:
    return [
        {"asset_type": "host", "asset_id": f"cmdb-{i}", "fqdn": f"old{i}.corp.example"}
        for i in range(40)
    ]


def csp(day: date, n: int, rnd: random.Random) -> Rows:
    rows = [
        {
            "asset_type": "virtual_machine",
            "cloud_provider": ("aws", "azure", "gcp")[i % 3],
            "cloud_resource_id": f"vm-{i:05d}",
        }
        for i in range(0, 400, 5)
    ]
    return rows + [
        {
            "asset_type": "cloud_resource",
            "cloud_provider": "aws",
            "cloud_resource_id": f"bucket-{i}",
        }
        for i in range(10)
    ]


def identities(day: date, n: int, rnd: random.Random) -> Rows:
    okta = [
        {"asset_type": "identity", "idp": "okta", "identity_key": f"user{i}@acme.example"}
        for i in range(400 + n)
    ]
    entra = [
        {
            "asset_type": "identity",
            "idp": "entra_id",
            "identity_key": f"USER{i}@acme.example",
            "status": "disabled" if i % 10 == 0 else "enabled",
        }
        for i in range(200, 700)
    ]
    return okta + entra


def workloads(source: str, vms: int, functions: int) -> Any:
    def rows(day: date, n: int, rnd: random.Random) -> Rows | None:
        if n % 11 == 10:
            return None  # a missed export: a gap, not a zero
        count = vms + rnd.randint(-vms // 10, vms // 10)
        out = [
            {
                "asset_type": "virtual_machine",
                "cloud_provider": ("aws", "azure")[i % 2],
                "cloud_resource_id": f"vm-{i * 5:05d}",
            }
            for i in range(count)
        ]
        return out + [
            {
                "asset_type": "serverless_function",
                "cloud_provider": "aws",
                "cloud_resource_id": f"fn-{i}",
            }
            for i in range(functions)
        ]

    return rows


def nodes(day: date, n: int, rnd: random.Random) -> Rows:
    """Hourly heartbeats; a few nodes only live part of the day."""
    rows = []
    for node in range(12):
        hours = range(24) if node < 9 else range(8, 8 + 4 * (node - 8))
        rows += [
            {
                "asset_type": "container_node",
                "node_id": f"node-{node}",
                "modules": "cs_runtime;fim" if node < 3 else "cs_runtime",
                "observed_at": f"{day}T{h:02d}:05:00Z",
                "vuln_count": node % 3,
                "last_fim_event_at": f"{day}T01:00:00Z" if node < 2 else "",
            }
            for h in hours
        ]
    return rows


def serverless(day: date, n: int, rnd: random.Random) -> Rows:
    return [
        {
            "asset_type": "serverless_container",
            "instance_id": f"task-{n}-{i}",
            "node_id": "node-1" if i < 3 else "",
        }
        for i in range(20 + rnd.randint(0, 10))
    ]


def images(day: date, n: int, rnd: random.Random) -> Rows:
    rows = []
    for i in range(6):
        digest = f"sha256:{(n // 7 * 10 + i):064x}"
        rows.append(
            {
                "asset_type": "container_image_scan",
                "image_digest": digest,
                "pipeline_stage": "ci",
                "observed_at": f"{day}T09:00:00Z",
            }
        )
        rows.append(
            {
                "asset_type": "container_image_scan",
                "image_digest": digest,
                "pipeline_stage": "registry",
                "observed_at": f"{day}T11:00:00Z",
            }
        )
    rows.append(
        {
            "asset_type": "container_image_scan",
            "image_digest": "sha256:" + "f" * 64,
            "pipeline_stage": "runtime",
        }
    )
    return rows


def saas(day: date, n: int, rnd: random.Random) -> Rows:
    return [
        {
            "asset_type": "saas_user",
            "identity_key": f"user{i}@acme.example",
            "status": "inactive" if i % 17 == 0 else "active",
        }
        for i in range(300 + rnd.randint(0, 40))
    ]


def apps(day: date, n: int, rnd: random.Random) -> Rows:
    rows = [
        {
            "asset_type": "web_app",
            "url": f"https://app{i}.acme.example/",
            "modules": "tas",
            "vuln_count": i % 2,
        }
        for i in range(12 + n // 30)
    ]
    rows.append({"asset_type": "web_app", "url": "HTTPS://App1.Acme.Example:443", "modules": "tas"})
    return rows + [
        {
            "asset_type": "api_endpoint",
            "url": f"https://api.acme.example/v1/r{i}",
            "http_method": "GET" if i % 3 else "POST",
            "modules": "tas",
        }
        for i in range(45)
    ]


def devices(day: date, n: int, rnd: random.Random) -> Rows:
    return [
        {
            "asset_type": "mobile_device",
            "device_id": f"dev-{i}",
            "status": "disabled" if i % 25 == 0 else "enabled",
        }
        for i in range(150)
    ]


def ot(day: date, n: int, rnd: random.Random) -> Rows:
    levels = ["basic", "basic", "enriched", "vulnerable"]
    return [
        {"asset_type": "ot_asset", "asset_id": f"plc-{i}", "ot_level": levels[i % 4]}
        for i in range(60)
    ]


def pci(day: date, n: int, rnd: random.Random) -> Rows:
    rows = [
        {"asset_type": "ip_address", "ip": f"203.0.113.{i}", "modules": "pci"} for i in range(1, 30)
    ]
    return rows + [
        {"asset_type": "dns_name", "fqdn": f"pay{i}.acme.example", "modules": "pci"}
        for i in range(5)
    ]


#: source -> (day filter, row builder, file format)
FEEDS: dict[str, tuple[Any, Any, str]] = {
    "cloud_agent": (lambda n: True, agents, "csv"),
    "scanner": (lambda n: n % 7 == 0, scans, "csv"),
    "cmdb": (lambda n: n % 30 == 0, cmdb, "json"),
    "csp_connector": (lambda n: True, csp, "jsonl"),
    "idp": (lambda n: True, identities, "jsonl"),
    "cspm": (lambda n: True, workloads("cspm", 70, 250), "csv"),
    "flexscan": (lambda n: n % 2 == 0, workloads("flexscan", 30, 0), "csv"),
    "cdr": (lambda n: True, workloads("cdr", 50, 120), "csv"),
    "container_sensor": (lambda n: True, nodes, "csv"),
    "serverless_sensor": (lambda n: True, serverless, "csv"),
    "image_scanner": (lambda n: True, images, "jsonl"),
    "sspm": (lambda n: n % 3 == 0, saas, "csv"),
    "tas": (lambda n: True, apps, "csv"),
    "intune": (lambda n: n % 2 == 0, devices, "csv"),
    "ot_sensor": (lambda n: n % 5 == 0, ot, "csv"),
    "pci_scanner": (lambda n: n % 15 == 0, pci, "csv"),
}


def _write(path: Path, rows: Rows, fmt: str) -> None:
    if fmt == "csv":
        columns = list(dict.fromkeys(k for row in rows for k in row)) or ["asset_type"]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")


def drops(days: int = DAYS) -> Iterator[tuple[str, date, str, Rows]]:
    """Every (source, day, format, rows) of the sample, deterministic."""
    rnd = random.Random(20260101)
    for n in range(days):
        day = START + timedelta(days=n)
        for source, (when, build, fmt) in FEEDS.items():
            rows = build(day, n, rnd) if when(n) else None
            if rows is not None:
                yield source, day, fmt, rows


def write_sample(root: Path, days: int = DAYS) -> tuple[Path, int]:
    """Write the sample tenant under ``root``; return the subscription path and row count."""
    total = 0
    for source, day, fmt, rows in drops(days):
        folder = root / "inventory" / f"tenant={TENANT}" / f"source={source}" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / f"{source}.{fmt}", rows, fmt)
        total += len(rows)
    subscription = root / "subscription.yaml"
    subscription.write_text(SUBSCRIPTION, encoding="utf-8")
    return subscription, total
