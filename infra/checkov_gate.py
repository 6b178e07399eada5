"""Run checkov on the templates with the skips of infra/checkov-skips.yaml, and only those.

Runs in checkov's virtualenv, and runs checkov twice. First on the templates as they are:
each (check, resource) pair of the skips file must be among the failures (else the skip is
stale). Then on copies where each entry is an inline suppression (``Metadata.checkov.skip``,
the reason as its comment) on its resources: checkov must report no failed check. Also fails
on an entry naming a resource that no template has.

Usage: python infra/checkov_gate.py SKIPS_YAML OUTDIR TEMPLATE_JSON...
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def load_skips(path: Path) -> list[dict[str, Any]]:
    skips = (yaml.safe_load(path.read_text()) or {}).get("skips", [])
    for entry in skips:
        missing = {"id", "resources", "reason"} - set(entry)
        if missing or not str(entry.get("reason", "")).strip():
            raise SystemExit(f"{path}: entry {entry!r} needs id, resources and a reason")
    return skips


def annotate(template: dict[str, Any], skips: list[dict[str, Any]]) -> None:
    """Adds the suppressions to the template's resources, in place."""
    resources = template.get("Resources", {})
    for entry in skips:
        for name in entry["resources"]:
            if name not in resources:
                continue
            meta = resources[name].setdefault("Metadata", {})
            meta.setdefault("checkov", {}).setdefault("skip", []).append(
                {"id": entry["id"], "comment": " ".join(str(entry["reason"]).split())}
            )


def run_checkov(files: list[Path]) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "checkov.main",
        "--framework",
        "cloudformation",
        "--skip-download",
        "--output",
        "json",
        "--compact",
    ]
    for f in files:
        cmd += ["--file", str(f)]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"checkov did not report (exit {proc.returncode})") from None
    if isinstance(report, list):  # one report per framework; here only cloudformation
        report = next(r for r in report if r.get("check_type") == "cloudformation")
    return report


def resource_name(check: dict[str, Any]) -> str:
    return str(check.get("resource", "")).rsplit(".", 1)[-1]


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    skips = load_skips(Path(argv[0]))
    outdir = Path(argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    sources = [Path(a) for a in argv[2:]]
    problems = []

    # 1. The plain templates: what fails without any skip (to find stale skips).
    known: set[str] = set()
    for source in sources:
        known |= set(json.loads(source.read_text()).get("Resources", {}))
    for entry in skips:
        for name in entry["resources"]:
            if name not in known:
                problems.append(f"skip {entry['id']} names {name}, which no template has")
    plain = run_checkov(sources).get("results", {}).get("failed_checks", [])
    findings = {(c["check_id"], resource_name(c)) for c in plain}
    for entry in skips:
        for name in entry["resources"]:
            if name in known and (entry["id"], name) not in findings:
                problems.append(f"skip {entry['id']} on {name} is stale (the check passes)")

    # 2. The templates with the skips as inline suppressions: checkov must fail nothing.
    files = []
    for source in sources:
        template = json.loads(source.read_text())
        annotate(template, skips)
        target = outdir / source.name
        target.write_text(json.dumps(template, indent=1))
        files.append(target)
    report = run_checkov(files)
    results = report.get("results", {})
    summary = report.get("summary", {})
    print(
        f"checkov {summary.get('checkov_version', '?')}: {summary.get('passed', 0)} passed, "
        f"{summary.get('failed', 0)} failed, {summary.get('skipped', 0)} skipped "
        f"({summary.get('resource_count', '?')} resources in {len(files)} templates)"
    )
    for c in results.get("skipped_checks", []):
        print(f"  skipped {c['check_id']} on {c.get('resource')} ({Path(c['file_path']).name})")
    for c in results.get("failed_checks", []):
        problems.append(
            f"FAILED {c['check_id']} {c.get('check_name', '')}: {c.get('resource')} "
            f"({Path(c['file_path']).name})"
        )
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
