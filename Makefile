# Two commands on a fresh machine (Python 3.11+, Java 17+, Maven):
#   make up     set everything up and run the service (local Kafka, worker, api) in the foreground
#   make test   set everything up and run the whole test suite against a real local Kafka
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: install kafka-jars up test lint unit reliability bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

kafka-jars: install
	$(VENV)/bin/cohorts kafka fetch

up: kafka-jars
	$(VENV)/bin/cohorts up

lint: install
	$(VENV)/bin/ruff check .

test: kafka-jars lint
	$(VENV)/bin/pytest

unit: install
	$(VENV)/bin/pytest tests/unit

# The crash, rebalance, outage and hostile-input scenarios alone; sizes from RELIABILITY_* (docs/reliability.md).
reliability: kafka-jars
	$(VENV)/bin/pytest tests/reliability -m reliability

bench: kafka-jars
	$(PY) -m bench.run_ingest

clean:
	rm -rf $(VENV) deploy/kafka/.cache cohorts-data
