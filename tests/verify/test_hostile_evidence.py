"""Hostile evidence is an unverified fact, never an exception: documents nested 200,000 deep, larger than any
real evidence, or not UTF-8, however they arrive (`--attestation`, beside the file, a conda sidecar, a
signed statement), and hostile documents beside them (repodata, pip reports) never crash `gate check`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gate.cli import main
from gate.verify.api import BundleVerifier, verify_evidence
from gate.verify.bounded import MAX_EVIDENCE_BYTES, MAX_EVIDENCE_DEPTH
from gate.verify.sigstore import EvidenceError, check_statement
from tests.conftest import REPO
from tests.support.conda_policies import SIGNED, SIGNED_PATH, policy_document, signer_attestations, write_policies
from tests.verify.test_evidence import WHEEL

EXAMPLE_WHEEL = REPO / "examples" / "pypi" / "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"
EXAMPLE_POLICY = REPO / "policies" / "example.yaml"
DEEP = 200_000
UPLOADED = "2026-02-05T22:59:42Z"


def _nested(depth: int, *, objects: bool = False) -> bytes:
    if objects:
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"]" * depth


HOSTILE = [
    (_nested(DEEP), "parse: evidence nests deeper than"),
    (_nested(DEEP, objects=True), "parse: evidence nests deeper than"),
    (b"[" * DEEP, "parse: evidence nests deeper than"),  # unterminated, too
    (_nested(MAX_EVIDENCE_DEPTH + 1), "parse: evidence nests deeper than"),  # just over the bound
    (b'{"mediaType": "' + b"x" * MAX_EVIDENCE_BYTES + b'"}', "parse: evidence is larger than"),
    ('{"mediaType": "é"}'.encode("latin-1"), "parse: evidence is not UTF-8"),
    ('{"mediaType": "x"}'.encode("utf-16"), "parse: evidence is not UTF-8"),
    (b'{"mediaType": "\xed\xa0\x80"}', "parse: evidence is not UTF-8"),  # a UTF-8-encoded surrogate
]


@pytest.mark.parametrize(("data", "error"), HOSTILE, ids=[e + str(i) for i, (_, e) in enumerate(HOSTILE)])
def test_hostile_evidence_is_an_unverified_fact(data: bytes, error: str) -> None:
    (fact,) = verify_evidence(data, "hostile", WHEEL, BundleVerifier())
    assert not fact.verified and fact.error is not None and fact.error.startswith(error), fact.error
    assert fact.identity is None and fact.publisher is None


def test_depth_within_the_bound_is_only_a_parse_question() -> None:
    (fact,) = verify_evidence(_nested(MAX_EVIDENCE_DEPTH), "deep-but-bounded", WHEEL, BundleVerifier())
    assert not fact.verified and fact.error is not None and "nests deeper" not in fact.error


def test_a_deep_statement_is_evidence_error() -> None:
    with pytest.raises(EvidenceError, match="statement: statement nests deeper than"):
        check_statement(_nested(DEEP, objects=True), WHEEL, exactly_one_subject=True)


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("how", ["given", "beside"])
def test_check_with_deep_evidence_denies_without_a_traceback(
    how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = tmp_path / EXAMPLE_WHEEL.name
    shutil.copyfile(EXAMPLE_WHEEL, wheel)
    deep = tmp_path / (wheel.name + ".publish.attestation" if how == "beside" else "deep.json")
    deep.write_bytes(_nested(DEEP))
    given = ["--attestation", str(deep)] if how == "given" else []
    code, out, err = _check(capsys, str(wheel), "-p", str(EXAMPLE_POLICY), *given, "--uploaded", UPLOADED)
    assert code == 1 and "Traceback" not in err
    assert "not verified (parse: evidence nests deeper than 64 levels)" in out


def test_check_reads_a_bounded_amount_of_a_huge_attestation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--attestation /dev/zero` (or a 57 MB file) is read only up to the evidence limit, then rejected."""
    wheel = tmp_path / EXAMPLE_WHEEL.name  # without its real attestation beside it
    shutil.copyfile(EXAMPLE_WHEEL, wheel)
    code, out, err = _check(capsys, str(wheel), "-p", str(EXAMPLE_POLICY), "--attestation", "/dev/zero",
                            "--uploaded", UPLOADED)
    assert code == 1 and "Traceback" not in err
    assert f"parse: evidence is larger than {MAX_EVIDENCE_BYTES} bytes" in out


def test_deep_conda_sidecar_and_repodata_deny_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "pkgs"
    folder.mkdir()
    shutil.copyfile(SIGNED_PATH, folder / SIGNED)
    (folder / f"{SIGNED}.v0.sigs").write_bytes(_nested(DEEP))
    (folder / "repodata.json").write_bytes(_nested(DEEP, objects=True))
    policies = write_policies(tmp_path / "policies", policy_document(ecosystems=["conda"],
                                                                     attestations=signer_attestations()))
    code, out, err = _check(capsys, str(folder / SIGNED), "-p", str(policies), "--format", "json")
    assert code == 1 and "Traceback" not in err
    (att,) = json.loads(out)["results"][0]["attestations"]
    assert not att["verified"] and att["error"].startswith("parse: evidence nests deeper than")


def test_a_deep_pip_report_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    report.write_bytes(_nested(DEEP))
    code, _, err = _check(capsys, "--pip-report", str(report), "-p", str(EXAMPLE_POLICY))
    assert code == 2 and "not JSON" in err and "Traceback" not in err
