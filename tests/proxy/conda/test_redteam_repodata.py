"""Red-team findings against the monolithic repodata path (`gate.sources.conda_index`, `gate.proxy.conda_repodata`):
records whose view decodes but whose whole value does not."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from gate.sources.conda_index import RawRecord, RepodataIndex
from tests.support.conda_app import conda_app
from tests.support.conda_policies import policy_document, signer_attestations
from tests.support.conda_server import ChannelServer

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
OLD_MS = int(NOW.timestamp() * 1000) - 30 * 86_400_000
AGE = policy_document("age", ecosystems=["conda"], minimumAge="7d")
SIGNED = policy_document("signed", ecosystems=["conda"], attestations=signer_attestations())
CHANNEL = "hostile"
PATH = f"/conda/{CHANNEL}/noarch/repodata.json"
# JSON numbers msgspec skips in a record's view but cannot decode (a float past the largest double)
OUT_OF_RANGE = ["1e999", "-1E400", "1" + "0" * 400 + ".0", "1" + "0" * 300 + "e10"]


def _record(name: str) -> str:
    record = {"name": name, "version": "1.0", "build": "0", "sha256": "ab" * 32, "size": 10, "subdir": "noarch",
              "timestamp": OLD_MS}
    return json.dumps(record, separators=(",", ":"))


def _body(number: str, *, plain: bool = True) -> bytes:
    """A plain channel (ASCII, no escapes, compact) but for one record holding `number` in a field gate does not
    read; `plain=False`: another record holds an escape, so the body is checked record by record."""
    bad = _record("bad")[:-1] + f',"x":{number}}}'
    other = _record("other")[:-1] + (',"license":"caf\\u00e9"}' if not plain else "}")
    return (f'{{"info":{{"subdir":"noarch"}},"packages":{{}},"packages.conda":{{"good-1.0-0.conda":{_record("good")},'
            f'"bad-1.0-0.conda":{bad},"other-1.0-0.conda":{other}}}}}').encode()


def _served(tmp_path: Path, body: bytes, *policies: dict[str, Any]) -> tuple[int, Any]:
    (tmp_path / "channel" / "noarch").mkdir(parents=True)
    (tmp_path / "channel" / "noarch" / "repodata.json").write_bytes(body)
    with ChannelServer(tmp_path / "channel") as server:
        client = conda_app(tmp_path, {CHANNEL: server.url}, *policies, clock=lambda: NOW).test_client()
        response = client.get(PATH)
        return response.status_code, response.get_json() if response.status_code == 200 else response.text


@pytest.mark.parametrize("number", OUT_OF_RANGE)
def test_a_record_that_cannot_be_decoded_whole_is_no_record_to_judge(number: str) -> None:
    """Its fields facts read (name, version, build...) decode, its whole value does not: it was taken as a record
    whose bytes may be served as they are (`passthrough`), judged from those fields alone."""
    raw = RepodataIndex(_body(number)).sections["packages.conda"]["bad-1.0-0.conda"]
    with pytest.raises(ValueError, match="out of range"):
        RawRecord.of(raw)


@pytest.mark.parametrize("plain", [True, False])
@pytest.mark.parametrize("number", OUT_OF_RANGE[:2])
def test_a_record_that_cannot_be_decoded_is_denied_not_served(tmp_path: Path, number: str, plain: bool) -> None:
    """It was judged from its view and served as its own bytes (which no strict JSON client reads): gate said it
    denies what it cannot decode, and did so only for a body that was not plain."""
    status, page = _served(tmp_path, _body(number, plain=plain), AGE)
    assert status == 200, page
    assert sorted(page["packages.conda"]) == ["good-1.0-0.conda", "other-1.0-0.conda"]


def test_a_record_that_cannot_be_decoded_does_not_fail_the_subdir_under_a_policy_reading_attestations(
    tmp_path: Path,
) -> None:
    """Evidence is gathered from the decoded record: decoding it raised out of the build, a 500 for every record
    of the subdir, under any policy that reads attestations."""
    status, page = _served(tmp_path, _body(OUT_OF_RANGE[0]), SIGNED)
    assert status == 200, page
    assert page["packages.conda"] == {}  # none is signed: all denied, each for its own reason
