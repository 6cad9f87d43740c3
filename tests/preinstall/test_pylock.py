"""`gate check pylock.toml`: upload time and hashes from the lock, attestation identities checked."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from gate.cli import main
from gate.policy.compile import load_policies
from gate.preinstall.identities import signer_allows
from gate.sources.pylock import is_pylock, read_pylock
from tests.conftest import FIXTURES
from tests.preinstall.conftest import EXAMPLE_POLICY, NOW, SAMPLE_SHA256, SAMPLE_WHEEL
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve

PYLOCKS = FIXTURES / "index" / "pylock"
UNREACHABLE = "http://127.0.0.1:9/simple/"


def lock(tmp_path: Path, index: str, identity: str) -> Path:
    path = tmp_path / "pylock.toml"
    path.write_text(textwrap.dedent(f"""\
        lock-version = "1.0"
        created-by = "gate-tests"

        [[packages]]
        name = "sampleproject"
        version = "4.0.0"
        index = "{index}"

        [[packages.wheels]]
        name = "{SAMPLE_WHEEL}"
        upload-time = 2024-11-06T22:37:10Z
        url = "{index.removesuffix('/simple/')}/files/{SAMPLE_WHEEL}"
        size = 4661
        hashes = {{sha256 = "{SAMPLE_SHA256}"}}

        [[packages.attestation-identities]]
        {identity}
        """), encoding="utf-8")
    return path


def test_spec_example_parses() -> None:
    planned = read_pylock(PYLOCKS / "pylock.spec-example.toml")
    assert [p.filename for p in planned][:2] == ["attrs-25.1.0-py3-none-any.whl", "cattrs-24.1.2-py3-none-any.whl"]
    attrs = planned[0]
    assert attrs.uploaded is not None and attrs.uploaded.isoformat() == "2025-01-25T11:30:10.164985+00:00"
    assert attrs.identities == (
        {"environment": "release-pypi", "kind": "GitHub", "repository": "python-attrs/attrs",
         "workflow": "pypi-package.yml"},
    )
    assert attrs.line == 12
    assert len(planned) == 4  # numpy lists two wheels; each is checked


@pytest.mark.parametrize(("name", "expected"), [("pylock.toml", True), ("pylock.dev.toml", True),
                                                 ("poetry.lock", False), ("pylock.a.b.toml", False)])
def test_pylock_names(name: str, expected: bool) -> None:
    assert is_pylock(Path(name)) is expected


def test_direct_sources_keep_a_lowercase_sha256(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text(textwrap.dedent("""\
        lock-version = "1.0"
        created-by = "gate-tests"

        [[packages]]
        name = "proj"
        version = "1.0"
        archive = {url = "https://example.com/proj-1.0.tar.gz", hashes = {sha256 = "ABCDEF0123"}}
        """), encoding="utf-8")
    [planned] = read_pylock(path)
    assert planned.filename == "https://example.com/proj-1.0.tar.gz"
    assert (planned.sha256, planned.direct) == ("abcdef0123", True)


def test_nothing_to_check_is_a_usage_error_before_policies_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "-p", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nothing to check: give files, a pylock.toml, --pip-report or -r" in err
    assert "no such policy file" not in err


def test_lock_upload_time_is_a_claim_when_the_index_is_unreachable(
    age_policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The index is asked (for yanked and its own upload time); unreachable, the lock's upload times do not
    stand in for it: the age is unknown, `whenUnknown` (deny by default) decides, and the report says why."""
    code = main(["check", "-p", str(age_policy), "--now", NOW, "--index-url", UNREACHABLE,
                 str(PYLOCKS / "pylock.spec-example.toml")])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "index:" in out
    assert sum(line.startswith("DENY  ") and "sha256:" in line for line in out.splitlines()) == 4
    assert out.count("uploaded: unknown") == 4
    assert "upload time unknown: the index could not be asked, and the lock's upload-time 2025-01-25T11:30:10.164985Z" \
        " is only a claim" in out


@pytest.mark.parametrize("index_sha256", [True, False])
def test_yanked_comes_from_the_index_even_with_a_lock_upload_time(
    index: UpstreamIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str], index_sha256: bool
) -> None:
    """A lock with upload times must not hide that the index yanked the file (`!file.yanked` rules); a row
    without a sha256 (an index giving only #md5) is denied as the proxy denies it: gate cannot tie the index's
    facts to the bytes."""
    index.set_yanked("gate-demo", "1.0", "broken build")
    wheel = index.get_file("gate_demo-1.0-py3-none-any.whl")
    assert wheel is not None
    if not index_sha256:
        index.add(dataclasses.replace(wheel, sha256=""))
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "gate-demo"\nversion = "1.0"\n'
        f'[[packages.wheels]]\nname = "{wheel.filename}"\nupload-time = 2025-01-02T00:00:00Z\n'
        f'hashes = {{sha256 = "{wheel.sha256}"}}\n'
    )
    policy = tmp_path / "yanked.yaml"
    policy.write_text(
        "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: y}\nspec:\n"
        "  rules: [{name: no-yanked, expression: '!file.yanked', message: yanked releases are not allowed}]\n"
    )
    with serve(index) as running:
        code = main(["check", "-p", str(policy), "--now", NOW, "--index-url", running.url, str(lock)])
    out = capsys.readouterr().out
    assert code == 1, out
    if index_sha256:
        assert "y/no-yanked: yanked releases are not allowed" in out
    else:
        assert "gate/gate.unjudgeable: the index gave no sha256 for this file" in out


def test_pip_lock_without_upload_time_asks_the_index(
    age_policy: Path, upstream: RunningUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", "-p", str(age_policy), "--now", NOW, "--index-url", upstream.url,
                 str(PYLOCKS / "pylock.pip-lock.toml")])
    out = capsys.readouterr().out
    assert code == 1
    assert f"ALLOW {SAMPLE_WHEEL}" in out
    assert "uploaded: 2024-11-06" in out


def test_identity_the_policy_does_not_allow(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "-p", str(EXAMPLE_POLICY), "--now", NOW, "--index-url", UNREACHABLE,
                 str(PYLOCKS / "pylock.spec-example.toml")])
    out = capsys.readouterr().out
    assert code == 1
    assert (
        "example/attestations.signers: the lock's attestation-identities (environment=release-pypi kind=GitHub "
        "repository=python-attrs/attrs workflow=pypi-package.yml) are not allowed by its signers"
    ) in out


PROVENANCE_OF = {  # the locked workflow -> the exit code and what the report says, against the real provenance
    "release.yml": (0, ["verified: https://docs.pypi.org/attestations/publish/v1"]),
    "other.yml": (1, [
        "DENY  pylock/attestation-identities: verified provenance was published by GitHub pypa/sampleproject",
        "example/attestations.signers: the lock's attestation-identities",
    ]),
}


@pytest.mark.parametrize("workflow", sorted(PROVENANCE_OF))
def test_identity_against_verified_provenance(
    workflow: str, tmp_path: Path, upstream: RunningUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = PROVENANCE_OF[workflow]
    path = lock(tmp_path, upstream.url, f'kind = "GitHub"\nrepository = "pypa/sampleproject"\nworkflow = "{workflow}"')
    got = main(["check", "-p", str(EXAMPLE_POLICY), "--now", NOW, "--index-url", upstream.url, str(path)])
    out = capsys.readouterr().out
    assert got == code, out
    assert all(line in out for line in said), out
    assert any("/provenance" in p for p in upstream.request_log)


@pytest.mark.parametrize(
    ("identity", "allowed"),
    [
        ({"kind": "GitHub", "repository": "pypa/pip", "workflow": "release.yml"}, True),
        ({"kind": "GitHub", "repository": "pypa/pip", "workflow": "other.yml"}, False),
        ({"kind": "GitHub", "repository": "trailofbits/x"}, True),
        ({"kind": "GitLab", "repository": "trailofbits/x"}, False),
        ({"kind": "GitHub", "repository": "pallets/flask", "workflow": "publish.yml"}, True),  # identity regex
        ({"kind": "GitHub", "repository": "pallets/flask", "workflow": "release.yml"}, False),
    ],
)
def test_signer_allows(identity: dict[str, str], allowed: bool) -> None:
    [policy] = load_policies([EXAMPLE_POLICY])
    assert policy.policy.attestations is not None
    assert any(signer_allows(s, identity) for s in policy.policy.attestations.signers) is allowed


@pytest.mark.parametrize(
    "body",
    [
        'packages = ["x"]',
        "packages = 5",
        '[[packages]]\nname = "a"\nwheels = ["x"]',
        '[[packages]]\nname = "a"\nvcs = "x"',
        '[[packages]]\nname = "a"\nattestation-identities = [1]\n[[packages.wheels]]\nname = "a-1.0-py3-none-any.whl"',
        '[[packages]]\nname = "a"\n[[packages.wheels]]\nname = "a-1.0-py3-none-any.whl"\nhashes = "sha256"',
    ],
)
def test_a_malformed_lock_is_a_usage_error(body: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A value of the wrong type in a lock was an internal error (exit 3); it is bad input (exit 2)."""
    path = tmp_path / "pylock.toml"
    path.write_text('lock-version = "1.0"\n' + body + "\n", encoding="utf-8")
    code = main(["check", "-p", str(EXAMPLE_POLICY), str(path), "--index-url", UNREACHABLE])
    assert code == 2
    assert "not a valid pylock.toml" in capsys.readouterr().err


def test_a_lock_index_that_is_not_a_string_is_only_a_claim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text(
        f'lock-version = "1.0"\n[[packages]]\nname = "a"\nindex = 3\n[[packages.wheels]]\nname = "{SAMPLE_WHEEL}"\n',
        encoding="utf-8",
    )
    assert main(["check", "-p", str(EXAMPLE_POLICY), str(path), "--index-url", UNREACHABLE, "--now", NOW]) == 1
