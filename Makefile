# The two commands:
#   make run    set up, migrate, load the demo club into an empty database, serve it
#   make test   set up, lint, run the tests on SQLite, then on PostgreSQL when
#               BUYERSCLUB_TEST_DATABASE_URL names a database the tests may wipe
#
# Both create .venv and install the project (editable, with the dev extra)
# again only when pyproject.toml changed. Debian packages that are missing are
# installed when running as root; otherwise the `sudo apt-get` line is printed.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?=
FLASK := $(BIN)/flask --app buyersclub

# WeasyPrint renders purchase orders, packing lists, invoices and statements with Pango and
# HarfBuzz (libharfbuzz-subset0 makes it about four times faster), in the fonts the package ships.
DEBIAN_PACKAGES = libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
# The PDF tests read PDFs back with poppler's pdftotext and pdftoppm; the browser
# tests drive Debian's chromium (Playwright cannot download one here); the exported journal
# is checked with the real hledger.
test: DEBIAN_PACKAGES += poppler-utils hledger --optional chromium

.PHONY: help run test debian-packages ci-needs-postgres

help:
	@echo "make run    serve the demo club at http://$(HOST):$(PORT)/ (HOST and PORT change it)"
	@echo "make test   lint and run the tests (PostgreSQL too with BUYERSCLUB_TEST_DATABASE_URL)"

$(BIN)/pip:
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || bash scripts/debian-packages python3-venv
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

$(INSTALLED): pyproject.toml | $(BIN)/pip
	$(BIN)/pip install --disable-pip-version-check -e '.[dev]'
	@touch $@

debian-packages:
	@bash scripts/debian-packages $(DEBIAN_PACKAGES)

# Development mode keeps a random secret in instance/; DATABASE_URL picks another database.
# Migrations run here, never at start-up. gunicorn 27+ would open a control socket in
# $HOME, shared by every server on the machine: not wanted for a local trial.
run: export BUYERSCLUB_ENV = development
run: debian-packages $(INSTALLED)
	$(FLASK) db upgrade
	@$(FLASK) demo --if-empty
	@echo
	@echo "Serving http://$(HOST):$(PORT)/ in development mode. Ctrl-C stops it."
	@echo
	@exec $(BIN)/gunicorn --bind '$(HOST):$(PORT)' --workers 2 --access-logfile - \
		$$($(BIN)/gunicorn --help | grep -qe --no-control-socket && echo --no-control-socket) wsgi:app

ci-needs-postgres:
	@if [[ "$${CI:-}" == true && -z "$${BUYERSCLUB_TEST_DATABASE_URL:-}" ]]; then \
		echo "CI=true: the PostgreSQL pass is required, but BUYERSCLUB_TEST_DATABASE_URL is not set."; \
		echo "Point it at a database the tests may wipe, or use .ci/run, which creates one."; \
		exit 1; \
	fi

test: ci-needs-postgres debian-packages $(INSTALLED)
	$(BIN)/ruff check .
	@echo "== Tests on SQLite"
	BUYERSCLUB_TEST_DB=sqlite $(BIN)/pytest $(PYTEST_ARGS)
	@if [[ -n "$${BUYERSCLUB_TEST_DATABASE_URL:-}" ]]; then \
		echo "== Tests on PostgreSQL"; \
		echo "BUYERSCLUB_TEST_DB=postgres $(BIN)/pytest $(PYTEST_ARGS)"; \
		BUYERSCLUB_TEST_DB=postgres $(BIN)/pytest $(PYTEST_ARGS); \
	else \
		echo "PostgreSQL pass skipped: set BUYERSCLUB_TEST_DATABASE_URL=postgresql://USER@HOST/DB"; \
		echo "(a database the tests may wipe) to run the suite on PostgreSQL too."; \
	fi

# Benchmarks (figures printed, not pass/fail): closing a round of 5,000 members x 20 products
# on SQLite and PostgreSQL (BUYERSCLUB_BENCH_DATABASE_URL, or a database bc_bench_close it
# creates on 127.0.0.1), then the subsidy engine, then a round's 1,000 invoice PDFs (1 and 2
# processes against bare WeasyPrint).
.PHONY: bench
bench: $(INSTALLED)
	$(BIN)/python scripts/bench_close.py
	$(BIN)/python scripts/bench_subsidies.py
	$(BIN)/python scripts/bench_subsidy_run.py
	$(BIN)/python scripts/bench_invoice_pdfs.py
