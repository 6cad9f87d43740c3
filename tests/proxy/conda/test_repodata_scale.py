"""The monolithic repodata at scale (`gate.proxy.conda_repodata`): the same verdicts and the same served
document as the straightforward path (json.loads, every record's facts from its dict, json.dumps) over a
generated channel full of edge records; and rebuilds that re-judge only what may have changed."""

from __future__ import annotations

import datetime as dt
import gc
import json
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard
from flask.testing import FlaskClient

from gate.decision import Verdict
from gate.evaluate import Evaluator, unidentified
from gate.facts import Facts, Unidentified
from gate.gather.conda import record_facts
from gate.policy.compile import load_policies
from gate.proxy.conda import FILTERED
from gate.proxy.conda_examine import OWN_BYTES, REENCODED, examine
from gate.proxy.conda_repodata import _no_gc
from gate.proxy.state import EXTENSION, Gate
from gate.proxy.stores.base import Entry
from gate.sources.conda_channel import parse_repodata
from gate.sources.conda_index import RepodataIndex
from tests.support.conda_app import audited_repodata, conda_app
from tests.support.conda_forge import forge_repodata
from tests.support.conda_policies import policy_document
from tests.support.conda_reference import encode, served_repodata, unique_records
from tests.support.conda_server import ChannelServer

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
SHA = "ab" * 32
AGE = policy_document("age", ecosystems=["conda"], minimumAge="7d")
CHANNEL = "forge"


def _record(package: str, version: str, build: str = "0", **fields: Any) -> dict[str, Any]:
    return {"name": package, "version": version, "build": build, "sha256": SHA, "size": 10, "subdir": "noarch",
            "timestamp": NOW_MS - 30 * DAY_MS, **fields}


def _edge_records() -> dict[str, dict[str, Any]]:
    """`packages.conda` records that test each rule of the record facts."""
    return {
        "nosha-1.0-0.conda": {k: v for k, v in _record("nosha", "1.0").items() if k != "sha256"},
        "shortsha-1.0-0.conda": _record("shortsha", "1.0", sha256="ab" * 31 + "a"),
        "uppersha-1.0-0.conda": _record("uppersha", "1.0", sha256="AB" * 32),
        "spacesha-1.0-0.conda": _record("spacesha", "1.0", sha256=" " + "ab" * 31 + "a"),
        "nonhexsha-1.0-0.conda": _record("nonhexsha", "1.0", sha256="ag" * 32),
        "intsha-1.0-0.conda": _record("intsha", "1.0", sha256=5),
        "boundary-1.0-0.conda": _record("boundary", "1.0", timestamp=NOW_MS - WEEK_MS),
        "boundary-1.0-1.conda": _record("boundary", "1.0", "1", timestamp=NOW_MS - WEEK_MS + 1),
        "boundary-1.0-2.conda": _record("boundary", "1.0", "2", timestamp=NOW_MS - WEEK_MS - 1),
        "seconds-1.0-0.conda": _record("seconds", "1.0", timestamp=(NOW_MS - 30 * DAY_MS) // 1000),
        "indexed-1.0-0.conda": _record("indexed", "1.0", indexed_timestamp=NOW_MS - DAY_MS),
        "indexedold-1.0-0.conda": _record("indexedold", "1.0", timestamp=NOW_MS, indexed_timestamp=NOW_MS - 9 * DAY_MS),
        "badindexed-1.0-0.conda": _record("badindexed", "1.0", indexed_timestamp="yesterday"),
        "negative-1.0-0.conda": _record("negative", "1.0", timestamp=-5),
        "booltime-1.0-0.conda": _record("booltime", "1.0", timestamp=True),
        "floattime-1.0-0.conda": _record("floattime", "1.0", timestamp=float(NOW_MS - 30 * DAY_MS)),
        "hugetime-1.0-0.conda": _record("hugetime", "1.0", timestamp=10**30),
        "bigtime-1.0-0.conda": _record("bigtime", "1.0", timestamp=10**17),
        "notime-1.0-0.conda": {k: v for k, v in _record("notime", "1.0").items() if k != "timestamp"},
        "renamed-1.0-0.conda": _record("numpy", "1.0"),
        "Upper-1.0-0.conda": _record("Upper", "1.0"),
        "upper2-1.0-0.conda": _record("UPPER2", "1.0"),
        "wrongversion-1.0-0.conda": _record("wrongversion", "2.0"),
        "wrongbuild-1.0-0.conda": _record("wrongbuild", "1.0", build="1"),
        "intname-1.0-0.conda": _record("intname", "1.0", name=5),
        "nullname-1.0-0.conda": _record("nullname", "1.0", name=None),
        "pre-1.0rc1-0.conda": _record("pre", "1.0rc1"),
        "weird-1.0.x-0.conda": _record("weird", "1.0.x"),
        "longver-" + "9" * 30 + "-0.conda": _record("longver", "9" * 30),
        "nonascii-1.0-0.conda": _record("nonascii", "1.0", license="Bibliothèque"),
        "q%3F-1.0-0.conda": _record("q%3F", "1.0"),
        "notaname.conda": _record("notaname", "1.0"),
        "listed-1.0-0.conda": [1, 2],  # type: ignore[dict-item]  # not a record
        "nullrecord-1.0-0.conda": None,  # type: ignore[dict-item]
        "dup-1.0-0.conda": _record("dup", "1.0"),  # also in `packages`, differently
        "same-1.0-0.conda": _record("same", "1.0"),  # also in `packages`, identically
        "young-1.0-0.conda": _record("young", "1.0", timestamp=NOW_MS - DAY_MS),
    }


def _channel_body(*, twice: bool = True, plain: bool = False) -> bytes:
    """A generated conda-forge-shaped subdir (records of every age) with the edge records, a section of
    another shape and unknown top-level keys; as channels write it (compact JSON); with keys given `twice`;
    `plain`: without the non-ASCII record (whose escape makes its batch not plain: `conda_examine`)."""
    repodata = forge_repodata(3000, subdir="noarch", seed=7, now=NOW, young=0.3)
    repodata["packages.conda"].update(_edge_records())
    if plain:
        del repodata["packages.conda"]["nonascii-1.0-0.conda"]
    repodata["packages"]["dup-1.0-0.conda"] = _record("dup", "1.0", sha256="cd" * 32)
    repodata["packages"]["same-1.0-0.conda"] = _record("same", "1.0")
    repodata["packages"]["onlylegacy-1.0-0.tar.bz2"] = "not a record"
    repodata["info"]["base_url"] = "https://cdn.example/forge/noarch/"
    repodata["x_records"] = {"evil-1.0-0.whl": _record("evil", "1.0")}  # unknown map of maps: dropped
    repodata["x_note"] = {"a": 1}
    body = json.dumps(repodata, separators=(",", ":")).encode()
    if not twice:
        return body
    # a key given twice (the last counts, at the first one's place), inside a record and in a section
    once = json.dumps(_record("twice", "1.0"), separators=(",", ":"))
    doubled = once[:-1] + ',"name":"twice","timestamp":' + str(NOW_MS) + "}"
    renamed = json.dumps(_record("twicename", "1.0"), separators=(",", ":"))
    first_numpy = '{"name":"numpy",' + renamed[1:]  # a parser that takes the first `name` reads numpy
    extra = (f'"twice-1.0-0.conda":{doubled},"twicename-1.0-0.conda":{first_numpy},'
             f'"again-1.0-0.conda":{json.dumps(_record("again", "1.0", timestamp=NOW_MS))},'
             f'"again-1.0-0.conda":{json.dumps(_record("again", "1.0"))},')
    return body.replace(b'"packages.conda":{', b'"packages.conda":{' + extra.encode(), 1)


def _old_path(body: bytes, policies: Path, channel: str) -> tuple[dict[str, Any], dict[str, tuple[str, ...]]]:
    """What gate served before (json.loads, each record's facts from its dict, json.dumps): the document
    and each judged filename's violated rules."""
    repodata = parse_repodata(body)
    records, conflicts = unique_records(repodata)
    evaluator = Evaluator(load_policies([policies]))
    allowed, rules = set(), {}
    for name, record in records:
        file = record_facts(name, record, channel, conflicts.get(name))
        decision = unidentified(file) if isinstance(file, Unidentified) else evaluator.judge(Facts(file), NOW).decision
        rules[name] = tuple(sorted(v.rule for v in decision.violations))
        if not decision.violations or decision.verdict is Verdict.ALLOW:
            allowed.add(name)
    return json.loads(encode(served_repodata(repodata, lambda name, _: name in allowed))), rules


@pytest.fixture(scope="module")
def forge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    channel = tmp_path_factory.mktemp("forge")
    (channel / "noarch").mkdir()
    (channel / "noarch" / "repodata.json").write_bytes(_channel_body())
    return channel


@pytest.fixture(scope="module")
def compact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same channel without keys given twice: its records are where the index computes them to be, so
    runs of served records are copied from the upstream body as they are."""
    channel = tmp_path_factory.mktemp("compact")
    (channel / "noarch").mkdir()
    (channel / "noarch" / "repodata.json").write_bytes(_channel_body(twice=False))
    return channel


@pytest.fixture
def upstream(forge: Path) -> Iterator[ChannelServer]:
    with ChannelServer(forge) as server:
        yield server


Factory = Callable[..., FlaskClient]


@pytest.fixture
def make_client(tmp_path: Path, upstream: ChannelServer) -> Factory:
    def make(*policies: dict[str, Any], clock: Callable[[], dt.datetime] = lambda: NOW) -> FlaskClient:
        return conda_app(tmp_path, {CHANNEL: upstream.url}, *(policies or (AGE,)), clock=clock).test_client()

    return make


def _judged(client: FlaskClient) -> float:
    """How many records the repodata builds have judged (every decision is counted once, when made)."""
    metrics = client.get("/-/metrics").get_data(as_text=True)
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("gate_decisions_total{") and 'event="repodata"' in line)


def test_the_index_knows_where_compact_records_are(forge: Path, compact: Path) -> None:
    assert RepodataIndex((forge / "noarch" / "repodata.json").read_bytes()).layout() is None  # keys twice
    body = (compact / "noarch" / "repodata.json").read_bytes()
    index = RepodataIndex(body)
    layout = index.layout()
    assert layout is not None and set(layout) == {"packages", "packages.conda"}
    for section, starts in layout.items():
        for i, (filename, raw) in enumerate(index.sections[section].items()):
            assert body[starts[i] : starts[i + 1] - 1] == json.dumps(filename).encode() + b":" + bytes(raw)
    spaced = json.dumps(json.loads(body)).encode()  # `, ` and `: `
    assert RepodataIndex(spaced).layout() is None and RepodataIndex(b"\n" + body + b"\n").layout() is not None
    assert RepodataIndex(b'{"packages":{}}').layout() == {"packages": array("Q", [14])}


def test_served_repodata_and_verdicts_are_those_of_the_straightforward_path(
    make_client: Factory, forge: Path, upstream: ChannelServer, tmp_path: Path
) -> None:
    client = make_client()
    response = client.get(f"/conda/{CHANNEL}/noarch/repodata.json")
    assert response.status_code == 200
    served = json.loads(response.data)
    expected, rules = _old_path((forge / "noarch" / "repodata.json").read_bytes(), tmp_path / "policies", upstream.url)
    assert served == expected
    denied = {name: r for name, r in rules.items() if r}
    assert audited_repodata(tmp_path) == denied  # every denial audited, with its rules; nothing else
    assert 100 < len(denied) < 2000 and "young-1.0-0.conda" in denied  # the channel has both kinds
    listed = {*served["packages"], *served["packages.conda"]}
    assert {"boundary-1.0-0.conda", "boundary-1.0-2.conda", "same-1.0-0.conda", "Upper-1.0-0.conda",
            "again-1.0-0.conda"} <= listed  # `again`: the last of its two records, the old one
    assert not {"boundary-1.0-1.conda", "dup-1.0-0.conda", "renamed-1.0-0.conda", "hugetime-1.0-0.conda",
                "twice-1.0-0.conda", "nosha-1.0-0.conda"} & listed
    assert "base_url" not in served["info"] and "x_records" not in served and served["x_note"] == {"a": 1}
    assert _judged(client) == len(rules)


def test_a_compact_channel_too(compact: Path, tmp_path: Path) -> None:
    """Served from runs of upstream bytes: the same document, byte for byte as the straightforward path's
    but for the records it re-encodes (json.dumps escapes non-ASCII)."""
    with ChannelServer(compact) as server:
        client = conda_app(tmp_path, {CHANNEL: server.url}, AGE, clock=lambda: NOW).test_client()
        body = client.get(f"/conda/{CHANNEL}/noarch/repodata.json").data
        expected, rules = _old_path((compact / "noarch" / "repodata.json").read_bytes(), tmp_path / "policies",
                                    server.url)
    assert json.loads(body) == expected
    assert body == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()
    assert audited_repodata(tmp_path) == {name: r for name, r in rules.items() if r}


@pytest.mark.parametrize("twice", [True, False], ids=["keys-twice", "keys-once"])
def test_a_plain_channel_too(tmp_path: Path, twice: bool) -> None:
    """An ASCII body without escapes: every record of a batch is served as its own bytes, which counting each
    key over the batch's bytes proves (`conda_examine`); a record naming `name` twice breaks its batch's
    count, so every record of that batch is checked on its own and that one re-encoded."""
    (tmp_path / "channel" / "noarch").mkdir(parents=True)
    upstream = _channel_body(twice=twice, plain=True)
    (tmp_path / "channel" / "noarch" / "repodata.json").write_bytes(upstream)
    assert upstream.isascii() and b"\\" not in upstream
    with ChannelServer(tmp_path / "channel") as server:
        client = conda_app(tmp_path, {CHANNEL: server.url}, AGE, clock=lambda: NOW).test_client()
        body = client.get(f"/conda/{CHANNEL}/noarch/repodata.json").data
        expected, rules = _old_path(upstream, tmp_path / "policies", server.url)
    assert json.loads(body) == expected
    assert audited_repodata(tmp_path) == {name: r for name, r in rules.items() if r}
    start = body.index(b'"twicename-1.0-0.conda":') if twice else -1
    if twice:  # judged as `twicename` (the last `name`), served with that one name only
        record = body[start : body.index(b"}", start) + 1]
        assert b"numpy" not in record and record.count(b'"name"') == 1
        assert "twicename-1.0-0.conda" in expected["packages.conda"]
    else:  # every record served as its own bytes
        assert body == json.dumps(expected, separators=(",", ":")).encode()


def test_the_count_proves_no_record_names_a_key_twice() -> None:
    """`examine` counts every occurrence of a key in a batch's bytes: a record naming a key twice (or a key
    string anywhere else in a record) makes the count exceed the number of records naming that key, and then
    each record is checked on its own; so is every record of a batch with an escape or a byte that is not
    ASCII."""
    once = b'{"name":"a","version":"1","build":"0","sha256":"%s"}' % (b"ab" * 32)
    other = once.replace(b'"a"', b'"b"')
    filenames = ["a-1-0.tar.bz2", "b-1-0.tar.bz2"]

    def kinds(*raws: bytes) -> list[int]:
        return list(examine(filenames, [msgspec.Raw(raw) for raw in raws]).kinds)

    assert kinds(once, other) == [OWN_BYTES, OWN_BYTES]
    assert kinds(once.replace(b'"name":"a"', b'"name":"numpy","name":"a"'), other) == [REENCODED, OWN_BYTES]
    nested = once.replace(b'"build":"0"', b'"build":"0","x":{"name":1}')
    assert kinds(nested, other) == [REENCODED, OWN_BYTES]
    escaped = once.replace(b'"1"', b'"\\u0031"')
    assert kinds(escaped, other) == [REENCODED, OWN_BYTES]  # an escape: checked one by one
    assert kinds(once.replace(b'"0"', '"é"'.encode()), other) == [REENCODED, OWN_BYTES]  # not ASCII: the same


def test_a_warm_request_is_served_by_the_worker_without_reading_the_filtered_body_again(
    make_client: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of a conda-forge-sized filtered body from the store holds it twice (SQLite's copy and the
    bytes): the worker keeps what it built, while its decisions hold."""
    client = make_client()
    path = f"/conda/{CHANNEL}/noarch/repodata.json"
    body = client.get(path).data
    state: Gate = client.application.extensions[EXTENSION]
    read: list[str] = []
    get = state.store.get

    def counted(namespace: str, key: str, *, now: float | None = None) -> Entry | None:
        read.append(namespace)
        return get(namespace, key, now=now)

    monkeypatch.setattr(state.store, "get", counted)
    assert client.get(path).data == body and client.get(f"{path}.zst").status_code == 200
    assert FILTERED not in read


def test_a_record_is_served_as_judged_whatever_parser_reads_it(make_client: Factory) -> None:
    """`twicename` names `numpy` first and itself last: gate judged the last; a parser that keeps the first
    key would read numpy, so the record is served re-encoded, with one `name`."""
    body = make_client().get(f"/conda/{CHANNEL}/noarch/repodata.json").data
    start = body.index(b'"twicename-1.0-0.conda":')
    record = body[start : body.index(b"}", start) + 1]
    assert b"numpy" not in record and record.count(b'"name"') == 1
    assert "Bibliothèque".encode() in body  # non-ASCII records re-encoded as UTF-8


def test_plain_and_zst_bodies_are_one_document_with_their_own_etags(make_client: Factory) -> None:
    client = make_client()
    plain = client.get(f"/conda/{CHANNEL}/noarch/repodata.json")
    zst = client.get(f"/conda/{CHANNEL}/noarch/repodata.json.zst")
    assert plain.headers["Content-Length"] == str(len(plain.data))
    assert zstandard.ZstdDecompressor().decompress(zst.data) == plain.data  # a frame with its content size
    assert plain.headers["ETag"] != zst.headers["ETag"]
    head = client.head(f"/conda/{CHANNEL}/noarch/repodata.json")
    assert head.status_code == 200 and head.data == b"" and head.headers["ETag"] == plain.headers["ETag"]
    again = client.get(f"/conda/{CHANNEL}/noarch/repodata.json.zst", headers={"If-None-Match": zst.headers["ETag"]})
    assert again.status_code == 304


def test_a_record_that_comes_of_age_appears_and_only_it_is_judged_again(make_client: Factory) -> None:
    moment = [NOW]
    client = make_client(clock=lambda: moment[0])
    path = f"/conda/{CHANNEL}/noarch/repodata.json"
    before = json.loads(client.get(path).data)
    judged = _judged(client)
    assert "boundary-1.0-1.conda" not in before["packages.conda"]
    moment[0] = NOW + dt.timedelta(milliseconds=1)  # boundary-1.0-1 is 7 days old now, nothing else changed
    after = json.loads(client.get(path).data)
    assert after["packages.conda"]["boundary-1.0-1.conda"]["build"] == "1"
    assert {k: v for k, v in after["packages.conda"].items() if k != "boundary-1.0-1.conda"} == before["packages.conda"]
    assert after["packages"] == before["packages"]
    assert _judged(client) == judged + 1  # the one record whose decision could change, not the channel again


def test_another_worker_serves_the_filtered_body_kept_in_the_store(make_client: Factory) -> None:
    moment = [NOW + dt.timedelta(milliseconds=1)]
    first = make_client(clock=lambda: moment[0])
    body = first.get(f"/conda/{CHANNEL}/noarch/repodata.json").data
    other = make_client(clock=lambda: moment[0])  # same cache, fresh process memory
    assert other.get(f"/conda/{CHANNEL}/noarch/repodata.json").data == body
    assert _judged(other) == 0  # the filtered body was cached: nothing judged


def test_another_worker_rebuilds_from_the_decisions_kept_in_the_store(make_client: Factory) -> None:
    moment = [NOW]
    path = f"/conda/{CHANNEL}/noarch/repodata.json"
    first = make_client(clock=lambda: moment[0])
    assert "boundary-1.0-1.conda" not in json.loads(first.get(path).data)["packages.conda"]
    moment[0] = NOW + dt.timedelta(milliseconds=1)
    other = make_client(clock=lambda: moment[0])  # same cache, fresh process memory
    before = _judged(other)
    assert "boundary-1.0-1.conda" in json.loads(other.get(path).data)["packages.conda"]
    assert _judged(other) == before + 1


def test_a_changed_policy_judges_every_record_again(make_client: Factory, tmp_path: Path) -> None:
    path = f"/conda/{CHANNEL}/noarch/repodata.json"
    loose = make_client(policy_document("age", ecosystems=["conda"], minimumAge="1h"))
    assert "young-1.0-0.conda" in json.loads(loose.get(path).data)["packages.conda"]
    strict = make_client()  # 7 days: another view of the same upstream body
    served = json.loads(strict.get(path).data)
    assert "young-1.0-0.conda" not in served["packages.conda"] and "boundary-1.0-2.conda" in served["packages.conda"]


def test_a_changed_upstream_file_is_judged_anew(make_client: Factory, forge: Path, upstream: ChannelServer) -> None:
    client = make_client()
    path = f"/conda/{CHANNEL}/noarch/repodata.json"
    assert "boundary-1.0-0.conda" in json.loads(client.get(path).data)["packages.conda"]
    original = (forge / "noarch" / "repodata.json").read_bytes()
    try:
        changed = original.replace(b'"boundary-1.0-0.conda":{', b'"boundary-1.0-0.conda":{"indexed_timestamp":'
                                   + str(NOW_MS).encode() + b",", 1)
        (forge / "noarch" / "repodata.json").write_bytes(changed)
        assert "boundary-1.0-0.conda" not in json.loads(client.get(path).data)["packages.conda"]
    finally:
        (forge / "noarch" / "repodata.json").write_bytes(original)


def test_a_download_is_judged_from_the_same_record(make_client: Factory) -> None:
    client = make_client()
    for name in ("twice-1.0-0.conda", "dup-1.0-0.conda", "hugetime-1.0-0.conda", "boundary-1.0-1.conda"):
        response = client.get(f"/conda/{CHANNEL}/noarch/{name}")
        assert response.status_code == 403, name
    assert client.get(f"/conda/{CHANNEL}/noarch/listed-1.0-0.conda").status_code == 404  # not a record


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"info":{"subdir":"noarch","x":1e999},"packages":{}}', "number out of range"),
        (b'{"packages":{"a-1-0.tar.bz2":{"name":NaN}}}', "malformed"),
        (b'{"packages":{"a-1-0.tar.bz2":{"name":"\\ud800"}}}', "truncated"),
        (b'{"packages":{"\xff-1-0.tar.bz2":{}}}', "UTF-8"),
        (b"[]", "not a JSON object"),
    ],
)
def test_repodata_gate_cannot_read_is_a_502_and_not_kept(tmp_path: Path, body: bytes, message: str) -> None:
    (tmp_path / "channel" / "noarch").mkdir(parents=True)
    (tmp_path / "channel" / "noarch" / "repodata.json").write_bytes(body)
    with ChannelServer(tmp_path / "channel") as server:
        client = conda_app(tmp_path, {CHANNEL: server.url}, AGE, clock=lambda: NOW).test_client()
        response = client.get(f"/conda/{CHANNEL}/noarch/repodata.json")
    assert response.status_code == 502 and message.lower() in response.text.lower()


def test_gc_is_on_again_when_overlapping_builds_end_in_any_order() -> None:
    """Each build noted whether GC was on when it began: a build that began while another ran saw it off, so
    when the first ended before it, the last to end left GC off for the life of the process."""
    assert gc.isenabled()
    first, second = _no_gc(), _no_gc()
    try:
        first.__enter__()
        second.__enter__()
        assert not gc.isenabled()
        first.__exit__(None, None, None)
        assert not gc.isenabled()  # a build still runs
        second.__exit__(None, None, None)
        assert gc.isenabled()
    finally:
        gc.enable()
