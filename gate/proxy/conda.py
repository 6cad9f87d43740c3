"""The conda blueprint: upstream channels at `/conda/<name>/`, repodata filtered by policy, packages via gate.

Routes: `/conda/<name>/<subdir>/repodata.json` and `.json.zst` (every record the policies deny removed
from `packages` and `packages.conda`, `info.base_url` dropped so downloads come here), every other
repodata variant 404 (CEP 16 shards, `.bz2`, `current_repodata.json`, `.jlap`: clients fall back to the
filtered ones), `/conda/<name>/<subdir>/<package>` (decided again, 403 with reasons, or streamed with
its sha256 checked), the package's sidecars (`<package>.sigs`, `.v0.sigs`, `.sigs.<attestations_sha256>`
of a package listed in the repodata, served only when the package is), and `/conda/<name>/channeldata.json`
(per-name metadata without files, passed through). Facts use the upstream channel URL as `file.index`, so
`attestations.targetChannel: match` compares a CEP 27 `targetChannel` with the upstream URL.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from gate.decision import Decision
from gate.evaluate import Judgement, unidentified
from gate.facts import FileFacts, Unidentified
from gate.gather.conda import CondaFacts, SidecarLocator, record_facts
from gate.gather.ports import earliest
from gate.proxy.app import EXTENSION, Gate
from gate.proxy.decide import (
    etag,
    judge,
    keep,
    not_modified,
    record,
    refusal,
    text_response,
    upstream_failure,
    visible,
)
from gate.proxy.evidence import StoreEvidence
from gate.proxy.files import audit_lost, deliver
from gate.proxy.paths import refuse_bad_paths
from gate.proxy.upstream import CachedUpstream
from gate.sources.conda import is_conda_filename
from gate.sources.conda_channel import (
    Served,
    classify,
    compress_zst,
    duplicate_problem,
    encode,
    filter_repodata,
    find_records,
    package_url,
    parse_repodata,
    unique_records,
    valid_subdir,
)
from gate.sources.conda_evidence import (
    MAX_SIDECAR_BYTES,
    SIGS,
    V0_SIGS,
    SidecarError,
    advertised_sha256,
)
from gate.sources.conda_upstream import ChannelClient
from gate.sources.http import UpstreamError
from gate.sources.segments import join

SERVICE = "gate.conda"
UPSTREAM = "conda.repodata"  # upstream repodata bytes with their validators
FILTERED = "conda.filtered"  # filtered repodata (`|zst`: compressed), valid while its decisions hold
MAX_CHANNELDATA = 256 << 20
MEMO_BYTES = 1 << 30  # parsed repodata kept in a process, by the size of their bodies
CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _parse_repodata(_key: str, body: bytes, _meta: Mapping[str, Any]) -> dict[str, Any]:
    return parse_repodata(body)  # a body is stored only after `ChannelClient.repodata` parsed it


class Listed(NamedTuple):
    """One package listed in a subdir's upstream repodata: the decision on it, the repodata, its record."""

    decision: Decision
    repodata: dict[str, Any]
    record: dict[str, Any]


class CondaChannels:
    """Upstream repodata through the cache, each record judged; evidence fetched only when a policy reads it."""

    def __init__(self, state: Gate, channels: Mapping[str, str]) -> None:
        self.state = state
        settings = state.settings
        self.clients = {
            name: ChannelClient(
                url, state.session, timeout=settings.timeout, hosts=state.hosts, max_bytes=settings.max_repodata_bytes
            )
            for name, url in channels.items()
        }
        for url in channels.values():
            state.hosts.allow_upstream(url)  # channels given to the blueprint directly, as well as configured
        self.facts = CondaFacts(StoreEvidence(state), state.evaluator.reads_attestations)
        # a parsed conda-forge subdir is large: few are memoized
        self.repodata: CachedUpstream[dict[str, Any]] = CachedUpstream(
            state, UPSTREAM, _parse_repodata, noun="repodata", memo=4, memo_bytes=MEMO_BYTES
        )

    # -- upstream repodata ---------------------------------------------------------------------------

    def upstream_digest(self, client: ChannelClient, subdir: str) -> str:
        """The digest of the subdir's upstream repodata, asking upstream only when the cached copy is stale."""
        return self.repodata.digest(
            client.subdir_url(subdir),
            lambda validators, kept: client.repodata(subdir, validators, kept.get("variant")),
        )

    # -- decisions -----------------------------------------------------------------------------------

    def _locate(self, client: ChannelClient, subdir: str) -> SidecarLocator:
        """Where a sidecar of a package in `subdir` is upstream, and how to fetch it."""

        def locate(name: str) -> tuple[str, Callable[[], bytes | None]]:
            try:
                url = join(client.url, subdir, name)
            except ValueError as err:  # a name that cannot be a path segment: there is no such sidecar
                raise SidecarError(str(err)) from err
            return url, lambda: client.file(subdir, name, limit=MAX_SIDECAR_BYTES)

        return locate

    def judge_all(
        self, client: ChannelClient, subdir: str, records: list[tuple[str, dict[str, Any]]], now: dt.datetime,
        conflicts: Mapping[str, str],
    ) -> list[Judgement]:
        """One judgement per record, in order (facts from `gate.gather.conda`, as `gate check` has them);
        sidecars are fetched in parallel when a policy reads them. A filename in `conflicts` (listed with
        different records) is denied, with the reason."""
        files = [record_facts(name, record, client.url, conflicts.get(name)) for name, record in records]
        locate = self._locate(client, subdir)

        def gather(i: int) -> Judgement:
            file = files[i]
            if isinstance(file, Unidentified):
                return Judgement(unidentified(file), None)
            facts, recheck = self.facts.gather(file, records[i][1], locate, now)
            return judge(self.state, facts, now, recheck)

        reads = self.state.evaluator.reads_attestations
        if not any(isinstance(f, FileFacts) and reads(f.ecosystem, f.name) for f in files):
            return [gather(i) for i in range(len(files))]
        with ThreadPoolExecutor(self.state.settings.provenance_workers) as pool:
            return list(pool.map(gather, range(len(files))))

    # -- filtered repodata ---------------------------------------------------------------------------

    def filtered(self, client: ChannelClient, subdir: str, *, zst: bool) -> tuple[bytes, str]:
        """(body, ETag) of the subdir's repodata with every denied record removed; the upstream repodata is
        parsed only when no filtered copy of its current digest is cached."""
        state, now = self.state, self.state.now()
        digest = self.upstream_digest(client, subdir)
        key = "|".join((client.subdir_url(subdir), state.view_digest))
        variant = key + ("|zst" if zst else "")
        entry = state.store.get(FILTERED, variant, now=now.timestamp())
        if entry is not None and entry.meta.get("upstream") == digest:
            state.metrics.inc("gate_cache_hits_total", cache=FILTERED)
            return entry.value, str(entry.meta["etag"])
        state.metrics.inc("gate_cache_misses_total", cache=FILTERED)
        plain = state.store.get(FILTERED, key, now=now.timestamp()) if zst else None
        if plain is not None and plain.meta.get("upstream") == digest:
            body, tag = plain.value, str(plain.meta["etag"])
            until = None if plain.expires is None else dt.datetime.fromtimestamp(plain.expires, dt.UTC)
        else:
            repodata = self.repodata.parsed(client.subdir_url(subdir), digest)
            body, until = self._filter(client, subdir, repodata, now)
            tag = self._keep(key, body, digest, until, now)
        if zst:
            body = compress_zst(body)
            tag = self._keep(variant, body, digest, until, now)
        return body, tag

    def _filter(
        self, client: ChannelClient, subdir: str, repodata: dict[str, Any], now: dt.datetime
    ) -> tuple[bytes, dt.datetime | None]:
        records, conflicts = unique_records(repodata)
        judged = self.judge_all(client, subdir, records, now, conflicts)
        record(self.state, (j.decision for j in judged), event="repodata", client=request.remote_addr)
        allowed = {name for (name, _), j in zip(records, judged, strict=True) if visible(self.state, j.decision)}
        body = encode(filter_repodata(repodata, lambda name, _: name in allowed))
        return body, earliest(*(j.valid_until for j in judged))

    def _keep(self, key: str, body: bytes, digest: str, until: dt.datetime | None, now: dt.datetime) -> str:
        """Keep `body` (filtered from the upstream repodata with `digest`) while its decisions hold; its ETag."""
        tag = etag(body)
        keep(self.state, FILTERED, key, body, {"upstream": digest, "etag": tag}, until=until, now=now)
        return tag

    # -- one package ---------------------------------------------------------------------------------

    def judge_file(self, client: ChannelClient, subdir: str, filename: str) -> Listed | None:
        """The decision on one package listed in the upstream repodata (None: not listed), with the
        repodata and the package's record."""
        repodata = self.repodata.parsed(client.subdir_url(subdir), self.upstream_digest(client, subdir))
        found = find_records(repodata, filename)
        if not found:
            return None
        problem = duplicate_problem(found)
        conflicts = {filename: problem} if problem else {}
        (judgement,) = self.judge_all(client, subdir, [(filename, found[0])], self.state.now(), conflicts)
        return Listed(judgement.decision, repodata, found[0])

    def sidecar(self, client: ChannelClient, subdir: str, listed: Listed, name: str) -> tuple[str, bytes] | None:
        """The sidecar `name` of the package `listed` (through the cache its judgement used), or None."""
        file = listed.decision.facts.file
        return self.facts.sidecar_fetch(file, listed.record, self._locate(client, subdir), self.state.now(), [])(name)


# --------------------------------------------------------------------------------------------------
# Routes


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
            case Served.UNFILTERED:
                filtered = "gate filters repodata.json and repodata.json.zst"
                return text_response(404, f"gate: {rest} is not served here; {filtered}")
            case Served.NOT_FOUND:
                return text_response(404, f"gate: {subdir}/{rest} is not a conda package or repodata file")
    except UpstreamError as err:
        return upstream_failure(err)


def _repodata(service: CondaChannels, client: ChannelClient, subdir: str, *, zst: bool) -> Response:
    body, etag = service.filtered(client, subdir, zst=zst)
    headers = {"ETag": etag, "Cache-Control": "max-age=0, must-revalidate"}
    if not_modified(etag):
        return Response(status=304, headers=headers)
    content_type = "application/zstd" if zst else "application/json"
    return Response(body, headers=headers, content_type=content_type)


def _package(service: CondaChannels, client: ChannelClient, name: str, subdir: str, filename: str) -> Response:
    state = service.state
    judged = service.judge_file(client, subdir, filename)
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
        found[package] = listed = service.judge_file(client, subdir, package) if is_conda_filename(package) else None
        return None if listed is None else listed.record

    package = sidecar_package(rest, record_of)
    listed = found.get(package) if package is not None else None
    if package is None or listed is None:
        return text_response(404, f"gate: {rest} is not a sidecar of a package in the {subdir} repodata of {name}")
    state = service.state
    record(state, [listed.decision], event="sidecar", client=request.remote_addr, everything=True)
    if not visible(state, listed.decision):
        return refusal(listed.decision)
    unrecorded = audit_lost(state, rest)
    if unrecorded is not None:
        return unrecorded
    sidecar = service.sidecar(client, subdir, listed, rest)
    if sidecar is None:
        return text_response(404, f"gate: no {rest} upstream")
    return Response(sidecar[1], content_type="application/json")
