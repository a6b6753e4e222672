# samizdat: `make run` starts a hub, `make test` runs every test. Both install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TESTSTAMP := $(VENV)/.installed-test
JSDIR  := tests/js
HOST   ?= 127.0.0.1
PORT   ?= 7447
DATA   ?= data

.PHONY: install install-test run test lint bench bench-sync bench-bundle clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

install: $(STAMP)

$(TESTSTAMP): $(STAMP) pyproject.toml $(JSDIR)/package.json $(JSDIR)/package-lock.json
	$(PIP) install --quiet -e '.[test]'
	cd $(JSDIR) && npm ci --no-audit --no-fund --loglevel=error
	command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	touch $@

install-test: $(TESTSTAMP)

run: $(STAMP)
	$(VENV)/bin/samizdat serve --data $(DATA) --host $(HOST) --port $(PORT)

lint: $(TESTSTAMP)
	$(VENV)/bin/ruff check .

test: $(TESTSTAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

bench: $(TESTSTAMP)
	$(PY) bench/relay_bench.py
	$(PY) bench/sync_bench.py
	$(PY) bench/bundle_bench.py

bench-sync: $(TESTSTAMP)
	$(PY) bench/sync_bench.py

bench-bundle: $(TESTSTAMP)
	$(PY) bench/bundle_bench.py

clean:
	rm -rf $(VENV) $(JSDIR)/node_modules .pytest_cache .ruff_cache
