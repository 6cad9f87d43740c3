"""What an in-toto SLSA provenance statement (v0.2 or v1) says about its build, as facts, each one CHECKED
against the signing certificate's Fulcio claims before a policy may see it.

slsa-verifier's options read the predicate: builder id, source repository (`--source-uri`), ref
(`--source-tag`, `--source-branch`), commit, workflow inputs. A statement is a document its signer wrote; the
certificate is what Fulcio vouches for. So when the certificate contradicts the predicate's source
repository, ref, commit or builder id (or the predicate is malformed), no SLSA fact of that statement is
given to policies (all null: `attestations.slsa` cannot pass on it), and a value the certificate does not
carry is null too. The signature itself still verifies: the certificate's own identity and claims are facts,
and signer rules judge them (slsa-verifier's wrong-signer case is denied by its signer, not trusted for its
claimed source). The builder id must be the certificate's identity (the builder's reusable workflow signed
it), except for slsa-github-generator's two delegator workflows at a release tag (BYOB: the trusted delegator
signs for the builder it ran, and reports its id).
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from gate.facts import GITHUB_ISSUER, MAX_WORKFLOW_INPUTS
from gate.verify.rekor_set import CheckError, get_path

SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_PREDICATE_TYPES = (SLSA_V02, SLSA_V1)
# slsa-github-generator's trusted reusable workflows that sign provenance for another builder (BYOB), at a
# release tag vX.Y.Z (slsa-verifier's defaultBYOBReusableWorkflows and verifyTrustedBuilderRef): not any
# `delegator_*` file at any ref, since a workflow at a commit sha may be an "imposter commit" of a fork,
# which GitHub serves under the parent repository's name, and it would sign any builder id it liked.
DELEGATOR = re.compile(
    r"https://github\.com/slsa-framework/slsa-github-generator/\.github/workflows/"
    r"delegator_(?:generic|lowperms-generic)_slsa3\.yml@refs/tags/v(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*)){2}"
)
MAX_FACT = 1000  # characters of one fact from a predicate


class SlsaFacts(NamedTuple):
    """The facts of one SLSA provenance statement that the certificate confirmed (None: not confirmed)."""

    builderId: str | None = None  # noqa: N815 (policy field names)
    sourceUri: str | None = None  # noqa: N815 ("github.com/OWNER/REPO", as slsa-verifier's --source-uri)
    sourceRef: str | None = None  # noqa: N815 ("refs/tags/v1.0", "refs/heads/main")
    sourceDigest: str | None = None  # noqa: N815 (the git commit)
    sourceBranch: str | None = None  # noqa: N815 (the branch built, or the branch a built tag was pushed from)
    workflowInputs: dict[str, str] = {}  # noqa: N815,RUF012 (a NamedTuple default is never mutated)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_FACT else None


def split_source(uri: str) -> tuple[str, str | None]:
    """`git+https://github.com/o/r@refs/tags/v1` -> (`github.com/o/r`, `refs/tags/v1`): the form
    slsa-verifier's --source-uri takes. Only git over https names a source."""
    if not uri.startswith("git+https://"):
        raise CheckError("provenance", f"source {uri[:100]!r} is not a git+https:// URI")
    rest = uri.removeprefix("git+https://")
    repo, _, ref = rest.partition("@")
    return repo.removesuffix(".git"), ref or None


def _input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))  # true, 17, {...}: as JSON


def _inputs(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    if len(raw) > MAX_WORKFLOW_INPUTS:
        raise CheckError("provenance", f"more than {MAX_WORKFLOW_INPUTS} workflow inputs")
    return {str(k)[:MAX_FACT]: _input_text(v)[:MAX_FACT] for k, v in raw.items()}


class _Claimed(NamedTuple):
    builder: str | None
    source: str | None
    digest: str | None
    inputs: dict[str, str]
    base_ref: str | None  # the branch a tag was pushed from (the event payload's base_ref)


def _v02(predicate: dict[str, Any]) -> _Claimed:
    config = get_path(predicate, "invocation", "configSource")
    source = _text(get_path(config, "uri"))
    materials = predicate.get("materials")
    first = get_path(materials[0], "uri") if isinstance(materials, list) and materials else None
    if source is not None and first is not None and first != source:
        raise CheckError("provenance", "the predicate's configSource and first material name different sources")
    payload = get_path(predicate, "invocation", "environment", "github_event_payload")
    inputs = get_path(payload, "inputs") or get_path(predicate, "invocation", "parameters", "event_inputs")
    return _Claimed(
        _text(get_path(predicate, "builder", "id")), source, _text(get_path(config, "digest", "sha1")), _inputs(inputs),
        _text(get_path(payload, "base_ref")),
    )


def _v1(predicate: dict[str, Any]) -> _Claimed:
    dependencies = get_path(predicate, "buildDefinition", "resolvedDependencies")
    first = dependencies[0] if isinstance(dependencies, list) and dependencies else None
    source = _text(get_path(first, "uri"))
    digest = _text(get_path(first, "digest", "gitCommit")) or _text(get_path(first, "digest", "sha1"))
    external = get_path(predicate, "buildDefinition", "externalParameters")
    workflow = get_path(external, "workflow")
    if source is not None and isinstance(workflow, dict):  # GitHub Actions' buildType names it twice
        repository, ref = workflow.get("repository"), workflow.get("ref")
        if f"git+{repository}@{ref}" != source:
            raise CheckError("provenance", "the predicate's workflow and resolved dependency name different sources")
    payload = get_path(predicate, "buildDefinition", "internalParameters", "GITHUB_EVENT_PAYLOAD")
    return _Claimed(
        _text(get_path(predicate, "runDetails", "builder", "id")), source, digest,
        _inputs(get_path(external, "inputs")),
        _text(get_path(payload, "base_ref")),
    )


def _confirmed(name: str, claimed: str | None, certified: str | None) -> str | None:
    """The predicate's value when the certificate says the same; CheckError when it says otherwise."""
    if claimed is None or certified is None:
        return None
    if claimed != certified:
        message = f"the predicate's {name} {claimed[:100]!r} is not the certificate's {certified[:100]!r}"
        raise CheckError("provenance", message)
    return claimed


def slsa_facts(statement: dict[str, Any], identity: str | None, issuer: str | None,
               certified: dict[str, str]) -> SlsaFacts:
    """The facts of an SLSA provenance statement that the certificate (its SAN `identity`, `issuer` and
    `certified` source claims, `gate.verify.claims.source_claims`) confirms; none for other statements, a
    certificate GitHub Actions did not issue, or a predicate the certificate contradicts (`checked_facts`)."""
    try:
        return checked_facts(statement, identity, issuer, certified)
    except CheckError:
        return SlsaFacts()


def checked_facts(statement: dict[str, Any], identity: str | None, issuer: str | None,
                  certified: dict[str, str]) -> SlsaFacts:
    """`slsa_facts`, raising CheckError('provenance') where the predicate and the certificate disagree."""
    predicate_type = statement.get("predicateType")
    predicate = statement.get("predicate")
    if predicate_type not in SLSA_PREDICATE_TYPES or not isinstance(predicate, dict) or issuer != GITHUB_ISSUER:
        return SlsaFacts()
    claimed = _v02(predicate) if predicate_type == SLSA_V02 else _v1(predicate)
    repo = ref = None
    if claimed.source is not None:
        repo, ref = split_source(claimed.source)
    cert_repo = certified.get("sourceRepositoryUri")
    source_uri = _confirmed("source repository", None if repo is None else f"https://{repo}", cert_repo)
    source_ref = _confirmed("source ref", ref, certified.get("sourceRepositoryRef"))
    digest = _confirmed("source commit", claimed.digest, certified.get("sourceRepositoryDigest"))
    builder = claimed.builder
    if builder is not None and identity is not None and not DELEGATOR.fullmatch(identity):
        builder = _confirmed("builder id", builder, identity)
    elif identity is None:
        builder = None
    branch = None
    if source_ref is not None and source_ref.startswith("refs/heads/"):
        branch = source_ref
    elif source_ref is not None and source_ref.startswith("refs/tags/"):  # the branch the tag was pushed from
        branch = claimed.base_ref if (claimed.base_ref or "").startswith("refs/heads/") else None
    return SlsaFacts(
        builderId=builder,
        sourceUri=None if source_uri is None else source_uri.removeprefix("https://"),
        sourceRef=source_ref,
        sourceDigest=digest,
        sourceBranch=branch,
        workflowInputs=claimed.inputs if builder is not None else {},
    )
