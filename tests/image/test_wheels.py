"""The image's wheels on the host: a fresh checkout (a clone, a CI job) takes the wheels an earlier
checkout of the same user downloaded from the shared cache instead of asking pip for them."""

import hashlib
import json
import os
import subprocess
import sys

import pytest


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# download_wheels in a child process: where the shared cache and the wheelhouse are comes from the
# environment (XDG_CACHE_HOME, HLSFLOW_WHEELHOUSE) as a fresh checkout's process reads it at import.
DOWNLOAD = """
import json, sys
from pathlib import Path
from hlsflow.errors import FlowError
from hlsflow.image import wheels
try:
    got = wheels.download_wheels(locks=(Path(sys.argv[1]),))
except FlowError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    print(json.dumps({str(lock): [str(p) for p in paths] for lock, paths in got.items()}))
"""


@pytest.fixture
def cache_and_house(tmp_path):
    cache, house = tmp_path / "cache", tmp_path / "checkout" / "build" / "wheelhouse"
    shared = cache / "hlsflow" / "wheels"
    shared.mkdir(parents=True)
    return shared, house


def download(lock, shared, house) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    # were pip asked, it would find nothing and the build fail
    env.update(XDG_CACHE_HOME=str(shared.parent.parent), HLSFLOW_WHEELHOUSE=str(house), PIP_NO_INDEX="1")
    proc = subprocess.run([sys.executable, "-c", DOWNLOAD, str(lock)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_fresh_checkout_links_the_wheels_the_lock_names(tmp_path, cache_and_house):
    shared, house = cache_and_house
    wanted = shared / "demo-1.0-py3-none-any.whl"
    wanted.write_bytes(b"the wheel the lock names")
    other = shared / "demo-0.9-py3-none-any.whl"
    other.write_bytes(b"a wheel of an older lock")
    lock = tmp_path / "demo.lock"
    lock.write_text(f"demo==1.0 \\\n    --hash=sha256:{_sha(wanted)}\n")

    assert download(lock, shared, house) == {str(lock): [str(house / wanted.name)]}
    assert sorted(p.name for p in house.iterdir()) == [wanted.name]  # no partial file, no other wheel
    assert (house / wanted.name).read_bytes() == b"the wheel the lock names"
    assert other.read_bytes() == b"a wheel of an older lock"  # the cache only grows


def test_a_cached_file_whose_hash_the_lock_does_not_name_is_not_taken(tmp_path, cache_and_house):
    shared, house = cache_and_house
    (shared / "demo-1.0-py3-none-any.whl").write_bytes(b"tampered")
    lock = tmp_path / "demo.lock"
    lock.write_text(f"demo==1.0 \\\n    --hash=sha256:{'0' * 64}\n")
    assert download(lock, shared, house)["error"].startswith("Downloading the image's wheels failed")
    assert list(house.iterdir()) == []
