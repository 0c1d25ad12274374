# The two commands: `make run` starts the whole studio, `make test` runs lint and the whole suite.
# Both create the virtualenv and install the locked dependencies themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.lock | cut -c1-12)

.PHONY: run test lint format lock install bench bench-quick clean

install: $(STAMP)

$(STAMP): requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	rm -f $(VENV)/.installed-*
	touch $@

run: install
	$(BIN)/python manage.py runstudio

test: install lint
	$(BIN)/python -m studio.management.embedded_redis $(BIN)/python -m pytest $(PYTEST_ARGS)

# Style (ruff), the architecture's one-way arrows (import-linter, contracts in pyproject.toml) and types (mypy).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolve the lock file after editing pyproject.toml.
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

# Every benchmark (benches/all.py; docs/benchmarks.md has the figures): PostgreSQL on DATABASE_URL's server
# (default 127.0.0.1:5432), Redis on REDIS_URL or an embedded one. bench-quick: each on a small load.
bench: install
	$(BIN)/python -m studio.management.embedded_redis $(BIN)/python benches/all.py

bench-quick: install
	$(BIN)/python -m studio.management.embedded_redis $(BIN)/python benches/all.py --quick

clean:
	rm -rf $(VENV)
