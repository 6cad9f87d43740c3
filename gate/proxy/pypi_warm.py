"""The warm path of PyPI project pages: `WarmPages`, a WSGI layer in front of the app and of its upstream
slots, and `rendered_answer`, the answer both it and the route give from a stored rendered page.

A warm request (`GET`/`HEAD /simple/<normalized name>/`, no query string, a page whose upstream copy is fresh
and whose rendering for this client's format, URL root and decision view is current) is answered here from
what the route would answer it from, with the same status, headers and body, counted in the same metrics:
it waits on no upstream, so it needs no upstream slot, and it skips Flask's per-request machinery. Anything
else (a stale page, a page never rendered, a name to redirect or refuse, `?format=`, stale OSV data, a
format nobody offers) goes on to the app unchanged, whose route checks it as before.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name
from werkzeug.datastructures import Accept
from werkzeug.http import parse_accept_header, parse_etags
from werkzeug.wrappers import Request

from gate.memo import MISSING, Memo
from gate.proxy.paths import path_problem
from gate.proxy.pypi_index import RENDERED, PypiIndex
from gate.proxy.pypi_render import negotiate
from gate.proxy.state import Gate

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Headers = list[tuple[str, str]]
Answer = tuple[int, Headers, bytes]  # status code, headers (no Content-Length), body
ENDPOINT = "pypi.project_page"  # the route's endpoint, as `gate_requests_total` counts it
PREFIX = "/simple/"
STATUS = {200: "200 OK", 304: "304 NOT MODIFIED"}  # as werkzeug words them
HEADER_BYTES = 64 << 10  # parsed header values kept per process (Accept-Encoding, URL roots)


def rendered_answer(
    body_gz: bytes, meta: Mapping[str, Any], copies: Memo[str, bytes], *, gzip_ok: bool, matched: bool,
    identity: bytes | None = None,
) -> Answer:
    """The answer from a stored rendered page (`body_gz`, its `meta`): 304 when the client's `If-None-Match`
    `matched` its ETag, else gzip as stored to a client that accepts it (`gzip_ok`), else the identity copy
    (`identity`, just rendered, or the process's copy in `copies`, kept by ETag: decompressed once, not per
    request)."""
    tag = meta["etag"]
    headers = [("ETag", tag), ("Vary", "Accept, Accept-Encoding"), ("Cache-Control", "max-age=0, must-revalidate")]
    if matched:
        return 304, headers, b""
    if gzip_ok:
        headers.append(("Content-Encoding", "gzip"))
        body = body_gz
    else:
        if identity is not None:
            copies.put(tag, identity)
        body = copies.get_or_make(tag, lambda: gzip.decompress(body_gz))
    headers.append(("Content-Type", meta["content_type"]))
    return 200, headers, body


_GZIP: Memo[str, bool] = Memo(HEADER_BYTES, lambda value, _: len(value) + 1)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an `Accept-Encoding` value admits gzip (as werkzeug's `request.accept_encodings["gzip"]`)."""
    if not accept_encoding:
        return False
    found = _GZIP.get(accept_encoding)
    if found is MISSING:
        found = parse_accept_header(accept_encoding, Accept)["gzip"] > 0
        _GZIP.put(accept_encoding, found)
    return found


def page_key(project: str, content_type: str, root: str, view_digest: str) -> str:
    """The key of a rendered page: the project, the format, the URL root its links are under, the decision view."""
    return "|".join((project, content_type, root, view_digest))


_ROOT_PARTS = ("wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME")
_ROOTS: Memo[tuple[str, ...], str] = Memo(HEADER_BYTES, lambda parts, _: sum(map(len, parts)) + 1)


def url_root(environ: WSGIEnvironment) -> str:
    """The request's URL root as Flask's `request.url_root` has it (werkzeug computes it), kept by the parts of
    the environment it is made from."""
    parts = tuple(str(environ.get(name, "")) for name in _ROOT_PARTS)
    found = _ROOTS.get(parts)
    if found is MISSING:
        found = Request(environ).root_url
        _ROOTS.put(parts, found)
    return found


class WarmPages:
    """WSGI middleware: a warm project page answered before the app (see the module); `app` gets the rest."""

    def __init__(self, app: WSGIApplication, state: Gate, index: PypiIndex) -> None:
        self.app = app
        self.state = state
        self.index = index

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        answer = self.answer(environ)
        if answer is None:
            return self.app(environ, start_response)
        status, headers, body = answer
        if status == 200:
            headers.append(("Content-Length", str(len(body))))
        metrics = self.state.metrics
        metrics.inc("gate_requests_total", endpoint=ENDPOINT, status=str(status))
        metrics.flush()
        start_response(STATUS[status], headers)
        return [] if environ["REQUEST_METHOD"] == "HEAD" or not body else [body]

    def answer(self, environ: WSGIEnvironment) -> Answer | None:
        """The warm answer to this request, or None for the app to answer it."""
        path = environ.get("PATH_INFO", "")
        if (environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or environ.get("QUERY_STRING")
                or not path.startswith(PREFIX) or not path.endswith("/")):
            return None
        project = path[len(PREFIX):-1]
        if path_problem("project", project) is not None or canonicalize_name(project) != project:
            return None  # the route refuses it (with an audit line) or redirects it
        state = self.state
        if state.osv is not None:  # the route's guard reloads it, and refuses while it is stale
            state.osv.maybe_reload()
            if state.osv.stale(state.now()) is not None:
                return None
        content_type = negotiate(environ.get("HTTP_ACCEPT"))
        if content_type is None:
            return None
        root, cacheable = state.page_root(url_root(environ))
        if not cacheable:
            return None
        key = page_key(project, content_type, root, state.view_digest)
        _, entry = self.index.warm(project, key, state.now().timestamp())
        if entry is None:
            return None
        state.metrics.inc("gate_cache_hits_total", cache=self.index.pages.namespace)
        state.metrics.inc("gate_cache_hits_total", cache=RENDERED)
        none_match = environ.get("HTTP_IF_NONE_MATCH")
        matched = none_match is not None and parse_etags(none_match).contains_raw(entry.meta["etag"])
        return rendered_answer(entry.value, entry.meta, self.index.identity,
                               gzip_ok=accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING")), matched=matched)
