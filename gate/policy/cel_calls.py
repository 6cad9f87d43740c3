"""The functions and methods of standard CEL that gate's rules may call, with their types.

Only what cel-python runs as the static check types it: `size`, `startsWith`, `endsWith`, `contains`,
`matches` (its regex a string literal, checked by RE2), the timestamp and duration accessors and the
type conversions (`int`, `uint`, `double`, `string`, `bytes`, `bool`, `timestamp`, `duration`; a
string literal argument is converted now). Anything else, `dyn()` too, is an unknown function.
"""

from __future__ import annotations

from typing import Any, Protocol

from celpy import celtypes
from celpy.evaluation import celstr
from lark import Token, Tree

from gate.policy.cel_types import BOOL, DURATION, INT, STRING, TIMESTAMP, Type
from gate.policy.patterns import regex_error

_PASS = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary",
                   "member", "primary"})

# conversion function -> (the kinds it accepts, its result)
_CONVERSIONS: dict[str, tuple[frozenset[str], Type]] = {
    "int": (frozenset({"int", "uint", "double", "string", "timestamp"}), INT),
    "uint": (frozenset({"int", "uint", "double", "string"}), Type("uint")),
    "double": (frozenset({"int", "uint", "double", "string"}), Type("double")),
    "string": (frozenset({"int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration"}), STRING),
    "bytes": (frozenset({"string", "bytes"}), Type("bytes")),
    "bool": (frozenset({"string", "bool"}), BOOL),
    "timestamp": (frozenset({"string", "timestamp"}), TIMESTAMP),
    "duration": (frozenset({"string", "duration"}), DURATION),
}
_STRING_TESTS = frozenset({"startsWith", "endsWith", "contains", "matches"})
_TIMESTAMP_PARTS = frozenset({"getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek",
                              "getDayOfYear", "getHours", "getMinutes", "getSeconds", "getMilliseconds"})
_DURATION_PARTS = frozenset({"getHours", "getMinutes", "getSeconds", "getMilliseconds"})
_SIZED = frozenset({"string", "bytes", "list", "map"})


Arg = tuple[Type, Tree[Any]]  # an argument's type and its parse tree

class Checker(Protocol):
    def reject(self, message: str, node: Tree[Any] | Token, code: str = ...) -> Exception: ...


def unwrap(node: Tree[Any]) -> Tree[Any]:
    """Skip the grammar's single-child wrappers (expr -> conditionalor -> ... -> primary)."""
    while node.data in _PASS and len(node.children) == 1 and isinstance(node.children[0], Tree):
        node = node.children[0]
    return node


def literal_string(node: Tree[Any]) -> str | None:
    """The value of a string literal node, or None when the node is not one."""
    token = unwrap(node).children[0] if unwrap(node).data == "literal" else None
    if isinstance(token, Token) and token.type in ("STRING_LIT", "MLSTRING_LIT"):
        return str(celstr(token))
    return None


_FROM_STRING = {
    "int": celtypes.IntType, "uint": celtypes.UintType, "double": celtypes.DoubleType, "bool": celtypes.BoolType,
    "timestamp": celtypes.TimestampType, "duration": celtypes.DurationType,
}


def literal_problem(kind: str, text: str) -> str | None:
    """Why converting a string literal with `kind()` would fail at run time, or None."""
    try:
        _FROM_STRING[kind](celtypes.StringType(text))
    except Exception as err:  # cel-python raises ValueError, TypeError, OverflowError ...
        return f"invalid {kind} {text!r}: {err}"
    return None


def _arity(checker: Checker, node: Tree[Any] | Token, name: str, args: list[Type], counts: tuple[int, ...]) -> None:
    if len(args) not in counts:
        wanted = " or ".join(str(c) for c in counts)
        raise checker.reject(f"{name}() takes {wanted} argument{'s' if counts != (1,) else ''}, not {len(args)}", node)


def _string_test(checker: Checker, node: Tree[Any] | Token, name: str, args: list[Arg]) -> Type:
    _arity(checker, node, name, [t for t, _ in args], (1,))
    typ, arg = args[0]
    if typ.base not in ("string", "dyn"):
        raise checker.reject(f"{name}() takes a string, not {typ}", node)
    if name == "matches":
        pattern = literal_string(arg)
        if pattern is None:  # a pattern read from the facts could be made to match anything
            raise checker.reject("matches() takes its regex as a string literal", unwrap(arg), "regex")
        problem = regex_error(pattern)
        if problem is not None:
            raise checker.reject(problem, unwrap(arg), "regex")
    return BOOL


def method(checker: Checker, node: Tree[Any] | Token, receiver: Type, name: str, args: list[Arg]) -> Type:
    """The type of `receiver.name(args)`."""
    kind, types = receiver.base, [t for t, _ in args]
    if name == "size" and kind in (*_SIZED, "dyn"):
        _arity(checker, node, name, types, (0,))
        return INT
    if name in _STRING_TESTS and kind in ("string", "dyn"):
        return _string_test(checker, node, name, args)
    if kind in ("timestamp", "dyn") and name in _TIMESTAMP_PARTS:
        _arity(checker, node, name, types, (0, 1))
        if types and types[0].base not in ("string", "dyn"):
            raise checker.reject(f"{name}() takes a time zone name (a string), not {types[0]}", node)
        return INT
    if kind == "duration" and name in _DURATION_PARTS:
        _arity(checker, node, name, types, (0,))
        return INT
    raise checker.reject(f"no method {name}() on {receiver}", node)


def call(checker: Checker, node: Tree[Any], name: str, args: list[Arg]) -> Type:
    """The type of the global call `name(args)` (`has` is a macro, handled by the checker)."""
    types = [t for t, _ in args]
    if name == "dyn":
        raise checker.reject("dyn() is not supported: gate checks the type of every rule", node)
    if name == "size":
        _arity(checker, node, name, types, (1,))
        if types[0].base not in (*_SIZED, "dyn"):
            raise checker.reject(f"size() takes a string, bytes, list or map, not {types[0]}", node)
        return INT
    if name == "matches":
        _arity(checker, node, name, types, (2,))
        if types[0].base not in ("string", "dyn"):
            raise checker.reject(f"matches() takes a string, not {types[0]}", node)
        return _string_test(checker, node, name, args[1:])
    if name in _CONVERSIONS:
        _arity(checker, node, name, types, (1,))
        accepted, result = _CONVERSIONS[name]
        if types[0].base not in (*accepted, "dyn"):
            raise checker.reject(f"{name}() cannot convert {types[0]}", node)
        if name in _FROM_STRING and (text := literal_string(args[0][1])) is not None:
            problem = literal_problem(name, text)
            if problem is not None:
                raise checker.reject(problem, unwrap(args[0][1]))
        return result
    raise checker.reject(f"unknown function {name}()", node)
