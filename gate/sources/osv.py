"""OSV vulnerability and malicious-package data, loaded from disk, looked up offline (issue 16).

INTERFACE ONLY (being built): `OsvDatabase.load(paths)` reads the OSV bulk export zip (`<ID>.json` at its
root) or a directory tree of OSV JSON records; `lookup(ecosystem, name, version)` gives the records that
apply to that release as `gate.facts.Vulnerability` facts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from gate.errors import GateError
from gate.facts import Ecosystem, Vulnerability


class OsvError(GateError):
    """OSV data that cannot be used: every problem, each as `file: field: why`."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("cannot use the OSV data:\n" + "\n".join(f"  {p}" for p in self.problems))


class OsvDatabase:
    """The records of one load, indexed by (ecosystem, PEP 503-normalised name)."""

    sources: tuple[Path, ...]
    loaded: dt.datetime  # when it was loaded (its age is reported by the proxy)
    newest: dt.datetime | None  # the newest `modified` of any record (how current the data is)

    @classmethod
    def load(cls, paths: Sequence[Path]) -> OsvDatabase:
        raise NotImplementedError("being built in branch osv-data")

    def lookup(self, ecosystem: Ecosystem, name: str, version: str) -> tuple[Vulnerability, ...]:
        raise NotImplementedError("being built in branch osv-data")
