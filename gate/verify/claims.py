"""Read identity, issuer, Fulcio claims and the trusted publisher out of a Sigstore leaf certificate."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.x509.oid import ObjectIdentifier

from gate.facts import GITHUB_ISSUER, GITLAB_ISSUER, GOOGLE_ISSUER, Publisher
from gate.verify.target import CLAIM_OIDS

_FULCIO = "1.3.6.1.4.1.57264.1."  # CLAIM_OIDS: OID suffix -> claim name; .1 is a raw string, .8 and up DER UTF8String


def _der_utf8(data: bytes) -> str:
    """Decode a DER UTF8String as Fulcio writes extensions .8 and up (strict, as sigstore reads them)."""
    value: str = asn1.decode_der(str, data)
    return value


def _extension(cert: x509.Certificate, suffix: int) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(ObjectIdentifier(f"{_FULCIO}{suffix}"))
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def certificate_claims(cert: x509.Certificate) -> dict[str, str]:
    """Every Fulcio claim the certificate carries; a malformed one is left out rather than guessed."""
    claims = {}
    for suffix, name in CLAIM_OIDS.items():
        raw = _extension(cert, suffix)
        if raw is None:
            continue
        try:
            claims[name] = _der_utf8(raw)
        except ValueError:
            continue
    if "issuer" not in claims and (legacy := _extension(cert, 1)) is not None:
        claims["issuer"] = legacy.decode("utf-8", errors="replace")
    return claims


def certificate_identity(cert: x509.Certificate) -> str | None:
    """The SAN: a URI (CI workflows), an email (people, service accounts), or a Sigstore OtherName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for value in san.get_values_for_type(x509.UniformResourceIdentifier):
        return value
    for value in san.get_values_for_type(x509.RFC822Name):
        return value
    for other in san.get_values_for_type(x509.OtherName):
        return other.value.decode("utf-8", errors="replace")
    return None


def _build_config_path(claims: dict[str, str], prefix: str) -> str | None:
    """The part of the Build Config URI between `prefix` and `@REF`, where REF is the certificate's own
    source ref or digest (as pypi-attestations checks it), e.g. `release.yml` in
    `https://github.com/O/R/.github/workflows/release.yml@refs/tags/v1`."""
    config = claims.get("buildConfigUri", "")
    if not config.startswith(prefix):
        return None
    for suffix in (claims.get("sourceRepositoryRef"), claims.get("sourceRepositoryDigest")):
        if suffix and config.endswith(f"@{suffix}"):
            return config[len(prefix) : -len(suffix) - 1]
    return None


def publisher_from_claims(claims: dict[str, str], identity: str | None) -> Publisher | None:
    """The PEP 740 trusted publisher the certificate proves, or None for other issuers."""
    issuer = claims.get("issuer")
    repo_uri = claims.get("sourceRepositoryUri", "")
    environment = claims.get("deploymentEnvironment")
    if issuer == GITHUB_ISSUER and repo_uri.startswith("https://github.com/"):
        return Publisher(
            kind="GitHub",
            repository=repo_uri.removeprefix("https://github.com/"),
            workflow=_build_config_path(claims, f"{repo_uri}/.github/workflows/"),
            environment=environment,
        )
    if issuer == GITLAB_ISSUER and repo_uri.startswith("https://gitlab.com/"):
        return Publisher(
            kind="GitLab",
            repository=repo_uri.removeprefix("https://gitlab.com/"),
            workflowFilepath=_build_config_path(claims, f"{repo_uri}//"),
            environment=environment,
        )
    if issuer == GOOGLE_ISSUER and identity and "@" in identity:
        return Publisher(kind="Google", email=identity)
    return None


# Fulcio's first GitHub Actions extensions (certificates before late 2022 carry only these), raw strings
_LEGACY_GITHUB = {2: "buildTrigger", 3: "sourceRepositoryDigest", 5: "repository", 6: "sourceRepositoryRef"}


def source_claims(cert: x509.Certificate) -> dict[str, str]:
    """The source a GitHub Actions certificate names: `sourceRepositoryUri`, `sourceRepositoryRef`,
    `sourceRepositoryDigest`, `buildTrigger`, from the current extensions or else the legacy .2-.6 ones."""
    claims = certificate_claims(cert)
    names = ("sourceRepositoryUri", "sourceRepositoryRef", "sourceRepositoryDigest", "buildTrigger")
    found: dict[str, str] = {k: claims[k] for k in names if k in claims}
    for suffix, name in _LEGACY_GITHUB.items():
        raw = _extension(cert, suffix)
        if raw is None:
            continue
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if name == "repository":
            found.setdefault("sourceRepositoryUri", f"https://github.com/{value}")
        else:
            found.setdefault(name, value)
    return found
