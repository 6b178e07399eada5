"""Row values on a terminal: escape sequences, title changes and text direction controls in
an inventory file are shown escaped on every path of the ``qlumeter`` command (validate,
explain, meter, errors), never acted on by the terminal."""

from __future__ import annotations

import io
import re
from pathlib import Path

from qlumeter_cli.main import main
from qlumeter_cli.terminal import escaped
from tests.support import write_file

#: What a terminal acts on: C0 controls but line feed and tab, DEL, C1 (CSI is \x9b), and
#: the bidirectional overrides and isolates.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
HOSTILE = [
    "\x1b[31mred\x1b[0m",  # colour (CSI)
    "\x1b]0;owned\x07",  # window title (OSC)
    "\x9b2J",  # C1 CSI: clear the screen
    "abc\u202etxt.exe",  # right-to-left override
    "fake\roverwritten",  # carriage return
]
SUBSCRIPTION = 'subscription_id: acme\nstart_date: "2026-01-01"\nproducts: {CSAM: {ratio: "1"}}\n'


def cli(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    main(list(args), out, err)
    return out.getvalue() + err.getvalue()


def test_terminal_row_values_never_reach_the_terminal_raw(tmp_path: Path) -> None:
    (tmp_path / "sub.yaml").write_text(SUBSCRIPTION)
    hosts = [{"asset_type": "host", "agent_id": value} for value in HOSTILE]
    bad = [{"asset_type": "host", "agent_id": "a1", "vuln_count": value} for value in HOSTILE]
    write_file(tmp_path, "cloud_agent", "2026-01-01", hosts + bad)
    folder = tmp_path / "inventory" / "tenant=acme" / "source=cloud_agent"
    outputs = {
        "validate": cli("validate", str(tmp_path)),
        "explain": cli(
            "explain",
            *("--subscription", str(tmp_path / "sub.yaml"), "--inventory", str(tmp_path)),
            *("--product", "CSAM", "--day", "2026-01-01", "--sample", "20"),
        ),
        "meter": cli(
            "meter",
            *("--subscription", str(tmp_path / "sub.yaml"), "--inventory", str(tmp_path)),
            *("--as-of", "2026-01-01", "--out", str(tmp_path / "report.json")),
        ),
        "error": cli("validate", str(folder / "date=2026-01-01" / "\x1b]0;gone\x07.csv")),
    }
    for command, text in outputs.items():
        assert RAW.search(text) is None, (command, RAW.search(text))
    assert "not an integer: '\\x1b[31mred\\x1b[0m'" in outputs["validate"]
    assert "agent:abc\\u202etxt.exe" in outputs["explain"]
    assert "agent:fake\\x0doverwritten" in outputs["explain"]
    assert "\\x1b]0;gone\\x07.csv" in outputs["error"]


def test_escaped_keeps_text_and_line_breaks() -> None:
    assert escaped("héllo\tworld\n日本") == "héllo\tworld\n日本"
    assert escaped("\x1b\x9b\u202e\x00") == "\\x1b\\x9b\\u202e\\x00"
