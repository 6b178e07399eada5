# qlumeter: every target installs what it needs into .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint format demo bench template-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache out

# Reliability (docs/reliability.md): fault injection, at-least-once delivery and ordering,
# reader fuzzing, tenant isolation, then the soak on a local moto server. The moto server
# extra is installed here; atheris too where it installs (its test is skipped otherwise).
.PHONY: reliability
reliability: $(STAMP)
	$(BIN)/python -m pip install --quiet 'moto[server]==5.2.5'
	-$(BIN)/python -m pip install --quiet atheris
	$(BIN)/python -m pytest tests/reliability -q
	$(BIN)/python bench/soak.py
