"""CEP 16 sharded repodata: the shard index (`<subdir>/repodata_shards.msgpack.zst`, package name -> sha256 of
a shard) and the per-name shards (`<shards_base_url><hex>.msgpack.zst`, a repodata fragment with `packages`,
`packages.conda` and `removed`; hashes as msgpack bin), read from an upstream and written again.

Reading is bounded: zstd output at most MAX_INDEX_BYTES / MAX_SHARD_BYTES (`decompress_zst` streams), msgpack
nesting by msgspec's recursion guard; a shard is used only when its bytes hash to the address the index gave
(the sha256 of the compressed file, as rattler's indexer writes it, or of the msgpack inside, as conda-index
once did: both name exactly one content). Encoding is deterministic, so the same filtered shard always has
the same address. Every problem is a ValueError or an `UpstreamError` saying what was wrong.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urljoin, urlsplit

import msgspec
import zstandard

from gate.sources.conda import split_conda_filename
from gate.sources.conda_channel import SECTIONS, Record, decompress_zst, duplicate_problem
from gate.sources.conda_index import RawRecord
from gate.sources.conda_upstream import ChannelClient
from gate.sources.failure import Failure, UpstreamError
from gate.sources.http import Fetched, Validators

INDEX = "repodata_shards.msgpack.zst"
MAX_INDEX_BYTES = 64 << 20  # decoded; conda-forge linux-64's index is under 1 MB compressed
MAX_SHARD_BYTES = 64 << 20  # decoded; real shards reach 49 MB (conda-pypi's boto3-stubs), conda allows 64 MiB
MAX_RECORDS = 50_000  # records in one shard (a package's builds: conda-forge's largest have a few thousand)
MAX_RECORD_BYTES = 1 << 20  # msgpack of one record (a real one is at most tens of KB)
MAX_NAMES = 250_000  # package names in one index; conda-forge's largest subdir has about 30,000
BINARY_FIELDS = ("md5", "sha256", "legacy_bz2_md5", "attestations_sha256")  # hex in JSON, bin in shards
SHARD_FILE = re.compile(r"shards/([0-9a-f]{64})\.msgpack\.zst")  # gate's own shard paths under a subdir


@dataclass(frozen=True)
class ShardIndex:
    """A parsed shard index: where packages and shards are (relative to the index URL) and each package
    name's shard address (lower-case hex sha256)."""

    base_url: str
    shards_base_url: str
    created_at: str | None
    shards: dict[str, str]


class _Index(msgspec.Struct):
    """A shard index as decoded: its two maps left encoded, every other key skipped (not decoded)."""

    info: msgspec.Raw
    shards: msgspec.Raw


class _Info(msgspec.Struct):
    subdir: str | None = None  # checked to be a string, not kept: gate's index names the subdir it serves
    base_url: str | None = None
    shards_base_url: str | None = None
    created_at: msgspec.Raw = msgspec.Raw()


class _Shard(msgspec.Struct):
    """A shard as decoded: its sections and `removed` left encoded, every other key skipped (not decoded)."""

    packages: msgspec.Raw = msgspec.Raw()
    conda: msgspec.Raw = msgspec.field(default=msgspec.Raw(), name="packages.conda")
    removed: msgspec.Raw = msgspec.Raw()


def _decode(data: bytes | msgspec.Raw, what: str, kind: Any = Any) -> Any:
    """`data` decoded as `kind` (msgspec skips what `kind` does not name without building it, and checks a
    map's or array's length against its `max_length` before reading its items); ValueError when it is not."""
    try:
        return msgspec.msgpack.decode(data, type=kind)
    except RecursionError:
        raise ValueError(f"{what} nests too deep") from None
    except msgspec.ValidationError as err:
        raise ValueError(f"{what} is not as expected: {err}") from err
    except msgspec.DecodeError as err:
        raise ValueError(f"{what} is not msgpack: {err}") from err


def parse_index(data: bytes) -> ShardIndex:
    """A shard index from its decompressed msgpack; ValueError when it is not one (every address must be
    32 bytes, every name a string, `info` a map, at most MAX_NAMES names). Only `info`'s known keys and the
    `shards` map are decoded: nothing an upstream adds costs more than its bytes."""
    document = _decode(data, "the shard index", _Index)
    info = _decode(document.info, "the shard index's `info`", _Info)
    names = Annotated[dict[str, Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]],
                      msgspec.Meta(max_length=MAX_NAMES)]
    try:
        shards = msgspec.msgpack.decode(document.shards, type=names)
    except msgspec.ValidationError as err:
        if str(err).startswith("Expected `object` of length <="):
            raise ValueError(f"the shard index lists more than {MAX_NAMES} package names") from None
        raise ValueError(f"the shard index lists a name with something not a 32-byte sha256: {err}") from None
    except (msgspec.DecodeError, RecursionError) as err:
        raise ValueError(f"the shard index's `shards` is not msgpack: {err}") from None
    short = 0 < len(info.created_at) <= 80  # a time is short: a longer value is no time, and is not decoded
    created_at = _decode(info.created_at, "the shard index's info.created_at") if short else None
    return ShardIndex(
        base_url=_reference(info.base_url or "", "base_url"),
        shards_base_url=_reference(_or(info.shards_base_url, "./shards/"), "shards_base_url"),
        created_at=_moment(created_at),
        shards={name: digest.hex() for name, digest in shards.items()},
    )


def _reference(value: str, key: str) -> str:
    """`value`, a URL reference gate resolves against the subdir's URL; ValueError when it cannot be one
    (`http://[`: every shard or download it locates would fail)."""
    try:
        urlsplit(value)
    except ValueError as err:
        raise ValueError(f"the shard index's info.{key} {value!r} is not a URL reference: {err}") from None
    return value


def _moment(value: object) -> str | None:
    """`created_at` when it is an RFC 3339 time a client can read (rattler rejects the whole index over a
    bad one), else None (gate's index then has none)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return value if "T" in value and moment.tzinfo is not None else None


def _or(value: str | None, default: str) -> str:
    return default if value is None else value


def encode_index(subdir: str, shards: Mapping[str, bytes], created_at: str | None) -> bytes:
    """gate's shard index (zstd msgpack): packages beside it (`base_url` `./`), shards under `./shards/`,
    nothing else an upstream put in `info` (a key gate does not know could point a client elsewhere)."""
    info: dict[str, str] = {"subdir": subdir, "base_url": "./", "shards_base_url": "./shards/"}
    if created_at is not None:
        info["created_at"] = created_at
    return compress({"version": 1, "info": info, "shards": dict(shards)})


def compress(document: Mapping[str, Any]) -> bytes:
    """msgpack (map order kept, bytes as bin) compressed with zstd: the same document, the same bytes."""
    return zstandard.ZstdCompressor(level=3).compress(msgspec.msgpack.encode(document))


class Unreadable:
    """In a record's view, a field whose value is a map or array (kept as this marker, not as the value):
    no field facts are made of is one, so the record cannot be judged by it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<a map or array>"


UNREADABLE = Unreadable()
VIEW_FIELDS = ("name", "version", "build", "sha256", "size", "subdir", "timestamp", "indexed_timestamp")


class ShardRecord(RawRecord):
    """A shard's record: its msgpack (`data`), and the fields facts are made of (`view`, hash fields as
    hex); `full()` decodes all of it again, for evidence. A shard's records are judged together, so only
    their views are held at once; a record is decoded whole one at a time, and dropped."""

    __slots__ = ()

    @classmethod
    def read(cls, raw: msgspec.Raw) -> ShardRecord | None:
        """The record of `raw` (None: not a map); ValueError when it cannot be decoded."""
        record = _decode(raw, "a record of the shard")
        if not isinstance(record, dict):
            return None
        view = {k: UNREADABLE if isinstance(record[k], dict | list) else record[k] for k in VIEW_FIELDS if k in record}
        return cls(bytes(raw), hex_record(view))

    def full(self) -> dict[str, Any]:
        return hex_record(_decode(self.data, "a record of the shard"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShardRecord):
            return NotImplemented
        return self.data == other.data or self.full() == other.full()

    __hash__ = None  # type: ignore[assignment]  # equal records may be encoded differently

    def __repr__(self) -> str:
        return f"ShardRecord({self.view!r})"


@dataclass(frozen=True)
class Shard:
    """A shard as gate reads it: each section's records by filename, still encoded (at most MAX_RECORDS in
    all, each at most MAX_RECORD_BYTES), and its `removed` filenames."""

    sections: tuple[dict[str, msgspec.Raw], ...]  # in SECTIONS order
    removed: list[str]


def parse_shard(data: bytes) -> Shard:
    """A shard from its decompressed msgpack; ValueError unless it is a map whose sections are maps of
    filenames (or nil) within MAX_RECORDS records of at most MAX_RECORD_BYTES each. Keys gate does not know
    are skipped, not decoded; the records are left encoded (`shard_records`, `file_records` decode them one
    at a time)."""
    document = _decode(data, "the shard", _Shard)
    by_filename = Annotated[dict[str, msgspec.Raw], msgspec.Meta(max_length=MAX_RECORDS)] | None
    sections: list[dict[str, msgspec.Raw]] = []
    for section, raw in zip(SECTIONS, (document.packages, document.conda), strict=True):
        sections.append((_decode(raw, f"the shard's `{section}`", by_filename) if len(raw) else None) or {})
    if (count := sum(len(s) for s in sections)) > MAX_RECORDS:
        raise ValueError(f"the shard lists {count} records, more than {MAX_RECORDS}")
    for records in sections:
        if (size := max(map(len, records.values()), default=0)) > MAX_RECORD_BYTES:
            raise ValueError(f"the shard has a record of {size} bytes, more than {MAX_RECORD_BYTES}")
    listed = Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_RECORDS)] | None
    removed = _decode(document.removed, "the shard's `removed`", listed) if len(document.removed) else None
    return Shard(tuple(sections), [r for r in map(_text, removed or ()) if r is not None])


def _text(raw: msgspec.Raw) -> str | None:
    """The string `raw` encodes; None when it is something else (not decoded)."""
    try:
        return msgspec.msgpack.decode(raw, type=str)
    except msgspec.DecodeError:
        return None


def filtered_shard(shard: Shard, keep: Container[str]) -> dict[str, Any]:
    """The shard with only the records whose filename is in `keep` (each filename once, in its first
    section; each re-encoded from its decoded value, one at a time), its `removed` names, and nothing else
    (an unknown key may hold records gate did not judge, like rattler's experimental `v3` wheels)."""
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for section, records in zip(SECTIONS, shard.sections, strict=True):
        kept: dict[str, msgspec.Raw] = {}
        for filename, raw in records.items():
            if filename in keep and filename not in seen:
                record = _decode(raw, "a record of the shard")
                if isinstance(record, dict):
                    kept[filename] = msgspec.Raw(msgspec.msgpack.encode(record))
                    seen.add(filename)
        out[section] = kept
    out["removed"] = shard.removed
    return out


def hex_record(record: Record) -> Record:
    """`record` as repodata.json has it (hash fields as hex strings), for the facts gate judges."""
    return {k: v.hex() if k in BINARY_FIELDS and isinstance(v, bytes) else v for k, v in record.items()}


def shard_records(shard: Shard, name: str, subdir: str) -> tuple[list[tuple[str, ShardRecord]], dict[str, str]]:
    """One (filename, record) per filename of `shard` (the shard of package `name` in `subdir`), and the
    filenames that cannot be judged, each with why: listed twice with different records (as in repodata),
    naming another package than the shard's, or in another subdir."""
    return _judgeable(((f, raw) for records in shard.sections for f, raw in records.items()), name, subdir)


def file_records(
    data: bytes, name: str, subdir: str, filename: str
) -> tuple[list[tuple[str, ShardRecord]], dict[str, str]]:
    """`shard_records` of the shard whose msgpack is `data`, for `filename` alone, decoding no other record (a
    download from the shard of a package with thousands of builds costs a lookup, not every record's
    decoding); read within the same bounds as `parse_shard`."""
    shard = parse_shard(data)
    return _judgeable(((filename, s[filename]) for s in shard.sections if filename in s), name, subdir)


def _judgeable(
    pairs: Iterable[tuple[str, msgspec.Raw]], name: str, subdir: str
) -> tuple[list[tuple[str, ShardRecord]], dict[str, str]]:
    listed: dict[str, list[ShardRecord]] = {}
    problems: dict[str, str] = {}
    for filename, raw in pairs:
        record = ShardRecord.read(raw)
        if record is None:
            continue  # not a record: never served (only what was judged is kept)
        listed.setdefault(filename, []).append(record)
        problem = _misplaced(filename, record.mapping, name, subdir)
        if problem is not None:
            problems.setdefault(filename, problem)
    for filename, records in listed.items():
        if (problem := duplicate_problem(records)) is not None:  # type: ignore[arg-type]
            problems[filename] = problem
    return [(filename, records[0]) for filename, records in listed.items()], problems


def _misplaced(filename: str, record: Record, name: str, subdir: str) -> str | None:
    try:
        named = split_conda_filename(filename)[0]
    except ValueError:
        return None  # judged as an unidentified filename, with its own reason
    if named != name.lower():
        return f"it is in the shard of {name!r}, but its filename names {named!r}"
    said = record.get("subdir")
    if said is not None and said != subdir:
        return f"its record says subdir {said!r}, but it is listed in {subdir!r}"
    return None


# -- upstream ---------------------------------------------------------------------------------------------


def index_url(client: ChannelClient, subdir: str) -> str:
    return f"{client.subdir_url(subdir)}/{INDEX}"


def fetch_index(client: ChannelClient, subdir: str, validators: Validators | None) -> Fetched[ShardIndex]:
    """The upstream subdir's shard index (`body`: the decompressed msgpack; None page: a 304 to
    `validators`); an UpstreamError with status 404 when the upstream has none (the subdir is not sharded)."""
    url = index_url(client, subdir)
    response, answer = client.conditional_fetch(url, validators)
    if response is None:
        return answer
    if response.status in (404, 410):
        raise UpstreamError(f"no sharded {subdir} repodata at {client.url}", Failure.NOT_FOUND)
    if response.status != 200:
        raise UpstreamError(f"upstream answered {response.status} for {url}")
    try:
        body = decompress_zst(response.body, MAX_INDEX_BYTES)
        index = parse_index(body)
    except ValueError as err:
        raise UpstreamError(f"upstream {url} is not a valid shard index: {err}") from err
    return Fetched(index, answer.validators, answer.max_age, answer.latency, body=body)


def shard_url(client: ChannelClient, subdir: str, index: ShardIndex, digest: str) -> str:
    """Where the upstream serves the shard `digest`: under `shards_base_url`, relative to the subdir's URL
    (the index's directory), as rattler resolves it."""
    base = urljoin(client.subdir_url(subdir) + "/", index.shards_base_url)
    return urljoin(base if base.endswith("/") else base + "/", f"{digest}.msgpack.zst")


def fetch_shard(client: ChannelClient, url: str, digest: str) -> bytes:
    """The decompressed shard at `url`, only when its bytes hash to `digest` (compressed, or the msgpack
    inside) and it is a msgpack map (`parse_shard`); an UpstreamError otherwise: a shard that is not what
    the index named is not evidence."""
    answer = client.fetch(url, limit=MAX_SHARD_BYTES)
    if answer.status != 200:
        raise UpstreamError(f"upstream answered {answer.status} for the shard {url} its index names")
    compressed = answer.body
    try:
        data = decompress_zst(compressed, MAX_SHARD_BYTES)
    except ValueError as err:
        raise UpstreamError(f"upstream shard {url} is not valid zstd: {err}") from err
    if digest not in (hashlib.sha256(compressed).hexdigest(), hashlib.sha256(data).hexdigest()):
        raise UpstreamError(f"upstream shard {url} does not hash to the address its index gives ({digest})")
    try:
        parse_shard(data)
    except ValueError as err:
        raise UpstreamError(f"upstream shard {url} is not valid: {err}") from err
    return data
