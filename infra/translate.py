"""Translate template.yaml (SAM) to plain CloudFormation, offline.

Runs in the SAM CLI's virtualenv (aws-sam-translator and cfn-lint's YAML decoder live
there). Writes two JSON files into the output folder:

- ``template.sam.json``: the SAM template as JSON (CloudFormation tags as intrinsics);
- ``template.cfn.json``: what CloudFormation would run after the SAM transform.

Local ``CodeUri``/``ContentUri`` paths become placeholder S3 URIs (``sam deploy`` uploads
the real artifacts); no AWS call is made: the managed-policy map is empty because the
template names no managed policy by its short name.

Usage: python infra/translate.py TEMPLATE OUTDIR [Name=Value ...]
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # partition lookup, no AWS call

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

ARTIFACT_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


class OfflinePolicyLoader:
    """Stands in for the IAM-backed loader: no managed policy is looked up by name."""

    def load(self) -> dict[str, str]:
        return {}


def _plain(value: Any) -> Any:
    """cfn-lint's decoded nodes (dict/str subclasses with positions) as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def load(path: Path) -> dict[str, Any]:
    template, matches = decode(str(path))
    if matches or template is None:
        for match in matches:
            print(match, file=sys.stderr)
        raise SystemExit(f"cannot parse {path}")
    return _plain(template)


def with_placeholder_artifacts(template: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(template)
    for name, resource in out.get("Resources", {}).items():
        prop = ARTIFACT_PROPERTIES.get(resource.get("Type", ""))
        if prop and isinstance(resource.get("Properties", {}).get(prop), str):
            resource["Properties"][prop] = f"s3://offline-artifacts/{name}.zip"
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, outdir = Path(argv[0]), Path(argv[1])
    parameters = dict(arg.split("=", 1) for arg in argv[2:])
    outdir.mkdir(parents=True, exist_ok=True)
    sam = load(source)
    (outdir / "template.sam.json").write_text(json.dumps(sam, indent=1))
    cfn = transform(with_placeholder_artifacts(sam), parameters, OfflinePolicyLoader())
    (outdir / "template.cfn.json").write_text(json.dumps(_plain(cfn), indent=1))
    kinds: dict[str, int] = {}
    for resource in cfn["Resources"].values():
        kinds[resource["Type"]] = kinds.get(resource["Type"], 0) + 1
    print(f"translated {source}: {len(cfn['Resources'])} CloudFormation resources")
    for kind, count in sorted(kinds.items()):
        print(f"  {count:3d} {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
