"""Red team of the forked examine helper (`gate.proxy.conda_examine`): a generated hostile corpus (batches of
mixed kinds; keys given twice, escaped, nested or as values; non-ASCII; numbers out of range; values that are no
record; odd filenames; conflicts across sections) is served the same, byte for byte, with the helper forced to
answer and without one, as the reference filter would serve it, and no served record holds a key twice or bytes
gate did not parse; and the helper's fork leaves nothing of it behind in the worker."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import requests

from gate.proxy import conda_examine, conda_repodata
from gate.proxy.conda_examine import Examined, Helper
from gate.sources.conda_channel import parse_repodata
from gate.sources.conda_index import RepodataIndex
from tests.support.conda_app import serve_subdir
from tests.support.conda_forge import forge_bytes, forge_repodata
from tests.support.conda_policies import write_policies
from tests.support.conda_reference import unique_records
from tests.support.conda_server import ChannelServer
from tests.support.gate_server import running_gate

from .test_repodata_scale import AGE, CHANNEL, NOW, NOW_MS, _old_path

BATCH = 7  # small: every batch mixes kinds, and a few hundred records make many batches
DAY_MS = 86_400_000
OUT_OF_RANGE = ["1e999", "-1E400", "1" + "0" * 400 + ".0"]


def _fields(name: str, version: str, build: str, rng: random.Random) -> dict[str, Any]:
    age = rng.choice([30 * DAY_MS, DAY_MS, 7 * DAY_MS])
    return {"name": name, "version": version, "build": build, "sha256": "ab" * 32, "size": 10,
            "subdir": "noarch", "timestamp": NOW_MS - age}


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _hostile(i: int, rng: random.Random) -> tuple[str, str]:
    """A filename and the raw JSON of one record of one of many hostile shapes (as text: some are no
    `json.dumps` output)."""
    name = f"p{i % 23}"
    version, build = f"1.{i}", "0"
    filename = f"{name}-{version}-{build}.conda"
    fields = _fields(name, version, build, rng)
    plain = _compact(fields)
    kind = rng.randrange(24)
    if kind == 0:  # `name` twice: the last one is gate's, the first one some clients'
        return filename, '{"name":"numpy",' + plain[1:]
    if kind == 1:
        return filename, plain[:-1] + ',"name":"numpy"}'
    if kind == 2:  # an escaped key: `name` to gate, written otherwise
        return filename, plain.replace('"name"', '"na\\u006de"', 1)
    if kind == 3:  # an escaped key given besides the plain one
        return filename, plain[:-1] + ',"n\\u0061me":"numpy"}'
    if kind == 4:  # a nested `name`
        return filename, plain[:-1] + ',"extra":{"name":"numpy","version":"9","build":"x"}}'
    if kind == 5:  # the key's bytes as a value, in a record without the key
        without = {k: v for k, v in fields.items() if k != "name"}
        return filename, _compact({**without, "license": "name"})
    if kind == 6:  # the key's bytes as a value in a record with it: counted twice
        return filename, _compact({**fields, "license": "name", "md5": "version"})
    if kind == 7:  # non-ASCII, raw and escaped
        return filename, _compact({**fields, "license": "caf\u00e9"})
    if kind == 8:
        return filename, json.dumps({**fields, "license": "caf\u00e9"}, ensure_ascii=False, separators=(",", ":"))
    if kind == 9:  # a number no decoder reads
        return filename, plain[:-1] + f',"x":{rng.choice(OUT_OF_RANGE)}}}'
    if kind == 10:  # values that are no record
        return filename, rng.choice(["[1,2]", "null", '"name"', "5", "true", '["name"]'])
    if kind == 11:  # odd filenames
        odd = rng.choice(["?", "#", "%3F", "/", "\\", "\u0085", "\x7f", "\u00e9", " ", "+!~"])
        return f"{name}{odd}-{version}-{build}.conda", plain
    if kind == 12:
        return rng.choice(["", ".", "..", ".conda", "--.conda"]) + ("" if rng.random() < 0.5 else f"{i}"), plain
    if kind == 13:  # name, version or build of another type, or not as the filename has them
        key = rng.choice(["name", "version", "build"])
        return filename, _compact({**fields, key: rng.choice([None, 5, [name], name.upper(), "x"])})
    if kind == 14:  # whitespace JSON allows
        return filename, json.dumps(fields, indent=1)
    if kind == 15:  # an escaped quote in a value, that with the key's bytes around it
        return filename, plain[:-1] + ',"license":"\\"name\\""}'
    if kind == 16:  # a key twice that is not one of the three counted
        return filename, plain[:-1] + f',"timestamp":{NOW_MS}}}'
    if kind == 17:  # deep nesting
        return filename, plain[:-1] + ',"x":' + "[" * 300 + "]" * 300 + "}"
    if kind == 18:  # a surrogate pair (a lone one makes the whole body unreadable: 502)
        return filename, plain[:-1] + ',"license":"\\ud83d\\ude00"}'
    if kind == 19:  # sha256 and times of odd shapes
        return filename, _compact({**fields, rng.choice(["sha256", "timestamp", "size", "indexed_timestamp"]):
                                   rng.choice([None, -1, 1.5, "1", 10**20, True, "AB" * 32])})
    if kind == 20:  # a name the filename has in capitals
        upper = f"P{i % 23}-{version}-{build}.conda"
        return upper, plain
    return filename, plain  # and plenty of plain records between them


def hostile_body(count: int, seed: int) -> bytes:
    rng = random.Random(seed)
    parts: dict[str, list[str]] = {"packages": [], "packages.conda": []}
    for i in range(count):
        filename, raw = _hostile(i, rng)
        section = "packages.conda" if filename.endswith(".conda") and rng.random() < 0.8 else "packages"
        parts[section].append(f"{json.dumps(filename)}:{raw}")
        if rng.random() < 0.03:  # the same filename in the other section, identical or not
            other = "packages" if section == "packages.conda" else "packages.conda"
            again = raw if rng.random() < 0.5 else _compact(_fields(f"p{i % 23}", f"1.{i}", "0", rng))
            parts[other].append(f"{json.dumps(filename)}:{again}")
        if rng.random() < 0.02:  # the same filename twice in a section (the last counts, at the first's place)
            parts[section].append(f"{json.dumps(filename)}:{_compact(_fields('numpy', '1.0', '0', rng))}")
    sections = ",".join(f'"{section}":{{{",".join(records)}}}' for section, records in parts.items())
    return f'{{"info":{{"subdir":"noarch"}},{sections},"repodata_version":1}}'.encode()


@pytest.fixture(scope="module", params=[1, 2, 3])
def body(request: pytest.FixtureRequest) -> bytes:
    return hostile_body(700, request.param)


def _served(tmp_path: Path, body: bytes) -> tuple[bytes, dict[str, tuple[str, ...]], str]:
    return serve_subdir(tmp_path, body, CHANNEL, AGE, clock=lambda: NOW)


def _no_key_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"a served object names a key twice: {keys}"
    return dict(pairs)


def test_a_hostile_corpus_is_served_the_same_with_the_helper_answering_without_it_and_by_the_reference(
    body: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conda_repodata, "BATCH", BATCH)
    monkeypatch.setattr(conda_repodata, "HELPER_BATCHES", 2)
    monkeypatch.setattr(conda_repodata, "_cores", lambda: 2)
    answered: list[int] = []
    take = Helper.take

    def patient(self: Helper, k: int, size: int) -> Examined | None:
        """The later half of the batches waits for the child's answer: the helper's results are used."""
        deadline = time.monotonic() + 120  # detects a hang only
        while (found := take(self, k, size)) is None and k >= 40 and self._fd is not None:
            assert time.monotonic() < deadline, "the helper did not answer"
            time.sleep(0.005)
        if found is not None:
            answered.append(k)
        return found

    monkeypatch.setattr(Helper, "take", patient)
    served, audited, url = _served(tmp_path / "helper", body)
    assert len(answered) > 40  # the child answered every batch from the last back to the 40th
    monkeypatch.setattr(conda_repodata, "HELPER_BATCHES", 10**9)
    alone, audited_alone, _ = _served(tmp_path / "alone", body)
    assert served == alone and audited == audited_alone
    expected, rules = _old_path(body, tmp_path / "helper" / "policies", url)
    # the one known difference: a record holding a number no JSON decoder reads whole is unreadable to gate, so
    # denied, where json.loads reads it as infinity (tests/proxy/conda/test_redteam_repodata.py)
    listed, _ = unique_records(parse_repodata(body))
    infinite = {filename for filename, record in listed if math.inf in map(abs, _numbers(record))}
    assert infinite and all(audited[filename] == ("gate.unjudgeable",) for filename in infinite)
    for section in ("packages", "packages.conda"):
        expected[section] = {k: v for k, v in expected[section].items() if k not in infinite}
    document = json.loads(served, object_pairs_hook=_no_key_twice)  # no served object names a key twice
    assert document == expected
    assert audited == {name: r for name, r in rules.items() if r and name not in infinite} | {
        name: ("gate.unjudgeable",) for name in infinite}


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, float) else []


@pytest.mark.parametrize("unreadable_first", [False, True], ids=["later", "earlier"])
def test_a_filename_listed_again_with_a_record_that_cannot_be_decoded_is_a_conflict(
    tmp_path: Path, unreadable_first: bool
) -> None:
    """The reference reads `1e999` as infinity, so the two records differ: the filename is denied. Gate took the
    copy it could not decode for no record, and served the other copy as the only one."""
    rng = random.Random(0)
    plain = _compact({**_fields("p", "1.0", "0", rng), "timestamp": NOW_MS - 30 * DAY_MS})
    unreadable = plain[:-1] + ',"x":1e999}'
    first, later = (unreadable, plain) if unreadable_first else (plain, unreadable)
    body = (f'{{"info":{{"subdir":"noarch"}},"packages":{{"p-1.0-0.conda":{first}}},'
            f'"packages.conda":{{"p-1.0-0.conda":{later}}}}}').encode()
    index = RepodataIndex(body)
    assert index.shadowed == {1} and "p-1.0-0.conda" in index.conflicts
    served, audited, _ = _served(tmp_path, body)
    assert json.loads(served)["packages"] == json.loads(served)["packages.conda"] == {}
    assert audited == {"p-1.0-0.conda": ("gate.unjudgeable",)}


def test_two_builds_forking_at_once_leave_the_warning_filters_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    """`warnings.catch_warnings` is not thread-safe: two threads forking helpers at once each saved the filters
    and restored them when done, so the one that ended last put back the other's "ignore", for good (and a
    warning of another thread in between was ignored or raised by chance)."""
    real_fork = os.fork
    inside = threading.Semaphore(0)

    def overlapping_fork() -> int:
        """Two forks that overlap: each waits (a while, at most) for the other to be inside too."""
        inside.release()
        for _ in range(2):
            inside.acquire(timeout=2)  # detects nothing: only widens the overlap
        inside.release(2)
        return real_fork()

    monkeypatch.setattr(os, "fork", overlapping_fork)
    monkeypatch.setattr(conda_examine, "_child", lambda write, batches: None)
    before = list(warnings.filters)
    helpers: list[Helper] = []
    threads = [threading.Thread(target=lambda: helpers.append(Helper(lambda: iter(())))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for helper in helpers:
        helper.close()
    assert len(helpers) == 2 and all(helper._pid is None for helper in helpers)
    assert warnings.filters == before


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/task/{task}/children") as listed:
                found |= {int(child) for child in listed.read().split()}
    return found


def _gate_workers(cache: Path) -> set[int]:
    """The workers of the `gate serve` started here with its cache in `cache` (this process's child's children)."""
    def ours(pid: int) -> bool:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return str(cache).encode() in cmdline.read().split(b"\0")

    return {worker for child in _children(os.getpid()) if ours(child) for worker in _children(child)}


@pytest.mark.slow
def test_a_real_gate_serve_with_concurrent_cold_builds_serves_them_whole_and_leaves_no_helper(tmp_path: Path) -> None:
    """Two workers with threads, two subdirs of 40k records asked for at once, twice each: every build of 20
    batches forks a helper; every answer is the reference's document, and when they are all answered no worker
    has a child left (killed and reaped: no zombie either)."""
    if conda_repodata._cores() < 2:
        pytest.skip("a helper is forked only on a machine of more than one core")
    now = dt.datetime.now(dt.UTC)
    cut_ms = int(now.timestamp() * 1000) - 7 * DAY_MS
    channel, expected = tmp_path / "channel", {}
    for seed, subdir in enumerate(("linux-64", "osx-64")):
        repodata = forge_repodata(40_000, subdir=subdir, seed=seed, now=now)
        (channel / subdir).mkdir(parents=True)
        (channel / subdir / "repodata.json").write_bytes(json.dumps(repodata, separators=(",", ":")).encode())
        expected[subdir] = {section: {k: v for k, v in repodata[section].items() if v["timestamp"] < cut_ms}
                            for section in ("packages", "packages.conda")}
    policies = write_policies(tmp_path / "policies", AGE)
    cache = tmp_path / "cache"
    hang = 600  # detects a hang only
    with ChannelServer(channel) as server:
        args = ["--policy", str(policies), "--conda-channel", f"{CHANNEL}={server.url}/", "--cache-dir", str(cache),
                "--workers", "2", "--threads", "4", "--upstream-slots", "8"]
        with running_gate(args, tmp_path / "serve.log") as url:
            deadline = time.monotonic() + hang
            while len(workers := _gate_workers(cache)) < 2:  # the second one may still be starting
                assert time.monotonic() < deadline, "gate serve did not start two workers"
                time.sleep(0.05)
            answers: dict[tuple[str, int], requests.Response] = {}
            seen: set[int] = set()  # the helpers seen running

            def ask(subdir: str, i: int) -> None:
                answers[subdir, i] = requests.get(f"{url}/conda/{CHANNEL}/{subdir}/repodata.json", timeout=hang)

            asking = [threading.Thread(target=ask, args=(subdir, i)) for subdir in expected for i in range(2)]
            for thread in asking:
                thread.start()
            while any(thread.is_alive() for thread in asking):
                for worker in workers:
                    seen |= _children(worker)
                time.sleep(0.02)
            for thread in asking:
                thread.join(hang)
            left = {worker: _children(worker) for worker in workers}
        assert seen, "no build forked a helper"
        assert left == {worker: set() for worker in workers}
        assert sorted(answers) == sorted((subdir, i) for subdir in expected for i in range(2))
        for (subdir, _), answer in answers.items():
            assert answer.status_code == 200, answer.text
            document = answer.json()
            assert {section: document[section] for section in ("packages", "packages.conda")} == expected[subdir]


def _reaped(pid: int) -> bool:
    """Whether `pid` (a child of this process) is gone and reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_build_that_raises_mid_way_ends_and_reaps_its_helper(
    monkeypatch: pytest.MonkeyPatch, helpers: list[Helper]
) -> None:
    monkeypatch.setattr(conda_repodata, "BATCH", 50)
    monkeypatch.setattr(conda_repodata, "HELPER_BATCHES", 2)
    monkeypatch.setattr(conda_repodata, "_cores", lambda: 2)
    started = helpers
    index = RepodataIndex(forge_bytes(2000, now=NOW))
    calls = 0

    def judge(records: Any, conflicts: Any) -> list[Any]:
        nonlocal calls
        calls += 1
        raise RuntimeError("a judge that fails")

    with pytest.raises(RuntimeError, match="a judge that fails"):
        conda_repodata.judge_index(index, None, NOW, judge=judge, visible=lambda _: True, audit=lambda *_: None)
    assert calls == 1 and len(started) == 1 and started[0]._pid is None and started[0]._fd is None


def test_a_helper_whose_worker_is_killed_ends_at_its_next_write(tmp_path: Path) -> None:
    """A worker killed mid-build (gunicorn's timeout: SIGKILL) cannot end its helper: the helper, blocked on a
    full pipe, gets EPIPE and ends, not examining on for HELPER_SECONDS."""
    script = f"""
        import os, sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})
        from gate.proxy import conda_repodata
        from gate.proxy.conda_examine import Helper
        from gate.proxy.conda_repodata import _batches
        from gate.sources.conda_index import RepodataIndex
        from tests.support.conda_forge import forge_bytes
        conda_repodata.BATCH = 20  # many frames: more than a pipe holds
        index = RepodataIndex(forge_bytes(20_000))
        helper = Helper(lambda: _batches(index.every_slot()))
        print(helper._pid, flush=True)
        time.sleep(1)  # the helper fills the pipe meanwhile
        os.kill(os.getpid(), 9)
    """
    with subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True) as worker:
        assert worker.stdout is not None
        helper = int(worker.stdout.readline())
        worker.wait(timeout=120)
    deadline = time.monotonic() + 120  # detects a hang only
    while Path(f"/proc/{helper}").exists():
        status = Path(f"/proc/{helper}/status").read_text() if Path(f"/proc/{helper}").exists() else ""
        if "State:\tZ" in status:  # ended (reparented, reaped or not by whoever adopts it)
            break
        assert time.monotonic() < deadline, "the helper outlived its worker"
        time.sleep(0.05)
