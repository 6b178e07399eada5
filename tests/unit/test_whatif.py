"""What-if: changed terms applied and validated, and the same inventory metered under both."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from qlumeter.config import ConfigError
from qlumeter_cli.main import main
from qlumeter_cli.whatif import changed_terms, compare
from tests.support import agents, day, subscription, write_file


def test_changed_terms_set_add_and_remove() -> None:
    sub = subscription({"VMDR": {"ratio": "1.5"}, "CSAM": {"ratio": "1"}})
    changed = changed_terms(
        sub,
        ["vmdr.ratio=1.2", "entitlement_qlus=500", "late_data_days=5"],
        ["EDR:ratio=2.85"],
        ["csam"],
    )
    assert {code: str(t.ratio) for code, t in changed.products.items()} == {
        "VMDR": "1.2",
        "EDR": "2.85",
    }
    assert (str(changed.entitlement_qlus), changed.late_data_days) == ("500", 5)
    assert str(sub.products["VMDR"].ratio) == "1.5"  # the subscription itself is unchanged


@pytest.mark.parametrize(
    ("sets", "adds", "removes", "message"),
    [
        (["PAF.ratio=1"], [], [], "--set PAF.ratio=1: PAF is not in the subscription"),
        ([], ["VMDR:ratio=2"], [], "VMDR is in the subscription already"),
        ([], [], ["EDR"], "--remove EDR: not in the subscription"),
        (["VMDR.ratio"], [], [], "--set VMDR.ratio: expected KEY=VALUE"),
        (["VMDR.ratio=-1"], [], [], "products.VMDR.ratio"),
        (["late_data_days=[1"], [], [], "[1 is not valid JSON"),
    ],
)
def test_changed_terms_errors_name_the_change(
    sets: list[str], adds: list[str], removes: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        changed_terms(subscription(["VMDR"]), sets, adds, removes)


def run(tmp_path: Path, *changes: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "whatif",
            "--subscription",
            str(tmp_path / "sub.json"),
            "--inventory",
            str(tmp_path),
            "--as-of",
            day(0).isoformat(),
            "--quiet",
            *changes,
        ],
        out,
        err,
    )
    return code, out.getvalue(), err.getvalue()


def test_whatif_meters_the_inventory_under_both_terms(tmp_path: Path) -> None:
    """Four hosts (two with EDR): VMDR 4 x 1.5 = 6 becomes 4 x 1.2 = 4.8; EDR added at
    2.85 counts 2 x 2.85 = 5.7; PC added has nothing to count and is named."""
    terms: dict[str, Any] = {
        "subscription_id": "acme",
        "start_date": "2026-01-01",
        "products": {"VMDR": {"ratio": "1.5"}},
    }
    (tmp_path / "sub.json").write_text(json.dumps(terms))
    write_file(tmp_path, "cloud_agent", day(0), agents(4))
    code, out, _ = run(
        tmp_path,
        "--set",
        "VMDR.ratio=1.2",
        "--add",
        "EDR:ratio=2.85",
        "--add",
        "PC:ratio=1",
        "--json",
    )
    assert code == 0
    comparison = json.loads(out)
    assert [
        (r["product"], r["current_qlus"], r["changed_qlus"], r["difference"])
        for r in comparison["products"]
    ] == [("VMDR", "6", "4.8", "-1.2"), ("EDR", None, "5.7", "5.7"), ("PC", None, "0", "0")]
    assert comparison["total"] == {"current_qlus": "6", "changed_qlus": "10.5", "difference": "4.5"}
    (note,) = comparison["notes"]
    assert note.startswith("PC: the inventory gives it no usage as of 2026-01-01")
    code, table, _ = run(tmp_path, "--set", "VMDR.ratio=1.2")
    assert (
        code == 0
        and "VMDR" in table
        and table.splitlines()[-1].split()
        == [
            "total",
            "6",
            "4.8",
            "-1.2",
        ]
    )
    code, _, err = run(tmp_path)
    assert code == 2 and "no change given" in err


def test_compare_lists_removed_products() -> None:
    current = {
        "as_of": "2026-01-01",
        "total_qlus": "3",
        "products": [{"product": "PAF", "qlus": "3", "utilization": "3"}],
    }
    changed = {"as_of": "2026-01-01", "total_qlus": "0", "products": []}
    assert compare(current, changed, [])["products"] == [
        {"product": "PAF", "current_qlus": "3", "changed_qlus": None, "difference": "-3"}
    ]


def test_explain_shows_the_forecast_inputs(tmp_path: Path) -> None:
    """Four hosts on day 0, six on day 2: VMDR's daily values 4, 4 (carried), 6; the trend
    is (6 - 4) / 2 = 1 a day, the band from the changes 0 and 2; day 2 of the interval
    projects its last day, day 14: 6 + 12 x 1 = 18 (low 6, high 6 + 12 x 2 = 30)."""
    terms = {
        "subscription_id": "acme",
        "start_date": "2026-01-01",
        "products": {"VMDR": {"ratio": "1"}},
    }
    (tmp_path / "sub.json").write_text(json.dumps(terms))
    write_file(tmp_path, "cloud_agent", day(0), agents(4))
    write_file(tmp_path, "cloud_agent", day(2), agents(6))
    out, err = io.StringIO(), io.StringIO()
    args = ["explain", "--subscription", str(tmp_path / "sub.json"), "--inventory", str(tmp_path)]
    code = main([*args, "--product", "vmdr", "--day", day(2).isoformat(), "--forecast"], out, err)
    assert code == 0, err.getvalue()
    lines = out.getvalue().splitlines()[-4:]
    assert lines == [
        "forecast of VMDR (daily values of the last 14 days):",
        "  values: 3 from 2026-01-01 to 2026-01-03, the last 6",
        "  change a day: mid 1, low 0, high 2",
        "  projected for 2026-01-15: utilization mid 18 low 6 high 30; QLUs mid 18 low 6 high 30",
    ]
