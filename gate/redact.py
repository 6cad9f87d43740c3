"""Keep upstream credentials out of everything gate shows or stores.

Credentials in a configured upstream URL (`http://user:pass@host/simple/`) are taken out of the URL once,
at configuration (`split_credentials`), and sent only as HTTP basic auth to that URL's own origin
(`gate.sources.http.OriginAuth`); the URL gate uses, keys and shows has none. `redact(url)` is the one way
to show or store a URL that may still carry a secret (userinfo, token-like query parameters, anaconda.org's
`/t/<token>/` path segment); `redact_text` does it for every URL inside a message.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

HIDDEN = "***"
# query parameter names whose values are secrets (compared lowercased, `-` read as `_`)
SECRET_PARAMETERS = frozenset({
    "token", "access_token", "auth", "auth_token", "api_key", "apikey", "key", "password", "passwd", "pass",
    "secret", "client_secret", "sig", "signature", "x_amz_signature", "x_amz_credential",
    "x_amz_security_token", "x_goog_signature", "x_goog_credential",
})
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_ANACONDA_TOKEN = re.compile(r"/t/[^/]+")


def _secret(name: str) -> bool:
    return name.lower().replace("-", "_") in SECRET_PARAMETERS


def redact(url: str) -> str:
    """`url` with its userinfo, the values of token-like query parameters and an anaconda.org
    `/t/<token>` path segment replaced by `***`; anything that does not parse as a URL is returned as is."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return url
    if "@" in netloc:
        netloc = f"{HIDDEN}@{netloc.rpartition('@')[2]}"
    path = _ANACONDA_TOKEN.sub(f"/t/{HIDDEN}", parts.path, count=1) if parts.path.startswith("/t/") else parts.path
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret(k) for k, _ in pairs):
            query = urlencode([(k, HIDDEN if _secret(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def redact_text(text: str) -> str:
    """`text` with every URL in it redacted."""
    return _URL.sub(lambda m: redact(m.group(0)), text) if "://" in text else text


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, lowercased host, port) of an http(s) URL; raise ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {redact(url)}")
    return parts.scheme, parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80)


Credential = tuple[tuple[str, str, int], str, str]  # (origin, user, password)


def split_credentials(url: str) -> tuple[str, Credential | None]:
    """(`url` without userinfo, the credential for its origin or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, (origin(clean), unquote(user), unquote(password))
