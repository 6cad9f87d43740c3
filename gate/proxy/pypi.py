"""The PyPI blueprint: the simple API filtered by policy, and files, metadata and provenance through gate.

Routes: `/simple/`, `/simple/<project>/` (PEP 503 HTML / PEP 691 JSON by `Accept` or `?format=`),
`/files/<project>/<filename>` (and `<filename>.metadata`, PEP 658), `/provenance/<project>/<filename>`
(PEP 740) and `/-/explain/<project>` (every file's verdict and why, the newest allowed version). Pages
list only the files the policies allow (a page left empty says why in its PEP 792 status reason); a denied
file is refused with 403 and reasons, pointing to the explanation.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import time
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from flask import Blueprint, Response, current_app, redirect, request
from flask.blueprints import BlueprintSetupState
from packaging.utils import canonicalize_name
from pypi_attestations import Provenance
from werkzeug.wrappers import Response as BaseResponse

from gate.evaluate import Judgement
from gate.explain import explain
from gate.facts import Ecosystem
from gate.gather.ports import earliest
from gate.proxy.decide import (
    audit_decisions,
    etag,
    judge,
    keep,
    not_modified,
    refusal,
    text_response,
    upstream_failure,
    visible,
)
from gate.proxy.explain_page import explanation_html
from gate.proxy.files import deliver
from gate.proxy.html import html_response
from gate.proxy.paths import refuse_bad_paths
from gate.proxy.pypi_index import RENDERED, PypiIndex
from gate.proxy.pypi_render import Urls, negotiate, render_html, render_json, render_root
from gate.proxy.pypi_warm import page_key, rendered_answer
from gate.proxy.state import EXTENSION, gate_state
from gate.proxy.stores.base import Entry
from gate.redact import redact
from gate.sources.failure import UpstreamError
from gate.sources.pypi import JSON_V1, ProjectPage, SimpleFile

EXPLAINED = "pypi.explained"  # whole-project explanations, kept as rendered pages are
ROOT = "pypi.root"
ROOT_TTL = 600.0
SERVICE = "gate.pypi"


def pypi_blueprint() -> Blueprint:
    """A blueprint serving the upstream simple index (`Settings.upstream`) filtered, at `/simple/`."""
    pypi = Blueprint("pypi", __name__)
    pypi.before_request(refuse_bad_paths)
    pypi.record_once(_attach)
    pypi.add_url_rule("/simple/", view_func=root, methods=["GET"])
    # `path:` so that a decoded `/` in a name reaches `refuse_bad_paths`
    pypi.add_url_rule("/simple/<path:project>/", view_func=project_page, methods=["GET"])
    pypi.add_url_rule("/files/<project>/<path:filename>", view_func=download, methods=["GET", "HEAD"])
    pypi.add_url_rule("/provenance/<project>/<path:filename>", view_func=provenance, methods=["GET"])
    pypi.add_url_rule("/-/explain/<path:project>", view_func=explain_project, methods=["GET"])
    return pypi


def _attach(setup: BlueprintSetupState) -> None:
    setup.app.extensions[SERVICE] = PypiIndex(setup.app.extensions[EXTENSION])


def _index() -> PypiIndex:
    service: PypiIndex = current_app.extensions[SERVICE]
    return service


def _normalize_redirect(project: str, prefix: str, rest: str = "") -> BaseResponse | None:
    """A 301 to `<prefix><normalized project>/<rest>` (the query kept) when `project` is not normalized;
    `rest` (a filename: it may hold `?`, `#` or `%`) is percent-encoded."""
    name = canonicalize_name(project)
    if name == project:
        return None
    query = request.query_string.decode()
    return redirect(f"{request.script_root}{prefix}{name}/{quote(rest)}" + (f"?{query}" if query else ""), 301)


def metadata_url(url: str) -> str:
    """Where PEP 658 puts a file's metadata: its URL's path with `.metadata` appended (not after a query)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + ".metadata", fragment=""))


def _serve_rendered(body_gz: bytes, meta: dict[str, Any], identity: bytes | None = None) -> Response:
    """A stored rendered page, as `rendered_answer` gives it (the warm path answers with the same)."""
    status, headers, body = rendered_answer(
        body_gz, meta, _index().identity, gzip_ok=request.accept_encodings["gzip"] > 0,
        matched=not_modified(meta["etag"]), identity=identity,
    )
    return Response(body or None, status=status, headers=headers)


def root() -> BaseResponse:
    content_type = negotiate(request.headers.get("Accept"), request.args.get("format"))
    if content_type is None:
        return text_response(406, "gate: no acceptable simple API format", Vary="Accept")
    state = gate_state()
    entry = state.store.get(ROOT, content_type)
    if entry is None:
        try:
            names = _index().client.projects()
        except UpstreamError as err:
            return upstream_failure(err)
        body = gzip.compress(render_root(names, content_type), 6)
        meta = {"etag": etag(body), "content_type": content_type}
        state.store.put(ROOT, content_type, body, meta, time.time() + ROOT_TTL)
        return _serve_rendered(body, meta)
    return _serve_rendered(entry.value, entry.meta)


def project_page(project: str) -> BaseResponse:
    moved = _normalize_redirect(project, "/simple/")
    if moved is not None:
        return moved
    content_type = negotiate(request.headers.get("Accept"), request.args.get("format"))
    if content_type is None:
        return text_response(406, "gate: no acceptable simple API format", Vary="Accept")
    state, index = gate_state(), _index()
    root, cacheable = state.page_root(request.url_root)
    key = page_key(project, content_type, root, state.view_digest)
    now = state.now()
    try:
        digest = index.page_digest(project)  # upstream is asked only when its page is stale
    except UpstreamError as err:
        return upstream_failure(err)
    entry = index.rendered_entry(key, digest, now.timestamp()) if cacheable else None
    if entry is not None:
        state.metrics.inc("gate_cache_hits_total", cache=RENDERED)
        return _serve_rendered(entry.value, entry.meta)
    state.metrics.inc("gate_cache_misses_total", cache=RENDERED)
    try:
        page = index.page(project, digest)
    except UpstreamError as err:
        return upstream_failure(err)
    judged = index.judge_page(page, now)
    audit_decisions(state, (j.decision for j in judged), event="page", client=request.remote_addr)
    shown = [j for j in judged if visible(state, j.decision)]
    if judged and not shown:  # say why the page is empty, and where to look (PEP 792's status reason)
        page = _all_denied(page, root)
    files, urls = [j.file for j in shown], Urls(root, project)
    if content_type == JSON_V1:
        body = render_json(page, files, urls, [j.decision.facts.file.version for j in shown])
    else:
        body = render_html(page, files, urls)
    meta = {"etag": etag(body), "content_type": content_type, "page_digest": digest}
    compressed = gzip.compress(body, 1)  # fast: most of a cold page's time is elsewhere
    until = earliest(*(j.valid_until for j in judged))
    if cacheable:
        keep(state, RENDERED, key, compressed, meta, until=until, now=now)
        if until is None or until > now:
            index.rendered.put(key, Entry(compressed, meta, None if until is None else until.timestamp()))
    return _serve_rendered(compressed, meta, body)


def explain_url(root: str, project: str) -> str:
    """Where `project` is explained, under the URL root pages link under."""
    return f"{root}-/explain/{quote(project)}"


def _all_denied(page: ProjectPage, root: str) -> ProjectPage:
    """`page` with a PEP 792 status reason saying every file is denied, and where to see why (the upstream's
    status is kept; installers that do not read it see an empty page, as before)."""
    status = dict(page.project_status or {"status": "active"})
    status["reason"] = f"gate: every file of {page.name} is denied by policy; why: {explain_url(root, page.name)}"
    return dataclasses.replace(page, project_status=status)


def explain_project(project: str) -> BaseResponse:
    """Every file of `project` as the policies judge it now, why, and the newest allowed version: JSON for
    `Accept: application/json` (or `?format=json`), else HTML; `?version=V` shows one release's files."""
    moved = _normalize_redirect(project, "/-/explain/")
    if moved is not None:
        return moved
    state, index = gate_state(), _index()
    version = request.args.get("version") or None
    wanted = request.args.get("format") or request.accept_mimetypes.best_match(["text/html", "application/json"])
    as_json = wanted in ("json", "application/json")
    try:
        digest = index.page_digest(project)
    except UpstreamError as err:
        return upstream_failure(err)
    now = state.now()
    # The whole project's explanation is kept like a rendered page (same page digest and decision view, until
    # its first decision changes): a public URL in every 403 must not cost a cold page per request. One
    # release's (`?version=`, a query anyone can vary) is made afresh: it judges no more than it shows.
    key = "|".join((project, digest, state.view_digest, "json" if as_json else "html"))
    entry = state.store.get(EXPLAINED, key, now=now.timestamp()) if version is None else None
    if entry is not None:
        state.metrics.inc("gate_cache_hits_total", cache=EXPLAINED)
        return _explained(entry.value, as_json=as_json)
    try:
        page = index.page(project, digest)
    except UpstreamError as err:
        return upstream_failure(err)
    judged = [Judgement(j.decision, j.valid_until) for j in index.judge_page(page, now)]
    explanation = explain(  # the index redacted: a token in its path (`/t/<token>/`) is no client's business
        Ecosystem.PYPI.value, page.name, redact(index.client.base_url), judged, now=now,
        rejudge=lambda facts, moment: judge(state, facts, moment), version=version,
    )
    body = (json.dumps(explanation.to_json(), indent=2) + "\n").encode() if as_json else explanation_html(explanation)
    if version is None:
        state.metrics.inc("gate_cache_misses_total", cache=EXPLAINED)
        keep(state, EXPLAINED, key, body, {}, until=earliest(*(j.valid_until for j in judged)), now=now)
    return _explained(body, as_json=as_json)


def _explained(body: bytes, *, as_json: bool) -> Response:
    headers = {"Vary": "Accept"}
    if as_json:
        return Response(body, mimetype="application/json", headers=headers | {"Cache-Control": "no-store"})
    return html_response(body, headers)


def _listed(project: str, filename: str) -> tuple[ProjectPage, SimpleFile] | Response:
    """The project's current page and the file's row on it, or the answer to give when it is not listed."""
    try:
        page = _index().page(project)
    except UpstreamError as err:
        return upstream_failure(err)
    file = page.file(filename)
    if file is None:
        return text_response(404, f"gate: {filename} is not listed for {project} on the upstream index")
    return page, file


def download(project: str, filename: str) -> BaseResponse:
    moved = _normalize_redirect(project, "/files/", filename)
    if moved is not None:
        return moved
    state = gate_state()
    metadata = filename.endswith(".metadata")
    dist = filename.removesuffix(".metadata")
    listed = _listed(project, dist)
    if isinstance(listed, Response):
        return listed
    page, file = listed
    decision = _index().judge(page, file, state.now()).decision
    why = explain_url(state.page_root(request.url_root)[0], page.name)
    if not metadata:
        return deliver(state, decision, event="download", url=file.url, filename=dist, sha256=file.sha256,
                       size=file.size, explain_url=why)
    value = file.core_metadata
    return deliver(
        state, decision, event="metadata", url=metadata_url(file.url), filename=filename,
        sha256=value.get("sha256") if isinstance(value, dict) else None, size=None, content_type="text/plain",
        explain_url=why,
    )


def provenance(project: str, filename: str) -> BaseResponse:
    moved = _normalize_redirect(project, "/provenance/", filename)
    if moved is not None:
        return moved
    listed = _listed(project, filename)
    if isinstance(listed, Response):
        return listed
    state, (page, file) = gate_state(), listed
    decision = _index().judge(page, file, state.now()).decision
    audit_decisions(state, [decision], event="provenance", client=request.remote_addr, everything=True)
    if not visible(state, decision):  # evidence is served for the files gate serves, as conda sidecars are
        return refusal(decision, explain_url(state.page_root(request.url_root)[0], page.name))
    try:
        data = _index().provenance(file)
    except UpstreamError as err:
        return upstream_failure(err)
    if data is None:
        return text_response(404, f"gate: no provenance for {filename}")
    try:  # only a provenance object goes out, rebuilt from its parsed fields: never an arbitrary body
        document = Provenance.model_validate_json(data).model_dump_json(by_alias=True)
    except ValueError:  # pydantic's ValidationError is one
        bad = UpstreamError(f"the upstream provenance of {filename} is not a PEP 740 provenance object")
        return upstream_failure(bad)
    return Response(document, content_type="application/vnd.pypi.integrity.v1+json")
