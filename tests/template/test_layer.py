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
    """Top-level names of the modules a file imports (relative imports aside)."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def problems(package: Path) -> list[str]:
    """What in a built or source ``qlumeter`` package does not belong in the layer."""
    found = []
    for source in sorted(package.rglob("*.py")):
        name = source.relative_to(package.parent).as_posix()
        if source.stem in workbench_modules():
            found.append(f"{name}: a workbench module")
        if bad := imported(source) & FORBIDDEN_IMPORTS:
            found.append(f"{name} imports {sorted(bad)}")
    return found


def test_the_workbench_is_known() -> None:
    assert {"main", "report", "sample", "local", "stack", "embedded", "remote", "run"} <= (
        workbench_modules()
    )
    assert "moto" in imported(CLI / "embedded.py")  # what the check looks for is there


def test_the_layer_source_holds_the_engine_only() -> None:
    source = layer_source()
    assert source == ROOT / "layers/engine/"
    assert sorted(p.name for p in source.iterdir() if not p.name.endswith(".egg-info")) == [
        "qlumeter",
        "requirements.txt",
    ]
    assert "moto" not in (source / "requirements.txt").read_text()
    assert problems(source / "qlumeter") == []


@pytest.mark.parametrize("build", BUILDS, ids=[b.relative_to(ROOT).as_posix() for b in BUILDS])
def test_the_built_layer_holds_the_engine_only(build: Path) -> None:
    layer = build / "EngineLayer" / "python"
    if not layer.is_dir():
        pytest.skip(f"no sam build output in {build.relative_to(ROOT)}")
    assert (layer / "qlumeter" / "__init__.py").is_file()
    for absent in ("qlumeter_cli", "moto"):
        assert not (layer / absent).exists(), f"{absent} is in the built layer"
    assert problems(layer / "qlumeter") == []
