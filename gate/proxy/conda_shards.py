"""CEP 16 sharded repodata through gate: the upstream's shard index and shards, each shard filtered by policy
and served under gate's own addresses; the routes are in `gate.proxy.conda_routes`.

gate's index lists every package name of the upstream index (without fetching any shard: a client fetches
only the shards it needs, and so does gate), each with the address of gate's filtered shard:
- the sha256 of the served bytes when this worker has filtered (or read) that upstream shard under the
  current decisions (`_known`: an index build reads no store entry per name);
- otherwise a *pending* address, unique to this build of the index, naming whatever gate serves for it on
  first request (gate then fetches the upstream shard, checks it hashes to the upstream's address, judges
  every record as the monolithic repodata's are judged, and keeps the allowed ones).
An address always names the same bytes (`Cache-Control: immutable`), served only while the decisions they
were filtered with hold; after that, or when a pending address would now name other bytes, it is a 404 and
the index (revalidated by clients on every solve) is rebuilt with new addresses. The index is rebuilt when
the upstream's changes, when the policies, trusted root or OSV data change (`view_digest`) and when a
decision behind one of its shards may change (`minimumAge`, evidence rechecks, exceptions expiring).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

from gate.gather.ports import earliest
from gate.proxy.cache import Memo
from gate.proxy.conda import CondaChannels, Listed
from gate.proxy.decide import audit_decisions, etag, visible
from gate.proxy.state import Gate
from gate.proxy.stores import Entry
from gate.proxy.upstream import CachedUpstream
from gate.sources.conda import split_conda_filename
from gate.sources.conda_channel import decompress_zst
from gate.sources.conda_shards import (
    MAX_INDEX_BYTES,
    ShardIndex,
    compress,
    encode_index,
    fetch_index,
    fetch_shard,
    file_records,
    filtered_shard,
    index_url,
    parse_index,
    parse_shard,
    shard_records,
    shard_url,
)
from gate.sources.conda_upstream import ChannelClient
from gate.sources.failure import Failure, UpstreamError

UPSTREAM_INDEX = "conda.shards.index"  # upstream shard indexes (decompressed) with their validators
UPSTREAM_SHARD = "conda.shards.upstream"  # (subdir, name) -> the upstream shard (decompressed) of its address
FILTERED = "conda.shards.filtered"  # (subdir, name, view) -> gate's shard of an upstream one, while it holds
SERVED = "conda.shards.served"  # (subdir, gate's address) -> its bytes while they hold (a pending address:
# none, meta `alias`: the entry of the sha256 it names holds them); meta: what they are
INDEX = "conda.shards.gate-index"  # (subdir, view) -> gate's index, while every shard it names holds
UNSHARDED_TTL = 300.0  # an upstream subdir without a shard index is asked again after this long
UNSHARDED_MEMO = 4096  # such subdirs a process remembers (in memory: a client names any subdir it likes)
IMMUTABLE = "public, max-age=31536000, immutable"
_PENDING = b"gate pending shard\0"


def _parse_index(_key: str, body: bytes, _meta: Mapping[str, Any]) -> ShardIndex:
    return parse_index(body)  # stored only after `fetch_index` parsed it


class Built(NamedTuple):
    """gate's index of a subdir: its body, ETag, the upstream index it lists, and its addresses' names."""

    body: bytes
    etag: str
    upstream: ShardIndex
    names: dict[str, str]  # gate's address (hex) -> package name
    build: bytes  # what makes its pending addresses unique (`pending`)

    def pending(self, name: str) -> str:
        """The pending address of `name` in this build of the index (hex)."""
        return _pending(self.build, name).hex()


class Filtered(NamedTuple):
    body: bytes
    address: str
    until: dt.datetime | None


class CondaShards:
    """Sharded repodata of the channels `channels` serves, through the same judge as its repodata."""

    def __init__(self, channels: CondaChannels) -> None:
        self.channels = channels
        self.state = channels.state
        self.indexes: CachedUpstream[ShardIndex] = CachedUpstream(
            self.state, UPSTREAM_INDEX, _parse_index, noun="shard index", memo=8, memo_bytes=MAX_INDEX_BYTES
        )
        self._names: Memo[dict[str, str]] = Memo(8)  # gate's indexes inverted, by key and ETag
        # the filtered shards this process made or read, per index key: name -> (upstream address, gate's
        # address, expiry); an index build lists these (a shard another worker made is listed as pending)
        self._known: Memo[dict[str, tuple[str, str, float | None]]] = Memo(32)
        self._lock = threading.Lock()
        self._unsharded: Memo[float] = Memo(UNSHARDED_MEMO)  # index URL -> until when it is known absent

    def _index_key(self, client: ChannelClient, subdir: str) -> str:
        return f"{client.subdir_url(subdir)}|{self.state.view_digest}"

    def upstream(self, client: ChannelClient, subdir: str) -> tuple[str, ShardIndex]:
        """(digest, parsed) of the upstream's shard index, asking upstream only when the cached copy is stale;
        an UpstreamError with status 404 when the upstream subdir is not sharded."""
        url = index_url(client, subdir)
        absent = self._unsharded.get(url)
        if absent is not None and absent > time.time():
            raise UpstreamError(f"no sharded {subdir} repodata at {client.url}", Failure.NOT_FOUND)
        try:
            digest = self.indexes.digest(url, lambda validators, _: fetch_index(client, subdir, validators))
        except UpstreamError as err:
            if err.failure is Failure.NOT_FOUND:  # asked again only after a while (downloads ask here first);
                self._unsharded.put(url, time.time() + UNSHARDED_TTL)  # not in the store: no row per subdir name
            raise
        return digest, self.indexes.parsed(url, digest)

    # -- gate's index --------------------------------------------------------------------------------

    def index(self, client: ChannelClient, subdir: str) -> Built:
        """gate's shard index of `subdir`: kept until the upstream index or a decision behind it changes."""
        state, now = self.state, self.state.now()
        digest, upstream = self.upstream(client, subdir)
        key = self._index_key(client, subdir)
        entry = state.store.get(INDEX, key, now=now.timestamp())
        if entry is not None and entry.meta.get("upstream") == digest:
            state.metrics.inc("gate_cache_hits_total", cache=INDEX)
            return self._built(key, entry, upstream)
        state.metrics.inc("gate_cache_misses_total", cache=INDEX)
        build = hashlib.sha256(f"{key}|{digest}|{now.isoformat()}|{os.urandom(16).hex()}".encode()).digest()
        shards: dict[str, bytes] = {}
        untils: list[float] = []
        known = self._known_of(key)
        for name, address in upstream.shards.items():
            made = known.get(name)
            if made is not None and made[0] == address and (made[2] is None or made[2] > now.timestamp()):
                shards[name] = bytes.fromhex(made[1])
                if made[2] is not None:
                    untils.append(made[2])
            else:
                shards[name] = _pending(build, name)
        body = encode_index(subdir, shards, upstream.created_at)
        tag = etag(body)
        until = min(untils, default=None)
        meta = {"upstream": digest, "etag": tag, "until": until, "build": build.hex()}
        state.store.put(INDEX, key, body, meta, until)
        names = {address.hex(): name for name, address in shards.items()}
        self._names.put(f"{key}|{tag}", names, len(body))
        return Built(body, tag, upstream, names, build)

    def _known_of(self, key: str) -> dict[str, tuple[str, str, float | None]]:
        with self._lock:
            known = self._known.get(key)
            if known is None:
                known = {}
                self._known.put(key, known)
            return known

    def _built(self, key: str, entry: Entry, upstream: ShardIndex) -> Built:
        tag = str(entry.meta["etag"])
        names = self._names.get(f"{key}|{tag}")
        if names is None:
            names = _invert(parse_index(decompress_zst(entry.value, MAX_INDEX_BYTES)).shards)
            self._names.put(f"{key}|{tag}", names, len(entry.value))
        return Built(entry.value, tag, upstream, names, bytes.fromhex(str(entry.meta["build"])))

    def _last_index(self, client: ChannelClient, subdir: str) -> Built:
        """gate's index as last built while it holds, without asking upstream whether its index changed (a
        shard's address is resolved in the index the client was given); else `index`."""
        entry = self.state.store.get(INDEX, self._index_key(client, subdir), now=self.state.now().timestamp())
        if entry is not None:
            try:
                upstream = self.indexes.parsed(index_url(client, subdir), str(entry.meta["upstream"]))
            except UpstreamError:  # the upstream index changed since: build anew
                return self.index(client, subdir)
            return self._built(self._index_key(client, subdir), entry, upstream)
        return self.index(client, subdir)

    def _hold_index_until(self, client: ChannelClient, subdir: str, until: dt.datetime | None, *, now: bool) -> None:
        """Expire gate's index of `subdir` by `until` (or at once, `now`): a shard it names holds no longer."""
        key = self._index_key(client, subdir)
        meta = self.state.store.get_meta(INDEX, key)
        if meta is None or (until is None and not now):
            return
        moment = self.state.now().timestamp() if now or until is None else until.timestamp()
        if now or meta.get("until") is None or moment < float(meta["until"]):
            self.state.store.update_meta(INDEX, key, {**meta, "until": moment}, moment)

    # -- gate's shards -------------------------------------------------------------------------------

    def shard(self, client: ChannelClient, subdir: str, address: str, requester: str | None) -> bytes | None:
        """The bytes of gate's shard `address` of `subdir`; None when it is not (or no longer) one: the
        client's index is stale, and a fresh one names other addresses. Served from the cache at once, else
        made while holding an upstream slot (waited for, at most the upstream timeout)."""
        state, now = self.state, self.state.now()
        body = self._served(client, subdir, address, now.timestamp())
        if body is not None:
            state.metrics.inc("gate_cache_hits_total", cache=SERVED)
            return body
        state.metrics.inc("gate_cache_misses_total", cache=SERVED)
        if self._unknown(client, subdir, address):
            return None
        with upstream_slot(state):
            return self._make(client, subdir, address, requester)

    def _unknown(self, client: ChannelClient, subdir: str, address: str) -> bool:
        """Whether `address` is in no index of `subdir` this worker holds the names of (its current one, by
        the stored index's metadata): known without an upstream slot, or reading the stored index. An
        address of an index this worker has not read (another worker built it) is looked up by `_make`."""
        key = self._index_key(client, subdir)
        meta = self.state.store.get_meta(INDEX, key)
        if meta is None:
            return False
        names = self._names.get(f"{key}|{meta.get('etag')}")
        return names is not None and address not in names

    def _served(self, client: ChannelClient, subdir: str, address: str, now: float) -> bytes | None:
        """The bytes stored for `address` while they hold under the current view; a pending address's entry
        names the sha256 whose entry holds them (its bytes are stored once, however many builds name them)."""
        for _ in range(2):
            entry = self.state.store.get(SERVED, f"{client.subdir_url(subdir)}|{address}", now=now)
            if entry is None or entry.meta.get("view") != self.state.view_digest:
                return None
            if not entry.meta.get("alias"):
                return entry.value
            address = str(entry.meta["sha256"])
        return None

    def _make(self, client: ChannelClient, subdir: str, address: str, requester: str | None) -> bytes | None:
        state = self.state
        key = f"{client.subdir_url(subdir)}|{address}"
        built = self._last_index(client, subdir)
        name = built.names.get(address)
        if name is None:
            return None
        filtered = self.filtered(client, subdir, built.upstream, name, requester)
        if address != filtered.address:  # a pending address names what its first request got, for good
            origin = state.store.get_meta(SERVED, key)
            first = origin is None and address == built.pending(name)
            if not first and (origin is None or origin.get("sha256") != filtered.address):
                self._hold_index_until(client, subdir, None, now=True)  # it names other bytes: a new index
                return None
        meta = {"name": name, "sha256": filtered.address, "view": state.view_digest}
        until = None if filtered.until is None else filtered.until.timestamp()
        state.store.put(SERVED, f"{client.subdir_url(subdir)}|{filtered.address}", filtered.body, meta, until)
        if address != filtered.address:
            state.store.put(SERVED, key, b"", {**meta, "alias": True}, until)
        self._hold_index_until(client, subdir, filtered.until, now=False)
        return filtered.body

    def _filtered_key(self, client: ChannelClient, subdir: str, name: str) -> str:
        """One entry per package name (replaced when its upstream shard changes: the store stays bounded)."""
        return f"{client.subdir_url(subdir)}|{name}|{self.state.view_digest}"

    def filtered(
        self, client: ChannelClient, subdir: str, upstream: ShardIndex, name: str, requester: str | None
    ) -> Filtered:
        """gate's shard of package `name`: the upstream's, with every record the policies deny removed."""
        state, now = self.state, self.state.now()
        key = self._filtered_key(client, subdir, name)
        kept = state.store.get(FILTERED, key, now=now.timestamp())
        known = self._known_of(self._index_key(client, subdir))
        if kept is not None and kept.meta.get("upstream") == upstream.shards[name]:
            until = None if kept.expires is None else dt.datetime.fromtimestamp(kept.expires, dt.UTC)
            known[name] = (upstream.shards[name], str(kept.meta["address"]), kept.expires)
            return Filtered(kept.value, str(kept.meta["address"]), until)
        data = self._upstream_shard(client, subdir, upstream, name)
        try:
            shard = parse_shard(data)
            records, problems = shard_records(shard, name, subdir)
        except ValueError as err:
            raise UpstreamError(f"the upstream shard of {name!r} in {subdir} is not valid: {err}") from err
        judged = self.channels.judge_all(client, subdir, records, now, problems)
        audit_decisions(state, (j.decision for j in judged), event="shard", client=requester)
        allowed = {filename for (filename, _), j in zip(records, judged, strict=True) if visible(state, j.decision)}
        try:
            body = compress(filtered_shard(shard, allowed))
        except ValueError as err:
            raise UpstreamError(f"the upstream shard of {name!r} in {subdir} is not valid: {err}") from err
        address = hashlib.sha256(body).hexdigest()
        until = earliest(*(j.valid_until for j in judged))
        if until is None or until > now:
            expires = None if until is None else until.timestamp()
            state.store.put(FILTERED, key, body, {"address": address, "upstream": upstream.shards[name]}, expires)
            known[name] = (upstream.shards[name], address, expires)
        return Filtered(body, address, until)

    def judge_file(self, client: ChannelClient, subdir: str, filename: str) -> Listed | None:
        """The decision on one package as its upstream shard lists it (None: its shard does not list it), so
        that a download from a sharded channel never needs its whole repodata; an UpstreamError as
        `upstream` (404: the subdir is not sharded), or when the shard is unusable."""
        try:
            name = split_conda_filename(filename)[0]
        except ValueError:
            return None
        _, upstream = self.upstream(client, subdir)
        if name not in upstream.shards:
            return None
        try:
            found, problems = file_records(self._upstream_shard(client, subdir, upstream, name), name, subdir, filename)
            if not found:
                return None
            record = found[0][1].full()
        except ValueError as err:
            raise UpstreamError(f"the upstream shard of {name!r} in {subdir} is not valid: {err}") from err
        conflicts = {filename: problems[filename]} if filename in problems else {}
        (judgement,) = self.channels.judge_all(client, subdir, found, self.state.now(), conflicts)
        return Listed(judgement.decision, {"info": {"base_url": upstream.base_url}}, record)

    def _upstream_shard(self, client: ChannelClient, subdir: str, upstream: ShardIndex, name: str) -> bytes:
        """The upstream's shard of `name` (decompressed msgpack), fetched once: it is content-addressed."""
        address = upstream.shards[name]
        key = f"{client.subdir_url(subdir)}|{name}"
        kept = self.state.store.get(UPSTREAM_SHARD, key)
        if kept is not None and kept.meta.get("address") == address:
            self.state.metrics.inc("gate_cache_hits_total", cache=UPSTREAM_SHARD)
            return kept.value
        self.state.metrics.inc("gate_cache_misses_total", cache=UPSTREAM_SHARD)
        data = fetch_shard(client, shard_url(client, subdir, upstream, address), address)
        self.state.store.put(UPSTREAM_SHARD, key, data, {"address": address})
        return data


@contextmanager
def upstream_slot(state: Gate) -> Iterator[None]:
    """Hold one of the process's upstream slots (`UpstreamSlots`), waiting for one at most the upstream
    timeout; an UpstreamError (503, try again) when none came free."""
    slots = state.slots
    if slots is None:
        yield
        return
    if not slots.acquire(timeout=state.settings.timeout):
        state.metrics.inc("gate_busy_total")
        raise UpstreamError("gate is busy waiting on upstream; try again", Failure.UNAVAILABLE)
    try:
        yield
    finally:
        slots.release()


def _pending(build: bytes, name: str) -> bytes:
    """The pending address of `name` in the index build `build`: unique to it, and never a filtered shard's."""
    return hashlib.sha256(_PENDING + build + name.encode()).digest()


def _invert(shards: Mapping[str, str]) -> dict[str, str]:
    return {address: name for name, address in shards.items()}
