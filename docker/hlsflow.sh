#!/bin/sh
# `hlsflow` inside the image: the same invoke Program that `pip install .` gives on a host.
# -P: the image's own code runs, never a `hlsflow/` folder that happens to be in the working
# directory (the package is found through PYTHONPATH=/opt/hlsflow).
exec /opt/venv/bin/python -P -m hlsflow "$@"
