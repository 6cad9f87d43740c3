"""Serve a distribution file from upstream only if it is allowed and its bytes are exactly the ones the
policy judged (`deliver`, for both ecosystems' download routes).

A body of up to READ_AHEAD bytes is read and checked before answering: a mismatch, or an upstream that
broke off, is a 502 with the reason. A longer body streams, but the last chunk is held back until the
whole body has been hashed: a body whose sha256 or length differs from what the index promised is cut
short (the client sees a broken download, never a complete wrong file). Without a known length the body
is spooled (up to `Settings.max_spool` bytes) and checked before anything is sent. Every mismatch is
reported through `on_mismatch` (audited as `integrity`). Files are asked for with `Accept-Encoding:
identity`; if upstream compresses anyway, the decoded bytes are what is checked.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from typing import IO

import requests
from flask import Response, request
from msgspec.structs import replace

from gate.decision import Decision
from gate.evaluate import gate_denial
from gate.facts import Facts
from gate.proxy.audit import audit_record
from gate.proxy.decide import audit_decisions, refusal, text_response, upstream_failure, visible
from gate.proxy.state import Gate
from gate.redact import redact
from gate.sources.failure import UpstreamError
from gate.sources.hosts import HostPolicy
from gate.sources.http import HttpClient, Stream

log = logging.getLogger(__name__)
CHUNK = 1 << 16
READ_AHEAD = 1 << 20  # a body up to this long is checked whole before answering: a mismatch is a clean 502


class IntegrityError(Exception):
    """Upstream bytes differ from the judged file; raised mid-stream to abort the response."""


class _Checked:
    """The sha256 and length of the bytes received so far, against what the index promised."""

    def __init__(self, sha256: str, length: int | None) -> None:
        self.sha256 = sha256.lower()
        self.length = length
        self.digest = hashlib.sha256()
        self.received = 0

    def add(self, chunk: bytes) -> str | None:
        """Count `chunk`; a problem as soon as there are more bytes than promised."""
        self.digest.update(chunk)
        self.received += len(chunk)
        if self.length is not None and self.received > self.length:
            return f"upstream sent more than the {self.length} bytes expected"
        return None

    def problem(self) -> str | None:
        """At the end of the body: why it is not the promised file (None: it is)."""
        if self.length is not None and self.received != self.length:
            return f"expected {self.length} bytes, upstream sent {self.received}"
        if self.digest.hexdigest() != self.sha256:
            return f"sha256 {self.digest.hexdigest()} differs from the {self.sha256} the index promised"
        return None


def _length(upstream: Stream, size: int | None) -> int | None:
    """The promised length: the index's size, else the upstream's Content-Length when it describes the
    decoded bytes (no Content-Encoding: gate asks for identity, but an upstream may compress anyway)."""
    if size is not None:
        return size
    encoding = upstream.headers.get("Content-Encoding", "identity").strip().lower()
    announced = upstream.headers.get("Content-Length", "")
    return int(announced) if encoding in ("", "identity") and announced.isdigit() else None


def stream_verified(
    session: requests.Session,
    url: str,
    *,
    filename: str,
    sha256: str,
    size: int | None,
    timeout: float,
    on_mismatch: Callable[[str], None],
    content_type: str = "application/octet-stream",
    max_spool: int,
    hosts: HostPolicy | None = None,
) -> Response:
    """A response with the upstream bytes of `url` (`HttpClient.stream`: fetched only from `hosts`, every
    redirect checked; `timeout` plus the time the bytes received take at MIN_RATE, however slowly it sends),
    delivered only if they hash to `sha256`.

    A body that ends within READ_AHEAD bytes is read and checked before answering, so a mismatch or an
    upstream that broke off is a 502 with the reason; a longer one streams with its last chunk held back
    until the check passes (else the stream is cut); one of unknown length is spooled, up to `max_spool`
    bytes, and checked before anything is sent."""
    try:  # no byte limit here: the promised length, else `max_spool`, bounds the body
        upstream = HttpClient(session, timeout, hosts=hosts).stream(
            url, {"Accept-Encoding": "identity"}, limit=None, pace=True
        )
    except UpstreamError as err:
        return upstream_failure(err, f"cannot fetch {filename}")
    streaming = False
    try:
        if upstream.status != 200:
            return text_response(502, f"gate: upstream answered {upstream.status} for {filename}")
        response, streaming = _checked_response(
            upstream, filename=filename, sha256=sha256, size=size, on_mismatch=on_mismatch,
            content_type=content_type, max_spool=max_spool,
        )
        return response
    finally:
        if not streaming:  # a streamed body closes it when it ends
            upstream.close()


def _checked_response(
    upstream: Stream, *, filename: str, sha256: str, size: int | None, on_mismatch: Callable[[str], None],
    content_type: str, max_spool: int,
) -> tuple[Response, bool]:
    """The answer for a 200 from upstream, and whether it streams (the body then closes `upstream`)."""
    length = _length(upstream, size)
    checked = _Checked(sha256, length)
    chunks = upstream.chunks()
    head: list[bytes] = []
    complete = False
    try:
        for chunk in chunks:
            head.append(chunk)
            problem = checked.add(chunk)
            if problem is not None:
                return _refused(upstream, filename, problem, on_mismatch), False
            if checked.received >= READ_AHEAD:
                break
        else:
            complete = True
    except UpstreamError as err:
        return _refused(upstream, filename, str(err), on_mismatch), False
    if complete:
        problem = checked.problem()
        if problem is not None:
            return _refused(upstream, filename, problem, on_mismatch), False
        whole = b"".join(head)
        headers = {"Content-Length": str(len(whole)), "ETag": f'"{checked.sha256}"'}
        return Response(whole, headers=headers, content_type=content_type), False
    if length is None:
        spooled = _spooled(upstream, chunks, head, checked, filename=filename, on_mismatch=on_mismatch,
                           content_type=content_type, max_spool=max_spool)
        return spooled, False

    def body() -> Iterator[bytes]:
        pending = head.pop()
        try:
            yield from head
            for chunk in chunks:
                if checked.add(chunk) is not None:
                    break
                yield pending
                pending = chunk
            problem = checked.problem()
            if problem is not None:
                on_mismatch(problem)
                raise IntegrityError(f"{filename}: {problem}; download aborted")
            yield pending
        except UpstreamError as err:
            on_mismatch(str(err))
            raise IntegrityError(f"{filename}: {err}") from err
        finally:
            upstream.close()  # the deadline first, before the connection can serve another request

    headers = {"Content-Length": str(length), "ETag": f'"{checked.sha256}"'}
    return Response(body(), headers=headers, content_type=content_type, direct_passthrough=True), True


def _refused(upstream: Stream, filename: str, problem: str, on_mismatch: Callable[[str], None]) -> Response:
    """The 502 for upstream bytes that are not the promised file (reported through `on_mismatch`)."""
    upstream.close()
    on_mismatch(problem)
    return text_response(502, f"gate: upstream bytes of {filename} do not match the index: {problem}")


def _spooled(
    upstream: Stream, chunks: Iterator[bytes], head: list[bytes], checked: _Checked, *,
    filename: str, on_mismatch: Callable[[str], None], content_type: str, max_spool: int,
) -> Response:
    spool = tempfile.SpooledTemporaryFile(max_size=32 << 20)  # noqa: SIM115 (closed by the response)
    problem = None
    try:
        for chunk in head:
            spool.write(chunk)
        for chunk in chunks:
            checked.add(chunk)
            if checked.received > max_spool:
                problem = f"upstream sent more than {max_spool} bytes and the index gave no size"
                break
            spool.write(chunk)
        problem = problem or checked.problem()
    except UpstreamError as err:
        problem = str(err)
    except OSError as err:  # the spool's disk is full
        spool.close()
        upstream.close()
        log.error("cannot spool %s: %s", filename, err)
        return text_response(503, f"gate: cannot buffer {filename} to check it: {err.strerror}")
    if problem is not None:
        spool.close()
        return _refused(upstream, filename, problem, on_mismatch)
    upstream.close()
    spool.seek(0)
    response = Response(_SpoolBody(spool), content_type=content_type, direct_passthrough=True)
    response.headers["Content-Length"] = str(checked.received)
    return response


class _SpoolBody:
    """A checked spool as a WSGI body. Werkzeug hands a direct-passthrough body to the server as it is (its
    `call_on_close` callbacks never run), and the server calls the body's own `close()` when the response
    ends, sent or not: that closes the spool, so a spooled file never outlives its response."""

    def __init__(self, spool: IO[bytes]) -> None:
        self.spool = spool

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.spool.read(CHUNK):
            yield chunk

    def close(self) -> None:
        self.spool.close()


def audit_lost(state: Gate, filename: str) -> Response | None:
    """In compliance mode (`Settings.audit_required`), the 503 for a file whose audit record this thread
    could not just write; None otherwise (by default the loss is counted and reported, and the file served)."""
    if not state.settings.audit_required or state.audit.written():
        return None
    return text_response(
        503, f"gate: {filename} is not served: its audit record could not be written ({state.audit.error})",
        **{"Retry-After": "30", "Cache-Control": "no-store"},
    )


def deliver(
    state: Gate, decision: Decision, *, event: str, url: str, filename: str, sha256: str | None, size: int | None,
    content_type: str = "application/octet-stream", explain_url: str | None = None,
) -> Response:
    """Answer a request for the file `decision` judged (or for a file of it, such as its PEP 658 metadata:
    `filename`, `sha256`, `size`): record the decision; refuse it with reasons when denied; else stream the
    bytes at `url`, never completing a body that differs from `sha256` (HEAD: only its length)."""
    client = request.remote_addr
    audit_decisions(state, [decision], event=event, client=client, everything=True)
    if not visible(state, decision):
        return refusal(decision, explain_url)
    unrecorded = audit_lost(state, filename)
    if unrecorded is not None:
        return unrecorded
    if sha256 is None:
        return text_response(404, f"gate: no sha256 to check {filename} against")
    if request.method == "HEAD":
        return Response(headers={"Content-Length": str(size)} if size is not None else {})

    def mismatch(problem: str) -> None:
        log.error("integrity: %s from %s: %s; not delivered", filename, redact(url), problem)
        state.metrics.inc("gate_integrity_failures_total")
        file = replace(decision.facts.file, filename=filename, sha256=sha256)
        denial = gate_denial(Facts(file=file), "gate.integrity", problem)
        state.audit.write([audit_record(denial, event="integrity", client=client, served=False, now=state.now())])

    return stream_verified(
        state.session, url, filename=filename, sha256=sha256, size=size, timeout=state.settings.timeout,
        on_mismatch=mismatch, content_type=content_type, max_spool=state.settings.max_spool, hosts=state.hosts,
    )
