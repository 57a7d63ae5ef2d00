# vecmon: the two quick-start commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test check lint-metrics docs bench clean

$(BIN)/vecmon: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/vecmon

## Start an embedded PostgreSQL 18 + pgvector with a sample corpus and monitor it.
demo: install
	$(BIN)/vecmon demo

## Run the whole test suite against real PostgreSQL 18 (embedded) and 15 (Debian), promtool, amtool.
test: install
	$(BIN)/python -m pytest -q

## Regenerate the metric reference in README.md from the collectors' declarations.
docs: install
	$(BIN)/python -m monitor.docs README.md

bench: install
	$(BIN)/python bench/collect_cycle.py

clean:
	rm -rf $(VENV) .vecmon-demo build *.egg-info
