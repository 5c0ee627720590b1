# kubepulse: `make run` starts everything on this host, `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean system-deps

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kubepulse up $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Debian packages the suite drives for real: tmux (the live view's terminal),
# Prometheus (history kept by a real Prometheus scraping kubepulse) and Chromium (the
# dashboard, driven by Playwright). kubectl (v1.32), the client the end-to-end tests
# compare against, is not a Debian package: it is expected on PATH.
system-deps:
	@command -v tmux >/dev/null && command -v prometheus >/dev/null && \
		command -v chromium >/dev/null && command -v victoria-metrics >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq tmux prometheus chromium victoria-metrics; }
	@command -v kubectl >/dev/null || \
		{ echo "make test: the end-to-end tests need kubectl v1.32 on PATH" >&2; exit 1; }

unit: $(STAMP) system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench.agent_answer

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
