"""A loopback stand-in for a Rekor v1 transparency log (a fake: the real log cannot be reached here),
serving recorded entries: `POST /api/v1/index/retrieve` by `sha256:<hex>` and `GET /api/v1/log/entries/<uuid>`,
in Rekor's answer shapes. The entries are real ones taken from the fixtures (a cosign `rekorBundle`, a `.rekor`
file: the body, integratedTime, logIndex, logID and SignedEntryTimestamp Rekor returned when they were
logged); scripted faults (an error status, a redirect, an oversized answer) test the negative paths."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.loopback import LoopbackServer, QuietHandler, serving


def entry_uuid(rekor_bundle: dict[str, Any]) -> str:
    """Rekor's entry UUID: the Merkle leaf hash of the entry body."""
    return hashlib.sha256(b"\x00" + base64.b64decode(rekor_bundle["Payload"]["body"])).hexdigest()


def entry_answer(rekor_bundle: dict[str, Any]) -> dict[str, Any]:
    """`GET /api/v1/log/entries/<uuid>` for a recorded entry (cosign's rekorBundle holds exactly these)."""
    payload = rekor_bundle["Payload"]
    return {entry_uuid(rekor_bundle): {
        "body": payload["body"], "integratedTime": payload["integratedTime"], "logID": payload["logID"],
        "logIndex": payload["logIndex"], "verification": {"signedEntryTimestamp": rekor_bundle["SignedEntryTimestamp"]},
    }}


@dataclass
class RekorLog:
    """The recorded entries, by the digest the index finds them under; and faults to answer with."""

    index: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sha256 hex -> rekorBundles
    status: int = 200  # answer every request with this status instead
    redirect_to: str | None = None
    oversized: bool = False
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, digest: str, rekor_bundle: dict[str, Any]) -> None:
        self.index.setdefault(digest, []).append(rekor_bundle)

    def entries(self) -> dict[str, dict[str, Any]]:
        return {entry_uuid(b): b for bundles in self.index.values() for b in bundles}


class _Handler(QuietHandler):
    server: _Server

    def _send(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(document).encode()
        if self.server.log.oversized:
            body = b'["' + b"0" * (1 << 20) + b'"]'
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fault(self) -> bool:
        log = self.server.log
        with log.lock:
            log.requests.append(f"{self.command} {self.path}")
        if log.redirect_to is not None:
            self._send(307, {}, {"Location": log.redirect_to + self.path})
            return True
        if log.status != 200:
            self._send(log.status, {"code": log.status, "message": "scripted"})
            return True
        return False

    def do_POST(self) -> None:  # noqa: N802 (http.server names it)
        length = int(self.headers.get("Content-Length", "0"))
        query = json.loads(self.rfile.read(length) or b"{}")
        if self._fault():
            return
        if self.path != "/api/v1/index/retrieve":
            self._send(404, {"message": "not found"})
            return
        digest = str(query.get("hash", "")).removeprefix("sha256:")
        self._send(200, [entry_uuid(b) for b in self.server.log.index.get(digest, [])])

    def do_GET(self) -> None:
        if self._fault():
            return
        uuid = self.path.removeprefix("/api/v1/log/entries/")
        bundle = self.server.log.entries().get(uuid)
        if bundle is None:
            self._send(404, {"message": "entry not found"})
            return
        self._send(200, entry_answer(bundle))


class _Server(LoopbackServer):
    def __init__(self, log: RekorLog) -> None:
        super().__init__(_Handler)
        self.log = log


@contextmanager
def rekor_log(log: RekorLog) -> Iterator[_Server]:
    with serving(_Server(log), "rekor-log") as server:
        yield server
