# hlsflow from the host: a small virtualenv (invoke + Docker SDK + pytest, installed by hash from
# docker/host-requirements.lock) drives the toolchain image, where the flow itself runs.

PYTHON    ?= python3
VENV      := .venv-host
HOST_LOCK := docker/host-requirements.lock
STAMP     := $(VENV)/.installed
INVOKE    := $(VENV)/bin/invoke
PYTEST    := $(VENV)/bin/pytest
IMAGE     ?= hlsflow:latest

.PHONY: image flow test shell clean

# The host lock is compiled for Python 3.11 and newer (pytest needs backports below that).
$(STAMP): $(HOST_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes -r $(HOST_LOCK)
	touch $@

image: $(STAMP)
	$(INVOKE) build-image

flow: $(STAMP)
	docker image inspect $(IMAGE) >/dev/null 2>&1 || $(MAKE) image
	$(INVOKE) flow

# The image is rebuilt first (seconds when nothing changed); then the flow tests run inside it
# and the image tests on the host, with one summary line for both.
test: image
	$(INVOKE) test

shell: $(STAMP)
	$(INVOKE) shell

# Images stay: `docker image rm hlsflow:latest` removes the toolchain image.
clean:
	rm -rf build $(VENV)
