"""GitHub Actions workflow commands (`::error file=...,line=...::message`), which become annotations."""

from __future__ import annotations


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(level: str, message: str, *, file: str | None, line: int | None, title: str) -> str:
    """One annotation; GitHub knows `error`, `warning` and `notice`."""
    command = {"error": "error", "warning": "warning"}.get(level, "notice")
    props = [f"file={_property(file)}"] if file else []
    if file and line:
        props.append(f"line={line}")
    props.append(f"title={_property(title)}")
    return f"::{command} {','.join(props)}::{_data(message)}"
