"""Shared pieces of the conda tests: the real signed package, its sidecar, and policies as YAML files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ATTESTATIONS

SIGNED = "signed-package-2.1.0-hb0f4dca_0.conda"
SIGNED_PATH = ATTESTATIONS / "dists" / SIGNED
SIGNED_SHA256 = "54303491a8418fbed24344b513546182c29b43bf282ceb433af65e2299f9271f"
SIDECAR = ATTESTATIONS / "conda" / f"{SIGNED}.production.sigs"
SIDECAR_SHA256 = "50d02de145d1f71b12cde241a6ba1dba68b9f7ff32eba233e89345927beded69"
SIGNER_IDENTITY = "https://github.com/prefix-dev/sigstore-example/.github/workflows/action.yaml@refs/heads/main"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
TARGET_CHANNEL = "https://prefix.dev/sigstore-example"
CEP27 = "https://schemas.conda.org/attestations-publish-1.schema.json"


def policy_document(
    name: str = "conda-test", *, ecosystems: list[str] | None = None, packages: tuple[str, ...] = ("*",), **spec: Any
) -> dict[str, Any]:
    """A policy document; `spec` holds its rules (`minimumAge`, `attestations`, ...)."""
    match: dict[str, Any] = {"packages": list(packages)}
    if ecosystems is not None:
        match["ecosystems"] = ecosystems
    return {"apiVersion": "gate/v1", "kind": "Policy", "metadata": {"name": name}, "spec": {"match": match, **spec}}


def channel_copy(subdir: Path, package: str, into: Path, **record_changes: object) -> Path:
    """`package` and its `.sigs` sidecar copied from a channel `subdir` into `into` (created), beside a copy
    of the subdir's repodata.json whose record for it has `record_changes`; the copied package's path."""
    into.mkdir(parents=True, exist_ok=True)
    for name in (package, package + ".sigs"):
        shutil.copyfile(subdir / name, into / name)
    repodata = json.loads((subdir / "repodata.json").read_text())
    repodata["packages.conda"][package].update(record_changes)
    (into / "repodata.json").write_text(json.dumps(repodata))
    return into / package


def signer_attestations(**extra: Any) -> dict[str, Any]:
    """`attestations:` requiring the real signed package's publisher."""
    return {"required": True, "signers": [{"identity": SIGNER_IDENTITY, "issuer": GITHUB_ISSUER}], **extra}


def write_policies(directory: Path, *documents: dict[str, Any]) -> Path:
    """Write each document to `<directory>/<name>.yaml` and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for document in documents:
        (directory / f"{document['metadata']['name']}.yaml").write_text(yaml.safe_dump(document))
    return directory
