"""Upstream documents for the scripted-upstream tests: PEP 691 project pages (whole, or row by row) and a
conda repodata, built by hand so a test can point their URLs anywhere."""

from __future__ import annotations

import hashlib
import json
from typing import Any

JSON_V1 = "application/vnd.pypi.simple.v1+json"
OLD = "2020-01-01T00:00:00Z"  # older than any minimum age a test policy sets
OLD_MS = 1577836800000

ALLOW_OLD = """
apiVersion: gate/v1
kind: Policy
metadata: {name: old-enough}
spec:
  mode: enforce
  match: {ecosystems: [pypi, conda]}
  minimumAge: 7d
"""

ATTESTED = """
apiVersion: gate/v1
kind: Policy
metadata: {name: attested}
spec:
  mode: enforce
  match: {ecosystems: [pypi]}
  attestations:
    required: true
    signers:
      - publisher: {kind: GitHub, repository: pypa/sampleproject}
"""


def wheel_name(project: str, version: str = "1.0") -> str:
    return f"{project}-{version}-py3-none-any.whl"


def project_page(project: str, files: list[dict[str, Any]]) -> bytes:
    """A PEP 691 page; each file is `{"filename", "url", "data"}` plus any other keys of a file row."""
    rows = []
    for file in files:
        data = file["data"]
        row = {k: v for k, v in file.items() if k != "data"}
        row.setdefault("hashes", {"sha256": hashlib.sha256(data).hexdigest()})
        row.setdefault("size", len(data))
        row.setdefault("upload-time", OLD)
        rows.append(row)
    return json.dumps({"meta": {"api-version": "1.1"}, "name": project, "files": rows}).encode()


def row(base: str, filename: str, data: bytes, *, size: int | None = None, **extra: Any) -> dict[str, Any]:
    """A page row for `filename` served at `<base>/files/<filename>` (not routed: the test decides how), its
    sha256 that of `data`, uploaded long ago, with a `size` only when given."""
    out = {"filename": filename, "url": f"{base}/files/{filename}",
           "hashes": {"sha256": hashlib.sha256(data).hexdigest()}, "upload-time": OLD, **extra}
    if size is not None:
        out["size"] = size
    return out


def page_headers() -> dict[str, str]:
    return {"Content-Type": JSON_V1}


def repodata(subdir: str, packages: dict[str, bytes], base_url: str | None = None) -> bytes:
    """A repodata.json listing `name-version-build.conda` files with these bytes, indexed long ago (served
    from `base_url` when given, CEP 15)."""
    records = {}
    for filename, data in packages.items():
        name, version, build = filename.removesuffix(".conda").rsplit("-", 2)
        records[filename] = {
            "name": name, "version": version, "build": build, "build_number": 0, "depends": [],
            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "subdir": subdir, "timestamp": OLD_MS,
        }
    info = {"subdir": subdir, **({"base_url": base_url} if base_url else {})}
    return json.dumps({"info": info, "packages": {}, "packages.conda": records}).encode()
