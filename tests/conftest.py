"""Shared paths: the repository and ../shared/fixtures beside it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
ATTESTATIONS = FIXTURES / "attestations"
