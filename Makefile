# qlumeter: every target installs what it needs into .venv first.
# Python 3.11 to 3.13: `make test PYTHON=python3.13 VENV=.venv-3.13` tests on another one.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The interpreter's version names the stamp: a venv built by another Python is rebuilt.
VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
STAMP := $(VENV)/.installed-$(VERSION)

.PHONY: install test lint format demo bench template-check clean

# A venv is reused only when it runs the same Python and its pip works (an install that
# failed half-way leaves no stamp, and the next run installs again).
$(STAMP): pyproject.toml
	@test -n "$(VERSION)" || { echo "$(PYTHON) not found: install Python 3.11 to 3.13, or pass PYTHON=python3.x" >&2; exit 1; }
	@if [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" != "$(VERSION)" ] \
	    || ! $(BIN)/python -m pip --version >/dev/null 2>&1; then \
	    echo "creating $(VENV) with $(PYTHON) ($(VERSION))"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check layers cli functions tests bench infra
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format layers cli functions tests bench infra
	$(BIN)/ruff check --fix .

demo: $(STAMP)
	$(BIN)/qlumeter demo --out out/demo

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Offline checks of template.yaml: sam validate --lint, cfn-lint on the translated template,
# checkov, sam build, the 250 MB size limit (the tools get their own venvs: infra/check.sh).
template-check:
	bash infra/check.sh

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache .mypy_cache .ruff_cache out

# Reliability (docs/reliability.md): fault injection, at-least-once delivery and ordering,
# reader fuzzing, tenant isolation, then the soak on a local moto server. The moto server
# extra is installed here; atheris too where it installs (its test is skipped otherwise).
.PHONY: reliability
reliability: $(STAMP)
	$(BIN)/python -m pip install --quiet 'moto[server]==5.2.5'
	-$(BIN)/python -m pip install --quiet atheris
	$(BIN)/python -m pytest tests/reliability -q
	$(BIN)/python bench/soak.py
