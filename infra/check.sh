#!/usr/bin/env bash
# Offline checks of the deployment (no AWS account, no credentials, no container):
#   1. sam validate --lint                       (SAM CLI + cfn-lint on template.yaml)
#   2. aws-sam-translator -> plain CloudFormation, linted by cfn-lint
#   3. checkov on both templates: zero failed checks; skips only from infra/checkov-skips.yaml
#   4. sam build without a container (the functions' runtime, python3.13, on PATH or under
#      pyenv; arm64 wheels fetched from PyPI)
#   5. each function + the layers unzipped under Lambda's 250 MB limit
#   6. tests/template (pytest), when the app's .venv exists
# The SAM CLI (with cfn-lint and the translator) and checkov each get their own virtualenv,
# .venv-sam and .venv-checkov, created here with pinned versions and reused while the pins
# are unchanged. Intermediate files go to build/template-check/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

SAM_CLI_VERSION=1.170.0
SAM_TRANSLATOR_VERSION=1.115.0
CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30
LAMBDA_UNZIPPED_LIMIT=$((250 * 1024 * 1024))

PYTHON=${PYTHON:-python3.11}
OUT=build/template-check
SAM_VENV=.venv-sam
CHECKOV_VENV=.venv-checkov
# Offline: no telemetry, a region for the tools' partition lookups, no credentials needed.
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export BC_SKIP_MAPPING=TRUE

start=$SECONDS
step() { printf '\n== %s (%ss)\n' "$1" "$((SECONDS - start))"; }

command -v "$PYTHON" >/dev/null || { echo "$PYTHON is required (sam build needs it on PATH)" >&2; exit 1; }
# sam build runs the functions' runtime interpreter: python3.13 on PATH, else pyenv's.
BUILD_PATH=$PATH
if ! python3.13 -c '' 2>/dev/null; then
    found=$(ls -d "$(pyenv root 2>/dev/null)"/versions/3.13.*/bin 2>/dev/null | tail -1)
    [[ -n $found ]] || { echo "python3.13 is required for sam build (PATH or pyenv)" >&2; exit 1; }
    BUILD_PATH="$found:$PATH"
fi
mkdir -p "$OUT"

# venv DIR STAMP PACKAGES...: (re)create DIR unless it was built from the same pins.
venv() {
    local dir=$1 stamp=$2 log
    shift 2
    log="$OUT/pip-$(basename "$dir").log"
    if [[ -f "$dir/.pins" && "$(cat "$dir/.pins")" == "$stamp" ]]; then
        echo "$dir: up to date ($stamp)"
        return 0
    fi
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    if ! "$dir/bin/python" -m pip install --quiet "$@" >"$log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -40 >&2
        echo "pip install into $dir failed (full log: $log)" >&2
        return 1
    fi
    echo "$stamp" >"$dir/.pins"
    echo "$dir: installed $stamp"
}

step "tools: $SAM_VENV, $CHECKOV_VENV"
sam_pins="aws-sam-cli==$SAM_CLI_VERSION aws-sam-translator==$SAM_TRANSLATOR_VERSION cfn-lint==$CFN_LINT_VERSION"
checkov_pins="checkov==$CHECKOV_VERSION"
# The two installs are independent: run them side by side.
# shellcheck disable=SC2086
venv "$SAM_VENV" "$sam_pins" $sam_pins &
sam_pid=$!
# shellcheck disable=SC2086
venv "$CHECKOV_VENV" "$checkov_pins" $checkov_pins &
checkov_pid=$!
wait "$sam_pid"
wait "$checkov_pid"
SAM=$SAM_VENV/bin/sam
"$SAM" --version
"$CHECKOV_VENV/bin/checkov" --version

step "sam validate --lint"
"$SAM" validate --lint --template template.yaml --region "$AWS_DEFAULT_REGION"

step "translate to CloudFormation (aws-sam-translator), cfn-lint"
"$SAM_VENV/bin/python" infra/translate.py template.yaml "$OUT"
# W1020 (Fn::Sub without variables) is the translator's doing: it resolves parameters in
# LayerName but keeps the Fn::Sub around the result. Every other finding fails the check.
"$SAM_VENV/bin/cfn-lint" --ignore-checks W1020 -- "$OUT/template.cfn.json"
echo "cfn-lint: no findings"

step "checkov (skips: infra/checkov-skips.yaml)"
"$CHECKOV_VENV/bin/python" infra/checkov_gate.py infra/checkov-skips.yaml "$OUT/checkov" \
    "$OUT/template.sam.json" "$OUT/template.cfn.json"

step "sam build (no container)"
rm -rf "$OUT/sam-build"
PATH="$BUILD_PATH" "$SAM" build --template template.yaml --build-dir "$OUT/sam-build" --parallel

step "function + layer size (unzipped limit $((LAMBDA_UNZIPPED_LIMIT / 1024 / 1024)) MB)"
"$SAM_VENV/bin/python" - "$OUT/sam-build" "$LAMBDA_UNZIPPED_LIMIT" <<'EOF'
import sys
from pathlib import Path

build, limit = Path(sys.argv[1]), int(sys.argv[2])


def size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


# A layer's build folder holds python/; a function's holds its handler module.
folders = [d for d in build.iterdir() if d.is_dir()]
layers = {d.name: size(d) for d in folders if (d / "python").is_dir()}
functions = {d.name: size(d) for d in folders if d.name not in layers}
if not layers or not functions:
    sys.exit(f"unexpected build output in {build}: {[d.name for d in folders]}")
for name, layer in sorted(layers.items()):
    print(f"  layer    {name:16s} {layer / 2**20:8.1f} MB")
failed = False
for name, code in sorted(functions.items()):
    total = code + sum(layers.values())  # every function uses every layer (upper bound)
    ok = total < limit
    failed |= not ok
    print(f"  function {name:16s} {code / 2**20:8.1f} MB + layers = {total / 2**20:6.1f} MB"
          f" {'ok' if ok else 'OVER THE LIMIT'}")
sys.exit(1 if failed else 0)
EOF

step "tests/template (pytest)"
if [[ -x .venv/bin/python ]]; then
    .venv/bin/python -m pytest -q -p no:cacheprovider tests/template
else
    echo "skipped: no .venv (make install creates it; make test runs these tests too)"
fi

step "all template checks passed in $((SECONDS - start))s"
