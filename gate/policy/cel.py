"""The one CEL environment gate compiles every expression with.

cel-python's CompiledRunner transpiles each expression to Python once, which evaluates about three
times faster than its tree-walking InterpretedRunner with the same cel-python semantics. cel-python
keeps a single process-wide parser built for the first Environment's tree class, so every CEL
expression in gate must go through this module.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import celpy
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from lark import Token

__all__ = ["CELEvalError", "CELParseError", "check_syntax", "compile_expression", "error_text", "identifiers", "run"]

_ENV = celpy.Environment(runner_class=celpy.CompiledRunner)
# The transpiled code runs in celpy.evaluation's module globals (it stores the activation there), so
# two evaluations at once in one process would read each other's facts: evaluations are serialised.
_RUN_LOCK = threading.Lock()
# A rule that cannot be evaluated is reported as a violation with its reason; celpy's own error log of
# the same event would only repeat it on stderr.
logging.getLogger("celpy").setLevel(logging.CRITICAL)


def compile_expression(expression: str) -> Any:
    """A runnable CEL program (celpy Runner; untyped); raises CELParseError with line and column."""
    return _ENV.program(_ENV.compile(expression))


def check_syntax(expression: str) -> None:
    """Raise CELParseError if `expression` is not valid CEL."""
    _ENV.compile(expression)


def run(program: Any, activation: dict[str, Any]) -> Any:
    """Evaluate a compiled program; returns the CEL value or raises CELEvalError."""
    with _RUN_LOCK:
        return program.evaluate(activation)


_WRAPPERS = ("evaluation error", "no such overload")


def error_text(err: CELEvalError) -> str:
    """The innermost message of a CEL evaluation error: the runner wraps the evaluator's own as
    ("evaluation error", type, args), and the evaluator an operator's as ("no such overload", type, args)."""
    args: Any = err.args
    while len(args) > 2 and args[0] in _WRAPPERS and isinstance(args[2], tuple) and args[2]:
        args = args[2]
    return str(args[0]) if args else str(err)


def identifiers(expression: str) -> frozenset[str]:
    """Every identifier the expression names: variables (also root-scoped, as in `.now`), fields,
    functions and macro variables; string literals are not identifiers."""
    tree = _ENV.compile(expression)
    return frozenset(str(token) for token in tree.scan_values(lambda v: isinstance(v, Token) and v.type == "IDENT"))
