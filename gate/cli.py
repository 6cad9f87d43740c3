"""The `gate` command line: parse arguments, run one subcommand, print, return an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from gate import __version__
from gate.decision import ExitCode
from gate.errors import GateError

# Subcommand name -> its help line (each module's HELP: tests/test_cli_startup.py keeps them equal). A
# subcommand's module (HELP, configure(parser), run(args)) is imported only when it runs or its options are
# asked for: `gate check` does not load the server, the linter or the policy test runner.
COMMANDS: dict[str, str] = {
    "check": "check distribution files against policies before installing them",
    "compile": "print the compiled CEL of policies",
    "explain": "explain why each file of a project is allowed or denied, and the newest allowed version",
    "serve": "serve a package index that lists and delivers only the files the policies allow",
    "lint": "check policy files: schema, CEL, regexes, expiring exceptions, signers that can never match",
    "test": "run policy unit tests (*.gate-test.yaml files) against the policies they test",
}


def command_module(name: str) -> ModuleType:
    """The module of subcommand `name`, imported now."""
    match name:
        case "check":
            from gate.commands import check  # noqa: PLC0415 (each subcommand loads what it needs)

            return check
        case "compile":
            from gate.commands import compile  # noqa: PLC0415

            return compile
        case "explain":
            from gate.commands import explain  # noqa: PLC0415

            return explain
        case "serve":
            from gate.commands import serve  # noqa: PLC0415

            return serve
        case "lint":
            from gate.commands import lint  # noqa: PLC0415

            return lint
        case "test":
            from gate.commands import test  # noqa: PLC0415

            return test
    raise KeyError(name)


def _chosen(argv: Sequence[str]) -> list[str]:
    """The subcommands whose options `argv` may need: the first argument naming one (top-level options take
    no values), or every one when none does (`gate --help`, a typo: argparse then says what is wrong)."""
    for arg in argv:
        if not arg.startswith("-"):
            return [arg] if arg in COMMANDS else list(COMMANDS)
    return list(COMMANDS)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser, with the options of the subcommands `argv` names (default: all of them)."""
    parser = argparse.ArgumentParser(prog="gate", description="Policy-as-code admission gate for packages.")
    parser.add_argument("--version", action="version", version=f"gate {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    configured = set(COMMANDS) if argv is None else set(_chosen(argv))
    for name, help_ in COMMANDS.items():
        command = sub.add_parser(name, help=help_, description=help_)
        if name in configured:
            command_module(name).configure(command)
    return parser


def _one_line(err: BaseException, limit: int = 300) -> str:
    """The exception's type and message on one printable line (a message may quote hostile input)."""
    text = " ".join(str(err).split())
    text = "".join(c if c.isprintable() else "?" for c in text)
    text = text if len(text) <= limit else text[:limit] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(arguments)
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exit_:
        return int(exit_.code or 0) and int(ExitCode.USAGE)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="gate: %(message)s")
    try:
        code: int = command_module(args.command).run(args)
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
