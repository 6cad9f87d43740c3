"""What `gate serve` (or the WSGI entry point, from the environment) was told: `Settings`, and the parsers
of its options. Free of Flask, so the command line can read them without loading the server."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from gate.evaluate import Unmatched
from gate.policy.duration import parse_duration
from gate.redact import Credential, redact_text, split_credentials
from gate.sources.conda_channel import MAX_REPODATA_BYTES
from gate.sources.hosts import parse_host
from gate.sources.http import MAX_FILE_BYTES, MAX_PAGE_BYTES
from gate.sources.pypi import DEFAULT_UPSTREAM

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
MIN_TOKEN_LENGTH = 16
DEFAULT_INDEX_TTL = 600.0


@dataclass(frozen=True)
class Settings:
    """What `gate serve` was told; everything else is derived in `create_app`."""

    policies: tuple[Path, ...]
    upstream: str = DEFAULT_UPSTREAM
    cache_dir: Path | None = None  # None: an in-memory store, metrics per process, audit to the log
    audit_log: Path | None = None  # default: <cache_dir>/audit.jsonl
    trusted_root: Path | None = None  # Sigstore trusted_root.json; default: production, shipped offline
    audit_only: bool = False  # UNSAFE for enforcement: list and serve denied files, only log the decisions
    timeout: float = 20.0  # seconds for one upstream request
    provenance_workers: int = 8  # parallel provenance fetches for one page
    conda_channels: tuple[tuple[str, str], ...] = ()  # (name, upstream channel URL): served at /conda/<name>/
    unmatched: Unmatched = Unmatched.DENY  # what a file no policy matches gets (warn, allow: only when asked)
    max_spool: int = MAX_FILE_BYTES  # bytes: the largest file of unknown size (none on the page, no Content-Length)
    audit_required: bool = False  # compliance mode: refuse to serve a file (503) whose audit record was lost
    allow_hosts: tuple[tuple[str, int], ...] = ()  # fetch files and evidence from these too (`--allow-host`)
    max_page_bytes: int = MAX_PAGE_BYTES  # a decoded upstream project page
    max_repodata_bytes: int = MAX_REPODATA_BYTES  # a decoded upstream repodata
    public_url: str | None = None  # where clients reach gate; None: each request's own host (bounded cache)
    upstream_slots: int = 0  # requests per process that may wait on upstream at once (0: unbounded)
    status_allow: tuple[Network, ...] = LOOPBACK  # socket addresses that may read the status page `/-/`
    status_token: str | None = field(default=None, repr=False)  # or `Authorization: Bearer` this token
    osv: tuple[Path, ...] = ()  # OSV data (bulk export zips, directories of records): `--osv`
    osv_max_age: dt.timedelta | None = None  # older OSV data is a failure (503), not a warning
    osv_interval: float = 30.0  # seconds between checks of the OSV files for changes
    github_releases: str = "https://github.com"  # where `spec.evidence.githubReleases` assets are fetched from
    # seconds an upstream project page is reused when the upstream states no freshness (no `Cache-Control`
    # max-age, no `Expires`): PyPI's own max-age; 0 asks upstream (conditionally) on every request
    index_ttl: float = DEFAULT_INDEX_TTL
    # userinfo taken out of `upstream` and the channel URLs, sent only to their own origins
    credentials: tuple[Credential, ...] = field(default=(), repr=False)
    cache_url: str | None = field(default=None, repr=False)  # redis:// or postgresql:// store (None: SQLite)
    cache_secret: bytes | None = field(default=None, repr=False)  # seals entries in a shared store
    audit_url: str | None = field(default=None, repr=False)  # `stdout` or a postgresql:// table (None: the file)

    def __post_init__(self) -> None:
        upstream, found = split_credentials(self.upstream)
        credentials = [found] if found else []
        channels = []
        for name, url in self.conda_channels:
            clean, found = split_credentials(url)
            channels.append((name, clean))
            credentials += [found] if found else []
        object.__setattr__(self, "upstream", upstream)
        object.__setattr__(self, "conda_channels", tuple(channels))
        object.__setattr__(self, "credentials", (*self.credentials, *credentials))
        if self.status_token is not None:
            check_status_token(self.status_token)
        if self.cache_url is not None:
            parse_cache_url(self.cache_url)
            if self.cache_secret is None:
                raise ValueError(
                    "a shared cache (--cache-url) needs --cache-secret-file (GATE_CACHE_SECRET): entries are sealed "
                    "with it, so that only gate's replicas can put anything in front of a client"
                )
        if self.cache_secret is not None:
            check_cache_secret(self.cache_secret)
        if self.audit_url is not None:
            parse_audit_url(self.audit_url)
            if self.audit_log is not None:
                raise ValueError("give --audit-log (a file) or --audit-url (stdout, postgresql://...), not both")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from `GATE_POLICY` (os.pathsep-separated), `GATE_UPSTREAM`, `GATE_CACHE_DIR`,
        `GATE_AUDIT_LOG`, `GATE_TRUSTED_ROOT`, `GATE_AUDIT_ONLY=1`, `GATE_TIMEOUT`, `GATE_CONDA_CHANNELS`
        (whitespace-separated `NAME=URL`), `GATE_UNMATCHED` (deny, warn, allow), `GATE_MAX_SPOOL` (bytes),
        `GATE_AUDIT_REQUIRED=1`, `GATE_ALLOW_HOSTS` (whitespace-separated `HOST[:PORT]`), `GATE_MAX_PAGE_BYTES`,
        `GATE_MAX_REPODATA_BYTES`, `GATE_PUBLIC_URL`, `GATE_UPSTREAM_SLOTS`, `GATE_INDEX_TTL` (seconds),
        `GATE_STATUS_ALLOW` (whitespace-separated addresses or CIDR networks, or `none`; default: loopback),
        `GATE_STATUS_TOKEN`, `GATE_OSV` (os.pathsep-separated), `GATE_OSV_MAX_AGE` (`2d`), `GATE_OSV_INTERVAL`
        (seconds), `GATE_GITHUB_RELEASES` (the release host), `GATE_CACHE_URL`, `GATE_CACHE_SECRET` and
        `GATE_AUDIT_URL`, for a bare gunicorn; raise ValueError for a value that is not understood."""
        env = os.environ if environ is None else environ

        def path(name: str) -> Path | None:
            return Path(env[name]) if env.get(name) else None

        return cls(
            policies=tuple(Path(p) for p in env.get("GATE_POLICY", "").split(os.pathsep) if p),
            upstream=env.get("GATE_UPSTREAM", DEFAULT_UPSTREAM),
            cache_dir=path("GATE_CACHE_DIR"),
            audit_log=path("GATE_AUDIT_LOG"),
            trusted_root=path("GATE_TRUSTED_ROOT"),
            audit_only=env.get("GATE_AUDIT_ONLY", "") in ("1", "true", "yes"),
            timeout=float(env.get("GATE_TIMEOUT", "20")),
            conda_channels=tuple(parse_channel(c) for c in env.get("GATE_CONDA_CHANNELS", "").split()),
            unmatched=parse_unmatched(env.get("GATE_UNMATCHED") or Unmatched.DENY.value),
            max_spool=int(env.get("GATE_MAX_SPOOL", str(MAX_FILE_BYTES))),
            audit_required=env.get("GATE_AUDIT_REQUIRED", "") in ("1", "true", "yes"),
            allow_hosts=tuple(parse_host(h) for h in env.get("GATE_ALLOW_HOSTS", "").split()),
            max_page_bytes=int(env.get("GATE_MAX_PAGE_BYTES", MAX_PAGE_BYTES)),
            max_repodata_bytes=int(env.get("GATE_MAX_REPODATA_BYTES", MAX_REPODATA_BYTES)),
            public_url=parse_public_url(env["GATE_PUBLIC_URL"]) if env.get("GATE_PUBLIC_URL") else None,
            upstream_slots=parse_slots(env.get("GATE_UPSTREAM_SLOTS", "0")),
            status_allow=parse_status_allow(env.get("GATE_STATUS_ALLOW", "").split()),
            status_token=env.get("GATE_STATUS_TOKEN") or None,
            osv=tuple(Path(p) for p in env.get("GATE_OSV", "").split(os.pathsep) if p),
            osv_max_age=parse_duration(env["GATE_OSV_MAX_AGE"]) if env.get("GATE_OSV_MAX_AGE") else None,
            osv_interval=float(env.get("GATE_OSV_INTERVAL", "30")),
            github_releases=parse_public_url(env.get("GATE_GITHUB_RELEASES", "https://github.com")),
            cache_url=env.get("GATE_CACHE_URL") or None,
            cache_secret=env_cache_secret(env),
            audit_url=env.get("GATE_AUDIT_URL") or None,
            index_ttl=parse_ttl(env.get("GATE_INDEX_TTL", str(DEFAULT_INDEX_TTL))),
        )


def parse_unmatched(text: str) -> Unmatched:
    """`deny`, `warn` or `allow` (`GATE_UNMATCHED`); raise ValueError otherwise."""
    try:
        return Unmatched(text.strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in Unmatched)
        raise ValueError(f"GATE_UNMATCHED must be one of {choices}, got {text!r}") from None


def parse_public_url(text: str) -> str:
    """Where clients reach gate (`--public-url`, `GATE_PUBLIC_URL`): an http(s) URL without credentials, query
    or fragment (pages link there); raise ValueError otherwise."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query or parts.fragment:
        raise ValueError(f"expected an http(s) URL such as https://gate.example/, got {redact_text(text)!r}")
    return text


REDIS_SCHEMES = ("redis", "rediss")
POSTGRES_SCHEMES = ("postgresql", "postgres")
CACHE_SCHEMES = REDIS_SCHEMES + POSTGRES_SCHEMES


def parse_cache_url(text: str) -> str:
    """A shared store (`--cache-url`, `GATE_CACHE_URL`): redis://, rediss:// or postgresql:// (a password in it is
    never shown); raise ValueError otherwise."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a port that is no number)
    except ValueError as err:
        raise ValueError(f"cannot read the cache URL {redact_text(text)!r}: {err}") from None
    if parts.scheme not in CACHE_SCHEMES or (parts.scheme in REDIS_SCHEMES and not parts.hostname):
        raise ValueError(f"a cache URL is redis://HOST[:PORT][/DB] or postgresql://..., got {redact_text(text)!r}")
    return text


def parse_audit_url(text: str) -> str:
    """An audit sink (`--audit-url`, `GATE_AUDIT_URL`): `stdout`, or a postgresql:// database; raise ValueError
    otherwise."""
    if text == "stdout":
        return text
    try:
        scheme = urlsplit(text).scheme
    except ValueError:
        scheme = ""
    if scheme not in POSTGRES_SCHEMES:
        raise ValueError(f"an audit URL is stdout or postgresql://..., got {redact_text(text)!r}")
    return text


def env_cache_secret(env: Mapping[str, str]) -> bytes | None:
    """`GATE_CACHE_SECRET`, the cache secret given in the environment (None: not given)."""
    secret = env.get("GATE_CACHE_SECRET")
    return secret.strip().encode() if secret else None


def check_cache_secret(secret: bytes) -> None:
    """A cache secret is at least MIN_TOKEN_LENGTH bytes (it seals entries; never shown); raise ValueError."""
    if len(secret) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"the cache secret must be at least {MIN_TOKEN_LENGTH} characters, the same on every replica "
            "(e.g. from `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )


def parse_ttl(text: str) -> float:
    """`--index-ttl`: seconds, 0 or more (finite)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 365 * 86400:  # NaN fails this too
        raise ValueError(f"expected seconds from 0 to 31536000, got {text!r}")
    return value


def parse_slots(text: str) -> int:
    """`GATE_UPSTREAM_SLOTS`: 0 (unbounded) or more; raise ValueError otherwise."""
    if not text.strip().isdigit():
        raise ValueError(f"GATE_UPSTREAM_SLOTS must be 0 (unbounded) or a positive count, got {text!r}")
    return int(text)


def parse_channel(text: str) -> tuple[str, str]:
    """`NAME=URL` of a conda channel to serve; raise ValueError otherwise."""
    name, _, url = text.partition("=")
    if not name or not url.startswith(("http://", "https://")):
        raise ValueError(f"expected NAME=URL with an http(s) URL, got {redact_text(text)!r}")
    return name, url.rstrip("/")


def parse_network(text: str) -> Network | None:
    """An address or CIDR network that may read the status page (`--status-allow`, `GATE_STATUS_ALLOW`), or
    None for `none`; raise ValueError otherwise (host bits set under the mask too: `10.1.2.3/8` is a typo)."""
    if text.strip().lower() == "none":
        return None
    try:
        return ipaddress.ip_network(text.strip())
    except ValueError as err:
        raise ValueError(f"expected an address or CIDR network such as 10.0.0.0/8, or none: {err}") from None


def parse_status_allow(texts: list[str]) -> tuple[Network, ...]:
    """The networks of several `parse_network` texts: none given, LOOPBACK; `none` alone, no address may read
    the status page; raise ValueError for a text that is not understood."""
    if not texts:
        return LOOPBACK
    networks = [parse_network(t) for t in texts]
    if None in networks and len(networks) > 1:
        raise ValueError("status allow: `none` cannot be combined with addresses")
    return tuple(n for n in networks if n is not None)


def check_status_token(token: str) -> None:
    """A status page token is at least MIN_TOKEN_LENGTH printable ASCII characters without spaces (it travels
    in an `Authorization` header, and a short one could be guessed); raise ValueError otherwise (never
    saying the token)."""
    if len(token) < MIN_TOKEN_LENGTH or not all("!" <= c <= "~" for c in token):
        raise ValueError(
            f"the status token must be at least {MIN_TOKEN_LENGTH} printable ASCII characters without spaces "
            "(e.g. from `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
