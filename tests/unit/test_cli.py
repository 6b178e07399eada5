"""The engine CLI: ``qlumeter meter``, ``validate`` and ``sample``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from qlumeter.paths import parse_key
from qlumeter.reader import read_file
from qlumeter.summary import json_schema
from qlumeter_cli.main import main
from tests.support import peak_memory, write_file

SCHEMA = json_schema()
SUBSCRIPTION = """\
subscription_id: acme
start_date: "2026-01-01"
products:
  VMDR: {ratio: "1.5"}
  CSAM: {ratio: "1"}
"""


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def tenant(tmp_path: Path) -> Path:
    (tmp_path / "sub.yaml").write_text(SUBSCRIPTION)
    agents = [
        {
            "asset_type": "host",
            "agent_id": f"a{i}",
            "fqdn": f"h{i}.corp.example",
            "modules": ["vmdr"],
            "vuln_count": 1,
        }
        for i in range(3)
    ]
    write_file(tmp_path, "cloud_agent", "2026-01-01", agents)
    scans = [
        {"asset_type": "host", "fqdn": "h0.corp.example", "modules": "vmdr"},
        {"asset_type": "host", "ip": "10.0.0.5", "modules": "vmdr"},
        {"asset_type": "host", "ip": "10.0.0.999", "modules": "vmdr"},
    ]
    write_file(tmp_path, "scanner", "2026-01-02", scans, fmt="jsonl")
    write_file(tmp_path, "scanner", "2026-01-09", scans)  # after --as-of: not read
    write_file(tmp_path, "cloud_agent", "2026-01-01", agents, tenant="other")
    bad = tmp_path / "inventory" / "tenant=acme" / "source=scanner" / "date=2026-01-03"
    bad.mkdir(parents=True)
    (bad / "broken.csv.gz").write_bytes(b"not gzip at all")
    return tmp_path


def test_meter_writes_the_report_and_prints_a_table(tenant: Path) -> None:
    out_file = tenant / "report.json"
    code, out, err = cli(
        "meter",
        "--subscription",
        str(tenant / "sub.yaml"),
        "--inventory",
        str(tenant),
        "--as-of",
        "2026-01-05",
        "--out",
        str(out_file),
    )
    assert code == 0, err
    assert "VMDR" in out and "total QLUs as of 2026-01-05: 10" in out
    document = json.loads(out_file.read_text())
    jsonschema.validate(document["summary"], SCHEMA, format_checker=jsonschema.FormatChecker())
    vmdr = next(p for p in document["summary"]["products"] if p["product"] == "VMDR")
    assert (vmdr["utilization"], vmdr["qlus"], vmdr["components"]) == (
        "4",
        "6",
        {"A1": "3", "A2": "1", "B": "0", "C": "0"},
    )
    assert document["daily"]["VMDR"][:2] == [
        {"day": "2026-01-01", "value": "3"},
        {"day": "2026-01-02", "value": "4"},
    ]
    files = {f["path"]: f for f in document["ingest"]["files"]}
    assert set(files) == {
        "tenant=acme/source=cloud_agent/date=2026-01-01/export.csv",
        "tenant=acme/source=scanner/date=2026-01-02/export.jsonl",
        "tenant=acme/source=scanner/date=2026-01-03/broken.csv.gz",
    }
    assert files["tenant=acme/source=scanner/date=2026-01-03/broken.csv.gz"]["status"] == (
        "unreadable"
    )
    assert document["ingest"]["rejects"] == [
        {
            "path": "tenant=acme/source=scanner/date=2026-01-02/export.jsonl",
            "line": 3,
            "field": "ip",
            "reason": "invalid IP address '10.0.0.999'",
        }
    ]


def test_meter_without_out_writes_json_to_stdout(tenant: Path) -> None:
    code, out, err = cli(
        "meter",
        "--subscription",
        str(tenant / "sub.yaml"),
        "--inventory",
        str(tenant),
        "--as-of",
        "2026-01-01",
        "--quiet",
    )
    assert code == 0
    assert json.loads(out)["summary"]["total_qlus"] == "7.5"
    assert "product" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inventory", "{t}/nowhere", "--as-of", "2026-01-05"], "inventory folder not found"),
        (["--inventory", "{t}", "--as-of", "2026-13-05"], "not a date"),
        (["--inventory", "{t}", "--as-of", "2025-12-01"], "before the subscription start_date"),
    ],
)
def test_meter_errors_are_one_line(tenant: Path, args: list[str], message: str) -> None:
    args = [a.format(t=tenant) for a in args]
    code, _, err = cli("meter", "--subscription", str(tenant / "sub.yaml"), *args)
    assert code != 0
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_subscription_is_one_clear_line(tenant: Path) -> None:
    (tenant / "bad.yaml").write_text(SUBSCRIPTION.replace('"1.5"', '"-2"'))
    code, _, err = cli(
        "meter",
        "--subscription",
        str(tenant / "bad.yaml"),
        "--inventory",
        str(tenant),
        "--as-of",
        "2026-01-05",
    )
    assert code == 2
    assert err.startswith("qlumeter: error: products.VMDR.ratio")
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli(
        "meter",
        "--subscription",
        str(tenant / "missing.yaml"),
        "--inventory",
        str(tenant),
        "--as-of",
        "2026-01-05",
    )
    assert code == 2 and "missing.yaml" in err


def test_validate_lists_every_rejected_row_and_unreadable_file(tenant: Path) -> None:
    code, out, _ = cli("validate", str(tenant / "inventory" / "tenant=acme"))
    assert code == 1
    lines = out.strip().splitlines()
    assert any(
        line.endswith("export.jsonl:3: ip: invalid IP address '10.0.0.999'") for line in lines
    )
    assert any("broken.csv.gz: unreadable:" in line for line in lines)
    good = tenant / "inventory" / "tenant=acme" / "source=cloud_agent"
    assert cli("validate", str(good))[0] == 0


def test_validate_streams_the_rows_and_keeps_none(tmp_path: Path) -> None:
    rows = [
        {"asset_type": "host", "agent_id": f"a{i}", "vuln_count": i % 100 - 1}
        for i in range(20_000)
    ]
    path = write_file(tmp_path, "cloud_agent", "2026-01-01", rows)

    validated = peak_memory(lambda: cli("validate", str(path)))
    with path.open("rb") as stream:  # what holding the rows takes
        held = peak_memory(
            lambda: read_file(parse_key(path.relative_to(tmp_path).as_posix()), stream)
        )
    assert validated * 10 < held
    code, out, err = cli("validate", str(path))
    assert code == 1 and out.count(": vuln_count: must be >= 0, got -1\n") == 200
    assert err.endswith(": 20000 rows, 19800 accepted, 200 rejected\n")


def test_validate_refuses_a_path_outside_the_convention(tmp_path: Path) -> None:
    stray = tmp_path / "notes.csv"
    stray.write_text("asset_type\nhost\n")
    code, out, _ = cli("validate", str(stray))
    assert code == 1 and "unreadable" in out


def test_sample_then_meter_through_the_console_script(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "qlumeter"
    done = subprocess.run(
        [str(exe), "sample", "--out", str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert "sample tenant written" in done.stdout
    done = subprocess.run(
        [
            str(exe),
            "meter",
            "--quiet",
            "--subscription",
            str(tmp_path / "subscription.yaml"),
            "--inventory",
            str(tmp_path),
            "--as-of",
            "2026-02-15",
            "--out",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert len(summary["products"]) == 22
    assert "total QLUs as of 2026-02-15" in done.stdout


def test_run_drives_the_stack_and_equals_meter(tenant: Path) -> None:
    common = [
        "--subscription",
        str(tenant / "sub.yaml"),
        "--inventory",
        str(tenant),
        "--as-of",
        "2026-01-05",
        "--quiet",
    ]
    code, _, err = cli("meter", *common, "--out", str(tenant / "meter.json"))
    assert code == 0, err
    code, out, err = cli(
        "run", *common, "--out", str(tenant / "run.json"), "--html", str(tenant / "run.html")
    )
    assert code == 0, err
    metered = json.loads((tenant / "meter.json").read_text())
    ran = json.loads((tenant / "run.json").read_text())
    products = [
        (p["product"], p["utilization"], p["qlus"], p["components"])
        for p in metered["summary"]["products"]
    ]
    assert [
        (p["product"], p["utilization"], p["qlus"], p["components"])
        for p in ran["summary"]["products"]
    ] == products
    assert ran["daily"] == metered["daily"]
    assert ran["ingest"] == metered["ingest"]
    events = [(m["event_type"], m["as_of"]) for m in ran["messages"]]
    assert ("usage_summary", "2026-01-05") in events
    assert ("ingest_failed", "2026-01-03") in events  # the broken gzip
    for message in ran["messages"]:
        jsonschema.validate(message, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert "<svg" in (tenant / "run.html").read_text()
    assert "total QLUs as of 2026-01-05: 10" in out


def test_explain_names_the_window_entities_rules_and_files(tenant: Path) -> None:
    code, out, err = cli(
        "explain",
        "--subscription",
        str(tenant / "sub.yaml"),
        "--inventory",
        str(tenant),
        "--product",
        "vmdr",
        "--day",
        "2026-01-02",
    )
    assert code == 0, err
    assert "VMDR (Vulnerability Management, Detection & Response) as of 2026-01-02" in out
    assert "utilization 4 x ratio 1.5 = 6 QLUs" in out
    assert "components: A1=3, A2=1, B=0, C=0" in out
    assert "counted per source: cloud_agent=3, scanner=2" in out
    assert "  agent:a0: A1" in out and "  ip:default/10.0.0.5: A2" in out
    assert "tenant=acme/source=scanner/date=2026-01-02/export.jsonl" in out
    code, out, _ = cli(
        "explain",
        "--subscription",
        str(tenant / "sub.yaml"),
        "--inventory",
        str(tenant),
        "--product",
        "CSAM",
        "--day",
        "2026-01-06",
    )
    assert "left out: 4" in out and "no state on the day" in out
    code, _, err = cli(
        "explain",
        "--subscription",
        str(tenant / "sub.yaml"),
        "--inventory",
        str(tenant),
        "--product",
        "EDR",
        "--day",
        "2026-01-02",
    )
    assert code == 2 and "EDR is not in subscription acme" in err


def test_schema_prints_the_row_and_summary_schemas() -> None:
    code, out, _ = cli("schema")
    assert code == 0
    schemas = json.loads(out)
    assert schemas["summary"] == SCHEMA
    assert schemas["summary"]["properties"]["schema_version"] == {"const": "1"}
    row = schemas["row"]
    assert "asset_type" in row["properties"]
    jsonschema.Draft202012Validator.check_schema(row)


def test_demo_runs_the_pipeline_on_a_short_sample(tmp_path: Path) -> None:
    code, out, err = cli("demo", "--out", str(tmp_path), "--days", "3", "--quiet")
    assert code == 0, err
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["summary"]["as_of"] == "2026-01-03"
    assert len(document["summary"]["products"]) == 22
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "total QLUs as of 2026-01-03" in out
