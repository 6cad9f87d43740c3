"""The scripted upstream does what the hostile-upstream tests rely on: each kind of reply checked with a plain
HTTP client."""

from __future__ import annotations

import gzip
import http.client

from tests.support.scripted_upstream import Reply, scripted_upstream, sequence

Got = tuple[int, http.client.HTTPMessage, bytes | Exception]


def _get(port: int, path: str) -> Got:
    """(status, headers, body or the error reading it), the connection closed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Accept-Encoding": "identity"})
        with connection.getresponse() as response:  # it owns the socket when the server closes the connection
            try:
                body: bytes | Exception = response.read()
            except (http.client.IncompleteRead, ConnectionError) as err:
                body = err
            return response.status, response.headers, body
    finally:
        connection.close()


def test_replies() -> None:
    data = bytes(range(256)) * 400
    with scripted_upstream() as server:
        port = server.server_address[1]
        server.route("/plain", Reply(body=b"abc"))
        server.route("/gzip", Reply(body=data, gzip=True))
        server.route("/unsized", Reply(body=data, headers={"Content-Length": ""}))
        server.route("/reset", Reply(body=data, reset_after=1000))
        server.route("/repeat", Reply(body=b"ab", repeat=3))
        server.route("/seq", sequence(Reply(body=b"1"), Reply(body=b"2")))
        _, headers, body = _get(port, "/gzip")  # compressed although the client asked for identity
        assert headers["Content-Encoding"] == "gzip" and isinstance(body, bytes) and gzip.decompress(body) == data
        _, headers, body = _get(port, "/unsized")
        assert headers["Content-Length"] is None and body == data
        _, headers, body = _get(port, "/reset")
        assert headers["Content-Length"] == str(len(data)) and isinstance(body, Exception)
        _, headers, body = _get(port, "/repeat")
        assert headers["Content-Length"] == "6" and body == b"ababab"
        assert [_get(port, "/seq")[2] for _ in range(3)] == [b"1", b"2", b"2"]
        assert _get(port, "/absent")[0] == 404
        assert server.asked("/seq") == 3 and _get(port, "/plain")[2] == b"abc"


def test_a_page_of_rows() -> None:
    with scripted_upstream() as server:
        server.page("demo", [{"filename": "demo-1.0.tar.gz"}])
        status, headers, body = _get(server.server_address[1], "/simple/demo/")
        assert status == 200 and headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
        assert isinstance(body, bytes) and b'"demo-1.0.tar.gz"' in body
