"""The conda blueprint's service: upstream channel repodata through the cache, each record judged by policy.

Facts use the upstream channel URL as `file.index`, so `attestations.targetChannel: match` compares a
CEP 27 `targetChannel` with the upstream URL. Sidecars (`.sigs`) are fetched and verified only when a
policy reads attestations. The routes are `gate.proxy.conda_routes`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from gate.decision import Decision
from gate.evaluate import Judgement, unidentified
from gate.facts import FileFacts, Unidentified
from gate.gather.conda import CondaFacts, SidecarLocator, record_facts
from gate.gather.ports import earliest
from gate.proxy.conda_paths import served_repodata
from gate.proxy.decide import audit_decisions, etag, judge, keep, visible
from gate.proxy.evidence import StoreEvidence
from gate.proxy.state import Gate
from gate.proxy.upstream import CachedUpstream
from gate.sources.conda_channel import (
    compress_zst,
    duplicate_problem,
    encode,
    find_records,
    parse_repodata,
    unique_records,
)
from gate.sources.conda_evidence import MAX_SIDECAR_BYTES, SidecarError
from gate.sources.conda_upstream import ChannelClient
from gate.sources.segments import join

UPSTREAM = "conda.repodata"  # upstream repodata bytes with their validators
FILTERED = "conda.filtered"  # filtered repodata (`|zst`: compressed), valid while its decisions hold
MEMO_BYTES = 1 << 30  # parsed repodata kept in a process, by the size of their bodies


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

    def filtered(self, client: ChannelClient, subdir: str, *, zst: bool, requester: str | None) -> tuple[bytes, str]:
        """(body, ETag) of the subdir's repodata with every denied record removed; the upstream repodata is
        parsed only when no filtered copy of its current digest is cached (its decisions are audited as asked
        for by `requester`, the client's address)."""
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
            body, until = self._filter(client, subdir, repodata, now, requester)
            tag = self._keep(key, body, digest, until, now)
        if zst:
            body = compress_zst(body)
            tag = self._keep(variant, body, digest, until, now)
        return body, tag

    def _filter(
        self, client: ChannelClient, subdir: str, repodata: dict[str, Any], now: dt.datetime, requester: str | None
    ) -> tuple[bytes, dt.datetime | None]:
        records, conflicts = unique_records(repodata)
        judged = self.judge_all(client, subdir, records, now, conflicts)
        audit_decisions(self.state, (j.decision for j in judged), event="repodata", client=requester)
        allowed = {name for (name, _), j in zip(records, judged, strict=True) if visible(self.state, j.decision)}
        body = encode(served_repodata(repodata, lambda name, _: name in allowed))
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
