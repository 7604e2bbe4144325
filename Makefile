# pieces_service — the project's verbs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install lock browser promtool run test migrate demo-data sql client bench fuzz lint clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

# Exact versions with their hashes from the lock (requirements/, `make lock`), then the
# project itself without resolving anything more.
$(STAMP): setup.cfg pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

PIP_COMPILE = /tmp/pieces-pip-tools/bin/pip-compile --quiet --generate-hashes --strip-extras \
	--allow-unsafe --no-emit-index-url --no-emit-find-links --no-header --upgrade

lock:  ## Re-pin every dependency to its newest allowed version, with hashes (requirements/*.lock)
	test -x /tmp/pieces-pip-tools/bin/pip-compile || ($(PYTHON) -m venv /tmp/pieces-pip-tools \
		&& /tmp/pieces-pip-tools/bin/pip install --quiet pip-tools)
	$(PIP_COMPILE) -o requirements/service.lock setup.cfg
	$(PIP_COMPILE) --extra dev --extra local --extra otel -o requirements/dev.lock setup.cfg

install: $(STAMP)  ## Create the virtualenv and install the service with its test and local-run tools

browser:  ## Install Debian's chromium, the headless browser of the docs-page test (apt-get)
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

promtool:  ## Install Debian's prometheus for promtool, which checks and unit-tests deploy/prometheus/ (apt-get)
	command -v promtool >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus)

run: $(STAMP)  ## Serve on 127.0.0.1:$PORT (default 8000) with demo data; embedded PostgreSQL unless DATABASE_URL
	$(PY) -m devtools.localrun

test: $(STAMP)  ## Run the whole suite against real PostgreSQL (TEST_DATABASE_URL, else embedded)
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || $(MAKE) --no-print-directory browser \
		|| echo "make test: chromium could not be installed; the docs-page browser test will skip"
	@command -v promtool >/dev/null || ! command -v apt-get >/dev/null || $(MAKE) --no-print-directory promtool \
		|| echo "make test: promtool could not be installed; the alert-rule tests will skip"
	$(PY) -m pytest

migrate: $(STAMP)  ## Apply pending migrations to DATABASE_URL (embedded PostgreSQL if unset); safe to repeat
	$(PY) -m devtools migrate

demo-data: $(STAMP)  ## Load the demo tenants into DATABASE_URL (embedded PostgreSQL if unset); a no-op once loaded
	$(PY) -m devtools demo-data

sql: $(STAMP)  ## Re-render dao/sql/{pieces,sync,hierarchy}.sql from the catalogue (a test fails when stale)
	$(PY) -m pieces_service.dao.render

client: $(STAMP)  ## Generate the typed Python client (openapi-python-client) from the OpenAPI document into build/client/
	$(PY) -m devtools client

bench: $(STAMP)  ## Benchmarks (load generator, floors, report in BENCHMARKS.md); not part of make test
	$(PY) -m bench.run

lint: $(STAMP)  ## Static checks (ruff: pyflakes + pycodestyle rules, settings in pyproject.toml)
	$(PY) -m ruff check .

clean:  ## Remove the virtualenv and local state (embedded database, dev secret)
	rm -rf $(VENV) .local

# Reliability and security proofs beyond `make test` (docs/reliability.md).
.PHONY: fuzz outage pgbouncer-test soak walls fairness failover-test

fuzz: $(STAMP)  ## Long fuzz: schemathesis (PIECES_FUZZ_EXAMPLES per operation) and 2000 isolation examples
	PIECES_LONG_TESTS=1 $(PY) -m pytest -q -s -p no:cacheprovider tests/reliability/test_fuzz.py tests/reliability/test_isolation_properties.py

outage: $(STAMP)  ## Stop and restart a private PostgreSQL under a running gunicorn: 503s, then recovery
	PIECES_OUTAGE_TESTS=1 $(PY) -m pytest -q -s -p no:cacheprovider tests/reliability/test_db_outage.py

pgbouncer-test: $(STAMP)  ## tests/api and a shared-connection tenancy test through PgBouncer (transaction mode)
	command -v pgbouncer >/dev/null || (apt-get update && apt-get install -y pgbouncer)
	PIECES_PGBOUNCER_TESTS=1 $(PY) -m pytest -q -s -p no:cacheprovider tests/reliability/test_pgbouncer.py

failover-test: $(STAMP)  ## Kill the primary under gunicorn on a two-host URL, promote the standby, 3 times: nothing acknowledged lost
	PIECES_FAILOVER_TESTS=1 $(PY) -m pytest -q -s -p no:cacheprovider tests/reliability/test_failover.py

walls: $(STAMP)  ## Break each tenant wall in a scratch copy (one mutation at a time) and show a test of make test fails
	$(PY) -m devtools.break_walls

soak: $(STAMP)  ## Mixed load at concurrency 16 for PIECES_SOAK_SECONDS (default 180): errors, lost rows, RSS
	PIECES_SOAK_TESTS=1 $(PY) -m pytest -q -s -p no:cacheprovider tests/reliability/test_soak.py

fairness: $(STAMP)  ## Issue 21's proofs at full size: slow/stalled exports, list and sync floods, 3x open-loop overload (wrk)
	command -v wrk >/dev/null || ! command -v apt-get >/dev/null || (apt-get update && apt-get install -y wrk)
	PIECES_FAIRNESS_TESTS=1 $(PY) -m pytest -q -s -p no:cacheprovider tests/reliability/test_fairness.py
