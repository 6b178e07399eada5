"""Generate a large host inventory for the benchmarks.

Day 1: a cloud-agent drop of ``--hosts`` hosts and a scanner drop that overlaps half of
them (shared fqdn) plus scanner-only and IP-only hosts. Later days (``--days``): small
delta drops (about 2% of the hosts change status, modules or counts), with both sources
configured as ``delta`` in the generated subscription.

    python bench/generate.py --out bench/data/one-day --hosts 1000000 --days 1
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import date, timedelta
from pathlib import Path

TENANT = "bench"
START = date(2026, 1, 1)
AGENT_COLUMNS = [
    "asset_type",
    "agent_id",
    "fqdn",
    "ip",
    "modules",
    "status",
    "vuln_count",
    "open_port_count",
    "observed_at",
    "cloud_provider",
    "cloud_resource_id",
]
SCANNER_COLUMNS = [
    "asset_type",
    "fqdn",
    "ip",
    "modules",
    "status",
    "vuln_count",
    "open_port_count",
    "observed_at",
]
MODULE_SETS = ["vmdr", "vmdr;pc", "vmdr;edr", "vmdr;pc;edr;fim", "vmdr;paf;pm", "vmdr;edr;pm;isl"]


def _folder(root: Path, source: str, day: date) -> Path:
    folder = root / "inventory" / f"tenant={TENANT}" / f"source={source}" / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def agent_row(i: int, day: date, rnd: random.Random, status: str = "active") -> list[object]:
    vm = i % 4 == 0
    return [
        "virtual_machine" if vm else "host",
        f"ag-{i:08d}",
        f"h{i:08d}.corp.example",
        f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
        MODULE_SETS[i % len(MODULE_SETS)],
        status,
        rnd.randint(0, 40),
        rnd.randint(0, 12),
        f"{day}T{i % 24:02d}:00:00Z",
        "aws" if vm else "",
        f"i-{i:08x}" if vm else "",
    ]


def scanner_row(i: int, day: date, rnd: random.Random, ip_only: bool = False) -> list[object]:
    return [
        "host",
        "" if ip_only else f"h{i:08d}.corp.example",
        f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
        "vmdr;pc",
        "active",
        rnd.randint(0, 5),
        rnd.randint(0, 3),
        f"{day}T02:00:00Z",
    ]


def write(path: Path, columns: list[str], rows: list[list[object]]) -> int:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return len(rows)


def generate(root: Path, hosts: int, days: int, seed: int = 7) -> int:
    """Write the inventory and ``subscription.yaml``; return the number of rows."""
    rnd = random.Random(seed)
    total = 0
    agents = int(hosts * 0.8)
    total += write(
        _folder(root, "cloud_agent", START) / "agents.csv",
        AGENT_COLUMNS,
        [agent_row(i, START, rnd) for i in range(agents)],
    )
    scanned = range(agents // 2, hosts)  # half the agents, and every host without an agent
    total += write(
        _folder(root, "scanner", START) / "scan.csv",
        SCANNER_COLUMNS,
        [scanner_row(i, START, rnd, ip_only=i % 50 == 0) for i in scanned],
    )
    for offset in range(1, days):
        day = START + timedelta(days=offset)
        changed = rnd.sample(range(agents), max(1, agents // 50))
        total += write(
            _folder(root, "cloud_agent", day) / "agents.csv",
            AGENT_COLUMNS,
            [
                agent_row(i, day, rnd, rnd.choice(["active", "inactive", "terminated"]))
                for i in changed
            ],
        )
        rescanned = rnd.sample(scanned, max(1, len(scanned) // 50))
        total += write(
            _folder(root, "scanner", day) / "scan.csv",
            SCANNER_COLUMNS,
            [scanner_row(i, day, rnd) for i in rescanned],
        )
    products = ["ETM", "CSAM", "VMDR", "EDR", "ZLINUX", "CWP_AGENT", "PC", "PAF", "FIM", "ELIM"]
    lines = [f"subscription_id: {TENANT}", f"start_date: '{START}'", "products:"]
    lines += [f"  {code}: {{ratio: '1.5'}}" for code in products]
    lines += ["sources:", "  cloud_agent: {mode: delta}", "  scanner: {mode: delta}"]
    (root / "subscription.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hosts", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=1)
    args = parser.parse_args()
    rows = generate(args.out, args.hosts, args.days)
    print(f"{rows} rows for {args.hosts} hosts over {args.days} days in {args.out}")


if __name__ == "__main__":
    main()
