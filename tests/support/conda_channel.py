"""Build, index and serve a real local conda channel for end-to-end tests (loopback only).

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
    serve_channel(channel_dir, *, request_log=None, not_found=()) -> ContextManager[str]   # base URL
    ChannelServer(channel_dir, *, not_found=(), request_log=None)   # .url .requests .paths() .not_found .failing
    solve(url, cache, specs, platforms=("noarch",), exclude_newer=None) -> list[RepoDataRecord]
    install(records, prefix, cache) -> None         # rattler, caches under `cache` (see "Caches" below)
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

What the rattler 0.28 client requests (``solve`` through a ``Gateway`` with default ``SourceConfig``, seen in
the server log; subdirs are fetched concurrently, so only the order within one subdir is fixed):
    1. ``GET <subdir>/repodata_shards.msgpack.zst``. 200: ``GET <subdir>/shards/<hex>.msgpack.zst`` for each
       package name the solve needs (sent with ``Cache-Control: no-store``; rattler caches them itself under
       ``<cache>/shards-v1/``); no ``repodata.json*`` is requested at all. A 404 on a shard file is fatal
       (``GatewayError``), there is no fallback to ``repodata.json``.
    2. 404 on the shard index: ``HEAD <subdir>/repodata.json.zst`` and ``HEAD <subdir>/repodata.json.bz2``
       (both, in either order), then
    3. ``GET`` of the best variant whose HEAD said 200: ``.zst``, else ``.bz2``, else plain ``repodata.json``.
    4. 404 on ``repodata.json`` as well: fatal for ``noarch`` ("could not find subdir 'noarch' in channel"),
       an empty subdir for a platform subdir such as ``linux-64``.
    A second solve with the same cache dir did not ask for a shard index that had been 404 before. ``install``
    GETs ``<subdir>/<filename>`` (the record's url); ``.sigs`` sidecars are never requested (no
    ``attestation_policy`` given). rattler parses ``attestations_sha256`` (hex string in JSON; hex string or
    bin in shards) into ``RepoDataRecord.attestations_sha256`` (bytes).

Conditional requests: with a warm cache rattler sends ``If-None-Match``/``If-Modified-Since``. For the shard
index a 304 must repeat the cached 200's validator (``ETag`` or ``Last-Modified``): the bare 304 of
``http.server.SimpleHTTPRequestHandler`` makes rattler fail with "received unexpected status code (304 Not
Modified)" (the plain-repodata path copes). This server sends a strong ``ETag`` (sha256 of the file), answers
``If-None-Match`` with 304 + validators and ignores ``If-Modified-Since`` (1 s resolution would report a file
rewritten within the same second as unchanged).

Caches: ``solve``'s default ``Gateway()`` ignores ``RATTLER_CACHE_DIR`` and uses
``$XDG_CACHE_HOME/rattler/cache``; ``install`` honours ``RATTLER_CACHE_DIR`` (``<dir>/pkgs``). Pass
``Gateway(cache_dir=...)`` and ``install(cache_dir=...)`` (and point both variables at a tmp dir).
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import io
import json
import shutil
import struct
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal
from urllib.parse import unquote, urlsplit

import conda_package_handling.api as cph
import rattler
import zstandard
from rattler import RepoDataRecord
from rattler.index import index_fs
from rattler.platform.subdir import SubdirLiteral

from tests.conftest import FIXTURES
from tests.support.loopback import LoopbackServer, serving
from tests.support.pypi_upstream import etag_matches

__all__ = [
    "DAY_MS",
    "FIXTURE_CHANNEL",
    "SIGNED_PACKAGE",
    "ChannelServer",
    "JsonObject",
    "PackageFormat",
    "ServedRequest",
    "add_fixture_signed_package",
    "build_conda_package",
    "epoch_ms",
    "index_channel",
    "install",
    "payload_relpath",
    "payload_text",
    "read_repodata",
    "serve_channel",
    "set_record_fields",
    "solve",
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


# --- serving -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedRequest:
    """One request the channel server answered."""

    method: str
    path: str
    status: int


class _ChannelHandler(SimpleHTTPRequestHandler):
    """Static file handler that records requests and can pretend files are missing."""

    server: _ChannelHTTPServer

    def send_head(self) -> BinaryIO | None:
        """Serve a file with a strong ETag, answering If-None-Match with 304, hidden paths with 404 and
        failing ones with 500."""
        if self.server.owner.hidden(self._url_path()):
            self.send_error(404, "hidden by test")
            return None
        if self.server.owner.failed(self._url_path()):
            self.send_error(500, "failure injected by test")
            return None
        file = Path(self.translate_path(self.path))
        if not file.is_file():
            return super().send_head()  # directories and plain 404s
        data = file.read_bytes()
        etag = f'"{_sha256(data)}"'
        if etag_matches(self.headers.get("If-None-Match"), etag):
            self._send_status(304, etag, file)
            return None
        self._send_status(200, etag, file)
        return io.BytesIO(data)

    def _send_status(self, status: int, etag: str, file: Path) -> None:
        """Send the status line and the headers of a file response (body follows for 200)."""
        self.send_response(status)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", self.date_time_string(int(file.stat().st_mtime)))
        if status == 200:
            self.send_header("Content-Type", self.guess_type(str(file)))
            self.send_header("Content-Length", str(file.stat().st_size))
        self.end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Record the request instead of printing it."""
        status = int(code) if isinstance(code, int) or code.isdigit() else 0
        self.server.owner.record(ServedRequest(self.command, self._url_path(), status))

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent; the request log is the record."""

    def _url_path(self) -> str:
        """Return the decoded path of the request URL without query string."""
        return unquote(urlsplit(self.path).path)


class _ChannelHTTPServer(LoopbackServer):
    """Loopback server carrying the owning ChannelServer."""

    def __init__(self, owner: ChannelServer) -> None:
        self.owner = owner
        super().__init__(self._handler)

    def _handler(self, *args: Any) -> _ChannelHandler:
        """Create a request handler rooted at the channel directory."""
        return _ChannelHandler(*args, directory=str(self.owner.channel_dir))


class ChannelServer:
    """Context manager serving a channel directory on 127.0.0.1 from a background thread."""

    def __init__(
        self,
        channel_dir: Path,
        *,
        not_found: Iterable[str] = (),
        request_log: list[ServedRequest] | None = None,
    ) -> None:
        """Configure; not_found: fnmatch patterns of URL paths to answer 404; requests go to request_log."""
        self.channel_dir = channel_dir
        self.not_found = set(not_found)  # live: tests may change it while serving
        self.failing: set[str] = set()  # fnmatch patterns of URL paths to answer 500 (live too)
        self.url = ""  # set on __enter__
        self._log: list[ServedRequest] = [] if request_log is None else request_log
        self._lock = threading.Lock()
        self._running = ExitStack()

    @property
    def requests(self) -> list[ServedRequest]:
        """Return a snapshot of the requests served so far."""
        with self._lock:
            return list(self._log)

    def paths(self, method: str = "GET") -> list[str]:
        """Return the URL paths requested with the given method, in order."""
        return [r.path for r in self.requests if r.method == method]

    def hidden(self, path: str) -> bool:
        """Tell whether a URL path matches one of the not-found patterns."""
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.not_found)

    def failed(self, path: str) -> bool:
        """Tell whether a URL path matches one of the failing patterns."""
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.failing)

    def record(self, request: ServedRequest) -> None:
        """Append a request to the log (called from handler threads)."""
        with self._lock:
            self._log.append(request)

    def __enter__(self) -> ChannelServer:
        """Bind a free port and start serving."""
        self.url = self._running.enter_context(serving(_ChannelHTTPServer(self), "conda-channel")).base
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop serving (cutting open connections) and close the listening socket."""
        self._running.close()


@contextmanager
def serve_channel(
    channel_dir: Path, *, request_log: list[ServedRequest] | None = None, not_found: Iterable[str] = ()
) -> Iterator[str]:
    """Serve channel_dir on a free loopback port and yield its base URL; log requests to request_log."""
    with ChannelServer(channel_dir, not_found=not_found, request_log=request_log) as server:
        yield server.url


# --- rattler as the client ---------------------------------------------------------------------------------


def solve(
    url: str,
    cache: Path,
    specs: Sequence[str],
    platforms: Sequence[SubdirLiteral] = ("noarch",),
    exclude_newer: timedelta | None = None,
) -> list[RepoDataRecord]:
    """Solve specs against one channel URL only, with repodata cached under cache."""
    gateway = rattler.Gateway(cache_dir=cache / "repodata")
    solving = rattler.solve(
        sources=[url], specs=specs, gateway=gateway, platforms=platforms, exclude_newer=exclude_newer
    )
    return asyncio.run(solving)


def install(records: list[RepoDataRecord], prefix: Path, cache: Path) -> None:
    """Install records into prefix (each downloaded from its record's URL), packages cached under cache."""
    asyncio.run(rattler.install(records, target_prefix=prefix, cache_dir=cache / "pkgs", show_progress=False))


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
