"""Names in request paths, checked before any route sees them: a blueprint's `before_request` hook.

Every value a route takes from the path (a project, a filename, a channel, a subdir, a conda path) has
already been percent-decoded by the server (gunicorn and werkzeug decode `%23`, `%3F`, `%2F`, `%00`), so
`?`, `#`, `/`, `\\`, `%`, control characters, `.`, `..` and empty segments are refused here with 404 and
an audit line (event `bad-path`), before a route can build an upstream URL or look anything up.
"""

from __future__ import annotations

import re

from flask import Response, request

from gate.evaluate import gate_denial
from gate.facts import Ecosystem, Facts, FileFacts, FileKind
from gate.proxy.decide import audit_decisions, text_response
from gate.proxy.state import gate_state
from gate.sources.segments import segment_problem

# PEP 508 names (any spelling: non-normalized names are redirected by the routes)
_PROJECT = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")
RULE = "gate.path"


def path_problem(key: str, value: str) -> str | None:
    """Why the route value `key` = `value` is refused (None: it is not). `rest` (a conda path under a
    subdir) may have several segments, each checked; a `project` must be a PEP 508 name."""
    for segment in value.split("/") if key == "rest" else (value,):
        problem = segment_problem(segment)
        if problem is not None:
            return problem
    if key == "project" and not _PROJECT.fullmatch(value):
        return "not a project name"
    return None


def refuse_bad_paths() -> Response | None:
    """`before_request` hook: 404 (and an audit line) when a path value cannot be a name."""
    values = request.view_args or {}
    for key, value in values.items():
        if not isinstance(value, str):
            continue
        problem = path_problem(key, value)
        if problem is None:
            continue
        ecosystem = Ecosystem.CONDA if request.blueprint == "conda" else Ecosystem.PYPI
        file = FileFacts(ecosystem=ecosystem, name=str(values.get("project", "")), version="",
                         filename=value, kind=FileKind.FILE, sha256="")
        message = f"{key} {value!r} in the request path is refused: {problem}"
        audit_decisions(gate_state(), [gate_denial(Facts(file=file), RULE, message)], event="bad-path",
               client=request.remote_addr, everything=True)
        return text_response(404, f"gate: {message}", **{"Cache-Control": "no-store"})
    return None
