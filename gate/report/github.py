"""GitHub Actions workflow commands (`::error file=...,line=...::message`), which become annotations."""

from __future__ import annotations

from gate.errors import Level


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _command(level: Level) -> str:
    """GitHub's name for a level: it knows `error`, `warning` and `notice`."""
    match level:
        case Level.ERROR:
            return "error"
        case Level.WARNING:
            return "warning"
        case Level.NOTE:
            return "notice"


def workflow_command(level: Level, message: str, *, file: str | None, line: int | None, title: str) -> str:
    """One annotation at `file` and `line`."""
    command = _command(level)
    props = [f"file={_property(file)}"] if file else []
    if file and line:
        props.append(f"line={line}")
    props.append(f"title={_property(title)}")
    return f"::{command} {','.join(props)}::{_data(message)}"
