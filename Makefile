# Free AI Selector — the two commands users need are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find proto -name '*.proto')
export PYTHONPATH := $(CURDIR):$(CURDIR)/gen
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: run test lint format proto install bench-overhead bench-routing bench-statistics bench-retention clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

build/aiselector.pb: $(STAMP) $(PROTOS) scripts/gen_proto.py
	$(PY) scripts/gen_proto.py

proto: build/aiselector.pb

run: proto
	$(PY) -m services.stack

test: proto
	$(PY) -m pytest $(PYTEST_ARGS)

# `buf breaking` compares proto/ with this git ref (a branch, tag or commit).
BUF_AGAINST ?= main

lint: proto
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) scripts/gen_proto.py --buf-against $(BUF_AGAINST)
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf breaking proto --against build/contract-against.binpb

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench-overhead: proto
	$(PY) -m bench.overhead $(BENCH_ARGS)

bench-routing: proto
	$(PY) -m bench.routing $(BENCH_ARGS)

bench-statistics: proto
	$(PY) -m bench.statistics $(BENCH_ARGS)

bench-retention: proto
	$(PY) -m bench.retention $(BENCH_ARGS)

clean:
	rm -rf gen build .pytest_cache .ruff_cache
