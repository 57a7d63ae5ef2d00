# vecmon: the two quick-start commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-fast lint docs bench bench-recall bench-db screenshots wheel image clean

$(BIN)/vecmon: pyproject.toml
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { \
	  echo "$(PYTHON) cannot create virtualenvs: apt-get install python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/vecmon

## Start an embedded PostgreSQL 18 + pgvector with a sample corpus and monitor it.
## LISTEN=HOST:PORT and PG_PORT=N choose the ports (defaults 127.0.0.1:9765 and the last or a free one).
LISTEN ?= 127.0.0.1:9765
PG_PORT ?=
demo: install
	$(BIN)/vecmon demo --listen $(LISTEN) $(if $(PG_PORT),--pg-port $(PG_PORT))

## Run the whole test suite against real PostgreSQL 18 (embedded) and 15 (Debian), promtool, amtool.
test: install
	$(BIN)/python -m pytest -q

## The unit tier, in seconds: the tests that use no server fixture (tests/conftest.py marks them `unit`).
test-fast: install
	$(BIN)/python -m pytest -q -m unit -p no:cacheprovider

## ruff (rules in pyproject.toml) over the tree, then mypy (strict on monitor/ and collectors/).
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy monitor collectors

## Regenerate docs/metrics.md, docs/config.md and docs/alerts.md from the code (tests/test_docs.py checks them).
docs: install
	$(BIN)/python -m monitor.docs

## The performance figures beside postgres_exporter's, in one run (about 10 minutes): a collection
## cycle, DB time per minute and catalog queries at 10k tables, footprint (RSS, threads, CPU, --version).
bench: install
	$(BIN)/python bench/collect_cycle.py
	$(BIN)/python bench/db_cost.py --reps 5
	$(BIN)/python bench/footprint.py --reps 3

## Recall probe cost and the recall/latency curve over ef_search at 100k x 384 (several minutes).
bench-recall: install
	$(BIN)/python bench/recall_probe.py --rows 100000 --dim 384 --filter "tenant_id = 7"

## The README's pictures: dashboard layouts and the console of a small demo (needs Debian's chromium).
screenshots: install
	$(BIN)/python docs/make_screenshots.py

## What monitoring costs the database, beside postgres_exporter (tables, indexes, DB time per minute).
bench-db: install
	$(BIN)/python bench/db_cost.py
## Build the wheel and its dependencies into dist/wheels and smoke-test a clean install (PostgreSQL 15).
wheel:
	PYTHON=$(PYTHON) deploy/ci/wheel.sh

## Build the container image offline with buildah (IMAGE=localhost/vecmon:latest, BASE_IMAGE=...).
image:
	PYTHON=$(PYTHON) deploy/container/build.sh

clean:
	rm -rf $(VENV) .vecmon-demo build dist *.egg-info
