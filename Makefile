# samizdat: `make run` starts a hub, `make test` runs every test. Both install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TESTSTAMP := $(VENV)/.installed-test
JSDIR  := tests/js
WEBSRC := web-src
WEBOUT := src/samizdat/web/static
HOST   ?= 127.0.0.1
PORT   ?= 7447
DATA   ?= data

.PHONY: install install-test run test lint bench bench-sync bench-bundle bench-blobs bench-web bench-receipts bench-observer web web-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

install: $(STAMP)

$(TESTSTAMP): $(STAMP) pyproject.toml $(JSDIR)/package.json $(JSDIR)/package-lock.json
	$(PIP) install --quiet -e '.[test]'
	cd $(JSDIR) && npm ci --no-audit --no-fund --loglevel=error
	{ command -v chromium && command -v certutil; } >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium libnss3-tools; }
	touch $@

install-test: $(TESTSTAMP)

run: $(STAMP)
	$(VENV)/bin/samizdat serve --data $(DATA) --host $(HOST) --port $(PORT)

lint: $(TESTSTAMP)
	$(VENV)/bin/ruff check .

test: $(TESTSTAMP) web-check
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The web app's built files are committed (users never need node); `make web` rebuilds
# them from web-src/ and `make web-check` fails if that changes anything git knows.
web:
	cd $(WEBSRC) && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent

web-check: web
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  if ! git diff --exit-code --stat -- $(WEBOUT) \
	     || [ -n "$$(git ls-files --others --exclude-standard -- $(WEBOUT))" ]; then \
	    git status --short -- $(WEBOUT); \
	    echo "The committed web app in $(WEBOUT) is not what web-src/ builds:" \
	         "run 'make web' and commit the result." >&2; \
	    exit 1; \
	  fi; \
	fi

bench: $(TESTSTAMP)
	$(PY) bench/relay_bench.py
	$(PY) bench/sync_bench.py
	$(PY) bench/bundle_bench.py
	$(PY) bench/blob_bench.py
	$(PY) bench/web_bench.py
	$(PY) bench/receipts_bench.py
	$(PY) bench/observer_bench.py --events 1000000 --media 50000

bench-sync: $(TESTSTAMP)
	$(PY) bench/sync_bench.py

bench-bundle: $(TESTSTAMP)
	$(PY) bench/bundle_bench.py

bench-blobs: $(TESTSTAMP)
	$(PY) bench/blob_bench.py

bench-web: $(TESTSTAMP)
	$(PY) bench/web_bench.py

bench-receipts: $(TESTSTAMP)
	$(PY) bench/receipts_bench.py

bench-observer: $(TESTSTAMP)
	$(PY) bench/observer_bench.py --events 1000000 --media 50000

clean:
	rm -rf $(VENV) $(JSDIR)/node_modules $(WEBSRC)/node_modules .pytest_cache .ruff_cache
