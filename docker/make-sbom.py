"""Write the image's SBOM (CycloneDX JSON): the BOM `cyclonedx-py environment` made of /opt/venv's
Python packages, with every installed Debian package (dpkg-query) added to it through
cyclonedx-python-lib, checked against the CycloneDX schema before it is written.

Run by docker/Dockerfile's `sbom` stage with the generator's own venv (docker/sbom-requirements.lock),
which never ships: usage `make-sbom.py PYTHON_BOM OUTPUT NAME VERSION`.
"""

import json
import subprocess
import sys
import uuid

# jsonschema checks the syntax of IRI fields (the packages' homepage and other URLs) with
# rfc3987_syntax's grammar parser, 15 ms a URL: 8 s of every image build. Without that module it
# leaves those two formats unchecked and checks all else; tests/image/test_sbom.py validates the
# image's SBOM in full, IRIs included.
sys.modules.setdefault("rfc3987_syntax", None)  # None: its import raises ImportError

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

# Fields of one installed package; the status tells installed ones from removed-with-config ones.
DPKG_FORMAT = "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"


def os_codename() -> str:
    with open("/etc/os-release") as file:
        fields = dict(line.rstrip("\n").split("=", 1) for line in file if "=" in line)
    return fields.get("VERSION_CODENAME", "").strip('"') or "unknown"


def debian_components() -> list[Component]:
    listing = subprocess.run(["dpkg-query", "-W", "-f", DPKG_FORMAT], check=True,
                             capture_output=True, text=True).stdout
    distro = os_codename()
    components = []
    for line in sorted(listing.splitlines()):
        status, name, version, arch = line.split("\t")
        if status.strip() != "ii":
            continue
        purl = PackageURL(type="deb", namespace="debian", name=name, version=version,
                          qualifiers={"arch": arch, "distro": distro})
        components.append(Component(type=ComponentType.LIBRARY, name=name, version=version,
                                    purl=purl, bom_ref=purl.to_string()))
    return components


def main(python_bom: str, output: str, name: str, version: str) -> None:
    with open(python_bom) as file:
        bom = Bom.from_json(json.load(file))  # type: ignore[attr-defined]
    for component in debian_components():
        bom.components.add(component)
    root = Component(type=ComponentType.CONTAINER, name=name, version=version,
                     bom_ref=f"{name}@{version}")
    bom.metadata.component = root
    # The image holds every package: each is a direct dependency of it, so the graph is complete.
    bom.register_dependency(root, list(bom.components))
    # Reproducible: no build time, and a serial number derived from the content alone.
    bom.metadata.timestamp = None
    listing = "\n".join(sorted(str(c.purl) for c in bom.components))
    bom.serial_number = uuid.uuid5(uuid.NAMESPACE_URL, f"{name}@{version}\n{listing}")
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    problem = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if problem is not None:
        sys.exit(f"make-sbom: the SBOM is not valid CycloneDX 1.6: {problem}")
    with open(output, "w") as file:
        file.write(text + "\n")
    kinds = [c.purl.type for c in bom.components if c.purl]
    print(f"make-sbom: {output}: {kinds.count('pypi')} Python and {kinds.count('deb')} Debian "
          "packages")


if __name__ == "__main__":
    main(*sys.argv[1:])
