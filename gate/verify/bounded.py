"""JSON from outsiders (evidence documents, signed statements), parsed within bounds: gate's parsers
(pydantic, sigstore) only ever see a document of bounded size and depth, in UTF-8."""

from __future__ import annotations

import json
from typing import Any

MAX_EVIDENCE_BYTES = 4 << 20  # one evidence document: a few bundles of ~10 kB each
MAX_EVIDENCE_DEPTH = 64  # a Sigstore bundle or PEP 740 provenance nests about 10 deep


class EvidenceParseError(ValueError):
    """An evidence document that is not a JSON document gate will hand to its parsers."""


def _depth(document: Any) -> int:
    """How deep arrays and objects nest in a parsed JSON document (iteratively: no recursion to exhaust)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            values: Any = value.values()
        elif isinstance(value, list):
            values = value
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_EVIDENCE_DEPTH:
            break
        stack.extend((v, depth + 1) for v in values if isinstance(v, dict | list))
    return deepest


def parse_json(data: bytes, what: str = "evidence") -> Any:
    """Parse an outsider's JSON document, bounded before any library sees it: at most MAX_EVIDENCE_BYTES of
    UTF-8, nested at most MAX_EVIDENCE_DEPTH deep; raise EvidenceParseError (never RecursionError,
    MemoryError or UnicodeDecodeError) otherwise."""
    if len(data) > MAX_EVIDENCE_BYTES:
        raise EvidenceParseError(f"{what} is larger than {MAX_EVIDENCE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise EvidenceParseError(f"{what} is not UTF-8: {err.reason} at byte {err.start}") from None
    try:
        document = json.loads(text)
    except RecursionError:  # the C parser's own guard: far deeper than any real document
        raise EvidenceParseError(f"{what} nests deeper than {MAX_EVIDENCE_DEPTH} levels") from None
    except ValueError as err:
        raise EvidenceParseError(f"{what} is not JSON: {err}") from None
    if _depth(document) > MAX_EVIDENCE_DEPTH:
        raise EvidenceParseError(f"{what} nests deeper than {MAX_EVIDENCE_DEPTH} levels")
    return document
