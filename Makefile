# kubepulse: `make run` starts everything on this host, `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean system-deps image deploy

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kubepulse up $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench release
	$(BIN)/ruff format --check src tests bench release

typecheck: $(STAMP)
	$(BIN)/mypy

# Debian packages the suite drives for real: tmux (the live view's terminal),
# Prometheus (history kept by a real Prometheus scraping kubepulse), Chromium (the
# dashboard, driven by Playwright), and mmdebstrap, binutils, skopeo and podman (`make
# image` builds the image from Debian packages and strips the wheels' debug information;
# the tests read it back with skopeo and load it with podman), strace (a credential
# plugin's secrets are shown never to reach a file), VictoriaMetrics (Kubernetes service
# discovery of up's watch, recommend over a Prometheus API). kubectl (v1.32), the
# client the end-to-end tests compare against, is not a Debian package: it is expected
# on PATH.
system-deps:
	@command -v tmux >/dev/null && command -v prometheus >/dev/null && \
		command -v chromium >/dev/null && command -v mmdebstrap >/dev/null && \
		command -v strip >/dev/null && command -v skopeo >/dev/null && \
		command -v podman >/dev/null && command -v strace >/dev/null && \
		command -v victoria-metrics >/dev/null || \
		{ apt-get update -qq && \
		apt-get install -y -qq tmux prometheus chromium mmdebstrap binutils skopeo \
		podman strace victoria-metrics; }
	@command -v kubectl >/dev/null || \
		{ echo "make test: the end-to-end tests need kubectl v1.32 on PATH" >&2; exit 1; }

unit: $(STAMP) system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

# dist/kubepulse-VERSION.oci.tar: the container image, from Debian's python3 and the
# locked wheels (release/requirements.lock), with no registry. Needs root (or user
# namespaces) for mmdebstrap and chroot.
image: $(STAMP) system-deps
	$(BIN)/python -m release.image build

# deploy/: the kustomize base and the ha overlay, made by `kubepulse manifests`.
deploy: $(STAMP)
	$(BIN)/python -m release.deploy

bench: $(STAMP)
	$(BIN)/python -m bench.agent_answer

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
