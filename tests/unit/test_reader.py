"""Streaming readers: formats, encodings, bad rows, unreadable files, bounded memory."""

from __future__ import annotations

import csv
import dataclasses
import gc
import gzip
import hashlib
import io
import json
import os
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qlumeter import reader
from qlumeter.observation import Observation
from qlumeter.paths import FileRef, parse_key
from qlumeter.reader import (
    DEFAULT_LIMITS,
    FileReport,
    Limits,
    Reject,
    UnreadableFile,
    collector_paused,
    field_warnings,
    iter_file,
    iter_rejects,
    read_file,
)
from qlumeter.rows import closest_field

PREFIX = "inventory/tenant=acme/source=scanner/date=2026-01-05"
HEADER = "asset_type,asset_id,fqdn,ip,modules,vuln_count,observed_at"
CSV_ROWS = [
    "host,A1,Web1.Example.com.,10.0.0.1;10.0.0.2,vmdr;pc,3,2026-01-05T10:00:00Z",
    "host,A2,,10.0.0.3,vmdr,0,",
    "host,A3,db.example.com,,,,2026-01-05",
]
OBJECTS: list[dict[str, Any]] = [
    {"asset_type": "host", "asset_id": "A1", "fqdn": "Web1.Example.com.",
     "ip": ["10.0.0.1", "10.0.0.2"], "modules": ["vmdr", "pc"], "vuln_count": 3,
     "observed_at": "2026-01-05T10:00:00Z"},
    {"asset_type": "host", "asset_id": "A2", "ip": "10.0.0.3", "modules": "vmdr",
     "vuln_count": 0},
    {"asset_type": "host", "asset_id": "A3", "fqdn": "db.example.com", "observed_at": "2026-01-05"},
]  # fmt: skip


def ref(name: str) -> FileRef:
    return parse_key(f"{PREFIX}/{name}")


def read(name: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    return read_file(ref(name), io.BytesIO(data), limits)


def csv_bytes(*rows: str, header: str = HEADER, newline: str = "\n") -> bytes:
    return newline.join([header, *rows, ""]).encode()


def jsonl_bytes(*objects: object) -> bytes:
    return "".join(json.dumps(o) + "\n" for o in objects).encode()


def summary(observations: list[Observation]) -> list[tuple[Any, ...]]:
    return [
        (o.line, o.asset_id, o.fqdn, o.ips, o.modules, o.vuln_count, o.observed_at)
        for o in observations
    ]


def unreadable(name: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    observations, rejects, report = read(name, data, limits)
    assert (observations, rejects) == ([], [])
    assert report.status == "unreadable"
    assert (report.rows, report.accepted, report.rejected) == (0, 0, 0)
    assert report.checksum == hashlib.sha256(data).hexdigest()
    assert report.reason
    reason: str = report.reason
    return reason


# --- the three formats ---

FORMATS = {
    "a.csv": csv_bytes(*CSV_ROWS),
    "a.jsonl": jsonl_bytes(*OBJECTS),
    "a.json": json.dumps(OBJECTS, indent=2).encode(),
}


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("name", list(FORMATS))
def test_formats_plain_and_gzip_give_the_same_rows(name: str, compress: bool) -> None:
    data = gzip.compress(FORMATS[name]) if compress else FORMATS[name]
    observations, rejects, report = read(name + (".gz" if compress else ""), data)
    assert rejects == []
    rows = [(a, f, ips, m, v, t) for _, a, f, ips, m, v, t in summary(observations)]
    assert rows == [
        ("A1", "web1.example.com", ("10.0.0.1", "10.0.0.2"), frozenset({"vmdr", "pc"}), 3,
         observations[0].observed_at),
        ("A2", None, ("10.0.0.3",), frozenset({"vmdr"}), 0, observations[1].observed_at),
        ("A3", "db.example.com", (), frozenset(), None, observations[2].observed_at),
    ]  # fmt: skip
    assert [o.observed_at.isoformat() for o in observations] == [
        "2026-01-05T10:00:00+00:00", "2026-01-05T00:00:00+00:00", "2026-01-05T00:00:00+00:00",
    ]  # fmt: skip
    assert all(o.path == f"tenant=acme/source=scanner/date=2026-01-05/{ref(name).name}."
               f"{ref(name).fmt}" + (".gz" if compress else "") for o in observations)  # fmt: skip
    assert report == FileReport(
        path=observations[0].path, rows=3, accepted=3, rejected=0,
        checksum=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip


def test_line_numbers() -> None:
    csv_lines = [o.line for o in read("a.csv", FORMATS["a.csv"])[0]]
    jsonl_lines = [o.line for o in read("a.jsonl", FORMATS["a.jsonl"])[0]]
    json_items = [o.line for o in read("a.json", FORMATS["a.json"])[0]]
    assert csv_lines == [2, 3, 4]  # the header is line 1
    assert jsonl_lines == [1, 2, 3]
    assert json_items == [1, 2, 3]  # 1-based item index


@pytest.mark.parametrize("name", list(FORMATS))
def test_utf8_bom_is_allowed(name: str) -> None:
    observations, rejects, _ = read(name, b"\xef\xbb\xbf" + FORMATS[name])
    assert len(observations) == 3 and rejects == []


def test_crlf_line_endings() -> None:
    observations, rejects, _ = read("a.csv", csv_bytes(*CSV_ROWS, newline="\r\n"))
    assert rejects == [] and summary(observations) == summary(read("a.csv", FORMATS["a.csv"])[0])
    jsonl = FORMATS["a.jsonl"].replace(b"\n", b"\r\n")
    assert summary(read("a.jsonl", jsonl)[0]) == summary(read("a.jsonl", FORMATS["a.jsonl"])[0])


def test_blank_lines_are_skipped_and_counted_as_lines() -> None:
    data = csv_bytes("", CSV_ROWS[0], "   ", "", CSV_ROWS[1])
    observations, rejects, report = read("a.csv", data)
    assert rejects == [] and [o.line for o in observations] == [3, 6]
    assert report.rows == 2
    jsonl = b"\n" + jsonl_bytes(OBJECTS[0]) + b"  \r\n\n" + jsonl_bytes(OBJECTS[1])
    observations, rejects, report = read("a.jsonl", jsonl)
    assert rejects == [] and [o.line for o in observations] == [2, 5] and report.rows == 2


def test_blank_lines_before_the_csv_header() -> None:
    observations, rejects, _ = read("a.csv", b"\n\n" + FORMATS["a.csv"])
    assert rejects == [] and [o.line for o in observations] == [4, 5, 6]


def test_empty_jsonl_and_empty_json_array_have_no_rows() -> None:
    assert read("a.jsonl", b"")[2].rows == 0
    observations, rejects, report = read("a.json", b" [ ]\n")
    assert (observations, rejects, report.status, report.rows) == ([], [], "ok", 0)


# --- bad rows ---


def test_a_bad_row_among_good_ones_loses_no_good_row() -> None:
    data = csv_bytes(CSV_ROWS[0], "host,A9,,,,-5,", CSV_ROWS[1], "host,A8,,,,1.5,", CSV_ROWS[2])
    observations, rejects, report = read("a.csv", data)
    assert [o.asset_id for o in observations] == ["A1", "A2", "A3"]
    key = ref("a.csv").key
    assert rejects == [
        Reject(key, 3, "vuln_count", "must be >= 0, got -5"),
        Reject(key, 5, "vuln_count", "not an integer: '1.5'"),
    ]
    assert (report.rows, report.accepted, report.rejected) == (5, 3, 2)


def test_iter_file_yields_in_file_order_and_fills_the_report() -> None:
    data = jsonl_bytes(OBJECTS[0], {"asset_type": "nope"}, OBJECTS[1], [1], OBJECTS[2])
    report = FileReport(path="x")
    items = list(iter_file(ref("a.jsonl"), io.BytesIO(data), report))
    assert [(type(i).__name__, i.line) for i in items] == [
        ("Observation", 1), ("Reject", 2), ("Observation", 3), ("Reject", 4), ("Observation", 5),
    ]  # fmt: skip
    assert (report.rows, report.accepted, report.rejected) == (5, 3, 2)
    assert report.checksum == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("host,A1,x", "3 cells, the header has 7"),
        ("host,A1,,,,,,extra", "8 cells, the header has 7"),
    ],
)
def test_csv_row_with_the_wrong_number_of_cells(row: str, reason: str) -> None:
    observations, rejects, _ = read("a.csv", csv_bytes(row, CSV_ROWS[0]))
    assert rejects == [Reject(ref("a.csv").key, 2, "_row", reason)]
    assert [o.line for o in observations] == [3]


def test_csv_quoted_field_over_several_lines() -> None:
    data = csv_bytes('host,A1,"web.\nexample.com",,,,', CSV_ROWS[1])
    observations, rejects, _ = read("a.csv", data)
    assert rejects == []
    assert [(o.line, o.fqdn) for o in observations] == [(2, "web.\nexample.com"), (4, None)]


def test_csv_lines_end_with_line_feeds_only() -> None:
    data = csv_bytes("host,A\x0c1,,,,,", "host,A\x1c2,,,,,", "host,A\r3,,,,,", "host,A\x0b4,,,,,")
    observations, rejects, _ = read("a.csv", data)
    assert [(o.line, o.asset_id) for o in observations] == [
        (2, "A\x0c1"),
        (3, "A\x1c2"),
        (5, "A\x0b4"),
    ]
    assert [r.line for r in rejects] == [4]
    assert rejects[0].reason.startswith("CSV error: new-line character seen in unquoted field")


def test_csv_formula_cells_are_plain_text() -> None:
    data = csv_bytes('host,=HYPERLINK("x"),@sum,+1,,,', "host,A2,,,,-5,")
    rejects = read("a.csv", data)[1]
    assert rejects[0].line == 2 and rejects[0].field == "ip"  # "+1" is not an IP
    assert rejects[1] == Reject(ref("a.csv").key, 3, "vuln_count", "must be >= 0, got -5")
    data = csv_bytes('host,=HYPERLINK("x"),@sum,,,,')
    (obs,) = read("a.csv", data)[0]
    assert (obs.asset_id, obs.fqdn) == ('=HYPERLINK("x")', "@sum")


def test_unknown_columns_keys_and_modules_are_warned_once() -> None:
    data = csv_bytes("host,A1,,,vmdr;zz,,,red,1", "host,A2,,,yy;zz,,,blue,2",
                     header=HEADER + ",colour,Size")  # fmt: skip
    _, _, report = read("a.csv", data)
    assert report.warnings == [
        "unknown columns ignored: Size, colour", "unknown modules ignored: yy, zz",
    ]  # fmt: skip
    data = jsonl_bytes({**OBJECTS[0], "b": 1}, {**OBJECTS[1], "a": 2, "b": 3})
    assert read("a.jsonl", data)[2].warnings == ["unknown keys ignored: a, b"]
    assert read("a.json", json.dumps([{**OBJECTS[0], "c": 1}]).encode())[2].warnings == [
        "unknown keys ignored: c"
    ]


def test_warnings_about_invalid_utf8_names_are_printable() -> None:
    data = (HEADER + ",b").encode() + b"\xe9\xff\n" + (CSV_ROWS[0] + ",1\n").encode()
    observations, _, report = read("a.csv", data)
    assert len(observations) == 1
    assert report.warnings == ["unknown columns ignored: b\\udce9\\udcff"]
    report.warnings[0].encode("utf-8")  # storable as is


def test_jsonl_bad_lines_are_rejected_rows() -> None:
    data = b"\n".join(
        [
            b"{not json",
            b"[1, 2]",
            b'"text"',
            b"[" * 100_000 + b"]" * 100_000,
            json.dumps(OBJECTS[0]).encode(),
        ]
    )
    observations, rejects, _ = read("a.jsonl", data)
    assert [(r.line, r.field) for r in rejects] == [
        (1, "_row"),
        (2, "_row"),
        (3, "_row"),
        (4, "_row"),
    ]
    assert rejects[0].reason.startswith("not valid JSON: Expecting property name")
    assert rejects[1].reason == rejects[2].reason == "not a JSON object"
    assert rejects[3].reason.startswith("not valid JSON")
    assert [o.line for o in observations] == [5]


def test_json_array_items_that_are_not_objects_are_rejected_rows() -> None:
    data = json.dumps([OBJECTS[0], 5, "x", None, [], OBJECTS[1]]).encode()
    observations, rejects, _ = read("a.json", data)
    assert [o.line for o in observations] == [1, 6]
    assert [(r.line, r.reason) for r in rejects] == [(i, "not a JSON object") for i in (2, 3, 4, 5)]


def test_json_array_deeply_nested_item_is_a_rejected_row() -> None:
    data = b"[" + b"[" * 100_000 + b"]" * 100_000 + b"," + json.dumps(OBJECTS[0]).encode() + b"]"
    observations, rejects, _ = read("a.json", data)
    assert [(r.line, r.reason) for r in rejects] == [(1, "not valid JSON: nested too deeply")]
    assert [o.line for o in observations] == [2]


def test_json_array_integer_over_the_digit_limit_is_a_rejected_row() -> None:
    data = b'[{"vuln_count": ' + b"9" * 5000 + b"}, " + json.dumps(OBJECTS[0]).encode() + b"]"
    observations, rejects, _ = read("a.json", data)
    assert rejects[0].line == 1 and rejects[0].reason.startswith("not valid JSON")
    assert [o.line for o in observations] == [2]


def test_json_array_read_across_chunks() -> None:
    objects = [{**OBJECTS[1], "asset_id": f"A{i}", "pad": "x" * (i % 97)} for i in range(3000)]
    numbers = list(range(10**12, 10**12 + 6000))  # some number straddles a chunk boundary
    data = json.dumps([*objects, *numbers]).encode()
    assert len(data) > 4 * 65536
    observations, rejects, report = read("a.json", data)
    assert [o.asset_id for o in observations] == [f"A{i}" for i in range(3000)]
    assert len(rejects) == 6000 and report.rows == 9000


def test_json_array_with_multibyte_text_across_chunks() -> None:
    objects = [{**OBJECTS[1], "asset_id": f"é{i}€"} for i in range(5000)]
    observations, rejects, _ = read("a.json", json.dumps(objects, ensure_ascii=False).encode())
    assert rejects == [] and [o.asset_id for o in observations] == [f"é{i}€" for i in range(5000)]


# --- limits ---

SMALL = Limits(max_line_bytes=200)


def test_over_long_line_is_skipped_and_rejected() -> None:
    long_row = "host,A9," + "x" * 1000 + ",,,,"
    observations, rejects, report = read(
        "a.csv", csv_bytes(CSV_ROWS[0], long_row, CSV_ROWS[1]), SMALL
    )
    assert rejects == [Reject(ref("a.csv").key, 3, "_row", "line longer than 200 bytes")]
    assert [o.line for o in observations] == [2, 4] and report.rows == 3
    jsonl = jsonl_bytes(OBJECTS[0], {"asset_type": "host", "asset_id": "x" * 1000}, OBJECTS[1])
    observations, rejects, _ = read("a.jsonl", jsonl, SMALL)
    assert [(r.line, r.reason) for r in rejects] == [(2, "line longer than 200 bytes")]
    assert [o.line for o in observations] == [1, 3]


def test_over_long_last_line_without_newline() -> None:
    observations, rejects, _ = read("a.jsonl", jsonl_bytes(OBJECTS[0]) + b"{" + b" " * 500, SMALL)
    assert [o.line for o in observations] == [1] and [r.line for r in rejects] == [2]


def test_over_long_csv_header_makes_the_file_unreadable() -> None:
    data = csv_bytes(CSV_ROWS[0], header=HEADER + "," + "x" * 300)
    assert unreadable("a.csv", data, SMALL) == "CSV header longer than 200 bytes"


def test_over_long_json_array_item_is_skipped_and_rejected() -> None:
    big = {"asset_type": "host", "asset_id": "x" * 1000, "nested": [{"a": ']}\\"'}]}
    data = json.dumps([OBJECTS[0], big, OBJECTS[1], "y" * 1000, OBJECTS[2]]).encode()
    observations, rejects, _ = read("a.json", data, SMALL)
    assert [(r.line, r.reason) for r in rejects] == [
        (2, "item longer than 200 characters"), (4, "item longer than 200 characters"),
    ]  # fmt: skip
    assert [o.line for o in observations] == [1, 3, 5]


def test_field_over_max_field_chars_rejects_the_row_with_its_field() -> None:
    limits = Limits(max_field_chars=50)
    data = csv_bytes(CSV_ROWS[0], "host,A9," + "f" * 51 + ",,,,", CSV_ROWS[1])
    observations, rejects, _ = read("a.csv", data, limits)
    assert rejects == [Reject(ref("a.csv").key, 3, "fqdn", "longer than 50 characters")]
    assert len(observations) == 2
    data = jsonl_bytes({"asset_type": "host", "asset_id": "i" * 51})
    assert read("a.jsonl", data, limits)[1][0].field == "asset_id"


def test_long_field_spread_over_lines_is_checked() -> None:
    limits = Limits(max_field_chars=50)
    data = csv_bytes('host,A1,"' + "a" * 30 + "\n" + "b" * 30 + '",,,,')
    assert read("a.csv", data, limits)[1][0].field == "fqdn"


def test_csv_field_over_the_csv_module_limit_rejects_the_row_not_the_file() -> None:
    huge = "x" * (csv.field_size_limit() + 1)
    data = csv_bytes(CSV_ROWS[0], f"host,A9,{huge},,,,", CSV_ROWS[1])
    observations, rejects, report = read("a.csv", data)
    assert report.status == "ok" and [o.line for o in observations] == [2, 4]
    assert [(r.line, r.field) for r in rejects] == [(3, "_row")]
    assert rejects[0].reason.startswith("CSV error: field larger than field limit")


@pytest.mark.parametrize("name", ["a.csv", "a.jsonl", "a.json"])
def test_invalid_utf8_in_a_field_rejects_the_row(name: str) -> None:
    good = FORMATS[name]
    bad = good.replace(b"A2", b"A\xff2")
    observations, rejects, _ = read(name, bad)
    assert [(r.line, r.field, r.reason) for r in rejects] == [
        (observations[0].line + 1, "asset_id", "not valid UTF-8")
    ]
    assert [o.asset_id for o in observations] == ["A1", "A3"]


# --- CSV batches: the rows, rejects and report of reading row by row ---


def outcome(name: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Everything iter_file gives: items in order, then the report or the failure."""
    report = FileReport(path=name)
    items: list[Any] = []
    try:
        for item in iter_file(ref(name), io.BytesIO(data), report, limits):
            if isinstance(item, Observation):
                items.append({f.name: getattr(item, f.name) for f in dataclasses.fields(item)})
            else:
                items.append(item)
    except UnreadableFile as exc:
        items.append(("unreadable", exc.reason))
    return items, report


def row_by_row(name: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """``outcome`` with every line read by one csv.reader and every row by normalize_cells."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader, "_BATCH_LINES", 10**9)
        patch.setattr(reader, "_whole_rows", lambda lines: None)
        return outcome(name, data, limits)


def batched(name: str, data: bytes, lines: int, limits: Limits = DEFAULT_LIMITS) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader, "_BATCH_LINES", lines)
        return outcome(name, data, limits)


_CSV_LINES = st.sampled_from(
    ["host,A1,web.example.com,10.0.0.1,vmdr;zz,3,2026-01-05T01:00:00Z", "HOST,A2,,,,,",
     "host,A3,,10.0.0.2,,0,", "host,,,,,,", "web_app,A4,,,,,", "host,A5,,,,-1,", "",
     "   ", "host,A6", "host,A7,,,,,,,", 'host,"A8\nB",,,,,', 'host,"A9', 'x",,,,,',
     'host,A10,"h.example.com",,,,', "host,Ä11,,,,,", "host,A\udcff12,,,,,", "host,A\x0013,,,,,",
     "host,A\r14,,,,,", "host," + "A15" * 40 + ",,,,,", "host,A16,,,,,2026-01-09"]
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(_CSV_LINES, max_size=14),
    newline=st.sampled_from(["\n", "\r\n"]),
    limits=st.sampled_from([DEFAULT_LIMITS, Limits(max_line_bytes=80, max_field_chars=20)]),
    batch=st.sampled_from([1, 2, 3, 5, 512]),
)
def test_csv_batches_give_what_reading_row_by_row_gives(
    lines: list[str], newline: str, limits: Limits, batch: int
) -> None:
    data = newline.join([HEADER, *lines, ""]).encode("utf-8", "surrogateescape")
    assert batched("a.csv", data, batch, limits) == row_by_row("a.csv", data, limits)


def test_a_quoted_field_over_a_batch_end() -> None:
    data = csv_bytes(CSV_ROWS[0], 'host,A2,"web.', 'example.com",,,,', "", CSV_ROWS[2])
    items, report = batched("a.csv", data, 2)
    assert [(item["line"], item["fqdn"]) for item in items] == [
        (2, "web1.example.com"), (3, "web.\nexample.com"), (6, "db.example.com"),
    ]  # fmt: skip
    assert (items, report) == row_by_row("a.csv", data)


@pytest.mark.parametrize("cut", [0.4, 0.5, 0.6])
@pytest.mark.parametrize("fqdn", ["", '"web.\nexample.com"'])  # rows of one line, of two
def test_a_gzip_file_broken_after_many_lines_yields_its_rows_up_to_the_break(
    fqdn: str, cut: float
) -> None:
    rows = [f"host,A{i},{fqdn},10.0.{i >> 8 & 255}.{i & 255},,{i % 3 - 1}," for i in range(40_000)]
    data = gzip.compress(csv_bytes(*rows), compresslevel=1)
    broken = data[: int(len(data) * cut)]
    items, report = batched("a.csv.gz", broken, 512)
    assert items[-1] == ("unreadable", "truncated gzip file")
    assert 5_000 < len(items) < 40_000 and report.rows == len(items) - 1
    # Every whole row before the break, in order, and nothing of the row it cut.
    lines = [item["line"] if isinstance(item, dict) else item.line for item in items[:-1]]
    assert lines == list(range(2, 2 + len(lines) * (1 + bool(fqdn)), 1 + bool(fqdn)))
    assert all(isinstance(item, dict) or item.field == "vuln_count" for item in items[:-1])
    assert (items, report) == row_by_row("a.csv.gz", broken)


# --- unreadable files ---


@pytest.mark.parametrize("name", ["a.csv.gz", "a.jsonl.gz", "a.json.gz"])
def test_random_bytes_with_gz_are_not_gzip(name: str) -> None:
    assert unreadable(name, os.urandom(2000)).startswith("invalid gzip file: Not a gzipped file")


def test_plain_file_named_gz_is_not_gzip() -> None:
    assert unreadable("a.csv.gz", FORMATS["a.csv"]).startswith("invalid gzip file")


def test_truncated_gzip() -> None:
    data = gzip.compress(FORMATS["a.jsonl"] * 50)
    assert unreadable("a.jsonl.gz", data[: len(data) // 2]) == "truncated gzip file"


def test_corrupt_gzip_data() -> None:
    data = bytearray(gzip.compress(FORMATS["a.jsonl"] * 50))
    data[20:40] = b"\xff" * 20
    assert unreadable("a.jsonl.gz", bytes(data)).startswith("corrupt gzip data: Error -3")


def test_gzip_with_a_wrong_crc() -> None:
    data = bytearray(gzip.compress(FORMATS["a.jsonl"]))
    data[-8] ^= 1
    assert unreadable("a.jsonl.gz", bytes(data)).startswith("invalid gzip file: CRC check failed")


def test_gzip_with_trailing_garbage() -> None:
    assert unreadable("a.csv.gz", gzip.compress(FORMATS["a.csv"]) + b"garbage!").startswith(
        "invalid gzip file"
    )


def _zeros_gzip(size: int, chunk: int = 1 << 20) -> bytes:
    """``size`` zero bytes gzip-compressed, built in chunks (small in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(chunk)
    parts = [compressor.compress(zeros) for _ in range(size // chunk)]
    return b"".join([*parts, compressor.flush()])


def test_gzip_bomb_over_the_ratio_is_unreadable() -> None:
    bomb = _zeros_gzip(100 << 20)
    assert len(bomb) < 200_000
    limits = Limits(gzip_ratio_after_bytes=1 << 20)
    assert unreadable("a.csv.gz", bomb, limits) == "gzip compression ratio over 200"


def test_gzip_over_the_decompressed_size_is_unreadable() -> None:
    data = gzip.compress(FORMATS["a.jsonl"] * 2000)
    limits = Limits(max_decompressed_bytes=100_000)
    assert unreadable("a.jsonl.gz", data, limits) == (
        "gzip data larger than 100000 bytes decompressed"
    )
    assert read("a.jsonl.gz", data)[2].accepted == 6000


def test_ratio_is_not_enforced_below_its_threshold() -> None:
    data = gzip.compress(csv_bytes(*CSV_ROWS) + b"\n" * 500_000)
    assert len(data) * 200 < 500_000 + 500
    assert read("a.csv.gz", data)[2].accepted == 3


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"  \n", "empty file"),
        (b'{"asset_type": "host"}', "top-level JSON value is not an array"),
        (b"[{}, {}", "JSON array: expected ',' or ']' after item 2, found the end of the file"),
        (b"[{}, {} {}]", "JSON array: expected ',' or ']' after item 2, found '{'"),
        (b"[{}, ]", "JSON array broken at item 2: Expecting value"),
        (b'[{"a": }]', "JSON array broken at item 1: Expecting value"),
        (b'[{"a": "b}]', "JSON array broken at item 1: Unterminated string"),
        (b"[{}] [", "data after the JSON array"),
    ],
)
def test_broken_json_arrays_are_unreadable(data: bytes, reason: str) -> None:
    assert unreadable("a.json", data).startswith(reason)


def test_truncated_long_json_array_item_is_unreadable() -> None:
    data = b'[{"asset_id": "' + b"x" * 1000
    assert unreadable("a.json", data, SMALL) == "truncated JSON array"


def test_json_array_with_a_short_broken_item_in_a_long_file_is_unreadable() -> None:
    data = b'[{"a": tru}, ' + b'{"b": "' + b"y" * 1000 + b'"}]'
    assert unreadable("a.json", data, SMALL).startswith("JSON array broken at item 1")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "CSV file has no header row"),
        (b"\n \n", "CSV file has no header row"),
        (
            b"asset_type,asset_id,asset_type\nhost,A1,host\n",
            "duplicate CSV header columns: asset_type",
        ),
    ],
)
def test_unreadable_csv(data: bytes, reason: str) -> None:
    assert unreadable("a.csv", data) == reason


def test_unreadable_file_counts_none_of_its_rows() -> None:
    data = FORMATS["a.json"][:-5]  # good items, then the array breaks
    report = FileReport(path="x")
    seen = []
    with pytest.raises(UnreadableFile):
        seen.extend(iter_file(ref("a.json"), io.BytesIO(data), report))
    assert len(seen) == 2  # streamed before the break...
    assert read("a.json", data)[0] == []  # ...but read_file keeps none of them


def test_iter_rejects_gives_the_rejects_and_report_of_read_file() -> None:
    data = csv_bytes(CSV_ROWS[0], "host,A9,,,,-5,", CSV_ROWS[1], "host,A8,,,,1.5,", CSV_ROWS[2])
    _, rejects, report = read("a.csv", data)
    streamed = FileReport(path=ref("a.csv").key)
    assert list(iter_rejects(ref("a.csv"), io.BytesIO(data), streamed)) == rejects
    assert streamed == report and (report.rows, report.rejected) == (5, 2)


def test_iter_rejects_of_a_file_found_unreadable_part_way() -> None:
    rows = [f"host,A{i},,,,{i % 2 - 1}," for i in range(40_000)]
    data = gzip.compress(csv_bytes(*rows), compresslevel=1)
    broken = data[: len(data) // 2]
    report = FileReport(path=ref("a.csv.gz").key)
    rejects = list(iter_rejects(ref("a.csv.gz"), io.BytesIO(broken), report))
    assert len(rejects) > 1000  # those read before the break
    assert report == read("a.csv.gz", broken)[2]
    assert (report.status, report.reason) == ("unreadable", "truncated gzip file")
    assert (report.rows, report.accepted, report.rejected, report.warnings) == (0, 0, 0, [])
    assert report.checksum == hashlib.sha256(broken).hexdigest()


def test_read_file_restores_the_garbage_collector_state() -> None:
    assert gc.isenabled()
    read("a.csv", FORMATS["a.csv"])
    assert gc.isenabled()
    gc.disable()
    try:
        read("a.csv", FORMATS["a.csv"])
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- memory stays flat in file size ---


class _Generated(io.RawIOBase):
    """A large file produced on the fly: never held in memory."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _peak_while_streaming(
    name: str, chunks: Iterator[bytes], limits: Limits = DEFAULT_LIMITS
) -> int:
    tracemalloc.start()
    try:
        report = FileReport(path=name)
        for _ in iter_file(ref(name), io.BufferedReader(_Generated(chunks)), report, limits):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_flat_for_a_large_json_array() -> None:
    item = json.dumps({"asset_type": "host", "asset_id": "A", "pad": "p" * 200}).encode()
    chunks = iter([b"[", *([item + b", "] * 20_000), item + b"]"])  # ~5 MB
    assert _peak_while_streaming("a.json", chunks) < 2_000_000


def test_memory_is_flat_for_a_huge_csv_line() -> None:
    head = (HEADER + "\n" + "host,A1," + "x" * 100).encode()
    chunks = iter([head, *([b"x" * 65536] * 160), b",,,,\n", CSV_ROWS[1].encode()])  # 10 MB line
    assert _peak_while_streaming("a.csv", chunks) < 4 * (1 << 20)


def test_iter_rejects_keeps_no_row() -> None:
    def rows() -> Iterator[bytes]:
        yield (HEADER + "\n").encode()
        for i in range(20_000):
            ip = f"10.0.{i >> 8 & 255}.{i & 255}"
            yield f"host,A{i},h{i}.example.com,{ip},vmdr,{i % 50 - 1},\n".encode()

    def peak(consume: Any) -> int:
        tracemalloc.start()
        try:
            consume(io.BufferedReader(_Generated(rows())))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    counted = FileReport(path="a.csv")
    streamed = peak(lambda stream: sum(1 for _ in iter_rejects(ref("a.csv"), stream, counted)))
    held = peak(lambda stream: read_file(ref("a.csv"), stream))
    assert (counted.rows, counted.rejected) == (20_000, 400)
    assert streamed < 2_000_000 and streamed * 10 < held


def test_memory_is_flat_for_many_rejected_rows_with_the_collector_paused() -> None:
    rows = iter([(HEADER + "\n").encode(), *[b"host,A1,,,,-1,\n" * 1000] * 10])
    with collector_paused():
        assert _peak_while_streaming("a.csv", rows) < 2_000_000


def test_memory_is_flat_for_a_huge_json_array_item() -> None:
    chunks = iter([b'[{"a": "', *([b"y" * 65536] * 160), b'"}, {}]'])  # a 10 MB item
    assert _peak_while_streaming("a.json", chunks) < 4 * (1 << 20)


# --- any bytes: rows, rejects or UnreadableFile, never another exception ---


def _consume(name: str, data: bytes) -> None:
    report = FileReport(path=name)
    try:
        items = list(iter_file(ref(name), io.BytesIO(data), report, SMALL))
    except UnreadableFile as exc:
        assert exc.reason
        return
    assert all(type(item) in (Observation, Reject) for item in items)
    assert report.rows == report.accepted + report.rejected == len(items)
    assert report.checksum == hashlib.sha256(data).hexdigest()


_FRAGMENTS = st.sampled_from(
    [b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b"\n", b"\r\n", b" ", b"\xef\xbb\xbf",
     b'"asset_type"', b'"host"', b"host", b"asset_type,asset_id,ip,vuln_count", b"A1",
     b"10.0.0.1", b"-5", b"1e400", b"NaN", b"\xff", b"\x00", b"x" * 150, b";", b"2026-01-05"]
)  # fmt: skip
_BYTES = st.one_of(st.binary(max_size=600), st.lists(_FRAGMENTS, max_size=60).map(b"".join))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_BYTES, name=st.sampled_from(["a.csv", "a.jsonl", "a.json"]), packed=st.booleans())
def test_any_bytes_end_in_rows_rejects_or_unreadable(data: bytes, name: str, packed: bool) -> None:
    _consume(name, data)
    _consume(name + ".gz", gzip.compress(data) if packed else data)


# --- columns and keys the row schema does not know (issue: no silent wrong numbers) ---

MISSPELLED = "asset_type,agent_id,Status,module,vulns"


@pytest.mark.parametrize(
    ("name", "near"),
    [
        ("Status", "status"),
        ("AssetType", "asset_type"),
        ("asset-type", "asset_type"),
        ("Agent ID", "agent_id"),
        ("staus", "status"),
        ("module", "modules"),
        ("vulns", "vuln_count"),
        ("colour", None),
        ("id", None),  # too short to guess from
        ("ip_address", None),
    ],
)
def test_an_unknown_name_is_matched_to_the_field_it_may_mean(name: str, near: str | None) -> None:
    assert closest_field(name) == near


def test_misspelled_columns_are_a_warning_naming_the_field_each_may_mean() -> None:
    data = csv_bytes("host,a1,retired,vmdr,3", "host,a2,active,edr,0", header=MISSPELLED)
    observations, rejects, report = read("a.csv", data)
    assert len(observations) == 2 and rejects == []
    assert report.warnings == [
        "unknown columns ignored: Status (did you mean `status`?), module (did you mean "
        "`modules`?), vulns (did you mean `vuln_count`?)"
    ]
    assert field_warnings(report.warnings) == report.warnings


def test_strict_refuses_a_file_with_unknown_columns_before_reading_its_rows() -> None:
    data = csv_bytes("host,a1,retired,vmdr,3", header=MISSPELLED)
    observations, rejects, report = read_file(ref("a.csv"), io.BytesIO(data), strict=True)
    assert (observations, rejects, report.rows, report.warnings) == ([], [], 0, [])
    assert report.status == "unreadable"
    assert report.reason == (
        "refused (strict): unknown columns ignored: Status (did you mean `status`?), module "
        "(did you mean `modules`?), vulns (did you mean `vuln_count`?)"
    )
    assert report.checksum == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_unknown_json_keys_are_treated_as_unknown_columns(fmt: str) -> None:
    rows = [{**OBJECTS[0], "Status": "retired"}, {**OBJECTS[1], "modul": "edr"}]
    data = jsonl_bytes(*rows) if fmt == "jsonl" else json.dumps(rows).encode()
    observations, _, report = read(f"a.{fmt}", data)
    assert len(observations) == 2
    assert report.warnings == [
        "unknown keys ignored: Status (did you mean `status`?), modul (did you mean `modules`?)"
    ]
    _, _, strict = read_file(ref(f"a.{fmt}"), io.BytesIO(data), strict=True)
    assert (strict.status, strict.rows) == ("unreadable", 0)
    assert strict.reason is not None and strict.reason.startswith("refused (strict): unknown keys")


def test_strict_refuses_unknown_modules_and_passes_a_clean_file() -> None:
    data = csv_bytes("host,A1,,,vmdr;vmrd,,")
    _, _, report = read_file(ref("a.csv"), io.BytesIO(data), strict=True)
    assert report.reason == "refused (strict): unknown modules ignored: vmrd"
    clean = read_file(ref("a.csv"), io.BytesIO(csv_bytes(*CSV_ROWS)), strict=True)
    assert (len(clean[0]), clean[2].status, clean[2].warnings) == (3, "ok", [])


def test_a_csv_without_an_asset_type_column_is_one_file_level_reason() -> None:
    data = csv_bytes(*[f"host,a{i}" for i in range(50)], header="AssetType,agent_id")
    reason = unreadable("a.csv", data)
    assert reason == (
        "no asset_type column: every row needs one; unknown columns ignored: AssetType "
        "(did you mean `asset_type`?)"
    )
    assert unreadable("b.csv", csv_bytes("a1", header="agent_id")) == (
        "no asset_type column: every row needs one"
    )


def test_rows_of_a_type_whose_key_has_no_column_are_one_finding() -> None:
    node_ref = parse_key("tenant=acme/source=container_sensor/date=2026-01-05/n.csv")
    rows = [f"container_node,n{i}.corp,active" for i in range(40)] + ["host,x,active"]
    data = csv_bytes(*rows, header="asset_type,hostname,status")
    observations, rejects, report = read_file(node_ref, io.BytesIO(data))
    assert observations == []
    # the host row is not an entity of the source: rejected on its own line, as before
    assert [(r.line, r.field) for r in rejects] == [(42, "asset_type")]
    assert (report.rows, report.accepted, report.rejected, report.unlisted) == (41, 0, 41, 40)
    assert report.warnings == [
        "40 container_node rows rejected: no column gives their key "
        "(node_id: required for container_node)"
    ]
    # rows read one by one (a quoted field over two lines) are told the same way
    data = csv_bytes('container_node,"n1\nx",active', "container_node,n2,active",
                     header="asset_type,hostname,status")  # fmt: skip
    _, rejects, report = read_file(node_ref, io.BytesIO(data))
    assert (rejects, report.rejected) == ([], 2)
    assert report.warnings == [
        "2 container_node rows rejected: no column gives their key "
        "(node_id: required for container_node)"
    ]


def test_host_rows_need_one_identifier_column_of_several() -> None:
    data = csv_bytes("host,web1,active", "host,web2,", header="asset_type,hostname,status")
    _, rejects, report = read("a.csv", data)
    assert rejects == [] and report.rejected == 2
    assert report.warnings == [
        "2 host rows rejected: no column gives their key (asset_id: host-like row needs "
        "asset_id, agent_id, cloud_provider+cloud_resource_id, an fqdn with a dot, or an ip)"
    ]
    # with an fqdn column, a host row without a usable one is its own reject
    data = csv_bytes("host,web1", "host,a.example", header="asset_type,fqdn")
    observations, rejects, report = read("b.csv", data)
    assert len(observations) == 1 and [r.line for r in rejects] == [2]
    assert report.warnings == []
