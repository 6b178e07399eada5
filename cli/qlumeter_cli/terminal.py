"""Text for a terminal: whatever a file's rows hold (an escape sequence, a title change,
text turned right to left) is shown escaped, never acted on by the terminal.

``Terminal`` wraps the command's output streams, so every line the command writes goes
through ``escaped``; the progress bar alone writes its carriage returns to ``raw``.
"""

from __future__ import annotations

import re
from typing import TextIO

#: C0 and C1 controls but line feed and tab, DEL, and the bidirectional controls.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escaped(text: str) -> str:
    """``text`` with every control character written as ``\\x1b`` or ``\\u202e``."""
    return _CONTROL.sub(_escape, text)


class Terminal:
    """A text stream whose writes are ``escaped``; ``raw`` is the stream beneath."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        return self.raw.write(escaped(text))

    def flush(self) -> None:
        self.raw.flush()

    def isatty(self) -> bool:
        return self.raw.isatty()
