"""What is in the image, listed and comparable.

The image carries an SBOM (CycloneDX JSON) at $HLSFLOW_SBOM, written at build time by CycloneDX's
own tools (docker/make-sbom.py): the Python packages of /opt/venv and the Debian packages, with
exact versions. This module reads it with the standard library alone (the host side has no
CycloneDX library): `image_packages()` for the manifest, and the comparison behind
`hlsflow compare-image` and the Debian lock check of `invoke build-image`.

A package set maps "pypi/<name>" and "deb/<name>" to exact versions; Python names are normalised
as pip does (PEP 503), so "PyYAML" and "pyyaml" are one package.
"""

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from ..console import say, table
from ..errors import FlowError

SBOM_ENV = "HLSFLOW_SBOM"
# The package types listed: what /opt/venv and dpkg hold.
KINDS = ("pypi", "deb")


def sbom_path() -> Path | None:
    """The image's SBOM, or None where there is none (outside the image, an older image)."""
    path = os.environ.get(SBOM_ENV)
    return Path(path) if path and Path(path).is_file() else None


def sbom_text() -> str:
    """The image's SBOM as written at build time; FlowError where there is none."""
    path = sbom_path()
    if path is None:
        raise FlowError("There is no SBOM here: it lives in the toolchain image, so run `hlsflow "
                        "versions --sbom` from the host (or `docker run IMAGE versions --sbom`), "
                        "not natively.")
    return path.read_text()


def write_sbom(target) -> None:
    """`versions --sbom`: the SBOM on stdout (target True) or into the file `target`."""
    text = sbom_text()
    if target is True:
        print(text, end="" if text.endswith("\n") else "\n", flush=True)
        return
    try:
        Path(target).write_text(text)
    except OSError as exc:
        raise FlowError(f"Cannot write the SBOM to {target} ({exc.strerror}): choose a writable "
                        "path.") from exc
    say(f"SBOM of the image written to {target}")


@functools.lru_cache(maxsize=1)
def image_packages() -> dict[str, str] | None:
    """{"pypi/numpy": "1.25.0", "deb/g++-12": "12.2.0-14+deb12u1", ...} of the image this runs
    in; None outside the image (no SBOM)."""
    path = sbom_path()
    if path is None:
        return None
    return packages_of(_load_json(path), str(path))


def packages_of(bom: dict, source: str = "the SBOM") -> dict[str, str]:
    """The package set of a CycloneDX BOM (parsed JSON), from its components' purls."""
    if not isinstance(bom, dict) or bom.get("bomFormat") != "CycloneDX":
        raise FlowError(f"{source} is not a CycloneDX SBOM: give the JSON file `hlsflow versions "
                        "--sbom FILE` writes.")
    found: dict[str, set] = {}
    pending = list(bom.get("components") or [])
    while pending:
        component = pending.pop()
        if not isinstance(component, dict):
            continue
        pending.extend(component.get("components") or [])
        parsed = _parse_purl(component.get("purl"))
        if parsed and parsed[0] in KINDS:
            kind, name, version = parsed
            found.setdefault(f"{kind}/{name}", set()).add(version)
    # A package listed twice at two versions (two architectures) keeps both, in order.
    return {key: ", ".join(sorted(versions)) for key, versions in sorted(found.items())}


def _parse_purl(purl) -> tuple[str, str, str] | None:
    """pkg:TYPE/[NAMESPACE/]NAME@VERSION[?QUALIFIERS][#SUBPATH] -> (type, name, version)."""
    if not isinstance(purl, str) or not purl.startswith("pkg:"):
        return None
    rest = purl[4:].split("#", 1)[0].split("?", 1)[0]
    path, at, version = rest.rpartition("@")
    if not at:
        return None
    kind, _, names = path.partition("/")
    name = unquote(names.rsplit("/", 1)[-1])
    return kind.lower(), normalise(kind.lower(), name), unquote(version)


def normalise(kind: str, name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower() if kind == "pypi" else name.lower()


def load_packages(path) -> dict[str, str]:
    """The package set of a file: an SBOM (`versions --sbom`) or a flow's manifest.json."""
    path = Path(path)
    data = _load_json(path)
    if isinstance(data, dict) and data.get("bomFormat") == "CycloneDX":
        return packages_of(data, str(path))
    image = data.get("image") if isinstance(data, dict) else None
    if isinstance(image, dict) and "packages" in image:
        packages = image["packages"]
        if packages is None:
            raise FlowError(f"{path} records no image packages (it was written outside the image): "
                            "compare a manifest written by a run in the image, or an SBOM.")
        if not isinstance(packages, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in packages.items()):
            raise FlowError(f"{path}: image.packages is not a map of package names to versions: "
                            "give a manifest.json written by hlsflow, or an SBOM.")
        return dict(packages)
    raise FlowError(f"{path} is neither a CycloneDX SBOM nor an hlsflow manifest.json: give a file "
                    "`hlsflow versions --sbom FILE` wrote, or an output folder's manifest.json.")


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FlowError(f"{path} does not exist: give an SBOM or a manifest.json.") from None
    except IsADirectoryError:
        raise FlowError(f"{path} is a folder: give an SBOM or a manifest.json file.") from None
    except OSError as exc:
        raise FlowError(f"Cannot read {path} ({exc.strerror}): give a readable file.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FlowError(f"{path} is not JSON ({exc}): give an SBOM or a manifest.json.") from None


@dataclass(frozen=True)
class Difference:
    """How package set B differs from A: each entry (package, version in A, version in B), with
    None where a side lacks the package."""
    added: tuple
    removed: tuple
    changed: tuple

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def rows(self) -> list:
        return sorted(self.changed + self.added + self.removed)

    def summary(self) -> str:
        parts = [f"{len(self.changed)} changed", f"{len(self.added)} added",
                 f"{len(self.removed)} removed"]
        return ", ".join(p for p in parts if not p.startswith("0 "))

    def names(self) -> str:
        """'g++-12 12.2.0-14 -> 12.2.0-14+deb12u1, foo (new) 1.0, bar 2.0 (gone)'."""
        def one(row):
            name, a, b = row
            name = name.split("/", 1)[1]
            return (f"{name} {a} -> {b}" if a and b else f"{name} {b} (new)" if b
                    else f"{name} {a} (gone)")
        return ", ".join(one(row) for row in self.rows())


def compare(a: dict[str, str], b: dict[str, str]) -> Difference:
    return Difference(
        added=tuple((k, None, b[k]) for k in sorted(b.keys() - a.keys())),
        removed=tuple((k, a[k], None) for k in sorted(a.keys() - b.keys())),
        changed=tuple((k, a[k], b[k]) for k in sorted(a.keys() & b.keys()) if a[k] != b[k]))


def compare_files(a, b) -> int:
    """`hlsflow compare-image A B`: every package that differs, side by side, then one summary
    line; 0 when both list the same packages at the same versions, 1 otherwise."""
    first, second = load_packages(a), load_packages(b)
    diff = compare(first, second)
    if not diff:
        say(f"{a} and {b} list the same {len(first)} packages at the same versions.")
        return 0
    say(table(["package", f"A: {Path(a).name}", f"B: {Path(b).name}"],
              [(name, va or "absent", vb or "absent") for name, va, vb in diff.rows()]))
    count = len(diff.rows())
    say(f"{a} and {b} differ in {count} package{'s' * (count != 1)}: {diff.summary()}.")
    return 1
