"""The one CEL environment gate compiles every expression with.

cel-python's CompiledRunner transpiles each expression to Python once, which evaluates about three
times faster than its tree-walking InterpretedRunner with the same cel-python semantics. cel-python
keeps a single process-wide parser built for the first Environment's tree class, so every CEL
expression in gate must go through this module.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import celpy
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from lark import Token, Tree

from gate.memo import Memo
from gate.policy.cel_types import MAX_LENGTH

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "CELCompileError",
    "CELEvalError",
    "CELLimitError",
    "CELParseError",
    "Outcome",
    "check_syntax",
    "compile_expression",
    "error_text",
    "fields_read",
    "identifiers",
    "outcome",
    "parse",
    "parse_once",
    "program",
    "run",
]

_ENV: celpy.Environment | None = None  # built on first use: its parser takes ~0.3 s to make (`_env`)
_ENV_LOCK = threading.Lock()
# The transpiled code runs in celpy.evaluation's module globals (it stores the activation there), so
# two evaluations at once in one process would read each other's facts: evaluations are serialised.
_RUN_LOCK = threading.Lock()
# A rule that cannot be evaluated is reported as a violation with its reason; celpy's own error log of
# the same event would only repeat it on stderr.
logging.getLogger("celpy").setLevel(logging.CRITICAL)


# cel-python transpiles a parse tree recursively and Python compiles the result with its own nesting
# limit (about 200 nested brackets), so a deep expression (3000 nested parentheses, a 20,000-term `+`
# chain) would end in RecursionError or SyntaxError. Expressions are bounded before that can happen:
# by length before parsing, and by how deeply operators, calls and brackets nest in the parse tree.
MAX_DEPTH = 64
_TREE_DEPTH = 1_000  # parse-tree levels (about 10 per nested parenthesis): bounds cel-python's recursion
# The nodes that nest in the transpiled code: operators, calls, indexing, brackets and literals of lists
# and maps (a plain chain of single-child grammar nodes does not).
_NESTING = frozenset({
    "expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary",
    "member_dot", "member_dot_arg", "member_index", "member_object", "ident_arg", "dot_ident_arg",
    "paren_expr", "list_lit", "map_lit",
})


def _env() -> celpy.Environment:
    """The one CEL environment, made when the first expression is parsed (building cel-python's LALR parser
    is most of a `gate check` start-up that needs no CEL: an age-only policy runs its native check)."""
    global _ENV  # noqa: PLW0603 (one process-wide parser, as cel-python keeps it)
    with _ENV_LOCK:
        if _ENV is None:
            _ENV = celpy.Environment(runner_class=celpy.CompiledRunner)
        return _ENV


class CELLimitError(CELParseError):
    """An expression too long or too deeply nested for gate to compile (line and column of the place)."""


class CELCompileError(Exception):
    """cel-python could not turn a parse tree into a program (an internal limit, or a construct the
    static check should have rejected): the rule is unusable, never a crash."""


def start(node: Tree[Any] | Token) -> tuple[int | None, int | None]:
    """(line, column), 1-based, where a node or token starts in its expression."""
    if isinstance(node, Token):
        return node.line, node.column
    if not node.meta.empty:
        return node.meta.line, node.meta.column
    for token in node.scan_values(lambda v: isinstance(v, Token)):
        return token.line, token.column
    return None, None


def _nesting(node: Tree[Any]) -> int:
    """How many levels a node counts for in MAX_DEPTH: a grammar node that only wraps one other counts 0."""
    if node.data in _NESTING and (len(node.children) > 1 or node.data.endswith(("_lit", "_expr", "_arg"))):
        return 1
    return 0


def _check_depth(tree: Tree[Any]) -> None:
    """Raise CELLimitError at the first place nested deeper than the limits (iteratively: no recursion)."""
    stack: list[tuple[Tree[Any], int, int]] = [(tree, 1, _nesting(tree))]
    while stack:
        node, levels, depth = stack.pop()
        if depth > MAX_DEPTH or levels > _TREE_DEPTH:
            line, column = start(node)
            raise CELLimitError(
                f"the expression nests more than {MAX_DEPTH} levels deep (operators, calls and brackets); "
                "split it into several rules",
                line=line, column=column,
            )
        stack.extend((child, levels + 1, depth + _nesting(child)) for child in node.children if isinstance(child, Tree))


def parse(expression: str, *, written: bool = True) -> Tree[Any]:
    """The parse tree of `expression`; raises CELParseError with line and column (CELLimitError when it is
    longer than MAX_LENGTH characters or nests deeper than MAX_DEPTH). `written=False`: a rule gate built
    from structured fields, as long as the policy's list of signers (bounded by the policy file's size)."""
    if written and len(expression) > MAX_LENGTH:
        raise CELLimitError(f"the expression is {len(expression)} characters long; the limit is {MAX_LENGTH}")
    tree = _env().compile(expression)
    _check_depth(tree)
    return tree


def program(tree: Tree[Any]) -> Any:
    """A runnable CEL program (celpy Runner; untyped) from a parse tree; raises CELCompileError when
    cel-python cannot build one (it raises IndexError, ValueError, RecursionError ... on some trees)."""
    try:
        return _env().program(tree)
    except Exception as err:  # any failure of the library on a user's tree is a policy error
        raise CELCompileError(f"cel-python cannot compile it ({type(err).__name__}: {err})"[:300]) from err


def compile_expression(expression: str) -> Any:
    """A runnable CEL program (celpy Runner; untyped); raises CELParseError with line and column, or
    CELCompileError."""
    return program(parse(expression))


# Parsing dominates loading a policy (about a second per 10,000 characters of dense CEL): the tree the
# schema's syntax check makes of a rule's expression is kept for the static check to take, so each
# expression is parsed once. A tree is taken, never shared (cel-python annotates trees as it compiles
# them); what is kept is bounded by its expressions' total length.
_PARSED: Memo[str, Tree[Any]] = Memo(64 * 1024, weight=lambda expression, _: len(expression))


def check_syntax(expression: str) -> None:
    """Raise CELParseError if `expression` is not valid CEL; keep its tree for `parse_once`."""
    _PARSED.put(expression, parse(expression))


def parse_once(expression: str, *, written: bool = True) -> Tree[Any]:
    """`parse(expression)`, or the tree `check_syntax` made of it (taken: never handed out twice)."""
    tree = _PARSED.pop(expression)
    return parse(expression, written=written) if tree is None else tree


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


@dataclass(frozen=True)
class Outcome:
    """What a program yielded for one activation: `value` is the CEL value, or the CELEvalError it raised
    or returned (then `error` is its text)."""

    value: Any
    error: str | None = None

    @property
    def passed(self) -> bool | None:
        """The bool it yielded; None when it yielded an error or a value of another type. cel-python's
        `has()` yields a Python bool, not a BoolType."""
        return bool(self.value) if isinstance(self.value, celpy.celtypes.BoolType | bool) else None


def outcome(program: Any, activation: dict[str, Any]) -> Outcome:
    """Evaluate a program (compiled or interpreted: `run` serialises both) and catch its error."""
    try:
        value = run(program, activation)
    except CELEvalError as err:
        value = err
    return Outcome(value, error_text(value) if isinstance(value, CELEvalError) else None)


def identifiers(tree: Tree[Any]) -> frozenset[str]:
    """Every identifier a parse tree names: variables (also root-scoped, as in `.now`), fields,
    functions and macro variables; string literals are not identifiers."""
    return frozenset(str(token) for token in tree.scan_values(lambda v: isinstance(v, Token) and v.type == "IDENT"))


def _variable(member: Any) -> Tree[Any] | None:
    """The `ident` (or root-scoped `dot_ident`) node when `member` is a bare variable reference."""
    if isinstance(member, Tree) and member.data == "member" and len(member.children) == 1:
        primary = member.children[0]
        if isinstance(primary, Tree) and primary.data == "primary" and len(primary.children) == 1:
            ident = primary.children[0]
            if isinstance(ident, Tree) and ident.data in ("ident", "dot_ident"):
                return ident
    return None


def fields_read(tree: Tree[Any], variable: str) -> tuple[str, ...] | None:
    """The fields a parse tree reads as `variable.<field>` (also `.variable.<field>`), sorted; None when
    it uses `variable` any other way (indexed, passed, compared, called on), which may read all of it."""
    uses = {id(t) for t in tree.iter_subtrees() if t.data in ("ident", "dot_ident") and t.children == [variable]}
    fields: set[str] = set()
    selected: set[int] = set()
    for node in tree.iter_subtrees():
        if node.data == "member_dot" and (ident := _variable(node.children[0])) is not None and id(ident) in uses:
            fields.add(str(node.children[1]))
            selected.add(id(ident))
    return None if selected != uses else tuple(sorted(fields))
