"""The engine CLI: ``qlumeter meter``, ``validate`` and ``sample``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def meter_args(tenant: Path, *more: str, as_of: str = "2026-01-05") -> list[str]:
    args = ["--subscription", str(tenant / "sub.yaml"), "--inventory", str(tenant)]
    return ["meter", *args, "--as-of", as_of, *more]


def test_meter_writes_the_report_and_prints_a_table(tenant: Path) -> None:
    out_file = tenant / "report.json"
    code, out, err = cli(*meter_args(tenant, "--out", str(out_file)))
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
        (["--inventory", "{t}", "--as-of", "2026-13-05"], "not a day: '2026-13-05'"),
        (["--inventory", "{t}", "--as-of", "20260105"], "(expected YYYY-MM-DD"),
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


# --- a new user's mistakes are told, in one line, before any number ---


MISSPELLED = "asset_type,agent_id,Status,module,vulns\nhost,r1,retired,vmdr,3\nhost,r2,,vmdr,1\n"


def test_misspelled_columns_are_told_on_the_terminal_report_and_summary(tenant: Path) -> None:
    folder = tenant / "inventory" / "tenant=acme" / "source=cloud_agent" / "date=2026-01-05"
    folder.mkdir(parents=True)
    (folder / "retired.csv").write_text(MISSPELLED)
    out_file, html = tenant / "r.json", tenant / "r.html"
    code, out, err = cli(*meter_args(tenant, "--out", str(out_file), "--html", str(html)))
    assert code == 0, err
    key = "tenant=acme/source=cloud_agent/date=2026-01-05/retired.csv"
    told = (
        f"warning: {key}: unknown columns ignored: Status (did you mean `status`?), module "
        "(did you mean `modules`?), vulns (did you mean `vuln_count`?)"
    )
    assert told in err.splitlines()
    document = json.loads(out_file.read_text())
    (entry,) = [f for f in document["ingest"]["files"] if f["path"] == key]
    assert entry["warnings"] == [told.split(": ", 2)[2]]
    (alert,) = [a for a in document["summary"]["alerts"] if a["type"] == "data_warning"]
    assert (alert["day"], alert["count"], alert["sample"][0]["path"]) == ("2026-01-05", 1, key)
    assert "alert: 1 files of 2026-01-05 have unknown columns or keys" in out
    page = html.read_text()
    assert page.index("Data problems") < page.index('id="products"')
    assert "did you mean `status`?" in page[: page.index('id="products"')]
    # --strict refuses the file: it does not count, and the run exits 1
    code, out, err = cli(*meter_args(tenant, "--out", str(out_file), "--strict"))
    assert code == 1
    assert f"unreadable: {key}: refused (strict): unknown columns ignored: Status" in err
    strict = json.loads(out_file.read_text())
    (entry,) = [f for f in strict["ingest"]["files"] if f["path"] == key]
    assert (entry["status"], entry["rows"]) == ("unreadable", 0)


def test_unreadable_files_are_named_with_their_reason_on_the_terminal(tenant: Path) -> None:
    code, _, err = cli(*meter_args(tenant, "--out", str(tenant / "r.json")))
    assert code == 0
    broken = "tenant=acme/source=scanner/date=2026-01-03/broken.csv.gz"
    lines = err.splitlines()
    assert any(line.startswith(f"{broken}: unreadable: invalid gzip file") for line in lines)
    assert not any(line.startswith(f"{broken}: 0 accepted") for line in lines)
    assert any(line.startswith(f"unreadable: {broken}: invalid gzip file") for line in lines)
    quiet = cli(*meter_args(tenant, "--out", str(tenant / "r.json"), "--quiet"))[2]
    assert quiet.splitlines() == [
        "source cloud_agent: no readable file since 2026-01-01 (4 days missing): check its "
        "exporter",
        f"unreadable: {broken}: invalid gzip file: Not a gzipped file (b'no')",
    ]


def test_a_dead_exporter_is_an_alert_in_the_table_and_the_report(tenant: Path) -> None:
    code, out, err = cli(*meter_args(tenant, "--out", str(tenant / "r.json"), as_of="2026-03-01"))
    assert code == 0
    told = [
        f"source {source}: no readable file since {last} ({days} days missing): check its exporter"
        for source, last, days in (("cloud_agent", "2026-01-01", 59), ("scanner", "2026-01-09", 51))
    ]
    assert err.splitlines()[-3:-1] == told  # then the unreadable file
    assert [f"alert: {line}" for line in told] == out.splitlines()[-3:-1]
    alerts = json.loads((tenant / "r.json").read_text())["summary"]["alerts"]
    assert [(a["source"], a["last_day"], a["days_missing"]) for a in alerts] == [
        ("cloud_agent", "2026-01-01", 59),
        ("scanner", "2026-01-09", 51),
    ]


@pytest.mark.parametrize(
    ("inventory", "subscription_id", "message"),
    [
        ("{t}/inventory/tenant=acme", "acme", "{t}/inventory/tenant=acme is a tenant folder: "
         "pass --inventory {t}/inventory (the folder that holds the tenant= folders)"),
        ("{t}/inventory/tenant=acme/source=scanner", "acme", "{t}/inventory/tenant=acme/"
         "source=scanner is in tenant=acme: pass --inventory {t}/inventory"),
        ("{t}", "Acme", "no files for tenant 'Acme' under {t}; found tenants: acme (4 files), "
         "other (1 files) (the subscription_id must equal the tenant= folder, case included)"),
        ("{t}/flat", "acme", "no tenant= folder under {t}/flat (1 files): lay them out as "
         "{t}/flat/inventory/tenant=<subscription_id>/source=<source>/date=<YYYY-MM-DD>/"),
        ("{t}/empty", "acme", "no files under {t}/empty: expected {t}/empty/inventory/"
         "tenant=<subscription_id>/"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", ["meter", "run", "explain"])
def test_a_run_that_finds_nothing_says_what_it_found(
    tenant: Path, inventory: str, subscription_id: str, message: str, command: str
) -> None:
    (tenant / "flat").mkdir()
    (tenant / "flat" / "export.csv").write_text("asset_type,agent_id\nhost,a1\n")
    (tenant / "empty").mkdir()
    (tenant / "sub2.yaml").write_text(SUBSCRIPTION.replace("acme", subscription_id))
    args = ["--subscription", str(tenant / "sub2.yaml"), "--inventory", inventory.format(t=tenant)]
    if command == "explain":
        args += ["--product", "VMDR", "--day", "2026-01-05"]
    else:
        args += ["--as-of", "2026-01-05", "--out", str(tenant / "r.json")]
    code, out, err = cli(command, *args)
    assert (code, out) == (2, "")
    assert err.startswith("qlumeter: error: " + message.format(t=tenant)), err
    assert len(err.splitlines()) == 1
    assert not (tenant / "r.json").exists()


def test_files_all_after_the_as_of_day_are_not_a_silent_zero(tenant: Path) -> None:
    code, _, err = cli(*meter_args(tenant, as_of="2026-01-01").copy())
    assert code == 0  # the day's file is there
    late = tenant / "late"
    write_file(late, "cloud_agent", "2026-02-01", [{"asset_type": "host", "agent_id": "a"}])
    args = ["--subscription", str(tenant / "sub.yaml"), "--inventory", str(late)]
    code, _, err = cli("meter", *args, "--as-of", "2026-01-05")
    assert code == 2
    assert err == (
        f"qlumeter: error: no file of tenant 'acme' under {late} is dated on or before "
        "2026-01-05 (the first is dated 2026-02-01)\n"
    )


def test_validate_judges_paths_wherever_it_is_typed_from(
    tenant: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tenant / "report.html").write_text("<html></html>")
    monkeypatch.chdir(tenant / "inventory" / "tenant=acme")
    code, out, err = cli("validate", ".")
    assert code == 1  # the bad row and the broken gzip
    assert "source=scanner/date=2026-01-02/export.jsonl:3: ip: invalid IP address" in out
    assert out.splitlines()[-1] == ("4 files, 9 rows, 2 rejected, 1 unreadable, 0 with warnings")
    monkeypatch.chdir(tenant / "inventory" / "tenant=acme" / "source=cloud_agent")
    assert cli("validate", ".") == (
        0,
        "1 files, 3 rows, 0 rejected, 0 unreadable, 0 with warnings\n",
        "date=2026-01-01/export.csv: 3 rows, 3 accepted, 0 rejected\n",
    )
    monkeypatch.chdir(tenant)
    code, out, err = cli("validate", ".")
    assert err.startswith("note: skipped 2 files outside tenant= folders: report.html, sub.yaml\n")
    assert "report.html" not in out and out.splitlines()[-1].startswith("5 files, ")


def test_validate_findings_quiet_and_exit_codes(tenant: Path) -> None:
    folder = tenant / "inventory" / "tenant=acme" / "source=cloud_agent" / "date=2026-01-05"
    folder.mkdir(parents=True)
    (folder / "retired.csv").write_text(MISSPELLED)
    code, out, err = cli("validate", "--quiet", str(folder))
    assert (code, err) == (1, "")
    assert out == (
        f"{folder}/retired.csv: warning: unknown columns ignored: Status (did you mean "
        "`status`?), module (did you mean `modules`?), vulns (did you mean `vuln_count`?)\n"
    )
    code, out, _ = cli("validate", "--quiet", "--strict", str(folder))
    assert code == 1 and out.startswith(f"{folder}/retired.csv: unreadable: refused (strict)")
    good = tenant / "inventory" / "tenant=acme" / "source=cloud_agent" / "date=2026-01-01"
    assert cli("validate", "--quiet", str(good)) == (0, "", "")
    empty = tenant / "nothing"
    (empty / "docs").mkdir(parents=True)
    (empty / "docs" / "readme.txt").write_text("hello")
    code, out, err = cli("validate", str(empty))
    assert code == 1
    assert out == (
        f"no inventory files in {empty}: expected inventory/tenant=<subscription_id>/"
        "source=<source>/date=<YYYY-MM-DD>/<name>.csv\n"
    )
    assert cli("validate", str(tenant / "absent"))[0] == 2
    assert cli("validate")[0] == 2


def test_day_forms_are_one_everywhere(tenant: Path) -> None:
    compact = tenant / "inventory" / "tenant=acme" / "source=scanner" / "date=20260102"
    compact.mkdir(parents=True)
    (compact / "scan.csv").write_text("asset_type,ip\nhost,10.0.0.1\n")
    code, out, _ = cli("validate", str(compact))
    assert code == 1 and "unreadable: invalid date '20260102' (expected YYYY-MM-DD)" in out
    code, _, err = cli(*meter_args(tenant, as_of="20260105"))
    assert code == 2 and "not a day: '20260105' (expected YYYY-MM-DD" in err


def test_the_command_line_speaks_once_and_plainly(tenant: Path, capsys: Any) -> None:
    assert main([]) == 2
    assert "usage: qlumeter" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("qlumeter ")
    for command in ("meter", "run", "validate", "explain", "schema", "demo", "sample"):
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "examples:" in text, command
        if command in ("meter", "run", "explain"):
            assert "the folder above the tenant= folder" in " ".join(text.split())
    run_help = " ".join(cli("run", "--help")[1].split()) or " ".join(
        capsys.readouterr().out.split()
    )
    assert "switch the run to a deployed stack" in run_help
    code, _, err = cli("meter", "--subscription", "x.yaml")
    assert code == 2 and err.count("error") == 1
    assert err == (
        "qlumeter: error: the following arguments are required: --inventory, --as-of "
        "(see 'qlumeter meter --help')\n"
    )
    code, _, err = cli(
        "explain", "--subscription", str(tenant / "sub.yaml"), "--inventory", str(tenant),
        "--product", "VMRD", "--day", "2026-01-02",
    )  # fmt: skip
    assert code == 2 and err.startswith("qlumeter: error: unknown product code 'VMRD'; the codes")
    assert "ETM, CSAM, ETM_ID, VMDR," in err


def test_output_files_are_checked_before_the_work(tenant: Path) -> None:
    for option, target, message in (
        ("--out", tenant / "no" / "r.json", "the folder"),
        ("--html", tenant, "is a folder, not a file"),
    ):
        code, out, err = cli(*meter_args(tenant, option, str(target)))
        assert (code, out) == (2, "")
        assert err.startswith(f"qlumeter: error: {option} {target}: ") and message in err


def test_schema_of_the_subscription_validates_the_fixtures() -> None:
    code, out, _ = cli("schema", "subscription")
    assert code == 0
    schema = json.loads(out)
    assert "snapshot_carry_days" in schema["properties"] and "strict" in schema["properties"]
    jsonschema.validate({"subscription_id": "a", "start_date": "2026-01-01",
                         "products": {"VMDR": {"ratio": "1.5"}}}, schema)  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"subscription_id": "a", "start_date": "2026-01-01",
                             "products": {}, "colour": 1}, schema)  # fmt: skip


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    err = io.StringIO()
    assert main(["schema"], _ClosedPipe(), err) == 141 and err.getvalue() == ""
    exe = Path(sys.executable).parent / "qlumeter"
    subprocess.run([str(exe), "sample", "--out", str(tmp_path)], check=True, capture_output=True)
    args = [str(exe), "meter", "--quiet", "--subscription", str(tmp_path / "subscription.yaml")]
    args += ["--inventory", str(tmp_path), "--as-of", "2026-02-15"]  # ~200 KB: over a pipe's
    done = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" | head -c 10 >/dev/null', "qlumeter", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 141, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr


def test_run_writes_the_report_alone_to_standard_output(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Over a hundred files: the ingest function's metrics overflow Powertools' buffer of
    100 values, which prints them (EMF) however metrics are configured."""
    (tmp_path / "sub.yaml").write_text(SUBSCRIPTION)
    for n in range(105):
        write_file(
            tmp_path,
            "cloud_agent",
            "2026-01-01",
            [{"asset_type": "host", "agent_id": f"a{n}"}],
            name=f"f{n}",
        )
    args = ["--subscription", str(tmp_path / "sub.yaml"), "--inventory", str(tmp_path)]
    assert main(["run", *args, "--as-of", "2026-01-01", "--quiet"]) == 0
    out, err = capfd.readouterr()
    document = json.loads(out)  # nothing else on standard output
    assert document["summary"]["total_qlus"] == "105"
    assert '"_aws"' not in err and "CloudWatchMetrics" not in err
    assert "total QLUs as of 2026-01-01: 105" in err


@pytest.mark.parametrize(
    ("switch", "message"),
    [
        (["--stack-name", "qlumeter-dev"], "no AWS region for the deployed stack: pass --region"),
        (["--region", "eu-west-1"], "no AWS credentials for the deployed stack: pass --profile"),
        (["--profile", "nowhere"], "the deployed stack: The config profile (nowhere) could not"),
    ],
)
def test_a_deployed_stack_without_region_or_credentials_is_one_line(
    tenant: Path, monkeypatch: pytest.MonkeyPatch, switch: list[str], message: str
) -> None:
    """--region alone switches to the deployed stack like the other three options."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tenant / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tenant / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    args = ["--subscription", str(tenant / "sub.yaml"), "--inventory", str(tenant)]
    code, out, err = cli("run", *args, "--as-of", "2026-01-05", *switch)
    assert (code, out) == (2, "")
    assert err.startswith(f"qlumeter: error: {message}") and len(err.splitlines()) == 1, err
