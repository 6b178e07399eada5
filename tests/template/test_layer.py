"""The Lambda layer ships the engine and its AWS adapters, nothing of the workbench: no
command line, report, sample tenant or local-run tooling (``cli/qlumeter_cli``), and no
module that imports moto. Held on the layer's source folder (the template's
``ContentUri``) and, when ``sam build`` has run, on what it built."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qlumeter_cli.stack import load_template

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "cli" / "qlumeter_cli"
#: Where ``sam build`` leaves the layer: its default folder, and infra/check.sh's.
BUILDS = [ROOT / ".aws-sam/build", ROOT / "build/template-check/sam-build"]
#: Imports that only the workbench (or the tests) may make.
FORBIDDEN_IMPORTS = {"moto", "qlumeter_cli", "argparse", "selenium"}


def layer_source() -> Path:
    layer = load_template(ROOT / "template.yaml")["Resources"]["EngineLayer"]
    return ROOT / layer["Properties"]["ContentUri"]


def workbench_modules() -> set[str]:
    """The module names of the command line and its tooling."""
    return {p.stem for p in CLI.glob("*.py")} - {"__init__"}


def imported(source: Path) -> set[str]:
    """The modules a file imports, dotted; relative ones with their leading dots."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names |= {module} if node.module else {module + a.name for a in node.names}
    return names


def top_level(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names if not name.startswith(".")}


def problems(package: Path) -> list[str]:
    """What in a built or source ``qlumeter`` package does not belong in the layer."""
    found = []
    for source in sorted(package.rglob("*.py")):
        name = source.relative_to(package.parent).as_posix()
        if source.stem in workbench_modules():
            found.append(f"{name}: a workbench module")
        if bad := top_level(imported(source)) & FORBIDDEN_IMPORTS:
            found.append(f"{name} imports {sorted(bad)}")
    return found


def test_the_workbench_is_known() -> None:
    assert {"main", "report", "sample", "local", "stack", "embedded", "remote", "run"} <= (
        workbench_modules()
    )
    assert "moto" in top_level(imported(CLI / "embedded.py"))  # what the check looks for


def test_the_layer_source_holds_the_engine_only() -> None:
    source = layer_source()
    assert source == ROOT / "layers/engine/"
    assert sorted(p.name for p in source.iterdir() if not p.name.endswith(".egg-info")) == [
        "qlumeter",
        "requirements.txt",
    ]
    assert "moto" not in (source / "requirements.txt").read_text()
    assert problems(source / "qlumeter") == []


def test_the_engine_is_pure_python() -> None:
    """The engine's own modules (not ``pipeline/``) import no AWS library and nothing of
    ``pipeline/``: domain logic runs and is tested without AWS."""
    aws = {"boto3", "botocore", "pynamodb", "aws_lambda_powertools", "moto"}
    for source in sorted((layer_source() / "qlumeter").glob("*.py")):
        names = imported(source)
        assert not top_level(names) & aws, source.name
        pipeline = {n for n in names if n.startswith((".pipeline", "qlumeter.pipeline"))}
        assert not pipeline, (source.name, pipeline)
    # relative imports are seen: the pipeline's of the engine
    assert "..publishing" in imported(layer_source() / "qlumeter/pipeline/usage.py")


@pytest.mark.parametrize("build", BUILDS, ids=[b.relative_to(ROOT).as_posix() for b in BUILDS])
def test_the_built_layer_holds_the_engine_only(build: Path) -> None:
    layer = build / "EngineLayer" / "python"
    if not layer.is_dir():
        pytest.skip(f"no sam build output in {build.relative_to(ROOT)}")
    assert (layer / "qlumeter" / "__init__.py").is_file()
    for absent in ("qlumeter_cli", "moto"):
        assert not (layer / absent).exists(), f"{absent} is in the built layer"
    assert problems(layer / "qlumeter") == []
