"""The hostile upstream does what the fault tests rely on: each answer checked with a plain HTTP client."""

from __future__ import annotations

import gzip
import http.client

from tests.support.hostile_upstream import gzip_encoded, hostile, plain, reset_after, sequence, unsized

Got = tuple[int, http.client.HTTPMessage, bytes | Exception]


def _get(port: int, path: str) -> Got:
    """(status, headers, body or the error reading it), the connection closed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Accept-Encoding": "identity"})
        response = connection.getresponse()
        try:
            body: bytes | Exception = response.read()
        except (http.client.IncompleteRead, ConnectionError) as err:
            body = err
        return response.status, response.headers, body
    finally:
        connection.close()


def test_answers() -> None:
    data = bytes(range(256)) * 400
    with hostile() as server:
        port = server.server_address[1]
        server.routes.update({
            "/plain": plain(b"abc"), "/gzip": gzip_encoded(data), "/unsized": unsized(data),
            "/reset": reset_after(data, 1000), "/seq": sequence(plain(b"1"), plain(b"2")),
        })
        _, headers, body = _get(port, "/gzip")  # compressed although the client asked for identity
        assert headers["Content-Encoding"] == "gzip" and isinstance(body, bytes) and gzip.decompress(body) == data
        _, headers, body = _get(port, "/unsized")
        assert headers["Content-Length"] is None and body == data
        _, headers, body = _get(port, "/reset")
        assert headers["Content-Length"] == str(len(data)) and isinstance(body, Exception)
        assert [_get(port, "/seq")[2] for _ in range(3)] == [b"1", b"2", b"2"]
        assert _get(port, "/absent")[0] == 404
        assert server.asked("/seq") == 3 and _get(port, "/plain")[2] == b"abc"
