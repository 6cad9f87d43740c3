"""The status page `/-/` of a real `gate serve` (gunicorn) on loopback, rendered by a real headless Chromium
(Debian's `chromium`; `.ci/run` installs it): a denial made over HTTP shows in the DOM, markup from the
upstream, a policy or the audit log stays text (no script runs), and only the socket's address or the
token opens the page, whatever headers say."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.gate_server import running_gate
from tests.support.pypi_model import UpstreamFile, UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve

pytestmark = pytest.mark.slow
REAL_NOW = dt.datetime.now(dt.UTC)
DENIED = "demo-2.0-py3-none-any.whl"
HOSTILE = "demo-3.0-<img src=x onerror=document.title='pwned'>.tar.gz"  # a filename on the upstream page
PAYLOAD = "<script>document.title='pwned'</script>"
TOKEN = "browser-test-token-0123456789abcdef"
POLICY = f"""
apiVersion: gate/v1
kind: Policy
metadata: {{name: age}}
spec:
  mode: enforce
  match: {{ecosystems: [pypi]}}
  minimumAge: 7d
  exceptions:
    - packages: ["legacy<2"]
      waive: [minimumAge]
      reason: "{PAYLOAD}"
      owner: security@example.com
      expires: {(REAL_NOW + dt.timedelta(days=10)).date().isoformat()}
  rules:
    - {{name: no-two, expression: "file.version != '2.0'", message: "{PAYLOAD}"}}
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return found


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUpstream]:
    index = UpstreamIndex(work_dir=tmp_path_factory.mktemp("upstream"))
    index.add_wheel("demo", "1.0", upload_time=REAL_NOW - dt.timedelta(days=60))
    index.add_wheel("demo", "2.0", upload_time=REAL_NOW - dt.timedelta(days=2))
    index.add(UpstreamFile(filename=HOSTILE, project="demo", version="3.0", path=None, size=1, content=b"x",
                           sha256=hashlib.sha256(b"x").hexdigest(), upload_time=REAL_NOW - dt.timedelta(days=60)))
    with serve(index) as running:
        yield running


@pytest.fixture(scope="module")
def served(upstream: RunningUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(the URL of `gate serve` with the payload policy, its log file); the status page open to loopback."""
    tmp = tmp_path_factory.mktemp("gate")
    (tmp / "policy.yaml").write_text(POLICY)
    args = ["--policy", str(tmp / "policy.yaml"), "--upstream", upstream.url, "--cache-dir", str(tmp / "cache")]
    with running_gate(args, tmp / "serve.log") as url:
        yield url, tmp / "serve.log"


def dump_dom(chromium: str, url: str, tmp: Path) -> str:
    """The DOM Chromium built for `url`, serialized after its scripts (if any) ran."""
    result = subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={tmp / 'chromium'}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False, env={"HOME": str(tmp), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def rows(dom: str, kind: str) -> list[str]:
    """The text of each `<tr class=kind>` of the dumped DOM, tags dropped and entities decoded."""
    found = re.findall(rf'<tr class="{kind}">(.*?)</tr>', dom, flags=re.DOTALL)
    return [html.unescape(re.sub(r"<[^>]*>", " ", row)) for row in found]


def test_a_denial_made_over_http_shows_in_the_rendered_page(
    chromium: str, served: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = served
    response = requests.get(f"{url}/files/demo/{DENIED}", timeout=30)
    assert response.status_code == 403
    dom = dump_dom(chromium, f"{url}/-/", tmp_path)
    denial = next(row for row in rows(dom, "denial") if DENIED in row)
    assert "127.0.0.1" in denial and "download" in denial and "age/minimumAge" in denial
    assert "Policies (1)" in dom and len(rows(dom, "waiver")) == 1  # the exception ends in 10 days


def test_markup_from_upstream_policy_and_audit_log_is_text(
    chromium: str, served: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = served
    assert requests.get(f"{url}/simple/demo/", timeout=30).status_code == 200  # audits the hidden files
    assert requests.get(f"{url}/files/demo/{DENIED}", timeout=30).status_code == 403
    dom = dump_dom(chromium, f"{url}/-/", tmp_path)
    assert "<title>gate status</title>" in dom  # no script changed it
    assert "<script" not in dom and "<img" not in dom  # no element made from the data
    assert any(HOSTILE in row for row in rows(dom, "denial"))  # shown as the text it is
    assert any(f"age/no-two: {PAYLOAD}" in row for row in rows(dom, "denial"))
    assert any(PAYLOAD in row for row in rows(dom, "waiver"))


def test_headers_never_open_it_and_the_token_stays_secret(
    upstream: RunningUpstream, tmp_path: Path
) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "token").write_text(TOKEN + "\n")
    args = ["--policy", str(tmp_path / "policy.yaml"), "--upstream", upstream.url, "--cache-dir",
            str(tmp_path / "cache"), "--status-allow", "192.0.2.7", "--status-token-file", str(tmp_path / "token")]
    with running_gate(args, tmp_path / "serve.log") as url:
        unknown = requests.get(f"{url}/-/no-such-page", timeout=30)
        for headers in ({}, {"X-Forwarded-For": "192.0.2.7"}, {"Forwarded": "for=192.0.2.7", "X-Real-IP": "192.0.2.7"},
                        {"Authorization": f"Bearer {TOKEN[:-1]}x"}):
            refused = requests.get(f"{url}/-/", headers=headers, timeout=30)
            assert (refused.status_code, refused.content) == (404, unknown.content), headers
        opened = requests.get(f"{url}/-/", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert opened.status_code == 200 and "gate status" in opened.text and TOKEN not in opened.text
    assert TOKEN not in (tmp_path / "serve.log").read_text()


def test_the_explanation_page_shows_upstream_and_policy_markup_as_text(
    chromium: str, served: tuple[str, Path], tmp_path: Path
) -> None:
    """`/-/explain/<project>` is public: the same escaping holds there, in a real browser."""
    url, _ = served
    dom = dump_dom(chromium, f"{url}/-/explain/demo", tmp_path)
    assert "<title>gate: demo</title>" in dom  # no script changed it
    assert "<script" not in dom and "<img" not in dom
    text = html.unescape(re.sub(r"<[^>]*>", " ", dom))
    assert HOSTILE in text and PAYLOAD in text and "Newest allowed version: 1.0" in " ".join(text.split())
