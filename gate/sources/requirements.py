"""A requirements file as gate lets pip read it: plain requirement specifiers and their `--hash` options.

`gate check -r` runs pip's resolver on a file that may come from a pull request. pip honours options written
in the file (`--index-url`, `--find-links`, `-e`, `-r`/`-c` includes, `--trusted-host`), direct references
and paths (which it builds, running their code), and expands `${VARIABLES}`. So gate parses the file
itself, refuses everything but named requirements (`name[extras] specifier ; marker`) with `--hash=` options,
and hands pip a file it wrote from the parsed requirements; pip then resolves with `--only-binary :all:`,
so nothing it finds is built either.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from gate.errors import UsageError

_HASH = re.compile(r"--hash[= ](sha256|sha384|sha512):([0-9a-fA-F]+)\Z")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each logical line: comments dropped, `\\` continuations joined, as pip
    reads them."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s+)#.*$", "", raw)
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        joined = " ".join(part.strip() for part in pending).strip()
        pending = []
        if joined:
            out.append((start, joined))
    if pending and (joined := " ".join(part.strip() for part in pending).strip()):
        out.append((start, joined))
    return out


def safe_requirements(path: Path, text: str) -> str:
    """The requirements of `text` rewritten for pip, or a UsageError naming the first line gate refuses."""
    lines: list[str] = []
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        parts = re.split(r"\s+(?=--)", line)
        spec, options = parts[0], parts[1:]
        if spec.startswith("-"):
            raise UsageError(
                f"{where}: gate check -r does not take pip options from the file ({spec.split()[0]}): give the "
                "index with --index-url; includes, editables and find-links are refused"
            )
        if "${" in spec:
            raise UsageError(f"{where}: environment variables are not expanded in requirements gate checks")
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as err:
            raise UsageError(f"{where}: not a named requirement (paths and URLs are refused): {err}") from None
        if requirement.url is not None:
            raise UsageError(f"{where}: a direct reference ({requirement.name} @ ...) is refused: pip would fetch "
                             "and build it outside the index gate checks")
        hashes = []
        for option in options:
            found = _HASH.match(option.strip())
            if found is None:
                raise UsageError(f"{where}: only --hash options may follow a requirement, got {option.strip()!r}")
            hashes.append(f"--hash={found[1]}:{found[2].lower()}")
        lines.append(" ".join([str(requirement), *hashes]))
    if not lines:
        raise UsageError(f"{path}: no requirements")
    return "\n".join(lines) + "\n"
