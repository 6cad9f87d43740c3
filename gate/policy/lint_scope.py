"""Lint checks for policies that look fine but are weak: signers anyone can satisfy, attestations from
any identity, exceptions for every package, policies that do nothing, ecosystems nothing governs.

"Anyone can satisfy" means an outsider can obtain a matching value by creating an account, repository
or cloud project of their own: a wildcard over a GitHub/GitLab owner, or over the local part of an
address at a domain where anyone can create one (`*@developer.gserviceaccount.com`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from gate.errors import Finding, Issue, Level
from gate.facts import IDENTITY_PREFIXES, Ecosystem
from gate.policy import patterns
from gate.policy.compile import rule_sources
from gate.policy.load import Path_, format_path
from gate.policy.model import IdentitySigner, Mode, Policy, PublisherSigner, Signer, TimeSource
from gate.policy.reach import can_start_with

PROBE = "gate-lint-probe"  # stands for whatever an outsider fills a wildcard with
# Domains where anyone can get an address: their own Google account, or a service account of their own
# cloud project (`PROJECT_NUMBER-compute@developer...`, `PROJECT_ID@appspot...`, `NUMBER@cloudbuild...`).
SHARED_EMAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "developer.gserviceaccount.com",
        "appspot.gserviceaccount.com",
        "cloudbuild.gserviceaccount.com",
        "cloudservices.gserviceaccount.com",
    }
)
# Values an outsider can obtain, for regexes (which cannot be filled in like a glob).
_REGEX_PROBES = (
    f"{PROBE}/{PROBE}",
    f"https://github.com/{PROBE}/{PROBE}/.github/workflows/release.yml@refs/heads/main",
    f"https://gitlab.com/{PROBE}/{PROBE}//.gitlab-ci.yml@refs/heads/main",
    "123456789012-compute@developer.gserviceaccount.com",
    f"{PROBE}@appspot.gserviceaccount.com",
    f"{PROBE}@gmail.com",
    f"{PROBE}@{PROBE}.iam.gserviceaccount.com",
)
_OWNER_PROBES = ("lintprobe", "lint-probe-0")  # account names an outsider can register
_SAMPLE_PACKAGES = (PROBE, "z", "requests", "numpy")


def _issue(policy: Policy, path: Path_, message: str, level: Level = Level.WARNING) -> Issue:
    return Issue(format_path(path), message, policy.file, policy.raw.line_of(path), level)


def _outsider_part(kind: str, value: str) -> str:
    """The part of a value its owner controls only by owning the account: a repository's owner, an
    identity URL's owner, an e-mail address's domain (or the whole address at a shared domain)."""
    if kind == "email":
        _, at, domain = value.rpartition("@")
        if not at:
            return value
        return value if domain.lower() in SHARED_EMAIL_DOMAINS else domain
    if kind == "identity":
        for prefix in (p for p in IDENTITY_PREFIXES.values() if p):
            if value.startswith(prefix):
                return value[len(prefix) :].split("/", 1)[0]
        if "://" in value:  # another issuer's URL: only where its host is a wildcard do we know it is broad
            scheme, _, rest = value.partition("://")
            return f"{scheme}://{rest.split('/', 1)[0]}"
        return _outsider_part("email", value)
    return value.split("/", 1)[0]  # repository: owner/name


def anyone_can_match(kind: str, pattern: patterns.Pattern) -> bool:
    """Whether an outsider can obtain a value `pattern` matches: for a glob, filling its wildcards
    reaches into the owner part; for a regex, it matches one of a few outsider-made values."""
    if pattern.is_literal:
        return False
    if pattern.is_glob:  # a glob: does a wildcard reach the owner?
        return PROBE in _outsider_part(kind, pattern.source.replace("*", PROBE).replace("?", PROBE))
    if any(pattern.matches(probe) for probe in _REGEX_PROBES):
        return True
    # a regex: may a value whose owner is an outsider's match (`https://github\.com/[^/]+/name/.*`)?
    hosts = [""] if kind == "repository" else [p for p in IDENTITY_PREFIXES.values() if p]
    owners = [f"{host}{owner}/" for host in hosts for owner in _OWNER_PROBES]
    return kind != "email" and any(can_start_with(pattern.regex, owner) for owner in owners)


def _signer_fields(signer: Signer) -> Iterator[tuple[str, str, patterns.Pattern]]:
    """(key in the policy, kind of value, pattern) of each field that says whose signature it is."""
    match signer:
        case IdentitySigner(identity=identity):
            yield "identity", "identity", identity
        case PublisherSigner(fields=fields):
            yield from ((key, key, pattern) for key, pattern in fields if key in ("repository", "email"))


def weak_signer_issues(policy: Policy) -> Iterator[Finding]:
    """Attestations any identity satisfies: no signers at all, or a signer an outsider can match."""
    att = policy.attestations
    age = policy.minimum_age
    if age is not None and TimeSource.TRANSPARENCY_LOG in age.time_sources and (att is None or not att.signers):
        message = (
            "timeSources with transparencyLog but no attestations.signers: a file is aged by the signed time of "
            "evidence from any Sigstore identity, and whoever can attach evidence can sign a file, wait, then "
            "upload it; list the publishers you trust under attestations.signers"
        )
        yield Finding("any-signer-age", _issue(policy, ("spec", "minimumAge", "timeSources"), message))
    if att is None:
        return
    if not att.signers and (att.predicate_types or att.required):
        at: Path_ = ("spec", "attestations", "predicateTypes" if att.predicate_types else "required")
        message = (
            "attestations without signers: an attestation from any Sigstore identity passes (anyone can sign "
            "with an account of their own); list the publishers you trust under signers"
        )
        yield Finding("any-signer", _issue(policy, at, message))
    source = None if att.slsa is None else att.slsa.source_uri
    outsider = f"github.com/{PROBE}/"  # a repository of an owner anyone can be
    if att.slsa is not None and (source is None or (not source.is_literal and can_start_with(source.regex, outsider))):
        message = (
            "slsa without a sourceUri naming one repository: provenance built from any repository passes "
            "(slsa-verifier requires --source-uri); name the repository, as github.com/OWNER/REPO"
        )
        yield Finding("slsa-any-source", _issue(policy, ("spec", "attestations", "slsa"), message))
    for index, signer in enumerate(att.signers):
        for key, kind, pattern in _signer_fields(signer):
            if anyone_can_match(kind, pattern):
                path: Path_ = ("spec", "attestations", "signers", index, *(("publisher",) if key != "identity" else ()))
                message = (
                    f"{key} {pattern.source!r} matches values anyone can obtain (an account, repository or "
                    "cloud project of their own): name the owner you trust"
                )
                yield Finding("broad-signer", _issue(policy, (*path, key), message))


# Predicate types of which one statement carries only one: SLSA provenance is written in one version per release
SLSA_PROVENANCE = ("https://slsa.dev/provenance/v0.1", "https://slsa.dev/provenance/v0.2", "https://slsa.dev/provenance/v1")


def predicate_type_issues(policy: Policy) -> Iterator[Finding]:
    """`predicateTypes` asks for each type it lists: two SLSA provenance versions are asked of every file."""
    att = policy.attestations
    listed = [t for t in (att.predicate_types if att is not None else ()) if t in SLSA_PROVENANCE]
    if len(listed) > 1:
        message = (
            f"predicateTypes asks for each type it lists, and a release's provenance is written in one SLSA version: "
            f"{' and '.join(listed)} together deny files built with either; list the one your builder writes, or "
            "leave predicateTypes out (attestations.slsa is met only by SLSA provenance)"
        )
        yield Finding("predicate-types-exclusive", _issue(policy, ("spec", "attestations", "predicateTypes"), message))


def scope_issues(policy: Policy) -> Iterator[Finding]:
    """Exceptions for every package, and a policy with no rule at all."""
    for index, exception in enumerate(policy.exceptions):
        for i, selector in enumerate(exception.packages):
            if all(selector.name.pypi.matches(name) for name in _SAMPLE_PACKAGES):
                message = (
                    f"{selector.name.source!r} selects every package: the exception waives "
                    f"{', '.join(exception.waive)} for all of them; name the packages"
                )
                yield Finding("broad-exception", _issue(policy, ("spec", "exceptions", index, "packages", i), message))
    if not rule_sources(policy):
        message = "the policy has no rule (no minimumAge, attestations or rules): it allows every file it matches"
        yield Finding("empty-policy", _issue(policy, ("spec",), message))


def _selects(policy: Policy, ecosystem: Ecosystem) -> bool:
    """Whether `policy`'s match selects packages of `ecosystem` in general (an arbitrary name)."""
    match = policy.match
    if match.ecosystems is not None and ecosystem not in match.ecosystems:
        return False
    if match.packages and not any(p.matches(PROBE, ecosystem) for p in match.packages):
        return False
    return not any(p.matches(PROBE, ecosystem) for p in match.exclude)


def ungoverned_issues(policies: Sequence[Policy], where: str) -> Iterator[Finding]:
    """Ecosystems whose packages in general no policy in enforce mode judges: either no policy selects
    them (their files are denied by default as unmatched), or only policies that enforce nothing do
    (audit mode, or no rule: their files are allowed unchecked)."""
    for ecosystem in (Ecosystem.PYPI, Ecosystem.CONDA):
        name = ecosystem.value
        selecting = [p for p in policies if _selects(p, ecosystem)]
        if any(p.mode is Mode.ENFORCE and rule_sources(p) for p in selecting):
            continue
        if selecting:
            message = (
                f"{name} packages are selected only by policies that enforce nothing ("
                + ", ".join(sorted(p.name for p in selecting))
                + "; audit mode or no rule): their files are allowed unchecked"
            )
        else:
            message = (
                f"no policy selects {name} packages in general (only some names, or none): {name} files no "
                f"policy matches are denied by default (`--unmatched` of check and serve). Match them with a "
                f"policy, or deny {name} on purpose with one whose rule is `false`"
            )
        yield Finding("ungoverned-ecosystem", Issue("", message, where, None, Level.WARNING))
