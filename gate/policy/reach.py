"""Can a pattern match any string that starts with a given prefix? Used by `gate lint` to find signers
that can never match (an identity regex for the GitHub issuer that no `https://github.com/...` URL fits).

Walks Python's own regex parse tree consuming the prefix one character at a time. Anything it does not
model (backreferences, lookarounds, flags) answers "maybe", so lint never reports a false "never".
"""

from __future__ import annotations

import re
from re import _constants as C  # noqa: N812 (the stdlib's own opcode names)
from re import _parser as P  # noqa: N812
from typing import Any

# One pending piece of the pattern: ("item", op, arg) for a parse-tree item, or ("repeat", lo, hi, items).
_Pending = tuple[Any, ...]
_LIMIT = 5000


class _UnsureError(Exception):
    """The pattern uses something this walk does not model."""


def _char_in(op: Any, arg: Any, char: str) -> bool:
    code = ord(char)
    if op is C.LITERAL:
        return bool(code == arg)
    if op is C.NOT_LITERAL:
        return bool(code != arg)
    if op is C.ANY:
        return char != "\n"
    if op is C.IN:
        negate = bool(arg) and arg[0][0] is C.NEGATE
        hit = any(_class_member(o, a, char) for o, a in (arg[1:] if negate else arg))
        return hit != negate
    raise _UnsureError


def _class_member(op: Any, arg: Any, char: str) -> bool:
    code = ord(char)
    if op is C.LITERAL:
        return bool(code == arg)
    if op is C.RANGE:
        return bool(arg[0] <= code <= arg[1])
    if op is C.CATEGORY:
        probe = {
            C.CATEGORY_DIGIT: r"\d",
            C.CATEGORY_NOT_DIGIT: r"\D",
            C.CATEGORY_SPACE: r"\s",
            C.CATEGORY_NOT_SPACE: r"\S",
            C.CATEGORY_WORD: r"\w",
            C.CATEGORY_NOT_WORD: r"\W",
        }.get(arg)
        if probe is None:
            raise _UnsureError
        return re.fullmatch(probe, char) is not None
    raise _UnsureError


def _firsts(stack: tuple[_Pending, ...], depth: int = 0) -> list[tuple[Any, Any, tuple[_Pending, ...]] | None]:
    """Every way to reach the next consuming item: (op, arg, rest), or None where the pattern may end."""
    if depth > 200:
        raise _UnsureError
    if not stack:
        return [None]
    head, rest = stack[0], stack[1:]
    if head[0] == "repeat":
        _, lo, hi, items = head
        body = tuple(("item", op, arg) for op, arg in items)
        again = ("repeat", max(lo - 1, 0), hi if hi is C.MAXREPEAT else hi - 1, items)
        options = [] if lo > 0 else _firsts(rest, depth + 1)
        if hi is C.MAXREPEAT or hi > 0:
            options += _firsts((*body, again, *rest), depth + 1) if body else []
        return options
    _, op, arg = head
    if op is C.SUBPATTERN:
        _, add_flags, del_flags, items = arg
        if add_flags or del_flags:
            raise _UnsureError
        return _firsts(tuple(("item", o, a) for o, a in items) + rest, depth + 1)
    if op is C.BRANCH:
        out = []
        for branch in arg[1]:
            out += _firsts(tuple(("item", o, a) for o, a in branch) + rest, depth + 1)
        return out
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
        lo, hi, items = arg
        return _firsts((("repeat", lo, hi, list(items)), *rest), depth + 1)
    if op is C.AT:
        if arg in (C.AT_END, C.AT_END_STRING):
            return [None] if not rest else [f for f in _firsts(rest, depth + 1) if f is None]
        return _firsts(rest, depth + 1)  # \A, ^, \b: zero-width; treated as always passing
    if op in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
        return [(op, arg, rest)]
    raise _UnsureError


def _freeze(stack: tuple[_Pending, ...]) -> str:
    return repr(stack)


def can_start_with(regex: str, prefix: str) -> bool:
    """False only when no string that starts with `prefix` can match `regex` (a full match)."""
    try:
        parsed = P.parse(regex)
        if parsed.state.flags & ~(re.UNICODE | re.ASCII):
            return True
        states: dict[str, tuple[_Pending, ...]] = {"": tuple(("item", o, a) for o, a in parsed)}
        states = {_freeze(s): s for s in states.values()}
        for char in prefix:
            following: dict[str, tuple[_Pending, ...]] = {}
            for stack in states.values():
                for first in _firsts(stack):
                    if first is not None and _char_in(first[0], first[1], char):
                        following.setdefault(_freeze(first[2]), first[2])
            if not following:
                return False
            if len(following) > _LIMIT:
                return True
            states = following
        return True
    except (_UnsureError, re.error, RecursionError):
        return True
