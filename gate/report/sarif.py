"""SARIF 2.1.0 logs, as GitHub code scanning accepts them, for lint findings and check decisions alike."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gate import __version__
from gate.errors import Level

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/gate-project/gate"


@dataclass(frozen=True)
class SarifRule:
    """A kind of result (`ruleId`), with the level it has unless a result says otherwise."""

    id: str
    description: str
    level: Level = Level.ERROR


@dataclass(frozen=True)
class SarifResult:
    rule_id: str
    level: Level
    message: str
    file: str | None = None
    line: int | None = None


def artifact_uri(file: str) -> str:
    """A path relative to the working directory (the repository root in CI), with forward slashes, as a
    URI reference (`my policies/#1.yaml` -> `my%20policies/%231.yaml`); a name that is not UTF-8 is encoded
    byte for byte (`os.fsencode`), never a UnicodeEncodeError."""
    path = Path(file)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            return path.as_uri()
    return quote(os.fsencode(path.as_posix()), safe="/")


def _location(result: SarifResult) -> dict[str, Any]:
    uri = artifact_uri(result.file or ".")
    artifact = {"uri": uri} if uri.startswith("file:") else {"uri": uri, "uriBaseId": "%SRCROOT%"}
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if result.line is not None and result.line >= 1:
        physical["region"] = {"startLine": result.line}
    return {"physicalLocation": physical}


def sarif_log(tool: str, rules: Sequence[SarifRule], results: Sequence[SarifResult]) -> dict[str, Any]:
    """One run of `tool`; every result's rule is in `rules` (unknown ids are added as they come)."""
    known = {rule.id: rule for rule in rules}
    for result in results:
        known.setdefault(result.rule_id, SarifRule(result.rule_id, result.rule_id, result.level))
    ordered = list(known.values())
    index = {rule.id: i for i, rule in enumerate(ordered)}
    driver = {
        "name": tool,
        "version": __version__,
        "informationUri": INFORMATION_URI,
        "rules": [
            {
                "id": rule.id,
                "shortDescription": {"text": rule.description},
                "defaultConfiguration": {"level": rule.level},
            }
            for rule in ordered
        ],
    }
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
                "results": [
                    {
                        "ruleId": r.rule_id,
                        "ruleIndex": index[r.rule_id],
                        "level": r.level,
                        "message": {"text": r.message},
                        "locations": [_location(r)],
                    }
                    for r in results
                ],
            }
        ],
    }


def sarif_text(tool: str, rules: Sequence[SarifRule], results: Sequence[SarifResult]) -> str:
    return json.dumps(sarif_log(tool, rules, results), indent=2)
