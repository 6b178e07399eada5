"""Benchmarks: the reader and ``qlumeter validate`` against bare ``csv.DictReader``, and
the 1M-host meter runs (one day; 15 days). Prints figures; it asserts nothing.

Each figure of the reader and of validate comes from a fresh process, the DictReader one
and ours taken side by side, ``--runs`` times; wall time is given with CPU time (user and
system). On a shared machine, compare the ratios of the same run.

    python bench/run.py [--hosts 1000000] [--runs 3] [--skip-meter]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from generate import generate

DATA = Path(__file__).parent / "data"

# Child programs: read the file given; print the rows, the wall and the CPU seconds.
DICT_READER = """
import csv, sys, time
wall, cpu = time.perf_counter(), time.process_time()
with open(sys.argv[1], newline="", encoding="utf-8") as handle:
    rows = sum(1 for _ in csv.DictReader(handle))
print(rows, time.perf_counter() - wall, time.process_time() - cpu)
"""
READER = """
import sys, time
from qlumeter.paths import parse_key
from qlumeter.reader import FileReport, iter_file
ref = parse_key(sys.argv[2])
wall, cpu = time.perf_counter(), time.process_time()
with open(sys.argv[1], "rb") as stream:
    rows = sum(1 for _ in iter_file(ref, stream, FileReport(path=ref.key)))
print(rows, time.perf_counter() - wall, time.process_time() - cpu)
"""


def timed(cmd: list[str]) -> tuple[str, float, float, float]:
    """Standard output, wall seconds, CPU seconds and peak RSS (MB) of a child process."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %U %S %M", *cmd], capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 1):  # validate exits 1 when it lists rejected rows
        raise RuntimeError(f"{cmd[:4]} failed: {done.stderr[-2000:]}")
    wall, user, system, kb = done.stderr.strip().splitlines()[-1].split()
    return done.stdout, float(wall), float(user) + float(system), int(kb) / 1024


def rows_per_second(program: str, *argv: str) -> tuple[float, float]:
    """Rows per wall second and per CPU second of a child program."""
    out = timed([sys.executable, "-c", program, *argv])[0]
    rows, wall, cpu = out.split()
    return int(rows) / float(wall), int(rows) / float(cpu)


def reader_against_dict_reader(path: Path, key: str, runs: int) -> None:
    """qlumeter reader rows/s against csv.DictReader rows/s, each timed inside its process."""
    walls, cpus = [], []
    for run in range(1, runs + 1):
        bare, bare_cpu = rows_per_second(DICT_READER, str(path))
        ours, ours_cpu = rows_per_second(READER, str(path), key)
        walls.append(ours / bare)
        cpus.append(ours_cpu / bare_cpu)
        print(
            f"reader, run {run}: {ours:,.0f} rows/s ({ours_cpu:,.0f} per CPU second); "
            f"csv.DictReader: {bare:,.0f} rows/s ({bare_cpu:,.0f}); "
            f"ratio {walls[-1]:.2f} (CPU {cpus[-1]:.2f})"
        )
    print(f"reader: median ratio {median(walls)} (CPU {median(cpus)})")


def validate_against_dict_reader(path: Path, runs: int) -> float:
    """Seconds of ``qlumeter validate`` against a process iterating csv.DictReader over
    the same file, end to end; returns the highest peak RSS (MB) of validate."""
    walls, cpus, peak = [], [], 0.0
    for run in range(1, runs + 1):
        _, bare, bare_cpu, _ = timed([sys.executable, "-c", DICT_READER, str(path)])
        _, ours, ours_cpu, mb = timed(
            [sys.executable, "-m", "qlumeter_cli.main", "validate", str(path)]
        )
        walls.append(bare / ours)
        cpus.append(bare_cpu / ours_cpu)
        peak = max(peak, mb)
        print(
            f"validate, run {run}: {ours:.2f} s (CPU {ours_cpu:.2f} s), peak RSS {mb:,.0f} MB; "
            f"csv.DictReader: {bare:.2f} s (CPU {bare_cpu:.2f} s); "
            f"ratio {walls[-1]:.2f} (CPU {cpus[-1]:.2f})"
        )
    print(f"validate: median ratio {median(walls)} (CPU {median(cpus)}) of the DictReader speed")
    return peak


def median(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}"


def repeated(path: Path, times: int) -> Path:
    """The file's rows ``times`` over under one header, at the same key in its own folder."""
    key = path.relative_to(DATA).parts
    copy = DATA.joinpath(f"{key[0]}-x{times}", *key[1:])
    if not copy.exists():
        copy.parent.mkdir(parents=True)
        with path.open("rb") as source, copy.open("wb") as target:
            target.write(source.readline())
            start = source.tell()
            for _ in range(times):
                source.seek(start)
                while chunk := source.read(1 << 20):
                    target.write(chunk)
    return copy


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
    _, seconds, _, mb = timed(cmd)
    return seconds, mb


def dataset(name: str, hosts: int, days: int) -> Path:
    root = DATA / f"{name}-{hosts}"
    if not (root / "subscription.yaml").exists():
        rows = generate(root, hosts, days)
        print(f"generated {root}: {rows} rows")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-meter", action="store_true")
    args = parser.parse_args()
    one = dataset("one-day", args.hosts, 1)
    agents = next((one / "inventory").rglob("agents.csv"))
    key = agents.relative_to(one).as_posix()
    reader_against_dict_reader(agents, key, args.runs)
    peak = validate_against_dict_reader(agents, args.runs)
    four = repeated(agents, 4)
    _, seconds, _, peak4 = timed([sys.executable, "-m", "qlumeter_cli.main", "validate", str(four)])
    print(
        f"validate peak RSS: {peak:,.0f} MB on the agents file, "
        f"{peak4:,.0f} MB on it four times over ({seconds:.1f} s)"
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
