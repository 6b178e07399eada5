"""Coverage-guided fuzzing of the readers with atheris (libFuzzer); run by
``test_bad_input.py::test_atheris_fuzzes_the_readers``, or by hand:

    python tests/reliability/fuzz_reader_atheris.py -runs=100000 -max_total_time=300

The first byte of an input picks the format, gzip and the limits; the rest is the file.
Anything but rows, rejects with a field and a reason, or UnreadableFile is a crash.
"""

from __future__ import annotations

import io
import sys

import atheris

with atheris.instrument_imports(include=["qlumeter"]):
    from qlumeter.observation import Observation
    from qlumeter.paths import parse_key
    from qlumeter.reader import FileReport, Limits, Reject, UnreadableFile, iter_file

FORMATS = ("csv", "jsonl", "json")
LIMITS = (
    Limits(),
    Limits(
        max_line_bytes=64,
        max_field_chars=16,
        max_decompressed_bytes=4096,
        gzip_ratio_after_bytes=256,
        max_gzip_ratio=4,
    ),
)
REFS = [
    parse_key(f"tenant=acme/source=scanner/date=2026-01-01/fuzz.{fmt}{'.gz' * gz}")
    for fmt in FORMATS
    for gz in (False, True)
]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    ref = REFS[data[0] % len(REFS)]
    limits = LIMITS[(data[0] // len(REFS)) % len(LIMITS)]
    report = FileReport(path=ref.key)
    accepted = rejected = 0
    try:
        for item in iter_file(ref, io.BytesIO(data[1:]), report, limits):
            if isinstance(item, Observation):
                accepted += 1
            elif isinstance(item, Reject) and item.field and item.reason and item.line >= 1:
                rejected += 1
            else:
                raise AssertionError(f"unexpected item {item!r}")
    except UnreadableFile as exc:
        if not exc.reason:
            raise AssertionError("unreadable without a reason") from None
        return
    if (report.accepted, report.rejected) != (accepted, rejected):
        raise AssertionError(f"report {report} does not count {accepted}, {rejected}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
