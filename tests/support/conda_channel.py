"""Build and index a real local conda channel for end-to-end tests (served by :mod:`tests.support.conda_server`,
solved and installed from with rattler by :mod:`tests.support.conda_rattler`).

API::

    build_conda_package(dest_dir, name, version, build="0", *, subdir="noarch", depends=(),
                        timestamp_ms=None, fmt="conda", build_number=0) -> Path
    payload_relpath(name) -> str; payload_text(name, version, build) -> str
    index_channel(channel_dir) -> None
    read_repodata(channel_dir, subdir) -> dict
    set_record_fields(channel_dir, subdir, filename, **fields) -> dict     # value None deletes a field
    write_repodata(channel_dir, subdir, repodata) -> None
    write_sidecar(package, body) -> str             # <file>.sigs + <file>.sigs.<sha256>; then index_channel()
    add_fixture_signed_package(channel_dir) -> dict
    epoch_ms(when) -> int; DAY_MS                   # conda timestamps are milliseconds since the epoch

What rattler's indexer writes (py-rattler 0.28 ``rattler.index.index_fs``, observed):
    per subdir ``repodata.json`` (compact; each record gets CEP 47 ``indexed_timestamp`` = time of first
    indexing, kept on re-index even with ``force=True``; top level also gets ``repodata_version: 1`` and
    ``v3: {}``), ``repodata.json.zst`` (``write_zst``, default on), ``repodata_shards.msgpack.zst`` plus
    ``shards/<sha256 of the compressed shard>.msgpack.zst`` (CEP 16, ``write_shards``, default on; one shard
    per package name; md5/sha256/attestations_sha256 as msgpack bin). It writes no ``repodata.json.bz2``,
    ``current_repodata.json``, ``repodata_from_packages.json``, ``channeldata.json`` or ``.jlap``, and leaves
    an empty ``<channel>/.tmp/`` and no-longer-referenced shard files behind.
    It implements the sidecar draft (conda/ceps PR 142) itself: for ``<file>.sigs`` it requires a non-empty
    JSON array (``[{}]`` passes; no Sigstore check, no subject check) and the content-addressed copy
    ``<file>.sigs.<sha256>`` (error if missing; it does not create it) and sets ``attestations_sha256``;
    without ``.sigs`` it drops the field. A re-index reuses the records already in ``repodata.json``
    (edited ``timestamp``/``indexed_timestamp``/``depends`` survive), drops fields it does not model
    (e.g. ``x_anything``), and keeps the stale record of a package rebuilt under the same filename.
    ``index_channel`` therefore forgets records whose file changed, lets rattler rewrite the shards from
    scratch and deletes the variants rattler does not write; so call ``set_record_fields`` after the last
    ``index_channel`` (a bogus ``attestations_sha256`` or an unknown field would not survive a re-index).
    ``set_record_fields``/``write_repodata`` write ``repodata.json``, ``.json.zst``, the shard index and the
    shards themselves (small msgpack encoder, hash fields as bin like rattler), since a re-index would undo
    such edits, and delete every other ``*repodata*`` file and unreferenced shard, so nothing stale remains.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import struct
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import conda_package_handling.api as cph
import zstandard
from rattler.index import index_fs

from tests.conftest import FIXTURES

__all__ = [
    "DAY_MS",
    "FIXTURE_CHANNEL",
    "SIGNED_PACKAGE",
    "JsonObject",
    "PackageFormat",
    "add_fixture_signed_package",
    "build_conda_package",
    "epoch_ms",
    "index_channel",
    "payload_relpath",
    "payload_text",
    "read_repodata",
    "set_record_fields",
    "write_repodata",
    "write_sidecar",
]

FIXTURE_CHANNEL = FIXTURES / "conda" / "channel-sigstore-example"
SIGNED_PACKAGE = "signed-package-2.1.0-hb0f4dca_0.conda"
DAY_MS = 86_400_000

PackageFormat = Literal["conda", "tar.bz2"]
JsonObject = dict[str, Any]

_ARCH_PLATFORM = {
    "linux-64": ("x86_64", "linux"),
    "linux-aarch64": ("aarch64", "linux"),
    "osx-64": ("x86_64", "osx"),
    "osx-arm64": ("arm64", "osx"),
    "win-64": ("x86_64", "win"),
}
_SHARD_BINARY_FIELDS = ("md5", "sha256", "legacy_bz2_md5", "attestations_sha256")
_WRITTEN_VARIANTS = ("repodata.json", "repodata.json.zst", "repodata_shards.msgpack.zst")


# --- building packages -------------------------------------------------------------------------------------


def payload_relpath(name: str) -> str:
    """Return the prefix-relative path of the single payload file a built package installs."""
    return f"share/{name}/payload.txt"


def payload_text(name: str, version: str, build: str) -> str:
    """Return the content of the payload file of the given package."""
    return f"{name} {version} {build}\n"


def build_conda_package(
    dest_dir: Path,
    name: str,
    version: str,
    build: str = "0",
    *,
    subdir: str = "noarch",
    depends: Sequence[str] = (),
    timestamp_ms: int | None = None,
    fmt: PackageFormat = "conda",
    build_number: int = 0,
) -> Path:
    """Build a real conda package into dest_dir (usually channel_dir / subdir) and return its path."""
    filename = f"{name}-{version}-{build}.{fmt}"
    dest_dir.mkdir(parents=True, exist_ok=True)
    index = _index_json(name, version, build, build_number, subdir)
    index["depends"] = list(depends)
    if timestamp_ms is not None:  # None: no timestamp at all, like some real packages
        index["timestamp"] = timestamp_ms
    with tempfile.TemporaryDirectory(prefix="conda-pkg-") as tmp:
        root = Path(tmp)
        payload = payload_relpath(name)
        _write_file(root / payload, payload_text(name, version, build).encode())
        _write_info(root, index, payload)
        files = ["info/index.json", "info/paths.json", "info/files", payload]
        cph.create(str(root), files, filename, out_folder=str(dest_dir))
    return dest_dir / filename


def _index_json(name: str, version: str, build: str, build_number: int, subdir: str) -> JsonObject:
    """Return the info/index.json of a package without depends and timestamp."""
    index: JsonObject = {"name": name, "version": version, "build": build, "build_number": build_number}
    index["subdir"] = subdir
    if subdir == "noarch":
        index["noarch"] = "generic"
    elif subdir in _ARCH_PLATFORM:
        index["arch"], index["platform"] = _ARCH_PLATFORM[subdir]
    return index


def _write_info(root: Path, index: JsonObject, payload: str) -> None:
    """Write info/index.json, info/paths.json and info/files describing the one payload file."""
    data = (root / payload).read_bytes()
    entry = {"_path": payload, "path_type": "hardlink", "sha256": _sha256(data), "size_in_bytes": len(data)}
    _write_file(root / "info" / "index.json", json.dumps(index, indent=2).encode())
    _write_file(root / "info" / "paths.json", json.dumps({"paths": [entry], "paths_version": 1}).encode())
    _write_file(root / "info" / "files", f"{payload}\n".encode())


# --- indexing and editing repodata -------------------------------------------------------------------------


def index_channel(channel_dir: Path) -> None:
    """Index every subdir with rattler's own indexer, then remove what it would leave stale."""
    (channel_dir / "noarch").mkdir(parents=True, exist_ok=True)
    for subdir in _indexed(channel_dir):
        _prune_changed_records(channel_dir, subdir)
        shutil.rmtree(channel_dir / subdir / "shards", ignore_errors=True)  # rattler rewrites live shards
    asyncio.run(index_fs(channel_dir))
    with suppress(OSError):
        (channel_dir / ".tmp").rmdir()  # rattler's scratch directory, empty after a successful run
    for subdir in _indexed(channel_dir):
        _delete_other_variants(channel_dir / subdir)


def read_repodata(channel_dir: Path, subdir: str) -> JsonObject:
    """Return the parsed `<subdir>/repodata.json` of the channel."""
    data: JsonObject = json.loads((channel_dir / subdir / "repodata.json").read_bytes())
    return data


def set_record_fields(channel_dir: Path, subdir: str, filename: str, **fields: object) -> JsonObject:
    """Set (or, with None, delete) fields of one repodata record, rewrite all variants, return the record."""
    repodata = read_repodata(channel_dir, subdir)
    record: JsonObject = repodata[_record_key(filename)][filename]
    for key, value in fields.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    write_repodata(channel_dir, subdir, repodata)
    return record


def write_repodata(channel_dir: Path, subdir: str, repodata: JsonObject) -> None:
    """Write repodata.json, .zst and shards of a subdir and delete every other (stale) repodata variant."""
    subdir_dir = channel_dir / subdir
    text = json.dumps(repodata, separators=(",", ":")).encode()
    _write_file(subdir_dir / "repodata.json", text)
    _write_file(subdir_dir / "repodata.json.zst", zstandard.ZstdCompressor().compress(text))
    _write_shards(subdir_dir, repodata)
    _delete_other_variants(subdir_dir)


def write_sidecar(package: Path, body: bytes) -> str:
    """Write `<package>.sigs` and its `.sigs.<sha256>` copy (rattler needs both); return the sha256."""
    digest = _sha256(body)
    _write_file(package.with_name(f"{package.name}.sigs"), body)
    _write_file(package.with_name(f"{package.name}.sigs.{digest}"), body)
    return digest


def add_fixture_signed_package(channel_dir: Path) -> JsonObject:
    """Copy the real signed package and both sidecars into linux-64, index the channel, return the record."""
    target = channel_dir / "linux-64"
    target.mkdir(parents=True, exist_ok=True)
    for source in sorted((FIXTURE_CHANNEL / "linux-64").glob(f"{SIGNED_PACKAGE}*")):
        shutil.copyfile(source, target / source.name)
    index_channel(channel_dir)
    record: JsonObject = read_repodata(channel_dir, "linux-64")["packages.conda"][SIGNED_PACKAGE]
    return record


def _indexed(channel_dir: Path) -> list[str]:
    """Return the subdirs of the channel that have a repodata.json."""
    return sorted(path.parent.name for path in channel_dir.glob("*/repodata.json"))


def _record_key(filename: str) -> str:
    """Return the repodata section holding records of this package filename."""
    return "packages.conda" if filename.endswith(".conda") else "packages"


def _prune_changed_records(channel_dir: Path, subdir: str) -> None:
    """Drop records whose file is gone or was rebuilt, which rattler's incremental index would keep."""
    repodata = read_repodata(channel_dir, subdir)
    for key in ("packages", "packages.conda"):
        records: dict[str, JsonObject] = repodata.get(key, {})
        for filename, record in list(records.items()):
            package = channel_dir / subdir / filename
            if not package.is_file() or _sha256(package.read_bytes()) != record.get("sha256"):
                del records[filename]
    _write_file(channel_dir / subdir / "repodata.json", json.dumps(repodata).encode())


def _delete_other_variants(subdir_dir: Path) -> None:
    """Delete repodata variants rattler does not write (.bz2, current_repodata.json, ...): they'd be stale."""
    for path in subdir_dir.glob("*repodata*"):
        if path.name not in _WRITTEN_VARIANTS:
            path.unlink()


# --- sharded repodata (CEP 16) -----------------------------------------------------------------------------


def _write_shards(subdir_dir: Path, repodata: JsonObject) -> None:
    """Replace `repodata_shards.msgpack.zst` and `shards/` with one shard per package name."""
    shutil.rmtree(subdir_dir / "shards", ignore_errors=True)
    digests: dict[str, bytes] = {}
    for name, shard in sorted(_shards(repodata).items()):
        blob = zstandard.ZstdCompressor().compress(_msgpack(shard))
        digests[name] = hashlib.sha256(blob).digest()
        _write_file(subdir_dir / "shards" / f"{digests[name].hex()}.msgpack.zst", blob)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    info = {"subdir": subdir_dir.name, "base_url": "", "shards_base_url": "./shards/", "created_at": created}
    index = _msgpack({"info": info, "shards": digests})
    _write_file(subdir_dir / "repodata_shards.msgpack.zst", zstandard.ZstdCompressor().compress(index))


def _shards(repodata: JsonObject) -> dict[str, JsonObject]:
    """Group records per package name the way rattler's indexer does (hashes as raw bytes)."""
    shards: dict[str, JsonObject] = {}
    for key in ("packages", "packages.conda"):
        for filename, record in repodata.get(key, {}).items():
            shard = shards.setdefault(record["name"], {"packages": {}, "packages.conda": {}, "removed": []})
            shard[key][filename] = _shard_record(record)
    return shards


def _shard_record(record: JsonObject) -> JsonObject:
    """Return a copy of a record with its hash fields as bytes, as rattler's shards store them."""
    return {k: bytes.fromhex(v) if k in _SHARD_BINARY_FIELDS else v for k, v in record.items()}


def _msgpack(value: object) -> bytes:
    """Encode JSON-like data (plus bytes) as MessagePack, always using the widest length/int forms."""
    if value is None or isinstance(value, bool):
        return {None: b"\xc0", False: b"\xc2", True: b"\xc3"}[value]
    if isinstance(value, int):
        return struct.pack(">BQ", 0xCF, value) if value >= 0 else struct.pack(">Bq", 0xD3, value)
    if isinstance(value, float):
        return struct.pack(">Bd", 0xCB, value)
    if isinstance(value, str):
        return _msgpack_sized(0xDB, value.encode())
    if isinstance(value, bytes):
        return _msgpack_sized(0xC6, value)
    if isinstance(value, list | tuple):
        return struct.pack(">BI", 0xDD, len(value)) + b"".join(_msgpack(item) for item in value)
    if isinstance(value, dict):
        items = b"".join(_msgpack(k) + _msgpack(v) for k, v in value.items())
        return struct.pack(">BI", 0xDF, len(value)) + items
    raise TypeError(f"cannot encode {type(value).__name__} as msgpack")


def _msgpack_sized(marker: int, data: bytes) -> bytes:
    """Encode a str32/bin32 MessagePack value."""
    return struct.pack(">BI", marker, len(data)) + data


# --- small helpers -----------------------------------------------------------------------------------------


def epoch_ms(when: datetime) -> int:
    """Return `when` in milliseconds since the epoch, the unit of conda's timestamps."""
    return int(when.timestamp() * 1000)


def _sha256(data: bytes) -> str:
    """Return the lowercase hex sha256 of data."""
    return hashlib.sha256(data).hexdigest()


def _write_file(path: Path, data: bytes) -> None:
    """Write bytes to path, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
