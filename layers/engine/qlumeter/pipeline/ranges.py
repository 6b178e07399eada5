"""Large objects split into byte ranges that separate invocations ingest in parallel.

A plan streams the object once (hashing it, counting lines, reading each line in chunks of
at most a line's limit) and cuts it at line starts near every ``part_bytes``, or sooner
when a part reaches ``part_lines`` lines (so no part holds more rows than one invocation
reads). A CSV cut never falls inside a quoted cell (an even count of quotes so far), unless
the count stays odd over ``quote_window`` bytes: that quote is a stray one (``24"`` in an
unquoted cell, or a quote never closed, which the reader ends at csv's field limit) and
cutting goes on at line starts. Each CSV part is read behind the file's header line, which
the part names by its length (the header is the object's first bytes). Each part knows the
line number it starts at, so rows and rejects keep the line numbers of the whole file.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from ..paths import FileRef
from ..reader import DEFAULT_LIMITS, UnreadableFile

#: Bytes over which an odd count of quotes is taken for a stray quote: past them the reader
#: has ended any quoted cell at csv's field limit (characters of up to 4 bytes) and gone
#: on at the start of the next line.
QUOTE_WINDOW = 4 * csv.field_size_limit() + DEFAULT_LIMITS.max_line_bytes


@dataclass(frozen=True)
class Part:
    """One byte range of an object version: ``[start, end)``."""

    bucket: str
    key: str
    version: str | None
    sequencer: str | None
    etag: str | None
    index: int
    count: int
    start: int
    end: int
    first_line: int
    header: str = ""  # the previous release's parts carried the CSV header line itself
    header_bytes: int = 0  # CSV: the header line is the object's bytes [0, header_bytes)
    size: int | None = None  # the object's size

    @property
    def has_header(self) -> bool:
        return bool(self.header or self.header_bytes)


@dataclass(frozen=True)
class Plan:
    checksum: str
    ranges: list[tuple[int, int, int]]  # (start, end, first line)
    header_bytes: int


def splittable(ref: FileRef) -> bool:
    """Plain CSV and JSON Lines split at line starts; gzip and JSON arrays do not."""
    return not ref.gzip and ref.fmt in ("csv", "jsonl")


def plan_ranges(
    body: IO[bytes],
    fmt: str,
    part_bytes: int,
    part_lines: int,
    max_line_bytes: int = DEFAULT_LIMITS.max_line_bytes,
    quote_window: int = QUOTE_WINDOW,
) -> Plan:
    """Cut points near every ``part_bytes`` (or ``part_lines``) at line starts, outside CSV
    quotes unless they stay open over ``quote_window`` bytes. Memory holds one chunk of a
    line; a CSV header longer than ``max_line_bytes`` makes the file unreadable."""
    digest = hashlib.sha256()
    readline = io.BufferedReader(_Raw(body), 1 << 20).readline
    csv_file = fmt == "csv"
    header = offset = line = 0
    start, start_line = 0, 1
    odd_from: int | None = None  # where the count of quotes turned odd
    ranges: list[tuple[int, int, int]] = []
    while raw := readline(max_line_bytes + 1):
        size, quotes = len(raw), raw.count(b'"')
        digest.update(raw)
        while not raw.endswith(b"\n") and (raw := readline(max_line_bytes + 1)):
            digest.update(raw)  # a line past the limit, in chunks (the reader rejects it)
            size, quotes = size + len(raw), quotes + raw.count(b'"')
        line += 1
        offset += size
        if csv_file and line == 1:
            if size > max_line_bytes:
                raise UnreadableFile(f"CSV header longer than {max_line_bytes} bytes")
            header = start = offset
            start_line = 2
        if csv_file and quotes % 2:
            odd_from = offset - size if odd_from is None else None
        if odd_from is not None and offset - odd_from > quote_window:
            odd_from = None  # a stray quote: cut at line starts again
        due = offset - start >= part_bytes or line - start_line + 1 >= part_lines
        if due and odd_from is None and line >= start_line:
            ranges.append((start, offset, start_line))
            start, start_line = offset, line + 1
    if offset > start:
        ranges.append((start, offset, start_line))
    return Plan(digest.hexdigest(), ranges, header)


class _Raw(io.RawIOBase):
    """Any ``read(n)`` stream (an S3 body) as a raw stream a buffered reader can wrap."""

    def __init__(self, body: IO[bytes]) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._body.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class _Joined(io.RawIOBase):
    """The header bytes, then a range body: one readable stream."""

    def __init__(self, head: bytes, body: IO[bytes]) -> None:
        self._parts: Iterator[IO[bytes]] = iter((io.BytesIO(head), body))
        self._current: IO[bytes] | None = next(self._parts)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while self._current is not None:
            chunk = self._current.read(len(buffer))
            if chunk:
                buffer[: len(chunk)] = chunk
                return len(chunk)
            self._current = next(self._parts, None)
        return 0


def part_stream(head: bytes, body: IO[bytes]) -> IO[bytes]:
    """What the reader reads for a part: the CSV header line (``head``), then the range."""
    return io.BufferedReader(_Joined(head, body))


def line_offset(part: Part) -> int:
    """Added to a line number read in the part stream to give the file's line number."""
    return part.first_line - (2 if part.has_header else 1)
