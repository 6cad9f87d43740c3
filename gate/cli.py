"""The `gate` command line: parse arguments, run one subcommand, print, return an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

import gate.commands.check
import gate.commands.compile
import gate.commands.explain
import gate.commands.lint
import gate.commands.serve
import gate.commands.test
from gate import __version__
from gate.decision import ExitCode
from gate.errors import GateError

# Subcommand name -> module with HELP, configure(parser) and run(args).
COMMANDS: dict[str, ModuleType] = {
    "check": gate.commands.check,
    "compile": gate.commands.compile,
    "explain": gate.commands.explain,
    "serve": gate.commands.serve,
    "lint": gate.commands.lint,
    "test": gate.commands.test,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gate", description="Policy-as-code admission gate for packages.")
    parser.add_argument("--version", action="version", version=f"gate {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.configure(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def _one_line(err: BaseException, limit: int = 300) -> str:
    """The exception's type and message on one printable line (a message may quote hostile input)."""
    text = " ".join(str(err).split())
    text = "".join(c if c.isprintable() else "?" for c in text)
    text = text if len(text) <= limit else text[:limit] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) and int(ExitCode.USAGE)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="gate: %(message)s")
    try:
        code: int = COMMANDS[args.command].run(args)
    except BrokenPipeError:  # `gate check ... | head`: the reader left; stop quietly, and never as an allow
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return int(ExitCode.DENIED)
    except GateError as err:
        print(err.diagnostics(), file=sys.stderr)
        return int(ExitCode.USAGE)
    except Exception as err:  # a bug, never a verdict: exit 3, not 1 (deny) or 0 (allow)
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        print(f"gate: internal error: {_one_line(err)}{'' if args.debug else ' (--debug shows the traceback)'}",
              file=sys.stderr)
        return int(ExitCode.INTERNAL)
    return code
