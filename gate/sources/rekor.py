"""`--rekor-url`: look up, in a Rekor v1 transparency log the user opted into, the entries that may record
evidence that came without one (a plain DSSE envelope, a bare `.sig` + `.crt`), as slsa-verifier and cosign
do online. Off by default: gate reaches no log unless told to.

`POST {url}/api/v1/index/retrieve {"hash": "sha256:<hex>"}` gives entry UUIDs (at most MAX_ENTRIES are read);
`GET {url}/api/v1/log/entries/<uuid>` gives each entry with its SignedEntryTimestamp. Every request goes
through the one HTTP client (`gate.sources.http`), to the log's host only, bounded in time and size. The log
is not trusted: each entry is verified by `gate.verify.cosign` like one shipped with the evidence (the SET
by the trusted root's Rekor key, the certificate at the signed time, the body equal to the evidence).
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

from gate.errors import UsageError
from gate.redact import redact
from gate.sources.failure import UpstreamError
from gate.sources.hosts import HostPolicy
from gate.sources.http import HttpClient
from gate.verify.bounded import EvidenceParseError, parse_json
from gate.verify.rekor_set import CheckError, EntryLookupError, SignedEntry

MAX_ENTRIES = 8  # entries read for one digest (a blob signed many times has many; each is a request)
BUDGET = 120.0  # seconds one run may spend waiting for the log in all (each request is also bounded by TIMEOUT)
MAX_ANSWER_BYTES = 256 << 10  # one Rekor answer (an entry is a few kB)
TIMEOUT = 30.0
_UUID = re.compile(r"^[0-9a-f]{64}([0-9a-f]{16})?$")


class RekorLookup:
    """`gate.verify.rekor_set.EntryLookup` over a Rekor v1 API at `url`."""

    def __init__(self, url: str, client: HttpClient | None = None, *, budget: float = BUDGET) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.username:
            raise UsageError(f"--rekor-url must be an http(s) URL of a Rekor server, got {redact(url)!r}")
        self.url = url.rstrip("/")
        self.client = client or HttpClient(None, TIMEOUT, hosts=HostPolicy.for_upstreams([self.url]),
                                           max_bytes=MAX_ANSWER_BYTES)
        # a slow or hostile log costs at most `budget` seconds (and one request's TIMEOUT) in one run, however
        # many pieces of evidence ask it; a digest is asked once (the same envelope may be in two files)
        self.budget = budget
        self._spent = 0.0
        self._asked: dict[str, list[SignedEntry] | EntryLookupError] = {}

    def _json(self, path: str, body: Any = None) -> Any:
        if self._spent >= self.budget:
            raise EntryLookupError(f"the transparency log took {self.budget:g}s in all this run: not asked again")
        url = f"{self.url}{path}"
        start = time.monotonic()
        try:
            with self.client.stream(url, limit=MAX_ANSWER_BYTES, json_body=body) as stream:
                if stream.status != 200:
                    raise EntryLookupError(f"the transparency log answered {stream.status} for {path}")
                data = stream.read()
        finally:
            self._spent += time.monotonic() - start
        try:
            return parse_json(data, "the transparency log's answer")
        except EvidenceParseError as err:
            raise EntryLookupError(str(err)) from None

    def __call__(self, sha256: str) -> list[SignedEntry]:
        """The entries the log indexes under `sha256`; EntryLookupError when it cannot be asked or answers badly."""
        if sha256 not in self._asked:
            try:
                self._asked[sha256] = self._lookup(sha256)
            except EntryLookupError as err:
                self._asked[sha256] = err
        found = self._asked[sha256]
        if isinstance(found, EntryLookupError):
            raise found
        return found

    def _lookup(self, sha256: str) -> list[SignedEntry]:
        try:
            uuids = self._json("/api/v1/index/retrieve", {"hash": f"sha256:{sha256}"})
            if not isinstance(uuids, list) or not all(isinstance(u, str) and _UUID.fullmatch(u) for u in uuids):
                raise EntryLookupError("the transparency log's index answer is not a list of entry UUIDs")
            entries = []
            for uuid in uuids[:MAX_ENTRIES]:
                answer = self._json(f"/api/v1/log/entries/{uuid}")
                entry = answer.get(uuid) if isinstance(answer, dict) and len(answer) == 1 else None
                if not isinstance(entry, dict):
                    raise EntryLookupError(f"the transparency log gave no entry {uuid}")
                verification = entry.get("verification")
                set_ = verification.get("signedEntryTimestamp") if isinstance(verification, dict) else None
                payload = {k: entry.get(k) for k in ("body", "integratedTime", "logIndex", "logID")}
                entries.append(SignedEntry(payload, set_))
            return entries
        except UpstreamError as err:
            raise EntryLookupError(str(err)) from None
        except CheckError as err:
            raise EntryLookupError(f"an entry of the transparency log: {err}") from None
