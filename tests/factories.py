"""Facts for unit tests of the policy side (which is pure, so asserted facts are enough there)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from msgspec.structs import replace

from gate.facts import AttestationFact, Ecosystem, Facts, FileFacts, FileKind, Publisher

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
PUBLISH = "https://docs.pypi.org/attestations/publish/v1"
GITHUB = "https://token.actions.githubusercontent.com"


def file(**changes: Any) -> FileFacts:
    base = FileFacts(
        ecosystem=Ecosystem.PYPI,
        name="sampleproject",
        version="4.0.0",
        filename="sampleproject-4.0.0-py3-none-any.whl",
        kind=FileKind.WHEEL,
        sha256="c23e447ea90d796d1e645c35c4b2de125040add12a845825546f91c93f391b6b",
        size=4661,
        uploaded=NOW - dt.timedelta(days=30),
    )
    return replace(base, **changes)


def attestation(**changes: Any) -> AttestationFact:
    """A verified GitHub trusted-publisher attestation (as the verifier would report it)."""
    base = AttestationFact(
        verified=True,
        source="test",
        predicateType=PUBLISH,
        issuer=GITHUB,
        identity="https://github.com/pypa/sampleproject/.github/workflows/release.yml@refs/heads/main",
        publisher=Publisher(kind="GitHub", repository="pypa/sampleproject", workflow="release.yml"),
    )
    return replace(base, **changes)


def facts(*attestations: AttestationFact, **file_changes: Any) -> Facts:
    return Facts(file=file(**file_changes), attestations=tuple(attestations))
