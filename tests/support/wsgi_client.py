"""The Flask test client as a WSGI server uses an application: each response is read whole and closed before
the client sees it (werkzeug's `buffered`). Unbuffered, a response nobody reads is never closed, and what an
application does as its body ends (gate keeps a repodata body it wrote as it sent it) would not happen."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse


class ClosingClient(FlaskClient):
    """`FlaskClient` whose requests are buffered unless a test asks otherwise."""

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> TestResponse:
        return super().open(*args, buffered=buffered, **kwargs)
