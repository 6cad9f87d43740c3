"""The proxy's HTML pages (the status page, explanations): one Jinja2 environment with autoescape on, one
constant style sheet, and headers that let a page run no script, load nothing and sit in no frame. Every
value a page shows comes from upstream data, evidence, policies, the audit log or the request, and is escaped
by the template; nothing is marked safe but the style sheet."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from flask import Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

HTML = "text/html"
STYLE = (
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111}"
    "h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}"
    "table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.25em .5em;"
    "text-align:left;vertical-align:top}th{background:#eee}code{font-size:.95em;word-break:break-all}"
    ".deny{color:#a00}.muted{color:#666}.time{white-space:nowrap}"
)
CSP = (
    f"default-src 'none'; style-src 'sha256-{base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
TEMPLATES = Environment(
    loader=PackageLoader("gate.proxy", "templates"), autoescape=True, undefined=StrictUndefined, auto_reload=False
)



HEADERS = {
    "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY", "Content-Security-Policy": CSP,
}


def render(template: str, **context: Any) -> bytes:
    """`template` rendered with `context` and the style sheet."""
    return TEMPLATES.get_template(template).render(style=Markup(STYLE), **context).encode()  # style: a constant


def html_response(body: bytes, headers: dict[str, str] | None = None) -> Response:
    """A rendered page with the headers every page gets."""
    return Response(body, mimetype=HTML, headers=HEADERS | (headers or {}))


def html_page(template: str, headers: dict[str, str] | None = None, **context: Any) -> Response:
    """`template` rendered with `context`, with the headers every page gets."""
    return html_response(render(template, **context), headers)
