"""The meter state of a daily run: a first day folded and stored, then the next days run
from the stored state one at a time, as the deployed meter does (rows read from the
generated files instead of the table). Prints seconds per phase, peak RSS and the stored
state's size; asserts nothing.

    python bench/generate.py --out bench/data/fifteen-days-1000000 --hosts 1000000 --days 15
    python bench/state.py bench/data/fifteen-days-1000000 --days 3
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from qlumeter.config import load_subscription
from qlumeter.metering import Meter
from qlumeter.paths import parse_key
from qlumeter.reader import collector_paused, read_file


def day_files(root: Path, day: date) -> tuple[list, list]:
    """The readable files of ``day`` and their rows."""
    refs, rows = [], []
    for path in sorted(root.glob(f"inventory/tenant=*/source=*/date={day}/*")):
        ref = parse_key(path.relative_to(root).as_posix().split("/", 1)[1])
        with path.open("rb") as stream:
            observations, _, report = read_file(ref, stream)
        if report.status == "ok":
            refs.append(ref)
            rows.extend(observations)
    return refs, rows


def step(root: Path, day: date, state: Path) -> None:
    """One run in this process: load the state (unless the first day), replay ``day``,
    store the state. Prints one line of figures."""
    sub = load_subscription(root / "subscription.yaml")
    with collector_paused():
        started = time.perf_counter()
        meter = Meter.loads(state.read_bytes(), sub) if state.exists() else Meter(sub)
        loaded = time.perf_counter()
        refs, rows = day_files(root, day)
        read = time.perf_counter()
        meter.add(refs, rows)
        del rows
        values = meter.advance(day, day)
        meter.compact()
        replayed = time.perf_counter()
        blob = meter.dumps()
        state.write_bytes(blob)
        saved = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    vmdr = values.get("VMDR", {}).get(day)
    print(
        f"{day}: load {loaded - started:.2f} s, read rows {read - loaded:.2f} s, "
        f"replay {replayed - read:.2f} s, save {saved - replayed:.2f} s; engine "
        f"{(loaded - started) + (saved - read):.2f} s; peak RSS {peak:,.0f} MB; state "
        f"{len(blob) / 2**20:,.1f} MB; VMDR {vmdr.value if vmdr else '-'}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a folder written by bench/generate.py")
    parser.add_argument("--days", type=int, default=3, help="days to run (the first included)")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: one day in this process
    parser.add_argument("--state", type=Path, default=Path("/tmp/qlumeter-bench-state.bin"))
    args = parser.parse_args()
    if args.step:
        step(args.root, date.fromisoformat(args.step), args.state)
        return
    args.state.unlink(missing_ok=True)
    start = load_subscription(args.root / "subscription.yaml").start_date
    for n in range(args.days):
        day = start + timedelta(days=n)
        cmd = [
            sys.executable,
            __file__,
            str(args.root),
            "--step",
            str(day),
            "--state",
            str(args.state),
        ]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
