"""The conda blueprint's service: upstream channel repodata through the cache, each record judged by policy.

Facts use the upstream channel URL as `file.index`, so `attestations.targetChannel: match` compares a
CEP 27 `targetChannel` with the upstream URL. Sidecars (`.sigs`) are fetched and verified only when a
policy reads attestations. The routes are `gate.proxy.conda_routes`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from gate.decision import Decision
from gate.evaluate import Judgement, unidentified
from gate.facts import Facts, FileFacts, Unidentified
from gate.gather.conda import CondaFacts, SidecarLocator, record_facts
from gate.proxy.allocator import trim
from gate.proxy.cache import Flights, Memo
from gate.proxy.conda_body import Built, Writing, body_etag
from gate.proxy.conda_repodata import Judged, Record, judge_index
from gate.proxy.conda_shared import SharedJudgements
from gate.proxy.decide import audit_decisions, judge, keep, visible
from gate.proxy.evidence import StoreEvidence
from gate.proxy.state import Gate
from gate.proxy.upstream import CachedUpstream
from gate.sources.conda_channel import decompress_zst, duplicate_problem
from gate.sources.conda_evidence import MAX_SIDECAR_BYTES, SidecarError
from gate.sources.conda_index import RawRecord, RepodataIndex
from gate.sources.conda_upstream import STORED_ZST, ChannelClient
from gate.sources.segments import join

log = logging.getLogger(__name__)

UPSTREAM = "conda.repodata"  # upstream repodata bytes with their validators
FILTERED = "conda.filtered"  # filtered repodata, compressed, valid while its decisions hold
JUDGED = "conda.judged"  # per-record outcomes behind the filtered repodata, for another worker's rebuild
MEMO_BYTES = 256 << 20  # indexed repodata kept in a process, by the size of their stored (compressed) bodies
JUDGED_RECORDS = 2_000_000  # per-record outcomes kept in a process (about 18 bytes each)
SERVED_BYTES = 128 << 20  # filtered repodata (compressed) kept in a process, besides the store
BUILD_WAIT = 120.0  # seconds a request waits for another building the same body in this process, then builds


def _repodata_parser(limit: int) -> Callable[[str, bytes, Mapping[str, Any]], RepodataIndex]:
    """How a stored body is read again (stored only after `ChannelClient.repodata` indexed it, within the
    same `limit` of decoded bytes), zstd-compressed as stored."""

    def parse(_key: str, body: bytes, meta: Mapping[str, Any]) -> RepodataIndex:
        return RepodataIndex(decompress_zst(body, limit) if meta.get("stored") == STORED_ZST else body)

    return parse


class Listed(NamedTuple):
    """One package listed in a subdir's upstream repodata: the decision on it, the repodata's top level as far
    as downloads need it (`info`), its record."""

    decision: Decision
    repodata: Mapping[str, Any]
    record: dict[str, Any]


class Served(NamedTuple):
    """A subdir's filtered repodata: zstd-compressed, the ETags of the plain and the compressed body, and the
    plain body's length."""

    zst: bytes
    etag: str
    zst_etag: str
    length: int

    @classmethod
    def of(cls, built: Built) -> Served:
        """What a body just written serves."""
        return cls(built.zst, built.etag, built.zst_etag, built.length)


def _memo(key: str, digest: str) -> str:
    """The in-process key of what is built from the upstream body `digest` for the subdir `key` (under a view)."""
    return f"{key}\n{digest}"


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
        self.repodata: CachedUpstream[RepodataIndex] = CachedUpstream(
            state, UPSTREAM, _repodata_parser(settings.max_repodata_bytes), noun="repodata", memo=4,
            memo_bytes=MEMO_BYTES,
        )
        self._judged: Memo[Judged] = Memo(8, JUDGED_RECORDS)  # per-record outcomes, weighed by records
        # the filtered repodata this process built or read, with the upstream digest it was built from and
        # when its decisions stop holding: served without reading the store (a read of a conda-forge-sized
        # body holds it twice, SQLite's copy and Python's, for every request)
        self._served: Memo[tuple[str, float | None, Served]] = Memo(8, SERVED_BYTES)
        self._flights = Flights(BUILD_WAIT)  # one build per subdir body at a time

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
        self, client: ChannelClient, subdir: str, records: Sequence[tuple[str, Record]], now: dt.datetime,
        conflicts: Mapping[str, str],
    ) -> list[Judgement]:
        """One judgement per record (a dict, or a `RawRecord`), in order (facts from `gate.gather.conda`, as
        `gate check` has them); sidecars are fetched in parallel when a policy reads them. A filename in
        `conflicts` (listed with different records) is denied, with the reason. The one way the conda
        blueprint judges records: the monolithic repodata (`gate.proxy.conda_repodata`), its downloads and
        sidecars, and any other form of repodata."""
        files = [record_facts(name, record.mapping if isinstance(record, RawRecord) else record, client.url,
                              conflicts.get(name)) for name, record in records]
        locate = self._locate(client, subdir)

        def gather(i: int) -> Judgement:
            file = files[i]
            if isinstance(file, Unidentified):
                return Judgement(unidentified(file), None)
            record = records[i][1]
            facts, recheck = self.facts.gather(file, record.full() if isinstance(record, RawRecord) else record,
                                               locate, now)
            return judge(self.state, facts, now, recheck)

        reads = self.state.evaluator.reads_attestations
        governed = {(f.ecosystem, f.name) for f in files if isinstance(f, FileFacts)}  # a name has many files
        if not any(reads(ecosystem, name) for ecosystem, name in governed):
            state = self.state  # no evidence to gather: `gather` without its look-ups
            return [Judgement(unidentified(f), None) if isinstance(f, Unidentified) else judge(state, Facts(f), now)
                    for f in files]
        with ThreadPoolExecutor(self.state.settings.provenance_workers) as pool:
            return list(pool.map(gather, range(len(files))))

    # -- filtered repodata ---------------------------------------------------------------------------

    def filtered(
        self, client: ChannelClient, subdir: str, *, requester: str | None, stream: bool = False,
    ) -> Served | Writing:
        """The subdir's repodata with every denied record removed (compressed, with the ETags of its plain
        and compressed forms), cached while its decisions hold; the upstream repodata is parsed only when no
        filtered copy of its current body is cached, and judged again only where decisions may have changed
        (`gate.proxy.conda_repodata`; new decisions are audited as asked for by `requester`). With `stream`,
        a body that has to be written is given as it is being written (`Writing`: iterated, the plain body;
        kept when it is whole), else it is written whole first."""
        state, now = self.state, self.state.now()
        digest = self.upstream_digest(client, subdir)
        key = "|".join((client.subdir_url(subdir), state.view_digest))
        served = self._kept(key, digest, now, count=False)
        if served is not None:
            return served
        # one build per body in this process at a time: a request that comes meanwhile waits, then serves or
        # rebuilds from what the first one kept (instead of judging every record again, with its own helper)
        with self._flights(_memo(key, digest)):
            return self._kept(key, digest, now) or self._build(client, subdir, key, digest, now, requester=requester,
                                                               stream=stream)

    def _kept(self, key: str, digest: str, now: dt.datetime, *, count: bool = True) -> Served | None:
        """The filtered body of the upstream body `digest` this process or another kept, while it holds (a hit
        or, with `count`, a miss counted)."""
        state = self.state
        kept = self._served.get(key)
        if kept is not None and kept[0] == digest and (kept[1] is None or kept[1] > now.timestamp()):
            state.metrics.inc("gate_cache_hits_total", cache=FILTERED)
            return kept[2]
        self._served.pop(key)  # no longer valid: not held while the next one is read or built
        entry = state.store.get(FILTERED, key, now=now.timestamp())
        if entry is not None and entry.meta.get("upstream") == digest and "length" in entry.meta:
            state.metrics.inc("gate_cache_hits_total", cache=FILTERED)
            meta = entry.meta
            served = Served(entry.value, str(meta["etag"]), str(meta["zst_etag"]), int(meta["length"]))
            self._served.put(key, (digest, entry.expires, served), len(served.zst))
            return served
        if count:
            state.metrics.inc("gate_cache_misses_total", cache=FILTERED)
        return None

    def _build(
        self, client: ChannelClient, subdir: str, key: str, digest: str, now: dt.datetime, *,
        requester: str | None, stream: bool,
    ) -> Served | Writing:
        """`filtered` when nothing kept holds (`key`: the subdir's under this view): judged (again where decisions
        may have changed) and written."""
        state = self.state
        url = client.subdir_url(subdir)
        index = self.repodata.parsed(url, digest)
        memo = _memo(key, digest)
        # outcomes this process wrote a body from fit the body; those read from the store are checked by
        # writing the whole body before any of it is served, and judged afresh when they do not fit
        previous = self._judged.get(memo)
        trusted = previous is not None
        if previous is None:
            previous = self._stored(key, digest, len(index))
        shared = SharedJudgements(state.evaluator.sharing, now)

        def judged(previous: Judged | None) -> Writing:
            outcomes, rejudged = judge_index(
                index, previous, now,
                judge=lambda records, conflicts: shared.judge(
                    records, conflicts, lambda some, problems: self.judge_all(client, subdir, some, now, problems)),
                visible=lambda decision: visible(state, decision),
                audit=lambda decisions, alike: audit_decisions(state, decisions, event="repodata", client=requester,
                                                               shared=alike),
            )
            return Writing(index, outcomes, rejudged, body_etag(digest, outcomes, state.trust_digest),
                           ready=lambda built: self._hold(url, key, digest, built, now),
                           done=lambda built: self._store(url, key, digest, built, now),
                           failed=lambda: self._judged.pop(memo))  # they would fail every later request

        writing = judged(previous)
        if stream and (previous is None or trusted):
            # kept at once: a request that comes while this body's client still reads it (for as long as that
            # client likes) rebuilds from them instead of judging every record again
            self._judged.put(memo, writing.judged, len(index))
            return writing
        try:
            built = writing.built()
        except RuntimeError:
            if previous is None:
                raise
            log.warning("kept repodata outcomes do not fit the upstream body; judging every record again")
            built = judged(None).built()
        return Served.of(built)

    def _superseded(self, url: str, digest: str) -> bool:
        """Whether the upstream body of `url` is no longer the one of `digest` (the store holds a newer one): a
        body written from the older, read by a slow client while a newer one was written and kept, is not
        kept over it (every worker would then judge the newer one again)."""
        meta = self.state.store.get_meta(UPSTREAM, url)
        return meta is not None and meta.get("digest") != digest

    def _hold(self, url: str, key: str, digest: str, built: Built, now: dt.datetime) -> None:
        """Keep a body just written, and the outcomes it was written from, in this process."""
        self._judged.put(_memo(key, digest), built.judged, len(built.judged.served))
        until = None if built.until is None else built.until.timestamp()
        if (until is None or until > now.timestamp()) and not self._superseded(url, digest):  # as `keep` keeps it
            self._served.put(key, (digest, until, Served.of(built)), len(built.zst))

    def _store(self, url: str, key: str, digest: str, built: Built, now: dt.datetime) -> None:
        """Store a body just written, and the outcomes it was written from, for other workers."""
        state = self.state
        if self._superseded(url, digest):
            return
        trim()  # what judging and writing freed, given back before the store copies the body
        state.store.put(JUDGED, key, built.judged.dump(), {"upstream": digest, "count": len(built.judged.served)})
        meta = {"upstream": digest, "etag": built.etag, "zst_etag": built.zst_etag, "length": built.length}
        keep(state, FILTERED, key, built.zst, meta, until=built.until, now=now)
        trim()

    def _stored(self, key: str, digest: str, count: int) -> Judged | None:
        """The per-record outcomes another worker kept for the upstream body `digest` under this view."""
        entry = self.state.store.get(JUDGED, key)
        if entry is None or entry.meta.get("upstream") != digest or entry.meta.get("count") != count:
            return None
        return Judged.load(entry.value, count)

    # -- one package ---------------------------------------------------------------------------------

    def judge_file(self, client: ChannelClient, subdir: str, filename: str) -> Listed | None:
        """The decision on one package listed in the upstream repodata (None: not listed), with the
        repodata and the package's record."""
        repodata = self.repodata.parsed(client.subdir_url(subdir), self.upstream_digest(client, subdir))
        found = repodata.find(filename)
        if not found:
            return None
        problem = duplicate_problem(found)
        conflicts = {filename: problem} if problem else {}
        (judgement,) = self.judge_all(client, subdir, [(filename, found[0])], self.state.now(), conflicts)
        return Listed(judgement.decision, {"info": repodata.info}, found[0])

    def sidecar(self, client: ChannelClient, subdir: str, listed: Listed, name: str) -> tuple[str, bytes] | None:
        """The sidecar `name` of the package `listed` (through the cache its judgement used), or None."""
        file = listed.decision.facts.file
        return self.facts.sidecar_fetch(file, listed.record, self._locate(client, subdir), self.state.now(), [])(name)
