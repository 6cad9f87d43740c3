"""A PyPI project whose every file carries a real PEP 740 provenance (for what verification costs and how often it
is done), and several real `gate serve` processes asked for one page at the same moment.

Every provenance is that of `gcb_attestation_test` 0.0.0 (examples/pypi/): each costs a full offline Sigstore
verification (signature, certificate chain, transparency log entry) with the production trusted root; its
statement then names another file, so it is no evidence for these files, and a signer policy denies them all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
import time
from pathlib import Path

import requests

from gate.facts import Ecosystem
from gate.proxy.evidence import evidence_key, outcome_key
from gate.verify.target import Target
from tests.support.pypi_model import UpstreamFile, UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream

REPO = Path(__file__).resolve().parent.parent.parent
PROVENANCE = REPO / "examples" / "pypi" / "gcb_attestation_test-0.0.0.tar.gz.provenance"
PROJECT = "bench"
JSON_V1 = "application/vnd.pypi.simple.v1+json"
METRICS_INTERVAL = 1.0  # seconds: how often a gate process writes its counts for the others (gate.proxy.metrics)
SIGNED_POLICY = f"""apiVersion: gate/v1
kind: Policy
metadata: {{name: signed}}
spec:
  match: {{ecosystems: [pypi], packages: [{PROJECT}]}}
  minimumAge: 7d
  attestations:
    required: true
    signers:
      - publisher: {{kind: GitHub, repository: "{PROJECT}/*"}}
"""


def add_attested_files(index: UpstreamIndex, files: int, uploaded: dt.datetime) -> UpstreamIndex:
    """`files` wheels of project `bench` (4 per release) added to `index`, each with the provenance above."""
    for i in range(files):
        version = f"1.{i // 4}.0"
        filename = f"{PROJECT}-{version}-py3-none-{'any' if i % 4 == 0 else f'p{i % 4}'}.whl"
        content = f"{PROJECT} {filename}\n".encode()
        index.add(UpstreamFile(filename=filename, project=PROJECT, version=version, path=None,
                               sha256=hashlib.sha256(content).hexdigest(), size=len(content),
                               upload_time=uploaded, content=content, provenance=PROVENANCE))
    return index


def at_once(asks: list[tuple[str, str]], accept: str = JSON_V1) -> list[tuple[requests.Response, float]]:
    """Each (gate URL, project) page asked for at the same moment (one thread each): each response with the
    seconds it took."""
    start = threading.Barrier(len(asks))
    answers: dict[int, tuple[requests.Response, float]] = {}

    def ask(number: int) -> None:
        url, project = asks[number]
        start.wait()
        began = time.perf_counter()
        response = requests.get(f"{url}/simple/{project}/", headers={"Accept": accept}, timeout=600)
        answers[number] = (response, time.perf_counter() - began)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(asks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    return [answers[n] for n in range(len(asks))]


def metrics_of(urls: list[str]) -> list[str]:
    """`/-/metrics` of each gate in `urls` (single-worker processes) once each has written its current counts
    for the others sharing its cache directory: past the metrics interval, each answers a request, which writes
    them."""
    time.sleep(METRICS_INTERVAL + 0.1)
    for url in urls:
        requests.get(f"{url}/-/health", timeout=60)
    return [requests.get(f"{url}/-/metrics", timeout=60).text for url in urls]


def counter(metrics: str, name: str, **labels: str) -> float:
    """The value of one series of `/-/metrics` text (0 when absent)."""
    shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{shown}}}" if shown else name
    found = re.search(rf"^{re.escape(series)} (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def keys_of(trust_digest: str, upstream: RunningUpstream, number: int) -> tuple[str, str]:
    """The store keys of the provenance fetch and of the verification (by a gate whose `Gate.trust_digest` is
    `trust_digest`) of file `number` of project bench."""
    row = requests.get(upstream.project_url(PROJECT), headers={"Accept": JSON_V1}, timeout=30).json()["files"][number]
    url, sha256 = row["provenance"], row["hashes"]["sha256"]
    data = requests.get(url, timeout=30).content
    target = Target(row["filename"], sha256, Ecosystem.PYPI)
    return evidence_key(url, sha256), outcome_key(data, url, target, trust_digest)
