"""`gate check` on a local conda package: `.sigs`, `.sigs.<sha256>` and `.v0.sigs` sidecars beside it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from tests.support.conda_channel import build_conda_package, index_channel, set_record_fields
from tests.support.conda_policies import (
    CEP27,
    SIDECAR,
    SIDECAR_SHA256,
    SIGNED,
    SIGNED_SHA256,
    SIGNER_IDENTITY,
    TARGET_CHANNEL,
    policy_document,
    signer_attestations,
    write_policies,
)

Check = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture
def check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Check:
    """Run `gate check --format json` on the signed package in a folder; (exit code, its result)."""

    def run(folder: Path, *args: str, **attestations: Any) -> tuple[int, dict[str, Any]]:
        policy = policy_document(ecosystems=["conda"], attestations=signer_attestations(**attestations))
        policies = write_policies(tmp_path / "policies", policy)
        code = main(["check", str(folder / SIGNED), "--policy", str(policies), "--format", "json", *args])
        out, err = capsys.readouterr()
        assert code in (0, 1), err
        result: dict[str, Any] = json.loads(out)["results"][0]
        return code, result

    return run


def _record(folder: Path, **fields: Any) -> None:
    """A repodata.json beside the package with its record: the package's sha256 and `fields`."""
    record = {"sha256": SIGNED_SHA256, **fields}
    (folder / "repodata.json").write_text(json.dumps({"packages.conda": {SIGNED: record}}))


def _errors(result: dict[str, Any]) -> list[str]:
    return [a["error"] for a in result["attestations"] if not a["verified"]]


def test_v0_sigs_alone_is_found_and_verified(signed_dir: Path, check: Check) -> None:
    shutil.copyfile(SIDECAR, signed_dir / f"{SIGNED}.v0.sigs")
    code, result = check(signed_dir)
    assert code == 0, result
    (att,) = result["attestations"]
    assert att["verified"] and att["source"].endswith(".v0.sigs#0")
    assert (att["identity"], att["predicateType"], att["targetChannel"]) == (SIGNER_IDENTITY, CEP27, TARGET_CHANNEL)


def test_v0_sigs_is_not_held_to_the_advertised_sidecar_hash(signed_dir: Path, check: Check) -> None:
    """attestations_sha256 is about `.sigs`; a `.v0.sigs` with other bytes still counts on its own."""
    (signed_dir / f"{SIGNED}.v0.sigs").write_bytes(SIDECAR.read_bytes() + b"\n")
    _record(signed_dir, attestations_sha256="0" * 64)
    code, result = check(signed_dir)
    assert code == 0
    assert _errors(result) == ["sidecar-missing: repodata advertises attestations_sha256 but no sidecar"]
    assert [a["source"].rsplit("/", 1)[-1] for a in result["attestations"] if a["verified"]] == [
        f"{SIGNED}.v0.sigs#0"
    ]


def test_identical_sidecars_count_once(signed_dir: Path, check: Check) -> None:
    for suffix in (".sigs", ".v0.sigs"):
        shutil.copyfile(SIDECAR, signed_dir / f"{SIGNED}{suffix}")
    _record(signed_dir, attestations_sha256=SIDECAR_SHA256)
    code, result = check(signed_dir, "--attestation", str(signed_dir / f"{SIGNED}.sigs"))
    assert code == 0
    assert [a["source"].rsplit("/", 1)[-1] for a in result["attestations"]] == [f"{SIGNED}.sigs#0"]


def test_content_addressed_copy_stands_in_for_a_missing_sigs(signed_dir: Path, check: Check) -> None:
    shutil.copyfile(SIDECAR, signed_dir / f"{SIGNED}.sigs.{SIDECAR_SHA256}")
    _record(signed_dir, attestations_sha256=SIDECAR_SHA256)
    code, result = check(signed_dir)
    assert code == 0
    assert result["attestations"][0]["source"].endswith(f".sigs.{SIDECAR_SHA256}#0")


def test_advertised_sidecar_that_is_missing_is_a_failure(signed_dir: Path, check: Check) -> None:
    _record(signed_dir, attestations_sha256=SIDECAR_SHA256)
    code, result = check(signed_dir)
    assert code == 1
    assert _errors(result) == ["sidecar-missing: repodata advertises attestations_sha256 but no sidecar"]


@pytest.mark.parametrize(
    "advertised",
    ["ABC", "../../etc/passwd", "", SIDECAR_SHA256 + "0", SIDECAR_SHA256[:-1] + "g", " " + SIDECAR_SHA256, 42, [1]],
)
def test_a_pin_that_cannot_be_checked_rejects_the_sidecar(
    signed_dir: Path, check: Check, advertised: Any
) -> None:
    """A malformed `attestations_sha256` is not "no pin": the `.sigs` it pins is rejected, never verified
    unpinned (its own bundle would verify for this file and allow it)."""
    shutil.copyfile(SIDECAR, signed_dir / f"{SIGNED}.sigs")
    _record(signed_dir, attestations_sha256=advertised)
    code, result = check(signed_dir)
    (error,) = _errors(result)
    assert error.startswith("sidecar-hash: attestations_sha256 in repodata is not a sha256 (64 hex digits)")
    assert error.endswith("the .sigs sidecar is not used")
    assert not any(a["verified"] for a in result["attestations"])
    assert code == 1


def test_an_upper_case_pin_is_read_as_the_same_sha256(signed_dir: Path, check: Check) -> None:
    """Hex digits in either case name the same digest (as the record's `sha256` is read): the pin is checked."""
    shutil.copyfile(SIDECAR, signed_dir / f"{SIGNED}.sigs")
    _record(signed_dir, attestations_sha256=SIDECAR_SHA256.upper())
    code, result = check(signed_dir)
    assert code == 0 and _errors(result) == []
    _record(signed_dir, attestations_sha256=("1" * 64).upper())
    code, result = check(signed_dir)
    assert code == 1 and _errors(result)[0].startswith("sidecar-hash: sidecar bytes do not match")


def test_sidecar_with_other_bytes_than_advertised_fails(signed_dir: Path, check: Check) -> None:
    shutil.copyfile(SIDECAR, signed_dir / f"{SIGNED}.sigs")
    _record(signed_dir, attestations_sha256="1" * 64)
    code, result = check(signed_dir)
    assert code == 1 and _errors(result)[0].startswith("sidecar-hash")


@pytest.mark.parametrize(
    ("channel", "target", "code"),
    [
        (TARGET_CHANNEL + "/", "match", 0),
        ("https://prefix.dev/conda-forge", "match", 1),
        ("https://mirror.example/anything", TARGET_CHANNEL, 0),
    ],
)
def test_target_channel_match_compares_with_channel(
    signed_dir: Path, check: Check, channel: str, target: str, code: int
) -> None:
    shutil.copyfile(SIDECAR, signed_dir / f"{SIGNED}.v0.sigs")
    got, result = check(signed_dir, "--channel", channel, targetChannel=target)
    assert got == code, result
    assert result["facts"]["index"] == channel.rstrip("/")


def test_a_channel_subdir_of_tar_bz2_and_conda_packages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory is a channel subdir: every package is decided with its record from repodata.json."""
    channel = tmp_path / "channel"
    build_conda_package(channel / "noarch", "old", "1.0", fmt="tar.bz2", timestamp_ms=1_600_000_000_000)
    build_conda_package(channel / "noarch", "new", "1.0", timestamp_ms=1_600_000_000_000)
    index_channel(channel)  # sets indexed_timestamp = now
    set_record_fields(channel, "noarch", "old-1.0-0.tar.bz2", indexed_timestamp=None)
    policies = write_policies(tmp_path / "policies", policy_document("age", ecosystems=["conda"], minimumAge="7d"))
    code = main(["check", str(channel / "noarch"), "--policy", str(policies), "--format", "json"])
    results = {r["file"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert code == 1 and sorted(results) == ["new-1.0-0.conda", "old-1.0-0.tar.bz2"]
    old, new = results["old-1.0-0.tar.bz2"], results["new-1.0-0.conda"]
    assert (old["verdict"], old["facts"]["uploadedFrom"], old["facts"]["kind"]) == ("allow", "timestamp", "conda")
    assert (new["verdict"], new["facts"]["uploadedFrom"]) == ("deny", "indexed_timestamp")
