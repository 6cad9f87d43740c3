"""`HttpClient.stream`, the one way gate reads an upstream body: decoded in bounded pieces, capped, every
failure one `UpstreamError` with the URL redacted, and the response closed on every path (the scripted
upstream on loopback; the proxy's and `gate check`'s own tests drive it through their front ends)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest

from gate.sources.failure import Failure, UpstreamError
from gate.sources.http import HttpClient, Stream
from tests.support.scripted_upstream import Reply, ScriptedServer, scripted_upstream

MiB = 1 << 20
PIECE = 1 << 16  # the most a Stream decodes at once


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_upstream() as up:
        yield up


def _client() -> HttpClient:
    return HttpClient(None, 30.0)


def _drain(stream: Stream) -> list[int]:
    return [len(piece) for piece in stream.chunks()]


def test_a_compressed_body_is_decoded_in_bounded_pieces(server: ScriptedServer) -> None:
    server.route("/bomb", Reply(body=bytes(16 * MiB), gzip=True))  # 16 MiB of zeros in ~16 KiB on the wire
    stream = _client().stream(server.url("/bomb"), limit=None, pace=True)
    sizes = _drain(stream)
    assert sum(sizes) == 16 * MiB and max(sizes) <= PIECE
    assert stream.response.raw.closed


def test_a_body_past_the_limit_is_refused_without_reading_on(server: ScriptedServer) -> None:
    server.route("/bomb", Reply(body=bytes(16 * MiB), gzip=True))
    stream = _client().stream(server.url("/bomb"), limit=MiB)
    received = 0
    with pytest.raises(UpstreamError, match=f"larger than {MiB} bytes") as caught:
        for piece in stream.chunks():
            received += len(piece)
    assert received <= MiB and caught.value.failure is Failure.BAD_ANSWER
    assert stream.response.raw.closed


@pytest.mark.parametrize(
    ("reply", "message", "failure"),
    [
        (Reply(body=b"x" * 50_000, reset_after=10_000), "upstream broke off sending", Failure.UNAVAILABLE),
        (Reply(body=b"\x1f\x8b\x08\x00" + b"x" * 100, headers={"Content-Encoding": "gzip"}), "corrupt compressed",
         Failure.BAD_ANSWER),
        (Reply(body=b"x", headers={"Content-Encoding": "br"}), "content-encoding 'br'", Failure.BAD_ANSWER),
    ],
)
def test_a_broken_body_is_an_upstream_error_naming_the_url_without_its_password(
    server: ScriptedServer, reply: Reply, message: str, failure: Failure
) -> None:
    server.route("/file", reply)
    url = server.url("/file").replace("://", "://user:hunter2@")
    stream = _client().stream(url, limit=None)
    with pytest.raises(UpstreamError, match=message) as caught:
        stream.read()
    assert caught.value.failure is failure and "/file" in str(caught.value) and "hunter2" not in str(caught.value)
    assert stream.response.raw.closed


def test_a_truncated_compressed_body_is_not_taken_for_a_whole_one(server: ScriptedServer) -> None:
    server.route("/cut", Reply(body=bytes(MiB), gzip=True, headers={"Content-Length": ""}))
    whole = _client().stream(server.url("/cut"), limit=None).read()
    assert whole == bytes(MiB)
    packed = gzip.compress(bytes(MiB))
    server.route("/cut", Reply(body=packed[:-20], headers={"Content-Encoding": "gzip", "Content-Length": ""}))
    with pytest.raises(UpstreamError, match="truncated compressed body"):
        _client().stream(server.url("/cut"), limit=None).read()


def test_an_error_status_is_closed_unread(server: ScriptedServer) -> None:
    server.route("/gone", Reply(status=410, body=b"secret"))
    with _client().stream(server.url("/gone"), limit=None) as stream:
        assert stream.status == 410
    assert stream.response.raw.closed
