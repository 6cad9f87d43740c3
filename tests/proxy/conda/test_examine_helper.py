"""A large full build is examined with a forked helper (`gate.proxy.conda_examine.Helper`): the helper's result
for a batch is `examine`'s, what is served and audited is what the build serves and audits without it, and a
helper that dies, hangs or sends something else costs only time. Builds here are made "large" by small batches."""

from __future__ import annotations

import json
import os
import resource
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gate.proxy import conda_examine, conda_repodata
from gate.proxy.conda_examine import (
    _FRAME,
    NOT_RECORD,
    OWN_BYTES,
    REENCODED,
    UNREADABLE,
    Examined,
    Helper,
    examine,
)
from gate.proxy.conda_repodata import _batches
from gate.sources.conda_index import RepodataIndex
from tests.support.conda_app import serve_subdir

from .test_repodata_scale import AGE, CHANNEL, NOW, _channel_body, _old_path

BATCH = 37  # small, and not a divisor of the record count: the last batch is short


@pytest.fixture(scope="module")
def body() -> bytes:
    """The edge records' channel, with a record no JSON decoder reads whole (a number out of range)."""
    unreadable = b'"huge-1.0-0.conda":{"name":"huge","version":"1.0","build":"0","size":1e999},'
    return _channel_body().replace(b'"packages.conda":{', b'"packages.conda":{' + unreadable, 1)


@pytest.fixture
def started(helpers: list[Helper], monkeypatch: pytest.MonkeyPatch) -> list[Helper]:
    """Every helper the builds start (and each build of the channel is "large")."""
    monkeypatch.setattr(conda_repodata, "BATCH", BATCH)
    monkeypatch.setattr(conda_repodata, "HELPER_BATCHES", 2)
    return helpers


def _served(tmp_path: Path, body: bytes) -> tuple[bytes, dict[str, tuple[str, ...]], str]:
    return serve_subdir(tmp_path, body, CHANNEL, AGE, clock=lambda: NOW)


def _slots(index: RepodataIndex) -> Iterator[list[tuple[int, str, msgspec.Raw]]]:
    return _batches(index.every_slot())


def test_each_batch_the_helper_answers_is_examined_as_here(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conda_repodata, "BATCH", BATCH)
    index = RepodataIndex(body)
    batches = list(_slots(index))
    here = [examine([filename for _, filename, _ in batch], [raw for _, _, raw in batch]) for batch in batches]
    assert set(b"".join(examined.kinds for examined in here)) == {NOT_RECORD, UNREADABLE, REENCODED, OWN_BYTES}
    with Helper(lambda: _slots(index)) as helper:
        deadline = time.monotonic() + 60
        while (found := helper.take(5, len(batches[5]))) is None:  # all the batches from the last to this one
            assert time.monotonic() < deadline, "the helper did not answer"
            time.sleep(0.01)
        assert found == here[5]
        assert [helper.take(k, len(batches[k])) for k in range(6, len(batches))] == here[6:]


def test_what_is_served_and_audited_is_what_the_build_does_without_one(
    body: bytes, tmp_path: Path, started: list[Helper], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, audited, url = _served(tmp_path / "helper", body)
    assert started and all(helper._pid is None for helper in started)  # each one ended and reaped
    expected, rules = _old_path(body, tmp_path / "helper" / "policies", url)
    assert json.loads(served) == expected
    assert audited == {name: r for name, r in rules.items() if r}
    monkeypatch.setattr(conda_repodata, "HELPER_BATCHES", 10**9)  # the same build without one
    alone, audited_alone, _ = _served(tmp_path / "alone", body)
    assert served == alone and audited == audited_alone


def _die(write: int, batches: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hang(write: int, batches: object) -> None:
    time.sleep(3600)


def _lie(write: int, batches: object) -> None:
    """Answers for batches that are not as long as they are, and bytes that are no answer."""
    wrong = msgspec.msgpack.encode(Examined(b"\x03", ["x"], [None], {}))
    for k in range(200):
        os.write(write, _FRAME.pack(k, len(wrong)) + wrong)
    os.write(write, _FRAME.pack(0, 5) + b"\xc1\xc1\xc1\xc1\xc1")


@pytest.mark.parametrize("child", [_die, _hang, _lie], ids=["dies", "hangs", "lies"])
def test_a_helper_that_fails_costs_only_time(
    body: bytes, tmp_path: Path, started: list[Helper], monkeypatch: pytest.MonkeyPatch, child: Any
) -> None:
    monkeypatch.setattr(conda_examine, "_child", child)
    served, audited, url = _served(tmp_path, body)
    assert started
    pids = [helper._pid for helper in started]
    assert pids == [None] * len(pids)  # ended and reaped, the hanging one too
    expected, rules = _old_path(body, tmp_path / "policies", url)
    assert json.loads(served) == expected
    assert audited == {name: r for name, r in rules.items() if r}


def test_the_helper_holds_none_of_the_workers_descriptors(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection the worker closes while a build runs is closed: the child does not hold it open, wherever
    its number is (one above the open-files limit too: opened before the limit was lowered)."""
    monkeypatch.setattr(conda_repodata, "BATCH", BATCH)
    index = RepodataIndex(body)
    seen: list[str] = []
    read, write = os.pipe()

    def report(out: int, batches: object) -> None:
        os.write(out, json.dumps(sorted(os.listdir("/proc/self/fd"))).encode())

    monkeypatch.setattr(conda_examine, "_child", report)
    marker = os.open(os.devnull, os.O_RDONLY)  # a descriptor of the worker's
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    high = os.dup2(marker, min(soft, 4096) - 1)  # a descriptor of the worker's above the limit set next
    resource.setrlimit(resource.RLIMIT_NOFILE, (high - 10, hard))
    try:
        helper = Helper(lambda: _slots(index))
        assert helper._fd is not None
        deadline = time.monotonic() + 60
        data = b""
        while not data.endswith(b"]"):
            assert time.monotonic() < deadline
            try:
                data += os.read(helper._fd, 4096)
            except BlockingIOError:
                time.sleep(0.01)
        seen = json.loads(data)
        helper.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        os.close(high)
        os.close(marker)
        os.close(read)
        os.close(write)
    assert str(marker) not in seen and str(read) not in seen and str(high) not in seen
    assert {"0", "1", "2"} <= set(seen) and len(seen) <= 5  # stdio, its pipe, and listdir's own
