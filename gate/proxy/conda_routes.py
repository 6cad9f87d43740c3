"""The conda blueprint: upstream channels at `/conda/<name>/`, repodata filtered by policy, packages via gate.

Routes: `/conda/<name>/<subdir>/repodata.json` and `.json.zst` (every record the policies deny removed
from `packages` and `packages.conda`, `info.base_url` dropped so downloads come here), the CEP 16 shard
index `repodata_shards.msgpack.zst` and `shards/<sha256>.msgpack.zst` of a sharded upstream, each shard
filtered the same way (`gate.proxy.conda_shards.CondaShards`), every other repodata variant 404 (`.bz2`,
`current_repodata.json`, `.jlap`: clients fall back to the filtered ones; `gate.proxy.conda_paths` decides
which is which), `/conda/<name>/<subdir>/<package>` (decided again, from its shard when the subdir is
sharded, 403 with reasons, or streamed with its sha256 checked), the package's sidecars
(`<package>.sigs`, `.v0.sigs`, `.sigs.<attestations_sha256>` of a package listed in the repodata, served
only when the package is), and `/conda/<name>/channeldata.json` (per-name metadata without files, passed
through). The service behind them is `gate.proxy.conda.CondaChannels`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import zstandard
from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from gate.proxy.conda import CondaChannels, Listed
from gate.proxy.conda_body import Writing
from gate.proxy.conda_paths import Served, classify, valid_subdir
from gate.proxy.conda_shards import IMMUTABLE, CondaShards
from gate.proxy.decide import audit_decisions, not_modified, refusal, text_response, upstream_failure, visible
from gate.proxy.files import audit_lost, deliver
from gate.proxy.paths import refuse_bad_paths
from gate.proxy.state import EXTENSION
from gate.sources.conda import is_conda_filename
from gate.sources.conda_channel import package_url
from gate.sources.conda_evidence import SIGS, V0_SIGS, advertised_sha256
from gate.sources.conda_upstream import ChannelClient
from gate.sources.failure import Failure, UpstreamError

log = logging.getLogger(__name__)
SERVICE = "gate.conda"
SHARDS = "gate.conda.shards"
MAX_CHANNELDATA = 256 << 20
CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")



def conda_blueprint(channels: Mapping[str, str]) -> Blueprint:
    """A blueprint serving each `name -> upstream channel URL` at `/conda/<name>/`."""
    bad = [name for name in channels if not CHANNEL_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"invalid conda channel name(s): {', '.join(bad)} (letters, digits, '.', '_', '-')")
    conda = Blueprint("conda", __name__)
    conda.before_request(refuse_bad_paths)

    @conda.record_once
    def _attach(setup: BlueprintSetupState) -> None:
        setup.app.extensions[SERVICE] = CondaChannels(setup.app.extensions[EXTENSION], channels)
        setup.app.extensions[SHARDS] = CondaShards(setup.app.extensions[SERVICE])

    conda.add_url_rule("/conda/<name>/channeldata.json", view_func=channeldata, methods=["GET"])
    conda.add_url_rule("/conda/<name>/<subdir>/<path:rest>", view_func=subdir_file, methods=["GET", "HEAD"])
    return conda


def _service() -> CondaChannels:
    service: CondaChannels = current_app.extensions[SERVICE]
    return service


def channeldata(name: str) -> Response:
    client = _service().clients.get(name)
    if client is None:
        return text_response(404, f"gate: no conda channel {name!r} is configured")
    try:
        data = client.file("channeldata.json", limit=MAX_CHANNELDATA)
    except UpstreamError as err:
        return upstream_failure(err)
    if data is None:
        return text_response(404, f"gate: {name} has no channeldata.json upstream")
    return Response(data, content_type="application/json")


def subdir_file(name: str, subdir: str, rest: str) -> Response:
    service = _service()
    client = service.clients.get(name)
    if client is None:
        return text_response(404, f"gate: no conda channel {name!r} is configured")
    if not valid_subdir(subdir):
        return text_response(404, f"gate: {subdir!r} is not a conda subdir")
    try:
        match classify(rest):
            case Served.REPODATA | Served.REPODATA_ZST as served:
                return _repodata(service, client, subdir, zst=served is Served.REPODATA_ZST)
            case Served.PACKAGE:
                return _package(service, client, name, subdir, rest)
            case Served.SIDECAR:
                return _sidecar(service, client, name, subdir, rest)
            case Served.SHARD_INDEX:
                return _shard_index(client, subdir)
            case Served.SHARD:
                return _shard(client, name, subdir, rest)
            case Served.UNFILTERED:
                filtered = "gate filters repodata.json and repodata.json.zst"
                return text_response(404, f"gate: {rest} is not served here; {filtered}")
            case Served.NOT_FOUND:
                return text_response(404, f"gate: {subdir}/{rest} is not a conda package or repodata file")
    except UpstreamError as err:
        return upstream_failure(err)


def _repodata(service: CondaChannels, client: ChannelClient, subdir: str, *, zst: bool) -> Response:
    """The filtered repodata: kept compressed; `repodata.json` is decompressed as it is sent, or, when it has
    just been judged, sent as it is written (`Writing`; a client that stops reading does not stop it)."""
    served = service.filtered(client, subdir, requester=request.remote_addr, stream=not zst)
    if isinstance(served, Writing):  # only for `repodata.json`
        headers = {"ETag": served.etag, "Cache-Control": "max-age=0, must-revalidate"}
        if not_modified(served.etag):
            served.close()  # nothing to send: written whole now, and kept
            return Response(status=304, headers=headers)
        headers["Content-Length"] = str(served.length)
        return Response(served, headers=headers, content_type="application/json")
    etag = served.zst_etag if zst else served.etag
    headers = {"ETag": etag, "Cache-Control": "max-age=0, must-revalidate"}
    if not_modified(etag):
        return Response(status=304, headers=headers)
    if zst:
        return Response(served.zst, headers=headers, content_type="application/zstd")
    headers["Content-Length"] = str(served.length)
    return Response(_decompressed(served.zst), headers=headers, content_type="application/json")


def _decompressed(data: bytes) -> Iterator[bytes]:
    """The plain body of gate's own compressed repodata, a piece at a time (never whole in memory)."""
    reader = zstandard.ZstdDecompressor().stream_reader(data)
    while chunk := reader.read(1 << 20):
        yield chunk


def _shard_index(client: ChannelClient, subdir: str) -> Response:
    """gate's CEP 16 index: revalidated on every use (its addresses change with the decisions behind them)."""
    shards: CondaShards = current_app.extensions[SHARDS]
    built = shards.index(client, subdir)
    headers = {"ETag": built.etag, "Cache-Control": "max-age=0, must-revalidate"}
    if not_modified(built.etag):
        return Response(status=304, headers=headers)
    return Response(built.body, headers=headers, content_type="application/octet-stream")


def _shard(client: ChannelClient, name: str, subdir: str, rest: str) -> Response:
    """A shard gate filtered, under its address for good; 404 when the client's index is stale."""
    shards: CondaShards = current_app.extensions[SHARDS]
    address = rest.removeprefix("shards/").removesuffix(".msgpack.zst")
    body = shards.shard(client, subdir, address, request.remote_addr)
    if body is None:
        stale = f"gate: {subdir}/{rest} is not a shard of channel {name} now; fetch repodata_shards.msgpack.zst again"
        return text_response(404, stale, **{"Cache-Control": "no-store"})
    return Response(body, headers={"Cache-Control": IMMUTABLE}, content_type="application/octet-stream")


def _listed(service: CondaChannels, client: ChannelClient, subdir: str, filename: str) -> Listed | None:
    """A package judged from its upstream shard when the subdir is sharded (no whole repodata needed), else
    (not sharded, not in its shard, or the shard or its index unusable) from the subdir's repodata, so that
    a record gets the decision `gate check` gives it wherever the channel lists it."""
    shards: CondaShards = current_app.extensions[SHARDS]
    try:
        listed = shards.judge_file(client, subdir, filename)
    except UpstreamError as err:
        if err.failure is not Failure.NOT_FOUND:
            log.warning("judging %s from the repodata: %s", filename, err)
        listed = None
    return listed if listed is not None else service.judge_file(client, subdir, filename)


def _package(service: CondaChannels, client: ChannelClient, name: str, subdir: str, filename: str) -> Response:
    state = service.state
    judged = _listed(service, client, subdir, filename)
    if judged is None:
        return text_response(404, f"gate: {filename} is not in the {subdir} repodata of channel {name}")
    decision, repodata, _ = judged
    file = decision.facts.file
    url = package_url(client.subdir_url(subdir), repodata, filename)
    return deliver(state, decision, event="download", url=url, filename=filename, sha256=file.sha256, size=file.size)


def sidecar_package(name: str, record_of: Callable[[str], dict[str, Any] | None]) -> str | None:
    """The package whose sidecar `name` is: `<package>.sigs`, `<package>.v0.sigs`, or the content-addressed
    `<package>.sigs.<attestations_sha256 of its record>`, where `record_of(package)` finds the package's
    record; None for any other name."""
    for suffix in (V0_SIGS, SIGS):
        if name.endswith(suffix) and record_of(name.removesuffix(suffix)) is not None:
            return name.removesuffix(suffix)
    package, dot, digest = name.rpartition(SIGS + ".")
    record = record_of(package) if dot else None
    if record is not None and advertised_sha256(record) == digest:
        return package
    return None


def _sidecar(service: CondaChannels, client: ChannelClient, name: str, subdir: str, rest: str) -> Response:
    """A package's sidecar, only when the package itself would be served: it is listed in the subdir's
    repodata and allowed (a denied package's sidecar is refused like the package, with its reasons)."""
    found: dict[str, Listed | None] = {}

    def record_of(package: str) -> dict[str, Any] | None:
        found[package] = listed = _listed(service, client, subdir, package) if is_conda_filename(package) else None
        return None if listed is None else listed.record

    package = sidecar_package(rest, record_of)
    listed = found.get(package) if package is not None else None
    if package is None or listed is None:
        return text_response(404, f"gate: {rest} is not a sidecar of a package in the {subdir} repodata of {name}")
    state = service.state
    audit_decisions(state, [listed.decision], event="sidecar", client=request.remote_addr, everything=True)
    if not visible(state, listed.decision):
        return refusal(listed.decision)
    unrecorded = audit_lost(state, rest)
    if unrecorded is not None:
        return unrecorded
    sidecar = service.sidecar(client, subdir, listed, rest)
    if sidecar is None:
        return text_response(404, f"gate: no {rest} upstream")
    return Response(sidecar[1], content_type="application/json")
