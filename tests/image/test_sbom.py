"""What is in the image, listed and comparable: the SBOM `hlsflow versions --sbom` gives (CycloneDX,
checked against its schema, with the exact versions of the Python and Debian packages), comparing
two package sets with `hlsflow compare-image`, and the Debian lock check of `invoke build-image`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from hlsflow.image import debian_base, build as image, sbom
from hlsflow.errors import FlowError

DPKG_FIELDS = "${db:Status-Abbrev}\t${Package}\t${Version}\n"
# The venv's distributions as Python itself sees them, for comparison with the SBOM.
DISTRIBUTIONS = ("import importlib.metadata as m, json; "
                 "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")


def hlsflow(*args, cwd, **env):
    """The installed `hlsflow` command as a user runs it on the host."""
    script = Path(sys.executable).parent / "hlsflow"
    environ = {k: v for k, v in os.environ.items() if k not in ("HLSFLOW_NATIVE", "HLSFLOW_IN_IMAGE",
                                                                  "HLSFLOW_SBOM")}
    environ.update(env)
    return subprocess.run([str(script), *map(str, args)], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def image_sbom(run_in_container) -> str:
    result = run_in_container(["versions", "--sbom"])
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def dpkg_packages(run_in_container) -> dict:
    result = run_in_container(["dpkg-query", "-W", "-f", DPKG_FIELDS])
    assert result.exit_code == 0, result.stderr
    return {f"deb/{name}": version for status, name, version in
            (line.split("\t") for line in result.stdout.splitlines()) if status.strip() == "ii"}


def test_sbom_is_valid_cyclonedx(image_sbom):
    bom = json.loads(image_sbom)
    assert bom["bomFormat"] == "CycloneDX"
    problem = JsonStrictValidator(SchemaVersion.from_version(bom["specVersion"])).validate_str(image_sbom)
    assert problem is None, problem


def test_sbom_lists_the_stack_at_exact_versions(image_sbom, dpkg_packages, run_in_container):
    bom = json.loads(image_sbom)
    purls = {c["purl"] for c in bom["components"]}
    for purl in ("pkg:pypi/tensorflow-cpu@2.15.0", "pkg:pypi/numpy@1.25.0", "pkg:pypi/hls4ml@1.3.0"):
        assert purl in purls
    packages = sbom.packages_of(bom)
    # Debian's g++ and the g++-12 it depends on, at the versions dpkg has: so are all the others.
    assert packages["deb/g++"] == dpkg_packages["deb/g++"]
    assert packages["deb/g++-12"] == dpkg_packages["deb/g++-12"]
    g12 = dpkg_packages["deb/g++-12"].replace("+", "%2B")
    assert f"pkg:deb/debian/g%2B%2B-12@{g12}?arch=amd64&distro=bookworm" in purls
    assert {k: v for k, v in packages.items() if k.startswith("deb/")} == dpkg_packages
    # And every Python distribution of /opt/venv, no more and no fewer.
    venv = run_in_container(["/opt/venv/bin/python", "-c", DISTRIBUTIONS], workdir="/tmp")
    assert venv.exit_code == 0, venv.stderr
    installed = {f"pypi/{sbom.normalise('pypi', k)}": v for k, v in json.loads(venv.stdout).items()}
    assert {k: v for k, v in packages.items() if k.startswith("pypi/")} == installed


def test_versions_sbom_written_to_a_host_file(built_image, image_sbom, tmp_path):
    target = tmp_path / "reports" / "image.cdx.json"
    done = hlsflow("versions", "--sbom", "reports/image.cdx.json", cwd=tmp_path, HLSFLOW_IMAGE=built_image)
    assert done.returncode == 0, done.stderr
    assert target.read_text() == image_sbom
    assert target.stat().st_uid == os.getuid()


def test_versions_sbom_outside_the_image(tmp_path):
    done = hlsflow("versions", "--sbom", cwd=tmp_path, HLSFLOW_NATIVE="1")
    assert done.returncode != 0
    assert [line for line in done.stderr.splitlines() if line.strip()] == [
        "ERROR: There is no SBOM here: it lives in the toolchain image, so run `hlsflow versions --sbom` "
        "from the host (or `docker run IMAGE versions --sbom`), not natively."]
    assert sbom.image_packages() is None


def test_compare_image(image_sbom, tmp_path):
    same, other = tmp_path / "a.cdx.json", tmp_path / "b.cdx.json"
    same.write_text(image_sbom)
    bom = json.loads(image_sbom)
    # Test data: the same image with one package at another version.
    numpy = next(c for c in bom["components"] if c["name"] == "numpy")
    numpy["version"], numpy["purl"] = "1.26.4", numpy["purl"].replace("@1.25.0", "@1.26.4")
    other.write_text(json.dumps(bom))

    identical = hlsflow("compare-image", same, same, cwd=tmp_path)
    assert identical.returncode == 0, identical.stderr
    count = len(sbom.load_packages(same))
    assert identical.stdout.splitlines() == [f"{same} and {same} list the same {count} packages at the same versions."]

    differ = hlsflow("compare-image", same, other, cwd=tmp_path)
    assert differ.returncode == 1, differ.stderr
    rows = [line for line in differ.stdout.splitlines() if line.startswith("| ") and "package" not in line]
    assert [cell.strip() for cell in rows[0].strip("|").split("|")] == ["pypi/numpy", "1.25.0", "1.26.4"]
    assert len(rows) == 1
    assert differ.stdout.splitlines()[-1] == f"{same} and {other} differ in 1 package: 1 changed."

    # A flow's manifest.json records the same package set: one of each compares too.
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"image": {"packages": sbom.load_packages(same)}}))
    assert hlsflow("compare-image", manifest, same, cwd=tmp_path).returncode == 0
    assert hlsflow("compare-image", manifest, other, cwd=tmp_path).returncode == 1


def test_compare_image_unreadable_files(image_sbom, tmp_path):
    good = tmp_path / "a.cdx.json"
    good.write_text(image_sbom)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"bomFormat": "SPDX"}')
    (tmp_path / "native.json").write_text('{"image": {"packages": null}}')
    expected = {
        "missing.json": "does not exist",
        "broken.json": "is not JSON",
        "other.json": "is neither a CycloneDX SBOM nor an hlsflow manifest.json",
        "native.json": "records no image packages",
    }
    for name, words in expected.items():
        done = hlsflow("compare-image", good, tmp_path / name, cwd=tmp_path)
        assert done.returncode == 2, (name, done.stdout)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("ERROR: ") and words in lines[0], (name, done.stderr)


def test_committed_debian_lock_is_what_this_machine_builds(docker_client, built_image):
    packages = image.image_sbom_packages(docker_client, built_image)
    assert {k: v for k, v in packages.items() if k.startswith("deb/")} == debian_base.read_debian_lock()


def test_debian_drift_fails_unless_allowed(tmp_path, capsys):
    lock = tmp_path / "debian-packages.lock"
    accepted = {"deb/g++-12": "12.2.0-14", "deb/libc6": "2.36-9+deb12u9", "deb/tzdata": "2024a-0+deb12u1"}
    debian_base.write_debian_lock(accepted, lock)
    debian_base.check_debian_packages(dict(accepted), "the test image", False, lock)

    # A point release: two packages changed, one gone, one new.
    drifted = {"deb/g++-12": "12.2.0-14+deb12u1", "deb/libc6": "2.36-9+deb12u10", "deb/zlib1g": "1:1.2.13"}
    with pytest.raises(FlowError) as failed:
        debian_base.check_debian_packages(drifted, "the test image", False, lock)
    message = str(failed.value)
    for words in ("g++-12 12.2.0-14 -> 12.2.0-14+deb12u1", "libc6 2.36-9+deb12u9 -> 2.36-9+deb12u10",
                  "tzdata 2024a-0+deb12u1 (gone)", "zlib1g 1:1.2.13 (new)", "--allow-drift"):
        assert words in message
    assert debian_base.read_debian_lock(lock) == accepted  # a refused build leaves the lock alone

    debian_base.check_debian_packages(drifted, "the test image", True, lock)
    assert debian_base.read_debian_lock(lock) == drifted
    assert "debian-packages.lock updated" in capsys.readouterr().out
    debian_base.check_debian_packages(drifted, "the test image", False, lock)

    lock.unlink()
    with pytest.raises(FlowError, match="is missing: run `invoke build-image --allow-drift`"):
        debian_base.check_debian_packages(drifted, "the test image", False, lock)
