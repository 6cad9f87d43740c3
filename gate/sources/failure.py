"""What can go wrong upstream, as data: `Failure` and `UpstreamError`, apart from the HTTP client
(`gate.sources.http`) so that code that only judges or reports an upstream's failure (the facts services,
`gate check` of local files) does not load an HTTP library."""

from __future__ import annotations

from enum import StrEnum

from gate.errors import GateError
from gate.redact import redact_text


class Failure(StrEnum):
    """What went wrong upstream (a front end decides what that means for its own answer)."""

    UNAVAILABLE = "unavailable"  # no answer for now: unreachable, too slow, broke off (may pass: try again)
    BAD_ANSWER = "bad answer"  # an answer gate will not use: status, size, encoding, format, or a refused host
    NOT_FOUND = "not found"  # the upstream says there is no such project, channel or subdir


class UpstreamError(GateError):
    """The upstream index could not give a usable answer; `failure` says what went wrong."""

    def __init__(self, message: str, failure: Failure = Failure.BAD_ANSWER) -> None:
        super().__init__(redact_text(message))
        self.failure = failure
