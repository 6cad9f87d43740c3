"""Serve a distribution file from upstream only if it is allowed and its bytes are exactly the ones the
policy judged (`deliver`, for both ecosystems' download routes).

The response streams, but the last chunk is held back until the whole body has been hashed: a body
whose sha256 or length differs from what the index promised is cut short (the client sees a broken
download, never a complete wrong file) and reported through `on_mismatch`. Without a known length the
body is spooled and checked before anything is sent.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterator

import requests
from flask import Response, request
from msgspec.structs import replace

from gate.decision import Decision
from gate.evaluate import gate_denial
from gate.facts import Facts
from gate.proxy.app import Gate
from gate.proxy.audit import audit_record
from gate.proxy.decide import record, refusal, text_response, visible

log = logging.getLogger(__name__)
CHUNK = 1 << 16


class IntegrityError(Exception):
    """Upstream bytes differ from the judged file; raised mid-stream to abort the response."""


def _check(digest: hashlib._Hash, received: int, sha256: str, size: int | None) -> str | None:
    if size is not None and received != size:
        return f"expected {size} bytes, upstream sent {received}"
    if digest.hexdigest() != sha256.lower():
        return f"sha256 {digest.hexdigest()} differs from the {sha256} the index promised"
    return None


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
) -> Response:
    """A response with the upstream bytes of `url`, delivered only if they hash to `sha256`."""
    try:
        upstream = session.get(url, stream=True, timeout=timeout)
    except requests.Timeout:
        return text_response(503, f"gate: upstream did not send {filename} within {timeout:g}s")
    except requests.RequestException as err:
        return text_response(502, f"gate: cannot fetch {filename} from upstream: {type(err).__name__}")
    if upstream.status_code != 200:
        upstream.close()
        return text_response(502, f"gate: upstream answered {upstream.status_code} for {filename}")
    announced = upstream.headers.get("Content-Length")
    length = size if size is not None else (int(announced) if announced and announced.isdigit() else None)
    if length is None:
        return _spooled(upstream, filename, sha256, on_mismatch, content_type)

    def body() -> Iterator[bytes]:
        digest = hashlib.sha256()
        received = 0
        pending = b""
        try:
            for chunk in upstream.iter_content(CHUNK):
                digest.update(chunk)
                received += len(chunk)
                if received > length:
                    break
                if pending:
                    yield pending
                pending = chunk
            problem = _check(digest, received, sha256, length)
            if problem is not None:
                on_mismatch(problem)
                raise IntegrityError(f"{filename}: {problem}; download aborted")
            if pending:
                yield pending
        except requests.RequestException as err:
            on_mismatch(f"upstream broke off: {type(err).__name__}")
            raise IntegrityError(f"{filename}: upstream broke off") from err
        finally:
            upstream.close()

    headers = {"Content-Length": str(length), "ETag": f'"{sha256.lower()}"'}
    return Response(body(), headers=headers, content_type=content_type, direct_passthrough=True)


def _spooled(
    upstream: requests.Response, filename: str, sha256: str, on_mismatch: Callable[[str], None],
    content_type: str,
) -> Response:
    spool = tempfile.SpooledTemporaryFile(max_size=32 << 20)  # noqa: SIM115 (closed by the response)
    digest = hashlib.sha256()
    received = 0
    try:
        for chunk in upstream.iter_content(CHUNK):
            digest.update(chunk)
            received += len(chunk)
            spool.write(chunk)
    except requests.RequestException as err:
        spool.close()
        return text_response(502, f"gate: upstream broke off while sending {filename}: {type(err).__name__}")
    finally:
        upstream.close()
    problem = _check(digest, received, sha256, None)
    if problem is not None:
        spool.close()
        on_mismatch(problem)
        return text_response(502, f"gate: upstream bytes of {filename} do not match the index: {problem}")
    spool.seek(0)
    response = Response(iter(lambda: spool.read(CHUNK), b""), content_type=content_type, direct_passthrough=True)
    response.headers["Content-Length"] = str(received)
    response.call_on_close(spool.close)
    return response


def deliver(
    state: Gate, decision: Decision, *, event: str, url: str, filename: str, sha256: str | None, size: int | None,
    content_type: str = "application/octet-stream",
) -> Response:
    """Answer a request for the file `decision` judged (or for a file of it, such as its PEP 658 metadata:
    `filename`, `sha256`, `size`): record the decision; refuse it with reasons when denied; else stream the
    bytes at `url`, never completing a body that differs from `sha256` (HEAD: only its length)."""
    client = request.remote_addr
    record(state, [decision], event=event, client=client, everything=True)
    if not visible(state, decision):
        return refusal(decision)
    if sha256 is None:
        return text_response(404, f"gate: no sha256 to check {filename} against")
    if request.method == "HEAD":
        return Response(headers={"Content-Length": str(size)} if size is not None else {})

    def mismatch(problem: str) -> None:
        log.error("integrity: %s from %s: %s; not delivered", filename, url, problem)
        state.metrics.inc("gate_integrity_failures_total")
        file = replace(decision.facts.file, filename=filename, sha256=sha256)
        denial = gate_denial(Facts(file=file), "gate.integrity", problem)
        state.audit.write([audit_record(denial, event="integrity", client=client, served=False, now=state.now())])

    return stream_verified(
        state.session, url, filename=filename, sha256=sha256, size=size, timeout=state.settings.timeout,
        on_mismatch=mismatch, content_type=content_type,
    )
