"""Benchmarks: reader throughput against bare ``csv.DictReader``, and the 1M-host meter
runs (one day; 15 days). Prints figures; it asserts nothing.

    python bench/run.py [--hosts 1000000] [--skip-meter]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

from generate import generate

from qlumeter.paths import parse_key
from qlumeter.reader import FileReport, iter_file

DATA = Path(__file__).parent / "data"


def reader_rows_per_second(path: Path, key: str) -> tuple[float, float]:
    """(qlumeter reader rows/s, csv.DictReader rows/s) on the same file."""
    start = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as handle:
        bare = sum(1 for _ in csv.DictReader(handle))
    bare_rate = bare / (time.perf_counter() - start)
    ref = parse_key(key)
    report = FileReport(path=key)
    start = time.perf_counter()
    with path.open("rb") as stream:
        ours = sum(1 for _ in iter_file(ref, stream, report))
    ours_rate = ours / (time.perf_counter() - start)
    return ours_rate, bare_rate


def meter_run(root: Path, as_of: str) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of ``qlumeter meter`` in a child process."""
    cmd = [
        sys.executable,
        "-m",
        "qlumeter_cli.main",
        "meter",
        "--quiet",
        "--subscription",
        str(root / "subscription.yaml"),
        "--inventory",
        str(root),
        "--as-of",
        as_of,
        "--out",
        str(root / "report.json"),
    ]
    timed = ["/usr/bin/time", "-f", "%e %M", *cmd]
    done = subprocess.run(timed, capture_output=True, text=True, check=True)
    seconds, kb = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kb) / 1024


def dataset(name: str, hosts: int, days: int) -> Path:
    root = DATA / f"{name}-{hosts}"
    if not (root / "subscription.yaml").exists():
        rows = generate(root, hosts, days)
        print(f"generated {root}: {rows} rows")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1_000_000)
    parser.add_argument("--skip-meter", action="store_true")
    args = parser.parse_args()
    one = dataset("one-day", args.hosts, 1)
    agents = next((one / "inventory").rglob("agents.csv"))
    key = agents.relative_to(one).as_posix().split("/", 1)[1]
    ours, bare = reader_rows_per_second(agents, key)
    print(
        f"reader: {ours:,.0f} rows/s; csv.DictReader: {bare:,.0f} rows/s; ratio {ours / bare:.2f}"
    )
    if args.skip_meter:
        return
    seconds, mb = meter_run(one, "2026-01-01")
    print(f"meter, {args.hosts:,} hosts, one day: {seconds:.1f} s, peak RSS {mb:,.0f} MB")
    fifteen = dataset("fifteen-days", args.hosts, 15)
    seconds, mb = meter_run(fifteen, "2026-01-15")
    print(f"meter, {args.hosts:,} hosts, 15 days: {seconds:.1f} s, peak RSS {mb:,.0f} MB")


if __name__ == "__main__":
    main()
