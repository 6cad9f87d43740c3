"""Conda explicit environment files (`@EXPLICIT`, one package URL per line): facts for every package.

Each line is `<channel>/<subdir>/<file>[#<md5>|#<sha256>|#sha256:<sha256>]`. Every package is fetched
from its URL and hashed (the bytes must match the hash on the line), and its channel's
`<subdir>/repodata.json` record (upload time, `attestations_sha256`) and, when a policy that governs the
package reads attestations, its sidecars are fetched beside it. `http(s)://` and `file://` URLs are read;
anything else is a usage error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from msgspec.structs import replace

from gate.errors import GateError, UsageError
from gate.facts import Ecosystem, Facts, Unidentified
from gate.gather.conda import CondaFacts, SidecarLocator, bytes_facts
from gate.gather.ports import Uncached
from gate.redact import redact_text
from gate.sources.conda import record_for_bytes, split_conda_filename
from gate.sources.conda_channel import MAX_REPODATA_BYTES, find_record, parse_repodata
from gate.sources.conda_evidence import MAX_SIDECAR_BYTES, SidecarError
from gate.sources.failure import UpstreamError
from gate.sources.filenames import is_distribution_filename
from gate.sources.hosts import HostPolicy, HostPort
from gate.sources.http import MAX_FILE_BYTES, HttpClient, Stream
from gate.sources.local import LocalOptions
from gate.sources.localfile import bounded_chunks, read_regular

EXPLICIT = "@EXPLICIT"
_LINE = re.compile(
    r"(?P<url>[^#\s]+)"
    r"(?:#(?:(?:sha256:)?(?P<sha256>[0-9a-fA-F]{64})|(?:md5:)?(?P<md5>[0-9a-fA-F]{32})))?"
)
# lines end where conda's end (a file read with universal newlines), not at every break `str.splitlines` knows
# (U+2028, U+0085, \x1c...): a line conda reads as one URL is never checked as two
_NEWLINE = re.compile(r"\r\n|\r|\n")
_SNIFF_BYTES = 1 << 16
_TIMEOUT = 60.0  # seconds for an answer, and for a download beyond what its size takes at MIN_RATE
_CHUNK = 1 << 16


class ExplicitEnvError(UsageError):
    """An explicit environment file that cannot be checked: a bad line, or a package that differs from it."""


@dataclass(frozen=True)
class ExplicitPackage:
    """One package line: where to get the file and the hash the environment pins it to."""

    url: str
    filename: str
    line: int
    sha256: str | None = None
    md5: str | None = None

    @property
    def subdir_url(self) -> str:
        return self.url.rsplit("/", 1)[0]

    @property
    def channel(self) -> str:
        """The channel URL: the package URL without `/<subdir>/<file>`."""
        return self.url.rsplit("/", 2)[0]


def is_explicit_env(path: Path) -> bool:
    """Whether `path` is a text file with an `@EXPLICIT` line (distribution files never are)."""
    if is_distribution_filename(path.name):
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    return any(line.strip() == EXPLICIT.encode() for line in head.splitlines())


def _package_filename(filename: str) -> bool:
    try:
        split_conda_filename(filename)
    except ValueError:
        return False
    return True


def parse_explicit(text: str, source: str = "<explicit>") -> list[ExplicitPackage]:
    """The packages of an explicit environment file; raise ExplicitEnvError naming every bad line."""
    packages: list[ExplicitPackage] = []
    problems: list[str] = []
    explicit = False
    for number, raw in enumerate(_NEWLINE.split(text), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == EXPLICIT:
            explicit = True
            continue
        match = _LINE.fullmatch(line)
        url = match["url"] if match else ""
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        if not explicit:
            problems.append(f"{source}:{number}: expected {EXPLICIT} before package lines: {line}")
        elif match is None or not _package_filename(filename):
            problems.append(f"{source}:{number}: not a conda package URL[#md5|#sha256]: {line}")
        elif urlsplit(url).scheme not in ("http", "https", "file"):
            problems.append(f"{source}:{number}: only http(s):// and file:// URLs can be checked: {url}")
        else:
            sha256, md5 = match["sha256"], match["md5"]
            packages.append(
                ExplicitPackage(
                    url=url, filename=filename, line=number,
                    sha256=sha256.lower() if sha256 else None, md5=md5.lower() if md5 else None,
                )
            )
    if not explicit:
        problems.append(f"{source}: no {EXPLICIT} line")
    if problems:
        raise ExplicitEnvError("\n".join(problems))
    return packages


class FetchError(GateError):
    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))

    def diagnostics(self) -> str:
        return f"{self}\ngate check fetches every package of an explicit environment: check the URL and network."


def explicit_hosts(channel: str | None, allow_hosts: Iterable[HostPort] = ()) -> HostPolicy:
    """Where an explicit environment's URLs may point (the file is input, perhaps a stranger's): the
    `--channel`'s host (and `--allow-host`s) when given, an internal address only when the channel is on
    one; without `--channel`, any host but never an internal address unless `--allow-host` names it."""
    extra = list(allow_hosts)
    if channel is not None and urlsplit(channel).scheme in ("http", "https"):
        return HostPolicy.for_upstreams([channel], extra)
    return HostPolicy(set(extra), extra, any_host=True)


class Fetcher:
    """Reads http(s):// and file:// URLs; `None` means the resource does not exist (404, no such file).
    HTTP goes through `HttpClient` (its `HostPolicy` checked at every redirect hop); a package download
    has one deadline (`timeout`, moved with the bytes received at `MIN_RATE`: a dripping server is cut)
    and at most `max_bytes`. An error status is reported with the redacted URL, never the body."""

    def __init__(
        self, client: HttpClient | None = None, *, hosts: HostPolicy | None = None, timeout: float = _TIMEOUT,
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.client = client or HttpClient(None, timeout, hosts=hosts or explicit_hosts(None))
        self.max_bytes = max_bytes

    def chunks(self, url: str) -> Iterator[bytes] | None:
        if urlsplit(url).scheme == "file":
            return self._file_chunks(url)
        try:
            stream = self.client.stream(url, limit=self.max_bytes, pace=True)
        except UpstreamError as err:
            raise FetchError(f"cannot fetch {url}: {err}") from err
        if stream.status != 200:
            stream.close()
            if stream.status in (404, 410):
                return None
            raise FetchError(f"cannot fetch {url}: HTTP {stream.status}")
        return self._http_chunks(url, stream)

    @staticmethod
    def _http_chunks(url: str, stream: Stream) -> Iterator[bytes]:
        with stream:
            try:
                yield from stream.chunks()
            except UpstreamError as err:
                raise FetchError(f"cannot fetch {url}: {err}") from err

    @staticmethod
    def _file_chunks(url: str) -> Iterator[bytes] | None:
        path = Path(url2pathname(urlsplit(url).path))
        if not path.is_file():
            return None

        def read() -> Iterator[bytes]:
            try:
                yield from bounded_chunks(path, _CHUNK)
            except OSError as err:
                raise FetchError(f"cannot read {path}: {err.strerror or err}") from err

        return read()

    def read(self, url: str, limit: int) -> bytes | None:
        """A small document (repodata, a sidecar), at most `limit` bytes, within one deadline."""
        if urlsplit(url).scheme == "file":
            chunks = self._file_chunks(url)
            if chunks is None:
                return None
            data = bytearray()
            for chunk in chunks:
                data += chunk
                if len(data) > limit:
                    raise FetchError(f"{url} is larger than {limit} bytes")
            return bytes(data)
        try:
            return self.client.fetch_small(url, limit, absent=(404, 410))
        except UpstreamError as err:
            raise FetchError(f"cannot fetch {url}: {err}") from err


@dataclass(frozen=True)
class Downloaded:
    sha256: str
    md5: str
    size: int


def _download(fetcher: Fetcher, package: ExplicitPackage) -> Downloaded:
    chunks = fetcher.chunks(package.url)
    if chunks is None:
        raise ExplicitEnvError(f"line {package.line}: {package.url} does not exist (404)")
    sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    for chunk in chunks:
        sha256.update(chunk)
        md5.update(chunk)
        size += len(chunk)
    return Downloaded(sha256.hexdigest(), md5.hexdigest(), size)


class _Repodata:
    """Each `<subdir>/repodata.json` fetched once; an absent or unreadable one gives no records."""

    def __init__(self, fetcher: Fetcher, limit: int = MAX_REPODATA_BYTES) -> None:
        self.fetcher = fetcher
        self.limit = limit
        self._seen: dict[str, dict[str, Any]] = {}

    def record(self, package: ExplicitPackage) -> dict[str, Any] | None:
        key = package.subdir_url
        if key not in self._seen:
            data = self.fetcher.read(f"{key}/repodata.json", self.limit)
            try:
                self._seen[key] = parse_repodata(data) if data else {}
            except ValueError:
                self._seen[key] = {}
        return find_record(self._seen[key], package.filename)


def _sidecars(fetcher: Fetcher, package: ExplicitPackage) -> SidecarLocator:
    """A package's sidecars are fetched from beside it."""

    def locate(name: str) -> tuple[str, Callable[[], bytes | None]]:
        url = f"{package.subdir_url}/{name}"

        def read() -> bytes | None:
            try:
                return fetcher.read(url, MAX_SIDECAR_BYTES)
            except FetchError as err:
                raise SidecarError(str(err)) from err

        return url, read

    return locate


def _check_pins(package: ExplicitPackage, got: Downloaded) -> None:
    for algorithm, want, have in (("sha256", package.sha256, got.sha256), ("md5", package.md5, got.md5)):
        if want is not None and want != have:
            raise ExplicitEnvError(
                f"line {package.line}: {package.url} has {algorithm} {have}, the environment pins {want}"
            )


def explicit_facts(
    path: Path, options: LocalOptions, *, fetcher: Fetcher | None = None, allow_hosts: Iterable[HostPort] = (),
    now: dt.datetime | None = None,
) -> list[Facts | Unidentified]:
    """Facts for every package of an explicit environment file, in file order (`Unidentified` for a package
    whose repodata record contradicts its filename); fetched from the hosts `explicit_hosts` allows."""
    try:
        text = read_regular(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err}") from err
    fetcher = fetcher or Fetcher(hosts=explicit_hosts(options.channel, allow_hosts))
    now = now or dt.datetime.now(dt.UTC)
    repodata = _Repodata(fetcher)
    service = CondaFacts(Uncached(options.verifier), options.reads_attestations)
    out: list[Facts | Unidentified] = []
    for package in parse_explicit(text, str(path)):
        got = _download(fetcher, package)
        _check_pins(package, got)
        try:
            listed = repodata.record(package)
        except ValueError as err:  # listed with records that differ
            out.append(Unidentified(Ecosystem.CONDA, package.filename, package.filename, got.sha256, str(err)))
            continue
        file = bytes_facts(package.filename, got.sha256, got.size, listed, options.channel or package.channel)
        if isinstance(file, Unidentified):
            out.append(file)
            continue
        if options.uploaded is not None:
            file = replace(file, uploaded=options.uploaded, uploadedFrom="--uploaded")
        facts, _ = service.gather(file, record_for_bytes(listed, got.sha256), _sidecars(fetcher, package), now)
        out.append(facts)
    return out
