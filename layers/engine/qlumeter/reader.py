"""Streaming readers of inventory files: CSV, JSON Lines, JSON array, optionally gzip.

Memory stays flat in file size: lines are read with a bounded ``readline``, a JSON
array with ``raw_decode`` over a bounded buffer, and gzip data is inflated in chunks
under a size and a ratio limit (spec section 3).
"""

from __future__ import annotations

import codecs
import csv
import gc
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain, compress, islice
from typing import Any, BinaryIO, cast

from .observation import Observation, RowError
from .paths import FileRef
from .rows import (
    FIELD_NAMES,
    MAX_FIELD_CHARS,
    DuplicateKeys,
    RowWarnings,
    csv_columns,
    json_number,
    json_object,
    keyless_types,
    name_list,
    normalize,
    normalize_cells,
    normalize_rows,
    unknown_names,
)

ROW = "_row"  # the field of a reject that concerns the whole row
#: How the warning about unknown columns (CSV) or keys (JSON) begins.
UNKNOWN_FIELDS = ("unknown columns ignored: ", "unknown keys ignored: ")
_READ_SIZE = 1 << 16


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one file. A gzip ratio is checked once ``gzip_ratio_after_bytes`` are out."""

    max_line_bytes: int = 1 << 20  # a physical line with its line ending; a JSON array item
    max_field_chars: int = MAX_FIELD_CHARS
    max_decompressed_bytes: int = 8 << 30
    max_gzip_ratio: int = 200
    gzip_ratio_after_bytes: int = 64 << 20


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class Reject:
    """A rejected row: file key, line (JSON array: item index), field and reason."""

    path: str
    line: int
    field: str
    reason: str


@dataclass(slots=True)
class FileReport:
    """What reading one file gave; ``checksum`` is the sha256 of the bytes as stored."""

    path: str
    status: str = "ok"  # ok or unreadable
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    checksum: str = ""
    #: rejected rows not given one by one: those of a type whose key no column gives, told
    #: by one warning per type
    unlisted: int = 0


def field_warnings(warnings: Sequence[str]) -> list[str]:
    """The warnings about unknown columns or keys (the ``data_warning`` alert's)."""
    return [w for w in warnings if w.startswith(UNKNOWN_FIELDS)]


class UnreadableFile(Exception):
    """A file that cannot be read as a whole; none of its rows count."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- byte layers ---


class _Stored(io.RawIOBase):
    """The bytes as stored, hashed and counted as they are read."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self._sha256.update(data)
        self.size += size
        return size

    def checksum(self) -> str:
        """Read what is left (unread bytes count too) and return the sha256 hex digest."""
        while data := self._stream.read(_READ_SIZE):
            self._sha256.update(data)
        return self._sha256.hexdigest()


class _Inflated(io.RawIOBase):
    """The decompressed bytes of a gzip file, within the limits."""

    def __init__(self, stored: _Stored, limits: Limits) -> None:
        self._stored = stored
        self._gzip = gzip.GzipFile(fileobj=stored, mode="rb")
        self._limits = limits
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            size = self._gzip.readinto(buffer)
        except gzip.BadGzipFile as exc:
            raise UnreadableFile(f"invalid gzip file: {exc}") from None
        except EOFError:
            raise UnreadableFile("truncated gzip file") from None
        except zlib.error as exc:
            raise UnreadableFile(f"corrupt gzip data: {exc}") from None
        self.size += size
        limits = self._limits
        if self.size > limits.max_decompressed_bytes:
            raise UnreadableFile(
                f"gzip data larger than {limits.max_decompressed_bytes} bytes decompressed"
            )
        if (
            self.size > limits.gzip_ratio_after_bytes
            and self.size > limits.max_gzip_ratio * self._stored.size
        ):
            raise UnreadableFile(f"gzip compression ratio over {limits.max_gzip_ratio}")
        return size


class _File:
    """One file being read: its rows to observations or rejects, counted in the report."""

    def __init__(self, ref: FileRef, report: FileReport, limits: Limits, strict: bool) -> None:
        self.ref = ref
        self.report = report
        self.limits = limits
        self.strict = strict
        self.warnings = RowWarnings()
        self.unknown: set[str] = set()  # unknown columns or keys
        self.notes: list[str] = []  # file-level findings about its rows

    def unknown_warning(self) -> str | None:
        """The warning naming the unknown columns or keys, each with a likely meaning."""
        if not self.unknown:
            return None
        return UNKNOWN_FIELDS[self.ref.fmt != "csv"] + unknown_names(self.unknown)

    def reject(self, line: int, field_name: str, reason: str) -> Reject:
        self.report.rows += 1
        self.report.rejected += 1
        return Reject(self.ref.key, line, field_name, reason)

    def accept(self) -> None:
        self.report.rows += 1
        self.report.accepted += 1

    def too_long(self, line: int) -> Reject:
        return self.reject(line, ROW, f"line longer than {self.limits.max_line_bytes} bytes")

    def row(self, line: int, value: object) -> Observation | Reject:
        """A parsed JSON value: an object is a row, unless it names a key twice."""
        if type(value) is not dict:
            if type(value) is DuplicateKeys:
                keys = name_list(value.duplicates)
                return self.reject(line, ROW, f"duplicate keys in the JSON object: {keys}")
            return self.reject(line, ROW, "not a JSON object")
        if not FIELD_NAMES.issuperset(value):
            self.unknown.update(key for key in value if key not in FIELD_NAMES)
        try:
            obs = normalize(
                value,
                self.ref,
                line,
                warnings=self.warnings,
                max_field_chars=self.limits.max_field_chars,
            )
        except RowError as exc:
            return self.reject(line, exc.field, exc.reason)
        self.accept()
        return obs


def _lines(stream: io.BufferedIOBase, limit: int) -> Iterator[bytes | None]:
    """Physical lines of at most ``limit`` bytes with their ending, BOM dropped.

    An over-long line is skipped to its end and gives None.
    """
    readline, size = stream.readline, limit + 1
    line = readline(size).removeprefix(codecs.BOM_UTF8)
    while line:
        if len(line) <= limit:
            yield line
        else:
            while line and not line.endswith(b"\n"):
                line = readline(size)
            yield None
        line = readline(size)


class _CsvText:
    """Decoded physical lines for ``csv.reader``, numbered from 1; an over-long line becomes
    an empty one.

    ``overlong``: the numbers of the lines skipped. ``unchecked``: the numbers of the lines
    with non-ASCII bytes or more than ``max_field_chars`` of them, whose cells need the
    length and UTF-8 checks. Both may hold lines not given yet (a block is decoded at once).
    """

    def __init__(self, stream: io.BufferedReader[Any], limits: Limits) -> None:
        self._stream = stream
        self._limits = limits
        self._number = 0  # of the last line given
        self.overlong: set[int] = set()
        self.unchecked: set[int] = set()

    def __iter__(self) -> Iterator[str]:
        """A line read with readline (the first one; one that goes on past the bytes
        buffered), then the whole lines the buffer holds, decoded as one block."""
        stream = self._stream
        while (line := self._read_line()) is not None:
            yield line
            end = stream.peek(1).rfind(b"\n") + 1
            if end:
                yield from self._block(stream.read(end))

    def _read_line(self) -> str | None:
        """The next line (the first without its BOM); None at the end of the file."""
        limit, readline = self._limits.max_line_bytes, self._stream.readline
        line = readline(limit + 1)
        if not self._number:
            line = line.removeprefix(codecs.BOM_UTF8)
        if not line:
            return None
        if len(line) <= limit:
            return self._text(line)
        while line and not line.endswith(b"\n"):
            line = readline(limit + 1)
        return self._skipped()

    def _block(self, block: bytes) -> list[str]:
        """The lines of whole lines of bytes: at once when they are ASCII, split on line
        feeds only, and none too long for the limits (the common case)."""
        lines = block.decode("utf-8", "surrogateescape").splitlines(keepends=True)
        short = min(self._limits.max_line_bytes, self._limits.max_field_chars)
        if (
            block.isascii()
            and b"\0" not in block
            and len(lines) == block.count(b"\n")
            and max(map(len, lines)) <= short
        ):
            self._number += len(lines)
            return lines
        limit = self._limits.max_line_bytes
        whole = (part + b"\n" for part in block[:-1].split(b"\n"))
        return [self._text(line) if len(line) <= limit else self._skipped() for line in whole]

    def _text(self, line: bytes) -> str:
        """The next line, read whole and not over-long."""
        self._number += 1
        if len(line) > self._limits.max_field_chars or not line.isascii() or b"\0" in line:
            self.unchecked.add(self._number)
        return line.decode("utf-8", "surrogateescape")

    def _skipped(self) -> str:
        """The next line, over-long: an empty one."""
        self._number += 1
        self.overlong.add(self._number)
        return "\n"

    def flagged(self, first: int, end: int) -> bool:
        """Whether a line from ``first`` to before ``end`` is over-long."""
        return bool(self.overlong) and not self.overlong.isdisjoint(range(first, end))

    def forget(self, end: int) -> None:
        """Drop what is known of the lines before ``end``."""
        if self.overlong or self.unchecked:
            self.overlong = {number for number in self.overlong if number >= end}
            self.unchecked = {number for number in self.unchecked if number >= end}


def _csv_header(reader: Any, text: _CsvText, limits: Limits) -> list[str]:
    try:
        header = next(row for row in reader if any(cell.strip() for cell in row))
    except StopIteration:
        raise UnreadableFile("CSV file has no header row") from None
    except csv.Error as exc:
        raise UnreadableFile(f"CSV header: {exc}") from None
    if text.flagged(1, reader.line_num + 1):
        raise UnreadableFile(f"CSV header longer than {limits.max_line_bytes} bytes")
    names = [cell.strip() for cell in header]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise UnreadableFile(f"duplicate CSV header columns: {name_list(duplicates)}")
    return names


def _check_header(names: list[str], file: _File) -> None:
    """A header without ``asset_type`` (every row needs it) makes the file unreadable; so
    do unknown columns when the file is read strictly."""
    file.unknown.update(name for name in names if name not in FIELD_NAMES)
    unknown = file.unknown_warning()
    if "asset_type" not in names:
        also = f"; {unknown}" if unknown else ""
        raise UnreadableFile(f"no asset_type column: every row needs one{also}")
    if file.strict and unknown:
        raise UnreadableFile(f"refused (strict): {unknown}")


_BATCH_LINES = 512  # lines read, parsed and normalized together


def _csv_rows(stream: io.BufferedReader[Any], file: _File) -> Iterator[Observation | Reject]:
    """The rows of a CSV file, ``_BATCH_LINES`` lines at a time. Lines that are one whole
    row each (the common case) are parsed in one go and normalized column by column; other
    lines (a quoted field over several lines, a CSV error, an over-long line) are read row
    by row as one stream, as far as the row that ends the batch's last line. Either way a
    batch's rows are counted in the report before they are yielded."""
    text = _CsvText(stream, file.limits)
    lines = iter(text)
    reader = csv.reader(lines)
    names = _csv_header(reader, text, file.limits)
    _check_header(names, file)
    table = _CsvTable(file, names, text)
    start = reader.line_num + 1  # the number of the next line
    while True:
        batch: list[str] = []
        try:
            batch.extend(islice(lines, _BATCH_LINES))
        except Exception as exc:  # the lines before the failure still give their rows
            failure: Exception | None = exc
            rest: Iterator[str] = _raising(exc)
        else:
            failure, rest = None, lines
        if not batch and failure is None:
            table.close()
            return
        rows = None if text.flagged(start, start + len(batch)) else _whole_rows(batch)
        if rows is None:
            start = yield from table.stream(batch, rest, start)
        else:
            yield from table.rows(rows, start)
            start += len(rows)
        text.forget(start)
        if failure is not None:
            raise failure


def _raising(exc: Exception) -> Iterator[str]:
    """The lines after those read when reading failed: the failure again."""
    yield from ()
    raise exc


def _whole_rows(lines: list[str]) -> list[list[str]] | None:
    """The rows of ``lines`` when each line is one whole row, else None."""
    try:  # after the last line, an empty one: taken into a last row that does not end
        rows = list(csv.reader([*lines, "\n"]))
    except csv.Error:
        return None
    if len(rows) != len(lines) + 1:
        return None
    rows.pop()
    return rows


class _CsvTable:
    """The rows of a CSV file under its header."""

    def __init__(self, file: _File, names: list[str], text: _CsvText) -> None:
        self.file = file
        self.columns = csv_columns(names)
        self.width = len(names)
        self.text = text
        # The asset types whose key no column gives: their rows are rejected as one finding.
        self.keyless = keyless_types(names, file.ref.source)
        self.type_cell = names.index("asset_type")
        self.keyless_rows: dict[str, int] = {}

    def reject(self, line: int, row: list[str], error: RowError) -> Reject | None:
        """A row's reject; None for a row of a keyless type, counted under its type."""
        if self.keyless:
            asset_type = row[self.type_cell].strip().lower()
            if asset_type in self.keyless:
                self.file.report.rows += 1
                self.file.report.rejected += 1
                self.file.report.unlisted += 1
                self.keyless_rows[asset_type] = self.keyless_rows.get(asset_type, 0) + 1
                return None
        return self.file.reject(line, error.field, error.reason)

    def close(self) -> None:
        """One note per keyless type that had rows."""
        for asset_type, count in sorted(self.keyless_rows.items()):
            error = self.keyless[asset_type]
            rows = "row" if count == 1 else "rows"
            self.file.notes.append(
                f"{count} {asset_type} {rows} rejected: no column gives their key"
                f" ({error.field}: {error.reason})"
            )

    def rows(self, rows: list[list[str]], first: int) -> list[Observation | Reject]:
        """The rows of lines ``first`` on, one row a line, normalized together and counted."""
        file, width = self.file, self.width
        lines = range(first, first + len(rows))
        if all(map(width.__eq__, map(len, rows))):  # every row is as wide as the header
            outcomes = self.normalized(rows, lines)
            if RowError not in map(type, outcomes):  # every row accepted
                file.report.rows += len(rows)
                file.report.accepted += len(rows)
                return cast("list[Observation | Reject]", outcomes)
        else:
            fits = [len(row) == width for row in rows]
            outcomes = self.normalized(list(compress(rows, fits)), list(compress(lines, fits)))
        items: list[Observation | Reject] = []
        normalized = iter(outcomes)
        for line, row in zip(lines, rows, strict=True):
            if len(row) != width:
                misfit = self.misfit(line, row)
                if misfit is not None:
                    items.append(misfit)
                continue
            outcome = next(normalized)
            if isinstance(outcome, RowError):
                reject = self.reject(line, row, outcome)
                if reject is not None:
                    items.append(reject)
            else:
                file.accept()
                items.append(outcome)
        return items

    def normalized(
        self, rows: list[list[str]], lines: Sequence[int]
    ) -> list[Observation | RowError]:
        """normalize_rows, with no cell check when the lines were all clean."""
        unchecked = self.text.unchecked
        return normalize_rows(
            self.columns,
            rows,
            lines,
            self.file.ref,
            warnings=self.file.warnings,
            max_field_chars=self.file.limits.max_field_chars,
            checked=not unchecked or unchecked.isdisjoint(lines),
        )

    def stream(
        self, batch: list[str], rest: Iterator[str], first: int
    ) -> Generator[Observation | Reject, None, int]:
        """The rows of ``batch`` (lines ``first`` on) read one by one, the last one going on
        into ``rest`` if it does not end with the batch; return the number of the next line."""
        file, text = self.file, self.text
        reader = csv.reader(chain(batch, rest))
        line = first
        while reader.line_num < len(batch):
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield file.reject(line, ROW, f"CSV error: {exc}")
                line = first + reader.line_num
                continue
            end = first + reader.line_num
            if text.flagged(line, end):
                yield file.too_long(line)
            elif len(row) == self.width:
                # A row on one clean line needs no per-cell length or UTF-8 check.
                checked = end == line + 1 and line not in text.unchecked
                try:
                    obs = normalize_cells(
                        self.columns,
                        row,
                        file.ref,
                        line,
                        warnings=file.warnings,
                        max_field_chars=file.limits.max_field_chars,
                        checked=checked,
                    )
                except RowError as exc:
                    reject = self.reject(line, row, exc)
                    if reject is not None:
                        yield reject
                else:
                    file.accept()
                    yield obs
            else:
                misfit = self.misfit(line, row)
                if misfit is not None:
                    yield misfit
            line = end
        return first + reader.line_num

    def misfit(self, line: int, row: list[str]) -> Reject | None:
        """A row of another width than the header's: rejected unless it is blank."""
        if row and (len(row) > 1 or row[0].strip()):
            return self.file.reject(line, ROW, f"{len(row)} cells, the header has {self.width}")
        return None


_DECODER = json.JSONDecoder(
    parse_float=json_number, parse_constant=Decimal, object_pairs_hook=json_object
)


def _jsonl_rows(stream: io.BufferedIOBase, file: _File) -> Iterator[Observation | Reject]:
    decode = _DECODER.decode
    for line, data in enumerate(_lines(stream, file.limits.max_line_bytes), 1):
        if data is None:
            yield file.too_long(line)
            continue
        text = data.decode("utf-8", "surrogateescape")
        if text.isspace():
            continue
        try:
            value = decode(text)
        except RecursionError:
            yield file.reject(line, ROW, "not valid JSON: nested too deeply")
            continue
        except ValueError as exc:
            yield file.reject(line, ROW, f"not valid JSON: {exc}")
            continue
        yield file.row(line, value)


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_STRUCTURE = re.compile(r'["\[\]{}]')
_STRING_STOP = re.compile(r'["\\]')


class _Skipped(str):
    """Why an array item was skipped without being parsed."""


class _JsonArray:
    """The items of a top-level JSON array, parsed from a bounded text buffer."""

    def __init__(self, stream: io.BufferedIOBase, max_item_chars: int) -> None:
        self._read = stream.read
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._limit = max_item_chars
        self._buf = ""
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        """Drop the consumed text and append a chunk; False when the input is exhausted."""
        if self._eof:
            return False
        data = self._read(_READ_SIZE)
        self._eof = not data
        self._buf = self._buf[self._pos :] + self._decoder.decode(data, final=self._eof)
        self._pos = 0
        return True

    def _peek(self) -> str:
        """The next non-blank character ("" at the end), not consumed."""
        while True:
            self._pos = _WHITESPACE.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def __iter__(self) -> Iterator[object]:
        self._fill()
        self._buf = self._buf.removeprefix("\ufeff")
        first = self._peek()
        if first != "[":
            raise UnreadableFile("top-level JSON value is not an array" if first else "empty file")
        self._pos += 1
        if self._peek() == "]":
            self._pos += 1
        else:
            count = 0
            while True:
                count += 1
                yield self._item(count)
                separator = self._peek()
                self._pos += 1
                if separator == "]":
                    break
                if separator != ",":
                    what = f"'{separator}'" if separator else "the end of the file"
                    raise UnreadableFile(
                        f"JSON array: expected ',' or ']' after item {count}, found {what}"
                    )
        if self._peek():
            raise UnreadableFile("data after the JSON array")

    def _item(self, index: int) -> object:
        """Parse the next item, reading on until it is complete or too long."""
        self._peek()
        while True:
            start = self._pos
            try:
                value, end = _DECODER.raw_decode(self._buf, start)
            except json.JSONDecodeError as exc:
                too_long = len(self._buf) - start > self._limit
                if not too_long and self._fill():
                    continue
                if too_long and self._skip() > self._limit:
                    return _Skipped(f"item longer than {self._limit} characters")
                raise UnreadableFile(f"JSON array broken at item {index}: {exc}") from None
            except RecursionError:
                self._skip()
                return _Skipped("not valid JSON: nested too deeply")
            except ValueError as exc:  # e.g. an integer over the interpreter's digit limit
                self._skip()
                return _Skipped(f"not valid JSON: {exc}")
            if end == len(self._buf) and self._fill():
                continue  # a number may go on in the next chunk
            self._pos = end
            if end - start > self._limit:
                return _Skipped(f"item longer than {self._limit} characters")
            return value

    def _skip(self) -> int:
        """Skip the string, object or array at the position unparsed; return its length."""
        buf, i = self._buf, self._pos
        if buf[i] not in '"[{':
            raise UnreadableFile(f"JSON array: unparsable value at character {i}")
        depth, in_string, length = 0, False, 0
        while True:
            match = (_STRING_STOP if in_string else _STRUCTURE).search(buf, i)
            if match is not None and match.end() < len(buf):
                i = match.end()
                mark = match.group()
                if mark == "\\":
                    i += 1
                    continue
                if mark == '"':
                    in_string = not in_string
                else:
                    depth += 1 if mark in "[{" else -1
                if depth == 0 and not in_string:
                    length += i - self._pos
                    self._pos = i
                    return length
                continue
            # Read on; a mark that is the last character is scanned again with what follows.
            i = match.start() if match is not None else len(buf)
            length += i - self._pos
            self._pos = i
            if not self._fill():
                raise UnreadableFile("truncated JSON array")
            buf, i = self._buf, self._pos


def _array_rows(stream: io.BufferedIOBase, file: _File) -> Iterator[Observation | Reject]:
    for index, value in enumerate(_JsonArray(stream, file.limits.max_line_bytes), 1):
        if type(value) is _Skipped:
            yield file.reject(index, ROW, value)
        else:
            yield file.row(index, value)


_FORMATS = {"csv": _csv_rows, "jsonl": _jsonl_rows, "json": _array_rows}


def iter_file(
    ref: FileRef,
    stream: BinaryIO,
    report: FileReport,
    limits: Limits = DEFAULT_LIMITS,
    strict: bool = False,
) -> Iterator[Observation | Reject]:
    """Yield the observations and rejects of one file in file order, counting them in
    ``report``; at the end set its checksum and warnings.

    Raises UnreadableFile when the file cannot be read as a whole, and with ``strict``
    when reading it gave a warning (unknown columns or keys, unknown modules, the rows of
    a type whose key has no column).
    """
    stored = _Stored(stream)
    data = io.BufferedReader(_Inflated(stored, limits) if ref.gzip else stored, _READ_SIZE)
    file = _File(ref, report, limits, strict)
    try:
        yield from _FORMATS[ref.fmt](data, file)
    except UnreadableFile:
        report.checksum = stored.checksum()
        raise
    report.checksum = stored.checksum()
    unknown = file.unknown_warning()
    found = [unknown] if unknown else []
    found += file.notes + file.warnings.messages()
    if strict and found:
        raise UnreadableFile(f"refused (strict): {'; '.join(found)}")
    report.warnings.extend(found)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: reading and metering build millions of small
    acyclic objects (freed by reference counting), and its full scans would dominate."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_file(
    ref: FileRef, stream: BinaryIO, limits: Limits = DEFAULT_LIMITS, strict: bool = False
) -> tuple[list[Observation], list[Reject], FileReport]:
    """Read a whole file; an unreadable one gives no rows and ``status="unreadable"``.

    The cyclic garbage collector is paused meanwhile: the many long-lived, acyclic
    objects built would otherwise trigger collections that traverse all of them.
    """
    report = FileReport(path=ref.key)
    observations: list[Observation] = []
    rejects: list[Reject] = []
    try:
        with collector_paused():
            for item in iter_file(ref, stream, report, limits, strict):
                if isinstance(item, Observation):
                    observations.append(item)
                else:
                    rejects.append(item)
    except UnreadableFile as exc:
        _void(report, exc)
        return [], [], report
    return observations, rejects, report


def iter_rejects(
    ref: FileRef,
    stream: BinaryIO,
    report: FileReport,
    limits: Limits = DEFAULT_LIMITS,
    strict: bool = False,
) -> Iterator[Reject]:
    """The rejects of a file as they are read, its observations counted in ``report`` and
    dropped: memory stays flat in the file's size.

    An unreadable file ends the iteration with ``report`` as :func:`read_file` gives it
    (``status="unreadable"``, no rows): the rejects yielded before it failed do not count.
    """
    try:
        for item in iter_file(ref, stream, report, limits, strict):
            if type(item) is Reject:
                yield item
    except UnreadableFile as exc:
        _void(report, exc)


def _void(report: FileReport, exc: UnreadableFile) -> None:
    """Make ``report`` that of an unreadable file: none of its rows count."""
    report.status, report.reason = "unreadable", exc.reason
    report.rows = report.accepted = report.rejected = report.unlisted = 0
    report.warnings.clear()
