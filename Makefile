# hlsflow from the host: a small virtualenv (invoke, the Docker SDK, PyYAML, pytest and zizmor,
# installed by hash from docker/host-requirements.lock, plus hlsflow itself, editable) drives the
# toolchain image, where the flow itself runs.

PYTHON    ?= python3
VENV      := .venv-host
HOST_LOCK := docker/host-requirements.lock
STAMP     := $(VENV)/.installed
INVOKE    := $(VENV)/bin/invoke
PYTEST    := $(VENV)/bin/pytest
IMAGE     ?= hlsflow:latest
# gitlab-ci-local runs the shipped GitLab CI files for real in the tests (4.55.0 runs on Node 20).
GCL       := build/tools/node_modules/.bin/gitlab-ci-local

.PHONY: image flow test shell clean

# The host lock is compiled for Python 3.11 and newer (pytest needs backports below that).
$(STAMP): $(HOST_LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes -r $(HOST_LOCK)
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(GCL):
	npm install --silent --no-audit --no-fund --prefix build/tools gitlab-ci-local@4.55.0

image: $(STAMP)
	$(INVOKE) build-image

# Builds the image first (seconds when nothing changed), with Docker or Podman alike.
flow: image
	$(INVOKE) flow

# The image is rebuilt first (seconds when nothing changed); then the flow tests run inside it
# and the engine tests on the host (Docker; Podman when installed), with one summary line for both.
test: image $(GCL)
	$(INVOKE) test

shell: $(STAMP)
	$(INVOKE) shell

# Images stay: `docker image rm hlsflow:latest` removes the toolchain image.
clean:
	rm -rf build $(VENV)
