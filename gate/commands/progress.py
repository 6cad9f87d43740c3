"""A progress bar on stderr for long work (`gate check` of a wheelhouse, a lock, a requirements file;
`gate explain` of a big project), drawn by `rich` when stderr is a terminal and silent otherwise, so
pipes, CI logs and `--format json` output stay clean.

`rich` is loaded only when a bar is drawn: most runs have no terminal, and none should pay for it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[[str], None]  # one item done; its label (a filename) is shown beside the bar


def _silent(label: str) -> None:
    return None


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Advance]:
    """`advance(label)` once per item of `total`; a bar when stderr is a terminal and there is more than one
    item, nothing otherwise. The bar is removed when the work ends."""
    if total < 2 or not sys.stderr.isatty():
        yield _silent
        return
    from rich.console import Console  # noqa: PLC0415 (only when a bar is drawn)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: PLC0415

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[label]}"))
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total, label="")

        def advance(label: str) -> None:
            bar.update(task, advance=1, label=label[:60])

        yield advance
