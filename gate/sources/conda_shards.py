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
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import msgspec
import zstandard

from gate.sources.conda import split_conda_filename
from gate.sources.conda_channel import SECTIONS, Record, decompress_zst, duplicate_problem
from gate.sources.conda_upstream import ChannelClient
from gate.sources.http import Failure, Fetched, UpstreamError, Validators

INDEX = "repodata_shards.msgpack.zst"
MAX_INDEX_BYTES = 64 << 20  # decoded; conda-forge linux-64's index is under 1 MB compressed
MAX_SHARD_BYTES = 32 << 20  # decoded; real shards are bytes to a few MB
MAX_NAMES = 250_000  # package names in one index; conda-forge's largest subdir has about 30,000
BINARY_FIELDS = ("md5", "sha256", "legacy_bz2_md5", "attestations_sha256")  # hex in JSON, bin in shards
SHARD_FILE = re.compile(r"shards/([0-9a-f]{64})\.msgpack\.zst")  # gate's own shard paths under a subdir


@dataclass(frozen=True)
class ShardIndex:
    """A parsed shard index: where packages and shards are (relative to the index URL) and each package
    name's shard address (lower-case hex sha256)."""

    subdir: str | None
    base_url: str
    shards_base_url: str
    created_at: str | None
    shards: dict[str, str]


def _decode(data: bytes, what: str) -> Any:
    try:
        return msgspec.msgpack.decode(data)
    except RecursionError:
        raise ValueError(f"{what} nests too deep") from None
    except msgspec.DecodeError as err:
        raise ValueError(f"{what} is not msgpack: {err}") from err


def parse_index(data: bytes) -> ShardIndex:
    """A shard index from its decompressed msgpack; ValueError when it is not one (every address must be
    32 bytes, every name a string, `info` a map, at most MAX_NAMES names)."""
    document = _decode(data, "the shard index")
    if not isinstance(document, dict) or not isinstance(document.get("info"), dict):
        raise ValueError("the shard index is not a map with an `info` map")
    info, shards = document["info"], document.get("shards")
    if not isinstance(shards, dict):
        raise ValueError("the shard index has no `shards` map")
    if len(shards) > MAX_NAMES:
        raise ValueError(f"the shard index lists {len(shards)} package names, more than {MAX_NAMES}")
    out: dict[str, str] = {}
    for name, digest in shards.items():
        if not isinstance(name, str) or not isinstance(digest, bytes) or len(digest) != 32:
            raise ValueError(f"the shard index lists {name!r} with {digest!r}, not a 32-byte sha256")
        out[name] = digest.hex()

    def text(key: str) -> str | None:
        value = info.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"the shard index's info.{key} is not a string")
        return value

    return ShardIndex(
        subdir=text("subdir"),
        base_url=_reference(text("base_url") or "", "base_url"),
        shards_base_url=_reference(_or(text("shards_base_url"), "./shards/"), "shards_base_url"),
        created_at=_moment(info.get("created_at")),
        shards=out,
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


def parse_shard(data: bytes) -> dict[str, Any]:
    """A shard from its decompressed msgpack; ValueError unless it is a map."""
    document = _decode(data, "the shard")
    if not isinstance(document, dict):
        raise ValueError("the shard is not a map")
    return document


def filtered_shard(shard: Mapping[str, Any], keep: Container[str]) -> dict[str, Any]:
    """The shard with only the records whose filename is in `keep` (each filename once, in its first
    section), its `removed` names, and nothing else (an unknown key may hold records gate did not judge,
    like rattler's experimental `v3` wheels)."""
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for section in SECTIONS:
        records = shard.get(section)
        kept: dict[str, Any] = {}
        if isinstance(records, dict):
            for filename, record in records.items():
                if isinstance(filename, str) and isinstance(record, dict) and filename in keep and filename not in seen:
                    kept[filename] = record
                    seen.add(filename)
        out[section] = kept
    removed = shard.get("removed")
    out["removed"] = [r for r in removed if isinstance(r, str)] if isinstance(removed, list) else []
    return out


def hex_record(record: Record) -> Record:
    """`record` as repodata.json has it (hash fields as hex strings), for the facts gate judges."""
    return {k: v.hex() if k in BINARY_FIELDS and isinstance(v, bytes) else v for k, v in record.items()}


def shard_records(shard: Mapping[str, Any], name: str, subdir: str) -> tuple[list[tuple[str, Record]], dict[str, str]]:
    """One (filename, record as hex) per filename of `shard` (the shard of package `name` in `subdir`), and the
    filenames that cannot be judged, each with why: listed twice with different records (as in repodata),
    naming another package than the shard's, or in another subdir."""
    return _judgeable(_pairs(shard), name, subdir)


class _Sections(msgspec.Struct):
    """A shard's record sections, each record left encoded (other keys are skipped, not decoded)."""

    packages: msgspec.Raw = msgspec.Raw()
    conda: msgspec.Raw = msgspec.field(default=msgspec.Raw(), name="packages.conda")


def file_records(data: bytes, name: str, subdir: str, filename: str) -> tuple[list[tuple[str, Record]], dict[str, str]]:
    """`shard_records` of the shard whose msgpack is `data`, for `filename` alone, decoding no other record (a
    download from the shard of a package with thousands of builds costs a lookup, not the whole shard's
    decoding); a shard the quick path cannot read (a key that is not a string, a section that is no map) is
    read as `shard_records` reads it."""
    try:
        sections = msgspec.msgpack.decode(data, type=_Sections)
        pairs = []
        for raw in (sections.packages, sections.conda):
            records = msgspec.msgpack.decode(raw, type=dict[str, msgspec.Raw]) if len(raw) else {}
            if filename in records:
                pairs.append((filename, msgspec.msgpack.decode(records[filename])))
    except (msgspec.DecodeError, RecursionError):
        pairs = [(listed, record) for listed, record in _pairs(parse_shard(data)) if listed == filename]
    return _judgeable(pairs, name, subdir)


def _pairs(shard: Mapping[str, Any]) -> Iterator[tuple[object, object]]:
    for section in SECTIONS:
        records = shard.get(section)
        if isinstance(records, dict):
            yield from records.items()


def _judgeable(
    pairs: Iterable[tuple[object, object]], name: str, subdir: str
) -> tuple[list[tuple[str, Record]], dict[str, str]]:
    listed: dict[str, list[Record]] = {}
    problems: dict[str, str] = {}
    for filename, record in pairs:
        if not isinstance(filename, str) or not isinstance(record, dict):
            continue  # not a record: never served (filter_repodata keeps only what was judged)
        listed.setdefault(filename, []).append(hex_record(record))
        problem = _misplaced(filename, record, name, subdir)
        if problem is not None:
            problems.setdefault(filename, problem)
    for filename, records in listed.items():
        if (problem := duplicate_problem(records)) is not None:
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
