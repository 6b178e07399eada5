"""Large objects split into byte ranges that separate invocations ingest in parallel.

A plan streams the object once (hashing it, counting lines) and cuts it at line starts
near every ``part_bytes``; a CSV cut never falls inside a quoted cell (an even count of
quotes so far), and each CSV part is read behind the file's header line. Each part knows
the line number it starts at, so rows and rejects keep the line numbers of the whole file.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from ..paths import FileRef


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
    header: str  # CSV: the header line read before the range; JSON Lines: empty


@dataclass(frozen=True)
class Plan:
    checksum: str
    ranges: list[tuple[int, int, int]]  # (start, end, first line)
    header: str


def splittable(ref: FileRef) -> bool:
    """Plain CSV and JSON Lines split at line starts; gzip and JSON arrays do not."""
    return not ref.gzip and ref.fmt in ("csv", "jsonl")


def plan_ranges(body: IO[bytes], fmt: str, part_bytes: int) -> Plan:
    """Cut points near every ``part_bytes`` at line starts (outside CSV quotes)."""
    digest = hashlib.sha256()
    stream = io.BufferedReader(_Raw(body), 1 << 20)
    header = b""
    offset, line, quotes = 0, 0, 0
    start, start_line = 0, 1
    ranges: list[tuple[int, int, int]] = []
    for raw in iter(stream.readline, b""):
        digest.update(raw)
        line += 1
        if fmt == "csv" and line == 1:
            header, offset, start, start_line = raw, len(raw), len(raw), 2
            quotes += raw.count(b'"')
            continue
        offset += len(raw)
        quotes += raw.count(b'"') if fmt == "csv" else 0
        if offset - start >= part_bytes and quotes % 2 == 0:
            ranges.append((start, offset, start_line))
            start, start_line = offset, line + 1
    if offset > start:
        ranges.append((start, offset, start_line))
    return Plan(digest.hexdigest(), ranges, header.decode("utf-8", "surrogateescape"))


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


def part_stream(part: Part, body: IO[bytes]) -> IO[bytes]:
    """What the reader reads for a part: the CSV header line, then the range."""
    return io.BufferedReader(_Joined(part.header.encode("utf-8", "surrogateescape"), body))


def line_offset(part: Part) -> int:
    """Added to a line number read in the part stream to give the file's line number."""
    return part.first_line - (2 if part.header else 1)
