"""HTTP to upstream indexes, bounded: where (`HostPolicy`), how long (`Deadline`) and how much (a byte cap).

`HttpClient.stream(url)` is the one way gate reads from an upstream: it follows redirects itself, checking
every hop against the client's `HostPolicy`, reads the body within one total deadline (the client's
`timeout`, moved with the bytes received at MIN_RATE for a download) and decodes `gzip`/`deflate` itself in
bounded pieces, so neither a slow nor a compressed-bomb answer holds a worker or its memory: past the cap
it is an `UpstreamError`. `fetch` reads a document whole through it; the proxy's file downloads and `gate
check`'s explicit-environment downloads stream through it. Validators, freshness and `Fetched` describe an
answer for the caches. Every error is an `UpstreamError` saying what went wrong (`Failure`: unavailable, a
bad answer or a refused host, not found); its message shows URLs redacted.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
import zlib
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urljoin

import requests
import urllib3
from requests.auth import HTTPBasicAuth

from gate.redact import Credential, origin
from gate.sources.deadline import Deadline, deadline_session
from gate.sources.failure import Failure, UpstreamError
from gate.sources.hosts import HostPolicy, HostRefusedError, public_peers_only

T = TypeVar("T")
MAX_PAGE_BYTES = 64 << 20  # a decoded PyPI project page; the largest real ones are a few MB
MAX_FILE_BYTES = 1 << 30  # a distribution file gate must hold whole to hash (no size known before it arrives)
MIN_RATE = 256 << 10  # bytes per second a download must average after its first `timeout` seconds
REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 1 << 16  # most bytes a decoder gives at once
_WIRE = 1 << 18  # bytes read from the connection at once (64 KiB reads made fetching a 125 MB repodata 20% slower)


@dataclass(frozen=True)
class Validators:
    """HTTP cache validators of an upstream response, for a conditional request."""

    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> Validators:
        """The validators a response's headers carry."""
        return cls(headers.get("ETag"), headers.get("Last-Modified"))

    def merged(self, newer: Validators) -> Validators:
        """These validators as a 304 answer carrying `newer` ones updates them (it need not repeat them)."""
        return Validators(newer.etag or self.etag, newer.last_modified or self.last_modified)

    def headers(self) -> dict[str, str]:
        out = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """An upstream answer: the parsed document (a project page, repodata; None when 304 Not Modified),
    validators and freshness."""

    page: T | None
    validators: Validators
    # seconds the answer may be reused without asking again, as its headers say (0: revalidate every time;
    # None: they say nothing, and the cache picks a default)
    max_age: float | None
    latency: float  # seconds the upstream took
    body: bytes = field(default=b"", repr=False)  # the raw answer, to parse again later (empty on 304)
    meta: dict[str, str] = field(default_factory=dict)  # what parsing `body` again needs (content type, URL...)
    no_store: bool = False  # `Cache-Control: no-store`: never reused, never revalidated with its validators


MAX_FRESHNESS = 365 * 86400.0  # an upstream's `max-age=1e400` is a year, not infinity


def _directives(headers: Any) -> dict[str, str]:
    directives = {}
    for part in str(headers.get("Cache-Control", "")).split(","):
        key, _, value = part.strip().partition("=")
        directives[key.lower()] = value.strip('"')
    return directives


def no_store(headers: Any) -> bool:
    """Whether the response forbids storing it (`Cache-Control: no-store`)."""
    return "no-store" in _directives(headers)


def freshness(headers: Any) -> float | None:
    """Seconds a response may be reused per its `Cache-Control` (`no-cache`/`no-store`: 0; `s-maxage`, then
    `max-age`), else its `Expires` (relative to its `Date`; one that cannot be read is in the past: 0), at most
    MAX_FRESHNESS; None when the response says nothing about freshness."""
    directives = _directives(headers)
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    for key in ("s-maxage", "max-age"):
        try:
            value = float(directives[key])
        except (KeyError, ValueError):
            continue
        return min(value, MAX_FRESHNESS) if value > 0 else 0.0  # NaN and negatives: 0
    expires = headers.get("Expires")
    if expires is None:
        return None
    moment, date = _http_date(expires), _http_date(headers.get("Date"))
    if moment is None:
        return 0.0
    seconds = moment - (time.time() if date is None else date)
    return min(seconds, MAX_FRESHNESS) if seconds > 0 else 0.0


def _http_date(text: str | None) -> float | None:
    """An HTTP date as a Unix time, or None when absent or unreadable."""
    if not text:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(str(text))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


@dataclass(frozen=True)
class Answer:
    """An upstream response read whole: its status, final URL (after redirects), headers and decoded body
    (empty unless the status was one the caller reads)."""

    status: int
    url: str
    headers: Mapping[str, str]
    body: bytes = field(default=b"", repr=False)


def open_checked(
    session: requests.Session, url: str, headers: Mapping[str, str] | None, *, hosts: HostPolicy | None,
    deadline: Deadline, timeout: float, json_body: Any = None,
) -> requests.Response:
    """A streamed GET of `url`, redirects followed by hand (at most REDIRECTS), each hop checked against
    `hosts` first; the connections are watched by `deadline`. The caller closes the response. With
    `json_body`, a POST of that JSON instead, whose redirect is not followed (its answer is returned)."""
    for _ in range(REDIRECTS + 1):
        internal_ok = True
        if hosts is not None:
            try:
                internal_ok = hosts.check(url)
            except HostRefusedError as err:
                raise UpstreamError(str(err), Failure.BAD_ANSWER) from err
        per_read = max(min(timeout, deadline.remaining()), 0.001)
        try:
            with deadline.bound(), public_peers_only(not internal_ok):
                if json_body is not None:
                    return session.post(url, json=json_body, headers=dict(headers or {}), timeout=per_read,
                                        stream=True, allow_redirects=False)
                response = session.get(
                    url, headers=dict(headers or {}), timeout=per_read, stream=True, allow_redirects=False
                )
        except requests.RequestException as err:
            raise _broken(url, err, deadline, reading=False) from err
        except HostRefusedError as err:  # its peer (`check_peer`): the name resolved elsewhere than when checked
            raise UpstreamError(str(err), Failure.BAD_ANSWER) from err
        location = response.headers.get("Location")
        if response.status_code not in _REDIRECT_STATUSES or not location:
            return response
        response.close()
        url = urljoin(url, location)
    raise UpstreamError(f"upstream {url} redirected more than {REDIRECTS} times", Failure.BAD_ANSWER)


def _late(url: str, deadline: Deadline) -> UpstreamError:
    return UpstreamError(f"upstream {url} did not answer within {deadline.seconds:g}s", Failure.UNAVAILABLE)


def _broken(url: str, err: BaseException, deadline: Deadline, *, reading: bool) -> UpstreamError:
    if deadline.expired or isinstance(err, requests.Timeout | urllib3.exceptions.TimeoutError):
        return _late(url, deadline)
    if reading:
        return UpstreamError(f"upstream broke off sending {url}: {type(err).__name__}", Failure.UNAVAILABLE)
    return UpstreamError(f"upstream {url} is unreachable: {type(err).__name__}", Failure.UNAVAILABLE)


def _decoder(encoding: str, url: str) -> Any:
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(wbits=47)  # zlib or gzip header, detected
    raise UpstreamError(f"upstream {url} sent content-encoding {encoding!r}, which gate did not ask for")


def _decoded(decoder: Any, data: bytes) -> Iterator[bytes]:
    """`data` decoded in pieces of at most _CHUNK bytes (a compressed bomb never expands in one go)."""
    if decoder is None:
        yield data
        return
    while data and not decoder.eof:
        piece = decoder.decompress(data, _CHUNK)
        data = decoder.unconsumed_tail
        if piece:
            yield piece


def paced(chunks: Iterable[bytes], deadline: Deadline, timeout: float) -> Iterator[bytes]:
    """`chunks` of a download whose deadline moves with the bytes received: `timeout` plus the time they
    take at MIN_RATE, so a large file has the time it needs and a dripping one is cut (moved at most four
    times per `timeout`, and once a second)."""
    received, moved, every = 0, float("-inf"), min(timeout / 4, 1.0)
    for chunk in chunks:
        received += len(chunk)
        now = time.monotonic()
        if now - moved >= every:
            deadline.extend(timeout + received / MIN_RATE)
            moved = now
        yield chunk


class Stream:
    """An upstream answer being read (from `HttpClient.stream`): its status, final URL and headers, and its
    body as `chunks()`: decoded (`gzip`/`deflate`, in bounded pieces), at most `limit` bytes, within the
    request's deadline, every failure an `UpstreamError` (URL redacted). The response and its deadline are
    closed when the body ends or fails, or by `close()` (also on leaving a `with` block), whichever is first."""

    def __init__(
        self, response: requests.Response, url: str, deadline: Deadline, *, limit: int | None, timeout: float,
        pace: bool,
    ) -> None:
        self.response = response
        self.status = response.status_code
        self.url = response.url or url
        self.headers: Mapping[str, str] = response.headers
        self._asked = url
        self._deadline = deadline
        self._limit = limit
        self._timeout = timeout
        self._pace = pace

    def close(self) -> None:
        """Stop watching the connection, then release it (so the deadline never cuts a reused one)."""
        self._deadline.close()
        self.response.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def chunks(self) -> Iterator[bytes]:
        """The decoded body, chunk by chunk; an UpstreamError past `limit` bytes, past the deadline, or when
        the upstream breaks off or sends a corrupt or truncated compressed body."""
        url, deadline, limit = self._asked, self._deadline, self._limit
        received = 0
        try:
            decoder = _decoder(self.headers.get("Content-Encoding", "").strip().lower(), url)
            wire: Iterable[bytes] = self.response.raw.stream(_WIRE, decode_content=False)
            if self._pace:  # the deadline moves with the bytes on the wire
                wire = paced(wire, deadline, self._timeout)
            for data in wire:
                for piece in _decoded(decoder, data):
                    received += len(piece)
                    if limit is not None and received > limit:
                        raise UpstreamError(f"upstream {url} is larger than {limit} bytes (decoded)")
                    yield piece
                if deadline.expired:
                    raise _late(url, deadline)
            if deadline.expired:  # the watchdog's cut ends a body without a length as if it were complete
                raise _late(url, deadline)
            if decoder is not None:
                if not decoder.eof:
                    raise UpstreamError(f"upstream {url} sent a truncated compressed body", Failure.BAD_ANSWER)
                if tail := decoder.flush():  # empty at the end of the stream: all output was taken in bounds
                    yield tail
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError, zlib.error) as err:
            if isinstance(err, zlib.error):
                raise UpstreamError(f"upstream {url} sent a corrupt compressed body: {err}") from err
            raise _broken(url, err, deadline, reading=True) from err
        finally:
            self.close()

    def read(self) -> bytes:
        """The whole decoded body (at most `limit` bytes)."""
        return b"".join(self.chunks())


class HttpClient:
    """What the upstream clients share: a session, a total `timeout` per request, the hosts they may fetch
    from (`hosts`; None: any) and a byte cap for documents (`max_bytes`); safe to share between threads."""

    def __init__(
        self, session: requests.Session | None, timeout: float, *, hosts: HostPolicy | None = None,
        max_bytes: int = MAX_PAGE_BYTES,
    ) -> None:
        self.session = session or deadline_session()
        self.timeout = timeout
        self.hosts = hosts
        self.max_bytes = max_bytes

    def stream(
        self, url: str, headers: Mapping[str, str] | None = None, *, limit: int | None, pace: bool = False,
        json_body: Any = None,
    ) -> Stream:
        """Open a GET of `url` (every redirect hop checked against `hosts`) under one deadline of `timeout`
        seconds, moved with the bytes received at MIN_RATE when `pace` (a download whose size is not known
        beforehand); its body is read from the `Stream`, at most `limit` decoded bytes (None: the caller
        bounds it). The caller closes the stream (reading its body to the end closes it too). `json_body`:
        POST it as JSON instead (a Rekor search), no redirect followed."""
        deadline = Deadline(self.timeout)
        try:
            response = open_checked(self.session, url, headers, hosts=self.hosts, deadline=deadline,
                                    timeout=self.timeout, json_body=json_body)
        except BaseException:
            deadline.close()
            raise
        return Stream(response, url, deadline, limit=limit, timeout=self.timeout, pace=pace)

    def fetch(
        self, url: str, headers: Mapping[str, str] | None = None, *, limit: int | None = None
    ) -> Answer:
        """GET `url` within one deadline; a 200's body is read (decoded, at most `limit` bytes, default
        `max_bytes`)."""
        with self.stream(url, headers, limit=self.max_bytes if limit is None else limit) as stream:
            body = stream.read() if stream.status == 200 else b""
            return Answer(stream.status, stream.url, stream.headers, body)

    def fetch_small(self, url: str, limit: int, *, absent: Container[int], headers: Mapping[str, str] | None = None,
                    ) -> bytes | None:
        """A small file (evidence, channel metadata): None when the status is one of `absent` (there is no
        such file); an UpstreamError for any other status than 200 or a body larger than `limit`."""
        answer = self.fetch(url, headers, limit=limit)
        if answer.status in absent:
            return None
        if answer.status != 200:
            raise UpstreamError(f"upstream answered {answer.status} for {url}")
        return answer.body

    def conditional_fetch(
        self, url: str, validators: Validators | None, headers: dict[str, str] | None = None
    ) -> tuple[Answer | None, Fetched[Any]]:
        """GET `url`, conditional on `validators` when given. A 304 to them is `(None, answer)`, the answer
        complete (`page=None`, `validators` merged with the ones the 304 carries); any other is `(response,
        answer)`, the response (its body read when 200) for the caller to check and the answer without its
        page, body and meta."""
        started = time.perf_counter()
        response = self.fetch(url, {**(headers or {}), **(validators.headers() if validators else {})})
        latency = time.perf_counter() - started
        got = Validators.of(response.headers)
        stated, forbidden = freshness(response.headers), no_store(response.headers)
        if response.status == 304 and validators is not None:
            return None, Fetched(None, validators.merged(got), stated, latency, no_store=forbidden)
        return response, Fetched(None, got, stated, latency, no_store=forbidden)


class OriginAuth(requests.auth.AuthBase):
    """HTTP basic auth for each configured origin, and for no other (a redirect elsewhere gets none)."""

    def __init__(self, credentials: tuple[Credential, ...]) -> None:
        self._by_origin = {where: HTTPBasicAuth(user, password) for where, user, password in credentials}

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        try:
            auth = self._by_origin.get(origin(request.url or ""))
        except ValueError:
            auth = None
        return auth(request) if auth is not None else request

    def __repr__(self) -> str:
        return f"OriginAuth({sorted(host for _, host, _ in self._by_origin)})"
