"""The proxy's `/-/explain/<project>`: JSON or HTML by `Accept`, one release with `?version=`, the
normalized name, upstream trouble as 502/503/404, and nothing from upstream rendered as markup."""

from __future__ import annotations

import datetime as dt
import hashlib
from html.parser import HTMLParser

from flask.testing import FlaskClient

from gate.facts import AttestationFact, Ecosystem, Facts, FileFacts, FileKind, iso_z
from gate.policy.describe import TargetChannelDescription
from gate.policy.model import Attestations
from gate.report.check import describe_attestation
from tests.proxy.conftest import NOW
from tests.support.pypi_model import UpstreamFile, UpstreamIndex

HOSTILE = "demo-1.0<script>document.title='owned'</script>.tar.gz"


class _Scripts(HTMLParser):
    """Counts `<script>` elements and collects the text, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_json_says_each_verdict_and_the_newest_allowed(client: FlaskClient) -> None:
    answer = client.get("/-/explain/demo", headers={"Accept": "application/json"})
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    report = answer.get_json()
    verdicts = {f["version"]: f["verdict"] for f in report["files"]}
    assert verdicts == {"1.0": "allow", "1.1": "allow", "2.0": "deny"}
    assert report["newestAllowed"] == "1.1"
    young = next(f for f in report["files"] if f["version"] == "2.0")
    assert young["allowedFrom"] == iso_z(NOW + dt.timedelta(days=5))  # uploaded two days before NOW, age 7d
    assert [f["version"] for f in client.get("/-/explain/demo?version=2.0&format=json").get_json()["files"]] == ["2.0"]


def test_names_are_normalized_and_upstream_trouble_is_not_a_page(client: FlaskClient) -> None:
    moved = client.get("/-/explain/Demo")
    assert moved.status_code == 301 and moved.headers["Location"].endswith("/-/explain/demo/")
    assert client.get("/-/explain/nosuch").status_code == 404


def test_html_escapes_what_upstream_says(client: FlaskClient, index: UpstreamIndex) -> None:
    content = b"not an sdist"
    index.add(UpstreamFile(filename=HOSTILE, project="demo", version="1.0", path=None, content=content,
                           sha256=hashlib.sha256(content).hexdigest(), size=len(content),
                           upload_time=NOW, yanked="<b>bad</b>"))
    answer = client.get("/-/explain/demo", headers={"Accept": "text/html"})
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    parsed = _Scripts()
    parsed.feed(answer.get_data(as_text=True))
    assert parsed.scripts == 0
    assert any("<script>document.title='owned'</script>" in text for text in parsed.text)  # shown as text
    assert "gate.unjudgeable" in "".join(parsed.text)


def test_a_version_too_long_for_int_is_no_500(client: FlaskClient, index: UpstreamIndex) -> None:
    """Found in review: packaging raises ValueError (not InvalidVersion) past 4300 digits; from a query string
    or from an upstream row, that was a 500 for the whole project."""
    huge = "9" * 5000
    assert client.get(f"/-/explain/demo?version={huge}&format=json").status_code == 200
    content = b"x"
    index.add(UpstreamFile(filename=f"demo-{huge}.tar.gz", project="demo", version="1.0", path=None, content=content,
                           sha256=hashlib.sha256(content).hexdigest(), size=1, upload_time=NOW))
    page = client.get("/simple/demo/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert page.status_code == 200 and all(not f["filename"].startswith("demo-999") for f in page.get_json()["files"])
    report = client.get("/-/explain/demo?format=json").get_json()
    (row,) = [f for f in report["files"] if f["filename"].startswith("demo-999")]
    assert row["verdict"] == "deny" and row["violations"][0]["rule"] == "gate.unjudgeable"


def test_a_token_in_an_upstream_path_is_never_shown() -> None:
    """Found in review: `/t/<token>/` upstream paths reached explain's evidence lines and conda messages."""
    secret = "tk-SECRET123"
    failed = AttestationFact(verified=False, source=f"https://up.example/t/{secret}/prov/demo-1.0.tar.gz", error="x")
    assert secret not in describe_attestation(failed)
    file = FileFacts(ecosystem=Ecosystem.CONDA, name="pkg", version="1.0", filename="pkg-1.0-0.conda",
                     kind=FileKind.CONDA, sha256="ab" * 32, index=f"https://up.example/t/{secret}/chan")
    message = TargetChannelDescription(Attestations(target_channel="match"))(Facts(file))
    assert secret not in message and "/t/***/" in message


def test_the_whole_project_is_kept_like_a_page_and_one_release_is_not(client: FlaskClient) -> None:
    """Found in review: every request judged the whole project again (a cold page's cost for a public URL)."""
    first = client.get("/-/explain/demo?format=json").get_data()
    assert client.get("/-/explain/demo?format=json").get_data() == first
    for _ in range(3):
        client.get("/-/explain/demo?version=2.0&format=json")
    metrics = client.get("/-/metrics").get_data(as_text=True)
    hits = [line for line in metrics.splitlines() if 'cache="pypi.explained"' in line]
    assert any(line == 'gate_cache_hits_total{cache="pypi.explained"} 1' for line in hits), hits
    assert any(line == 'gate_cache_misses_total{cache="pypi.explained"} 1' for line in hits), hits
    assert "pypi.explained" in metrics and client.get("/-/explain/demo").mimetype == "text/html"
