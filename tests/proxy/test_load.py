"""50 concurrent clients against a real `gate serve` (gunicorn) whose upstream flaps (issue 10, "Done when").

For DURATION seconds the upstream cycles through health, 500s, 503s, hangs past gate's deadline, garbled
pages and a tampered file, while 50 clients read the project page and download the allowed file, the
denied file and the allowed file's metadata. Whatever the upstream does: no denied byte reaches a client,
no answer is a 500, every complete allowed download has exactly the judged bytes, and the workers' memory
stays bounded. The figures are printed (`-s`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import PolicyWriter
from tests.support.gate_server import running_gate
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve
from tests.support.scripted_pages import ALLOW_OLD

DURATION = 15.0  # seconds of load
CLIENTS = 50
FLAP = 0.5  # seconds between upstream states
MAX_RSS = 400 << 20  # per gate process


def _gate_processes(port: int) -> list[int]:
    """PIDs of the gate processes serving `port` (the gunicorn arbiter and its workers)."""
    needle = f"--port\0{port}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) << 10
    except OSError:
        pass
    return 0


def _flap(upstream: RunningUpstream, allowed: str, stop: threading.Event) -> Iterator[str]:
    states = itertools.cycle(["ok", "500", "ok", "503", "ok", "hang", "ok", "ok", "malformed", "ok", "tampered", "ok"])
    while not stop.wait(FLAP):
        state = next(states)
        upstream.clear_faults()
        if state in ("500", "503"):
            upstream.fail_project("demo", int(state))
        elif state == "hang":
            upstream.hang_project("demo", 5.0)  # past gate's 2 s deadline
        elif state == "malformed":
            upstream.malform_project("demo")
        elif state == "tampered":
            upstream.tamper_file(allowed)
        yield state


@pytest.mark.slow
def test_fifty_clients_against_a_flapping_upstream(tmp_path: Path, write_policy: PolicyWriter) -> None:
    now = dt.datetime.now(dt.UTC)
    index = UpstreamIndex(work_dir=tmp_path / "upstream")
    good = index.add_wheel("demo", "1.0", upload_time=now - dt.timedelta(days=60))
    bad = index.add_wheel("demo", "2.0", upload_time=now - dt.timedelta(days=1))  # younger than 7 days: denied
    good_bytes, bad_bytes = good.read_bytes(), bad.read_bytes()
    assert good_bytes is not None and bad_bytes is not None
    policies = write_policy(ALLOW_OLD)

    statuses: Counter[tuple[str, int | str]] = Counter()
    denied_bytes = wrong_bytes = 0
    lock = threading.Lock()
    stop = threading.Event()
    peaks: dict[int, int] = {}

    with serve(index) as upstream:
        args = ["--policy", str(policies), "--upstream", upstream.url, "--cache-dir", str(tmp_path / "cache"),
                "--timeout", "2", "--workers", "2", "--threads", "8"]
        with running_gate(args, tmp_path / "gate.log") as url:
            port = int(url.rsplit(":", 1)[1])
            pids = _gate_processes(port)
            assert len(pids) == 3  # the arbiter and two workers
            targets = {
                "page": "/simple/demo/",
                "allowed": f"/files/demo/{good.filename}",
                "denied": f"/files/demo/{bad.filename}",
                "metadata": f"/files/demo/{bad.filename}.metadata",
            }

            def client(seed: int) -> None:
                nonlocal denied_bytes, wrong_bytes
                pick = random.Random(seed)
                session = requests.Session()
                session.trust_env = False
                while not stop.is_set():
                    kind = pick.choice(list(targets))
                    status: int | str
                    try:
                        answer = session.get(url + targets[kind], timeout=30)
                        body, status = answer.content, answer.status_code
                        if status == 503 and b"busy" in body:  # every upstream slot taken: back off a little
                            status = "503 busy"
                            stop.wait(0.1)
                    except requests.RequestException as err:  # a download cut short: never completed
                        body, status = b"", type(err).__name__
                    with lock:
                        statuses[kind, status] += 1
                        if bad_bytes in body or (bad.filename.encode() in body and kind == "page"):
                            denied_bytes += 1
                        if kind in ("denied", "metadata") and status == 200:
                            denied_bytes += 1
                        if kind == "allowed" and status == 200 and body != good_bytes:
                            wrong_bytes += 1

            def sample() -> None:
                while not stop.wait(0.25):
                    for pid in pids:
                        peaks[pid] = max(peaks.get(pid, 0), _rss(pid))

            flapper = threading.Thread(target=lambda: list(_flap(upstream, good.filename, stop)), daemon=True)
            flapper.start()
            started = time.monotonic()
            with ThreadPoolExecutor(CLIENTS + 1) as pool:
                pool.submit(sample)
                for seed in range(CLIENTS):
                    pool.submit(client, seed)
                stop.wait(DURATION)
                stop.set()
            flapper.join()
            elapsed = time.monotonic() - started
            health = requests.get(f"{url}/-/health", timeout=10)
            upstream.clear_faults()
            after = [requests.get(url + targets["allowed"], timeout=30) for _ in range(30)]  # no slot was lost
            final = {pid: _rss(pid) for pid in pids}

    total = sum(statuses.values())
    shown = dict(sorted(statuses.items(), key=str))
    shown = dict(sorted(statuses.items(), key=str))
    print(f"\n{total} requests in {elapsed:.1f}s by {CLIENTS} clients; by (kind, status): {shown}")
    print(f"RSS peak per process (MiB): {[round(v / 2**20) for v in peaks.values()]}; "
          f"at the end: {[round(v / 2**20) for v in final.values()]}")
    assert health.status_code == 200
    assert all(answer.content == good_bytes for answer in after), [(a.status_code, a.text[:200]) for a in after]
    assert total > CLIENTS  # every client got answers
    assert denied_bytes == 0
    assert wrong_bytes == 0
    assert not [key for key in statuses if key[1] == 500], statuses
    assert statuses["allowed", 200] > 0 and statuses["page", 200] > 0  # the upstream was up at times
    assert max(peaks.values()) < MAX_RSS, peaks

