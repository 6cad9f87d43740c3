"""A file an installer is about to install, as a pip report, a pylock.toml or a resolved requirements file
names it: what the document says, claims included (`gate.preinstall` finds the facts)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class PlannedFile:
    """One distribution file named by a report or lock, with what that document says about it."""

    name: str
    version: str
    filename: str
    sha256: str | None
    source: str  # the document that names it
    line: int | None = None
    index: str | None = None  # simple API base URL the document names (a claim: facts come from --index-url)
    uploaded: dt.datetime | None = None  # a lock's `upload-time`: a claim, reported, never `file.uploaded`
    size: int | None = None
    identities: tuple[dict[str, str], ...] = ()  # a lock's `attestation-identities` (PEP 740 publishers)
    direct: bool = False  # a direct URL, VCS or local directory install: no index row exists
