"""The image's wheels on the host: a fresh checkout (a clone, a CI job) takes the wheels an earlier
checkout of the same user downloaded from the shared cache instead of asking pip for them."""

import hashlib

import pytest

from hlsflow.errors import FlowError
from hlsflow.image import wheels


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cache_and_house(tmp_path, monkeypatch):
    shared, house = tmp_path / "shared", tmp_path / "checkout" / "build" / "wheelhouse"
    shared.mkdir()
    monkeypatch.setattr(wheels, "SHARED", shared)
    monkeypatch.setattr(wheels, "WHEELHOUSE", house)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # were pip asked, it would find nothing and the build fail
    return shared, house


def test_a_fresh_checkout_links_the_wheels_the_lock_names(tmp_path, cache_and_house):
    shared, house = cache_and_house
    wanted = shared / "demo-1.0-py3-none-any.whl"
    wanted.write_bytes(b"the wheel the lock names")
    other = shared / "demo-0.9-py3-none-any.whl"
    other.write_bytes(b"a wheel of an older lock")
    lock = tmp_path / "demo.lock"
    lock.write_text(f"demo==1.0 \\\n    --hash=sha256:{_sha(wanted)}\n")

    assert wheels.download_wheels(locks=(lock,)) == {lock: [house / wanted.name]}
    assert sorted(p.name for p in house.iterdir()) == [wanted.name]  # no partial file, no other wheel
    assert (house / wanted.name).read_bytes() == b"the wheel the lock names"
    assert other.read_bytes() == b"a wheel of an older lock"  # the cache only grows


def test_a_cached_file_whose_hash_the_lock_does_not_name_is_not_taken(tmp_path, cache_and_house):
    shared, house = cache_and_house
    (shared / "demo-1.0-py3-none-any.whl").write_bytes(b"tampered")
    lock = tmp_path / "demo.lock"
    lock.write_text(f"demo==1.0 \\\n    --hash=sha256:{'0' * 64}\n")
    with pytest.raises(FlowError, match="Downloading the image's wheels failed"):
        wheels.download_wheels(locks=(lock,))
    assert list(house.iterdir()) == []
