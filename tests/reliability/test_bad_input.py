"""Bad input: every file the readers are given ends in accepted rows, rejected rows with a
field and a reason, or an unreadable file with a reason; never another exception, a hang
(each test has a time budget, each example a deadline) or memory that grows with the input
(``tracemalloc`` peaks under a bound for 100 MB lines and gzip bombs).

Hypothesis fuzzes random bytes, mutated valid files and generated rows (wrong types and
enums, dates out of range, negative and huge counts, formula-like cells, unknown columns,
duplicate headers, BOMs, CRLF, other encodings) over CSV, JSON Lines, JSON and gzip.
``fuzz_reader_atheris.py`` runs the same oracle under atheris, coverage-guided.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qlumeter.observation import Observation
from qlumeter.paths import FileRef, parse_key
from qlumeter.reader import DEFAULT_LIMITS, FileReport, Limits, Reject, UnreadableFile, iter_file
from qlumeter.rows import FIELD_NAMES
from tests.reliability.harness import FIGURES, Generated
from tests.support import subscription

FORMATS = ("csv", "jsonl", "json")
MB = 1 << 20
FUZZ = settings(
    max_examples=150,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def ref_of(fmt: str, gz: bool = False) -> FileRef:
    return parse_key(f"tenant=acme/source=scanner/date=2026-01-01/fuzz.{fmt}{'.gz' * gz}")


@dataclass
class Outcome:
    status: str
    reason: str | None = None
    accepted: int = 0
    rejects: list[Reject] = field(default_factory=list)  # the first ``keep`` of them
    rejected: int = 0
    report: FileReport | None = None


def read(ref: FileRef, stream: Any, limits: Limits = DEFAULT_LIMITS, keep: int = 10**6) -> Outcome:
    """Stream a file through ``iter_file`` and check the oracle: only observations and
    rejects with a field and a reason come out, only UnreadableFile (with a reason) is
    raised, and the report counts what came out."""
    report = FileReport(path=ref.key)
    out = Outcome("ok", report=report)
    try:
        for item in iter_file(ref, stream, report, limits):
            if isinstance(item, Observation):
                out.accepted += 1
            else:
                assert isinstance(item, Reject), item
                assert item.field and item.reason and item.line >= 1, item
                assert item.path == ref.key
                out.rejected += 1
                if len(out.rejects) < keep:
                    out.rejects.append(item)
    except UnreadableFile as exc:
        assert exc.reason
        out.status, out.reason = "unreadable", exc.reason
        return out
    assert report.accepted == out.accepted
    assert report.rejected == out.rejected + report.unlisted  # a keyless type's rows: a warning
    assert report.rows == report.accepted + report.rejected
    assert bool(report.unlisted) == any("no column gives their key" in w for w in report.warnings)
    return out


def read_bytes(fmt: str, data: bytes, gz: bool = False, limits: Limits = DEFAULT_LIMITS) -> Outcome:
    FIGURES["fuzz: reader inputs (hypothesis)"] += 1
    out = read(ref_of(fmt, gz), io.BytesIO(data), limits)
    assert out.report is not None
    assert out.report.checksum == hashlib.sha256(data).hexdigest()  # of the bytes as stored
    return out


# --- random bytes and mutated files ------------------------------------------------------


@FUZZ
@given(fmt=st.sampled_from(FORMATS), gz=st.booleans(), data=st.binary(max_size=4096))
def test_random_bytes(fmt: str, gz: bool, data: bytes) -> None:
    read_bytes(fmt, data, gz)


@FUZZ
@given(fmt=st.sampled_from(FORMATS), data=st.binary(max_size=4096))
def test_valid_gzip_of_random_bytes(fmt: str, data: bytes) -> None:
    read_bytes(fmt, gzip.compress(data, mtime=0), gz=True)


def valid_file(fmt: str, rows: int = 12) -> bytes:
    records = [
        {"asset_type": "host", "agent_id": f"a{i}", "fqdn": f"h{i}.example", "vuln_count": i}
        for i in range(rows)
    ]
    return serialize(fmt, records, [*records[0]], "\n", bom=False)


@FUZZ
@given(
    fmt=st.sampled_from(FORMATS),
    gz=st.booleans(),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["insert", "delete", "replace"]),
            st.integers(0, 10**6),
            st.binary(min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_valid_files(fmt: str, gz: bool, edits: list[tuple[str, int, bytes]]) -> None:
    """A valid file (or its gzip) with random bytes inserted, deleted or replaced."""
    data = bytearray(valid_file(fmt))
    if gz:
        data = bytearray(gzip.compress(bytes(data), mtime=0))
    for kind, where, chunk in edits:
        at = where % (len(data) + 1)
        if kind == "insert":
            data[at:at] = chunk
        elif kind == "delete":
            del data[at : at + len(chunk)]
        else:
            data[at : at + len(chunk)] = chunk
    read_bytes(fmt, bytes(data), gz)


@FUZZ
@given(fmt=st.sampled_from(FORMATS), cut=st.integers(1, 10**6))
def test_truncated_gzip(fmt: str, cut: int) -> None:
    """A gzip file cut short anywhere is unreadable as a whole (none of its rows count)."""
    data = gzip.compress(valid_file(fmt, rows=200), mtime=0)
    cut %= len(data)  # strictly shorter than the whole
    out = read_bytes(fmt, data[: max(cut, 1)], gz=True)
    assert out.status == "unreadable"
    assert (out.reason or "").startswith(("truncated gzip file", "invalid gzip file"))


# --- generated rows: every kind of wrong value --------------------------------------------

FORMULAS = ["=1+1", "+1", "-2", "@SUM(A1:A9)", "=cmd|' /C calc'!A0", '=HYPERLINK("http://x")']
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
SCALARS = st.one_of(
    TEXT,
    st.sampled_from(FORMULAS),
    st.sampled_from(
        [
            "host",
            "HOST",
            "virtual_machine",
            "spaceship",
            "",
            "  ",
            "active",
            "aws",
            "vmdr;edr",
            "10.0.0.1",
            "10.0.0.999",
            "true",
            "maybe",
        ]
    ),
    st.sampled_from(
        [
            "2026-01-01",
            "2026-01-01T23:59:59Z",
            "0001-01-01",
            "9999-12-31",
            "2026-13-45",
            "2025-12-31T00:00:00-14:00",
            "2026-01-03T00:00:00+14:00",
        ]
    ),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
VALUES = st.one_of(
    SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(TEXT, SCALARS, max_size=2)
)
KEYS = st.one_of(st.sampled_from(sorted(FIELD_NAMES)), TEXT)
ROWS = st.lists(st.dictionaries(KEYS, VALUES, max_size=8), max_size=12)


def cell(value: Any) -> str:
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return "" if value is None else str(value)


def serialize(
    fmt: str, rows: list[dict[str, Any]], header: list[str], newline: str, bom: bool
) -> bytes:
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator=newline)
        writer.writerow(header)
        for row in rows:
            writer.writerow([cell(row.get(name)) for name in header])
        text = buffer.getvalue()
    elif fmt == "jsonl":
        text = "".join(json.dumps(row) + newline for row in rows)
    else:
        text = json.dumps(rows, indent=1).replace("\n", newline)
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")


@FUZZ
@given(
    fmt=st.sampled_from(FORMATS),
    rows=ROWS,
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    duplicate=st.booleans(),
    encoding=st.sampled_from(["utf-8", "latin-1", "utf-16"]),
    gz=st.booleans(),
)
def test_generated_rows(
    fmt: str,
    rows: list[dict[str, Any]],
    newline: str,
    bom: bool,
    duplicate: bool,
    encoding: str,
    gz: bool,
) -> None:
    header = list(dict.fromkeys(k for row in rows for k in row)) or ["asset_type"]
    if duplicate:
        header.append(header[0])
    data = serialize(fmt, rows, header, newline, bom)
    if encoding != "utf-8":
        data = data.decode("utf-8", "surrogatepass").encode(encoding, "replace")
    out = read_bytes(fmt, gzip.compress(data, mtime=0) if gz else data, gz)
    if fmt == "csv" and duplicate and encoding == "utf-8":
        assert out.status == "unreadable"  # a header with a repeated column
        if all(name.strip() and name.isprintable() and '"' not in name for name in header):
            assert (out.reason or "").startswith("duplicate CSV header columns: ")
    if fmt == "jsonl" and encoding == "utf-8":  # every line is accepted or rejected
        assert out.status == "ok" and out.accepted + len(out.rejects) == len(rows)
    if fmt == "json" and encoding == "utf-8":
        assert out.status == "ok" and out.accepted + len(out.rejects) == len(rows)


# --- the named cases, with their expected outcome -----------------------------------------


def test_bom_and_crlf_are_read() -> None:
    data = b"\xef\xbb\xbfasset_type,agent_id\r\nhost,a1\r\nhost,a2\r\n"
    assert read_bytes("csv", data).accepted == 2
    data = b'\xef\xbb\xbf{"asset_type":"host","agent_id":"a1"}\r\n'
    assert read_bytes("jsonl", data).accepted == 1
    assert read_bytes("json", b'\xef\xbb\xbf[{"asset_type":"host","agent_id":"a1"}]\r\n').accepted


def test_wrong_encodings_are_rejected_rows_with_a_reason() -> None:
    latin = "asset_type,agent_id,fqdn\nhost,a1,café.example\n".encode("latin-1")
    out = read_bytes("csv", latin)
    assert [(r.field, r.reason) for r in out.rejects] == [("fqdn", "not valid UTF-8")]
    utf16 = "asset_type,agent_id\nhost,a1\n".encode("utf-16")
    out = read_bytes("csv", utf16)  # its header names no asset_type column: one reason
    assert out.status == "unreadable" and out.accepted == 0 and not out.rejects
    assert out.reason is not None and out.reason.isprintable()
    assert out.reason.startswith(
        "no asset_type column: every row needs one; unknown columns ignored: "
        "\\x00a\\x00g\\x00e\\x00n\\x00t"
    )


def test_duplicate_headers_make_the_file_unreadable() -> None:
    out = read_bytes("csv", b"asset_type,agent_id,agent_id\nhost,a,b\n")
    assert out.status == "unreadable" and out.reason == "duplicate CSV header columns: agent_id"


def test_unknown_columns_are_ignored_with_a_warning() -> None:
    out = read_bytes("csv", b"asset_type,agent_id,colour\nhost,a1,red\n")
    assert (
        out.accepted == 1
        and out.report
        and out.report.warnings == ["unknown columns ignored: colour"]
    )


@pytest.mark.parametrize(
    ("row", "field_name"),
    [
        ({"asset_type": "spaceship"}, "asset_type"),
        ({"asset_type": 5}, "asset_type"),
        ({"asset_type": "host", "agent_id": "a", "vuln_count": -3}, "vuln_count"),
        ({"asset_type": "host", "agent_id": "a", "vuln_count": "-3"}, "vuln_count"),
        ({"asset_type": "host", "agent_id": "a", "vuln_count": 1.5}, "vuln_count"),
        ({"asset_type": "host", "agent_id": "a", "vuln_count": 2**64}, "vuln_count"),
        ({"asset_type": "host", "agent_id": "a", "vuln_count": True}, "vuln_count"),
        ({"asset_type": "host", "agent_id": "a", "has_findings": "maybe"}, "has_findings"),
        ({"asset_type": "host", "agent_id": "a", "observed_at": "0001-01-01"}, "observed_at"),
        ({"asset_type": "host", "agent_id": "a", "observed_at": "9999-12-31"}, "observed_at"),
        ({"asset_type": "host", "agent_id": "a", "observed_at": "2026-13-45"}, "observed_at"),
        ({"asset_type": "host", "agent_id": "a", "observed_at": 20260101}, "observed_at"),
        ({"asset_type": "host", "agent_id": "a", "ip": "10.0.0.999"}, "ip"),
        ({"asset_type": "host", "agent_id": "a", "tenant": "globex"}, "tenant"),
        ({"asset_type": "host", "agent_id": "a", "source": "cmdb"}, "source"),
        ({"asset_type": "host", "agent_id": ["a", "b"]}, "agent_id"),
        ({"asset_type": "host", "agent_id": {"x": 1}}, "agent_id"),
    ],
)
def test_wrong_types_enums_dates_and_counts_are_rejected(
    row: dict[str, Any], field_name: str
) -> None:
    for fmt in ("jsonl", "json"):
        out = read_bytes(fmt, serialize(fmt, [row], [], "\n", bom=False))
        assert out.accepted == 0 and [r.field for r in out.rejects] == [field_name]


def test_formula_like_cells_are_text_or_rejected_never_evaluated() -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["asset_type", "agent_id", "fqdn", "vuln_count"])
    writer.writerows(["host", f, f, "1"] for f in FORMULAS)  # identifiers: kept as written
    writer.writerows(["host", f"a{i}", f"h{i}", f] for i, f in enumerate(FORMULAS))  # counts
    ref = ref_of("csv")
    items = list(iter_file(ref, io.BytesIO(buffer.getvalue().encode()), FileReport(ref.key)))
    assert [o.agent_id for o in items if isinstance(o, Observation)] == FORMULAS
    assert [(r.field, r.line) for r in items if isinstance(r, Reject)] == [
        ("vuln_count", n) for n in range(len(FORMULAS) + 2, 2 * len(FORMULAS) + 2)
    ]


def test_gzip_bombs_stop_at_the_limits() -> None:
    bomb = gzip.compress(b"asset_type,agent_id\n" + b"host,a1\n" * 2_000_000, mtime=0)
    small = Limits(max_decompressed_bytes=MB)
    out = read_bytes("csv", bomb, gz=True, limits=small)
    assert (
        out.status == "unreadable"
        and out.reason == f"gzip data larger than {MB} bytes decompressed"
    )
    ratio = Limits(gzip_ratio_after_bytes=MB, max_gzip_ratio=20)
    out = read_bytes("csv", bomb, gz=True, limits=ratio)
    assert out.status == "unreadable" and out.reason == "gzip compression ratio over 20"


# --- 100 MB lines, streamed: bounded memory and time ---------------------------------------


LONG = {
    "csv": (b"asset_type,agent_id\nhost,", b"\nhost,a2\n", "line longer than 1048576 bytes"),
    "jsonl": (
        b'{"asset_type":"host","agent_id":"',
        b'"}\n{"asset_type":"host","agent_id":"a2"}\n',
        "line longer than 1048576 bytes",
    ),
    "json": (
        b'[{"asset_type":"host","agent_id":"',
        b'"},{"asset_type":"host","agent_id":"a2"}]',
        "item longer than 1048576 characters",
    ),
}


@pytest.mark.budget(60)
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_100_mb_line_is_one_rejected_row_in_bounded_memory(fmt: str) -> None:
    head, tail, reason = LONG[fmt]
    stream = Generated(head, 100 * MB, tail)
    tracemalloc.start()
    try:
        out = read(ref_of(fmt), io.BufferedReader(stream))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    FIGURES["fuzz: 100 MB lines streamed"] += 1
    assert stream.produced > 100 * MB  # all of it was read
    assert out.status == "ok" and out.accepted == 1
    assert [(r.field, r.reason) for r in out.rejects] == [("_row", reason)]
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MB"


@pytest.mark.budget(60)
def test_a_gzip_bomb_of_a_100_mb_line_stops_at_the_default_ratio_in_bounded_memory() -> None:
    head, tail, _ = LONG["csv"]
    stream = Generated(head, 100 * MB, tail, gz=True)
    tracemalloc.start()
    try:
        out = read(ref_of("csv", gz=True), io.BufferedReader(stream))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.status == "unreadable" and out.reason == "gzip compression ratio over 200"
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MB"


def test_an_unterminated_csv_quote_is_bounded() -> None:
    """An opening quote never closed, then 130,000 short lines: the quoted field stops at
    csv's field size limit (one rejected row), every line after it is a rejected row of
    its own; memory stays flat (streamed)."""
    stream = Generated(b'asset_type,agent_id\nhost,"open', MB // 4, b"", filler=b"x\n")
    tracemalloc.start()
    try:
        out = read(ref_of("csv"), io.BufferedReader(stream), keep=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.status == "ok" and out.accepted == 0
    assert out.rejects[0].reason == "CSV error: field larger than field limit (131072)"
    assert 60_000 < out.rejected < MB // 8  # the lines past the field limit, one by one
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MB"


def test_ingest_memory_does_not_grow_with_the_rejected_rows() -> None:
    from qlumeter.pipeline.ingest import Ingest, ObjectVersion
    from qlumeter.pipeline.ports import TenantState

    class Store:
        def get_subscription(self, tenant: str) -> object:
            return subscription()

        def write_rows(self, ref: FileRef, version: str, rows: Any) -> int:
            return sum(1 for _ in rows)

        def put_manifest(self, manifest: Any) -> None:
            self.manifest = manifest

        def get_state(self, tenant: str) -> TenantState:
            return TenantState(tenant)

    class Objects:
        def __init__(self, rows: int) -> None:
            self.rows = rows

        def open(self, bucket: str, key: str, version: str | None) -> Any:
            return io.BufferedReader(
                Generated(b"asset_type,vuln_count\n", 0, b"host,-1\n" * self.rows)
            )

        def put(self, bucket: str, key: str, body: bytes) -> None:
            pass

        def copy(self, *args: Any) -> None:
            pass

    class Quiet:
        def publish(self, *args: Any) -> None:
            pass

        def request(self, *args: Any) -> None:
            pass

    peaks = []
    for rows in (4_000, 24_000):
        ingest = Ingest(Store(), Objects(rows), Quiet(), Quiet())  # type: ignore[arg-type]
        key = "inventory/tenant=acme/source=scanner/date=2026-01-01/bad.csv"
        tracemalloc.start()
        try:
            result = ingest.ingest(ObjectVersion("bucket", key, "v1", "01"))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert result.rejected == rows
    assert peaks[1] < 2 * peaks[0], [f"{p / MB:.1f} MB" for p in peaks]


# --- atheris (coverage-guided), when it is installed ---------------------------------------


@pytest.mark.budget(90)
def test_atheris_fuzzes_the_readers() -> None:
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    runs = int(os.environ.get("QLUMETER_ATHERIS_RUNS", "50000"))
    harness = Path(__file__).with_name("fuzz_reader_atheris.py")
    done = subprocess.run(
        [sys.executable, str(harness), f"-runs={runs}", "-max_total_time=60", "-rss_limit_mb=1024"],
        capture_output=True,
        text=True,
        timeout=80,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    executed = [line for line in done.stderr.splitlines() if line.startswith("Done ")]
    assert executed, done.stderr[-2000:]
    FIGURES["fuzz: reader inputs (atheris)"] += int(executed[-1].split()[1])
