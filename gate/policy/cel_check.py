"""The static check of every CEL rule against the facts document, before anything runs it.

cel-python has no type checker, so gate walks the parse tree itself: each node gets a type
(`gate.policy.cel_types`) and a cost. A rule is rejected, with the place in the expression, when it
names an unknown variable, field, claim or function, applies an operator or function to the wrong
types, misuses a macro (`exists(a)`, `exists(1, true)`, `map` with four arguments, `has(file)`), uses a
construct cel-python gets wrong (`!has(x)`, `1 == null`), yields something other than a bool, matches
with a regex that is not a literal RE2 accepts, or could take more than MAX_COST steps
(a comprehension costs its body times the most elements its receiver can hold, as Kubernetes estimates
CEL cost). What the check does not know it rejects: it fails closed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from lark import Token, Tree

from gate.policy import cel
from gate.policy.cel_calls import call, literal_string, method, unwrap
from gate.policy.cel_types import (
    BOOL,
    BYTES,
    CLAIM_NAMES,
    DOUBLE,
    DURATION,
    DYN,
    HASBOOL,
    INT,
    MAX_ATTESTATIONS,
    MAX_COST,
    NULL,
    STRING,
    TIMESTAMP,
    UINT,
    VARIABLES,
    RuleProblem,
    Type,
    comparable,
    join,
    list_of,
    map_of,
    object_fields,
)

_MACROS = frozenset({"exists", "all", "exists_one", "map", "filter"})
_OPERATORS = {
    "relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=", "relation_eq": "==",
    "relation_ne": "!=", "relation_in": "in", "addition_add": "+", "addition_sub": "-",
    "multiplication_mul": "*", "multiplication_div": "/", "multiplication_mod": "%",
}
_NUMBERS = ("int", "uint", "double")
_ORDERED = frozenset({*_NUMBERS, "string", "bytes", "bool", "timestamp", "duration"})
_ARITHMETIC: dict[str, dict[tuple[str, str], Type]] = {
    "+": {("int", "int"): INT, ("uint", "uint"): UINT, ("double", "double"): DOUBLE, ("string", "string"): STRING,
          ("bytes", "bytes"): BYTES, ("timestamp", "duration"): TIMESTAMP, ("duration", "timestamp"): TIMESTAMP,
          ("duration", "duration"): DURATION},
    "-": {("int", "int"): INT, ("uint", "uint"): UINT, ("double", "double"): DOUBLE,
          ("timestamp", "timestamp"): DURATION, ("timestamp", "duration"): TIMESTAMP,
          ("duration", "duration"): DURATION},
    "*": {("int", "int"): INT, ("uint", "uint"): UINT, ("double", "double"): DOUBLE},
    "/": {("int", "int"): INT, ("uint", "uint"): UINT, ("double", "double"): DOUBLE},
    "%": {("int", "int"): INT, ("uint", "uint"): UINT},
}
_LITERALS = {"INT_LIT": INT, "UINT_LIT": UINT, "FLOAT_LIT": DOUBLE, "STRING_LIT": STRING, "MLSTRING_LIT": STRING,
             "BYTES_LIT": BYTES, "BOOL_LIT": BOOL, "NULL_LIT": NULL}

Scope = dict[str, Type]
Typed = tuple[Type, int]  # a node's type and its cost


class CheckError(Exception):
    """The walk stops at the first problem."""

    def __init__(self, problem: RuleProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _Checker:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.null_guards: set[int] = set()  # the operands of `||`, where `x == null` may compare a number

    def where(self, node: Tree[Any] | Token) -> tuple[int | None, int | None]:
        return cel.start(node)

    def reject(self, message: str, node: Tree[Any] | Token, code: str = "cel-type") -> CheckError:
        line, column = self.where(node)
        return CheckError(RuleProblem(code, message, line, column))

    def operator_at(self, left: Tree[Any], right: Tree[Any], op: str) -> tuple[int | None, int | None]:
        """The position of the operator between two operands."""
        if left.meta.empty or right.meta.empty:
            return self.where(left)
        found = self.expression.find(op, left.meta.end_pos, right.meta.start_pos)
        if found < 0:
            return self.where(left)
        line = self.expression.count("\n", 0, found) + 1
        return line, found - (self.expression.rfind("\n", 0, found) + 1) + 1

    def visit(self, node: Tree[Any], scope: Scope) -> Typed:
        node = unwrap(node)
        handler = getattr(self, "_" + node.data, None)
        if handler is None:
            raise self.reject(f"unsupported CEL construct ({node.data})", node)
        result: Typed = handler(node, scope)
        return result

    # -- leaves --
    def _literal(self, node: Tree[Any], scope: Scope) -> Typed:
        token = node.children[0]
        assert isinstance(token, Token)
        return _LITERALS[token.type], 1

    def _ident(self, node: Tree[Any], scope: Scope) -> Typed:
        name = str(node.children[0])
        if name in scope:
            return scope[name], 1
        known = sorted(scope)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (the facts are {', '.join(known)})"
        raise self.reject(f"undeclared reference to {name!r}{hint}", node)

    _dot_ident = _ident

    def _paren_expr(self, node: Tree[Any], scope: Scope) -> Typed:
        return self.visit(node.children[0], scope)

    def _list_lit(self, node: Tree[Any], scope: Scope) -> Typed:
        items = [self.visit(c, scope) for c in node.children[0].children] if node.children else []
        element = NULL if not items else items[0][0]
        for typ, _ in items[1:]:
            element = join(element, typ)
        return list_of(DYN if not items else element, len(items)), 1 + sum(c for _, c in items)

    def _map_lit(self, node: Tree[Any], scope: Scope) -> Typed:
        items = [self.visit(c, scope) for c in node.children[0].children] if node.children else []
        keys, values = items[0::2], items[1::2]
        key, value = (keys[0][0], values[0][0]) if items else (DYN, DYN)
        for k, v in zip(keys[1:], values[1:], strict=True):
            key, value = join(key, k[0]), join(value, v[0])
        return map_of(key, value, len(keys)), 1 + sum(c for _, c in items)

    def _member_object(self, node: Tree[Any], scope: Scope) -> Typed:
        raise self.reject("message construction (Name{field: value}) is not supported", node)

    # -- operators --
    def _expr(self, node: Tree[Any], scope: Scope) -> Typed:
        (cond, c1), (yes, c2), (no, c3) = (self.visit(c, scope) for c in node.children)
        if cond.kind == "hasbool":
            raise self.reject("cel-python cannot use has() as the condition of ?:; put it in a comprehension "
                              "or combine it with &&", node)
        if cond.base not in ("bool", "dyn"):
            raise self.reject(f"the condition of ?: must be a bool, not {cond}", node)
        result = join(yes, no)
        if result.base == "dyn" and "dyn" not in (yes.base, no.base):
            raise self.reject(f"the branches of ?: must have one type, not {yes} and {no}", node)
        return result, 1 + c1 + max(c2, c3)

    def _logical(self, node: Tree[Any], scope: Scope, op: str) -> Typed:
        if op == "||":
            self.null_guards.update(id(unwrap(child)) for child in node.children)
        (left, c1), (right, c2) = self.visit(node.children[0], scope), self.visit(node.children[1], scope)
        for typ in (left, right):
            if typ.base not in ("bool", "dyn"):
                raise self.reject(f"no operator {op} for ({left}, {right})", node)
        if left.kind == right.kind == "hasbool":
            raise self.reject(f"cel-python cannot combine two has() results with {op}; test each in a rule "
                              "of its own", node)
        return (HASBOOL if "hasbool" in (left.kind, right.kind) else BOOL), 1 + c1 + c2

    def _conditionalor(self, node: Tree[Any], scope: Scope) -> Typed:
        return self._logical(node, scope, "||")

    def _conditionaland(self, node: Tree[Any], scope: Scope) -> Typed:
        return self._logical(node, scope, "&&")

    def _unary(self, node: Tree[Any], scope: Scope) -> Typed:
        typ, cost = self.visit(node.children[1], scope)
        if node.children[0].data == "unary_not":
            if typ.kind == "hasbool":
                raise self.reject("cel-python cannot negate has(); test a map key with !(\"key\" in map), or a "
                                  "field of the facts with == null", node)
            if typ.base not in ("bool", "dyn"):
                raise self.reject(f"no operator ! for {typ}", node)
            return BOOL, cost + 1
        if typ.base not in ("int", "double", "duration", "dyn"):
            raise self.reject(f"no operator - for {typ}", node)
        return Type(typ.base), cost + 1

    def _binary(self, node: Tree[Any], scope: Scope) -> Typed:
        op_node, right_node = node.children
        op = _OPERATORS[op_node.data]
        left_node = op_node.children[0]
        (left, c1), (right, c2) = self.visit(left_node, scope), self.visit(right_node, scope)
        cost = 1 + c1 + c2
        self.null_number(node, op, left, right)
        if op in ("==", "!=") and comparable(left, right):
            return BOOL, cost + max(left.size, right.size)
        if op == "in" and self._contains(left, right):
            return BOOL, cost + right.size
        if op in ("<", "<=", ">", ">=") and (
            "dyn" in (left.base, right.base) or (left.base == right.base and left.base in _ORDERED)
        ):
            return BOOL, cost
        if op in _ARITHMETIC:
            if "dyn" in (left.base, right.base):
                return DYN, cost
            if op == "+" and left.base == right.base == "list":
                return list_of(join(left.args[0], right.args[0]), left.size + right.size), cost + left.size
            if (result := _ARITHMETIC[op].get((left.base, right.base))) is not None:
                return result, cost
        line, column = self.operator_at(unwrap(left_node), unwrap(right_node), op)
        raise CheckError(RuleProblem("cel-type", f"no operator {op} for ({left}, {right})", line, column))

    _relation = _addition = _multiplication = _binary

    def null_number(self, node: Tree[Any], op: str, left: Type, right: Type) -> None:
        """cel-python errs comparing a number with null (`1 == null`). An error counts as false, so only
        `x == null` as an operand of `||` means what it says; `x != null` denies whenever x is known."""
        kinds = {left.base, right.base if op != "in" or right.base not in ("list", "map") else right.args[0].base}
        if "null" not in kinds or not kinds & set(_NUMBERS):
            return
        if op == "==" and id(node) in self.null_guards:
            return
        raise self.reject(
            f"cel-python cannot compare a number with null ({op} is an error, not a bool, when the number is "
            "known); test a fact that may be null as `file.size == null || <condition>`", node)

    @staticmethod
    def _contains(item: Type, container: Type) -> bool:
        if container.base == "dyn":
            return True
        if container.base in ("list", "map"):
            return comparable(item, container.args[0])
        return container.base == "object" and item.base in ("string", "dyn")

    # -- selection and indexing --
    def _member_dot(self, node: Tree[Any], scope: Scope) -> Typed:
        (typ, cost), field = self.visit(node.children[0], scope), node.children[1]
        return self.field(typ, str(field), field), cost + 1

    def field(self, typ: Type, name: str, where: Tree[Any] | Token) -> Type:
        if typ.base == "object":
            fields = object_fields(typ.name)
            if name in fields:
                return fields[name]
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (its fields: {', '.join(fields)})"
            raise self.reject(f"{typ.name} has no field {name!r}{hint}", where)
        if typ.base == "map" and typ.args[0].base in ("string", "dyn"):
            if typ.name == "claims" and name not in CLAIM_NAMES:
                close = difflib.get_close_matches(name, sorted(CLAIM_NAMES), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (claims: {', '.join(sorted(CLAIM_NAMES))})"
                raise self.reject(f"no certificate carries a claim {name!r}{hint}", where)
            return typ.args[1]
        if typ.base == "dyn":
            return DYN
        raise self.reject(f"{typ} has no fields (selecting {name!r})", where)

    def _member_index(self, node: Tree[Any], scope: Scope) -> Typed:
        (typ, c1), (index, c2) = self.visit(node.children[0], scope), self.visit(node.children[1], scope)
        cost = 1 + c1 + c2
        if typ.base == "list" and index.base in ("int", "uint", "dyn"):
            return typ.args[0], cost
        if typ.base == "map" and comparable(index, typ.args[0]):
            name = literal_string(node.children[1])
            return (typ.args[1] if name is None else self.field(typ, name, node.children[1])), cost
        if typ.base == "object" and index.base in ("string", "dyn"):
            name = literal_string(node.children[1])
            return (DYN if name is None else self.field(typ, name, node.children[1])), cost
        if typ.base == "dyn":
            return DYN, cost
        raise self.reject(f"cannot index {typ} with {index}", node)

    # -- calls --
    def _ident_arg(self, node: Tree[Any], scope: Scope) -> Typed:
        name = node.children[0]
        args = list(node.children[1].children) if len(node.children) > 1 else []
        if name == "has":
            return self.has(node, args, scope)
        typed = [self.visit(a, scope) for a in args]
        result = call(self, node, str(name), [(t, a) for (t, _), a in zip(typed, args, strict=True)])
        return result, 1 + sum(c for _, c in typed)

    _dot_ident_arg = _ident_arg

    def has(self, node: Tree[Any], args: list[Any], scope: Scope) -> Typed:
        target = unwrap(args[0]) if len(args) == 1 else None
        if target is None or target.data != "member_dot":
            raise self.reject("has() takes one field selection, as in has(a.claims.buildTrigger)", node)
        typ, cost = self.visit(target.children[0], scope)
        self.field(typ, str(target.children[1]), target.children[1])
        return HASBOOL, cost + 1

    def _member_dot_arg(self, node: Tree[Any], scope: Scope) -> Typed:
        receiver_node, name_token = node.children[0], node.children[1]
        assert isinstance(name_token, Token)
        name = str(name_token)
        args = list(node.children[2].children) if len(node.children) > 2 else []
        receiver, cost = self.visit(receiver_node, scope)
        if name in _MACROS:
            return self.macro(name_token, name, (receiver, cost), args, scope)
        typed = [self.visit(a, scope) for a in args]
        result = method(self, name_token, receiver, name, [(t, a) for (t, _), a in zip(typed, args, strict=True)])
        return result, 1 + cost + sum(c for _, c in typed)

    def macro(self, node: Token, name: str, typed: Typed, args: list[Any], scope: Scope) -> Typed:
        receiver, cost = typed
        shape = "(v, condition)" if name != "map" else "(v, expression) or map(v, condition, expression)"
        counts = (2, 3) if name == "map" else (2,)
        variable = unwrap(args[0]) if args else None
        if len(args) not in counts or variable is None or variable.data != "ident":
            raise self.reject(f"{name}() takes {shape}, with v a variable name: "
                              f"attestations.{name}(a, ...)", node)
        if receiver.base in ("list", "map"):
            element = receiver.args[0]
        elif receiver.base == "dyn":
            element = DYN
        else:
            raise self.reject(f"{name}() needs a list or a map, not {receiver}", node)
        inner = {**scope, str(variable.children[0]): element}
        body = [self.visit(a, inner) for a in args[1:]]
        conditions = body[:-1] if name == "map" else body
        for typ, _ in conditions:
            if typ.base not in ("bool", "dyn"):
                raise self.reject(f"the condition of {name}() must be a bool, not {typ}", node)
        size = receiver.size
        total = 1 + cost + size * (1 + sum(c for _, c in body))
        if name == "map":
            return list_of(body[-1][0], size), total
        if name == "filter":
            return list_of(element, size), total
        return BOOL, total


@dataclass(frozen=True)
class Checked:
    """What the static check found: the parse tree (None when it does not parse), why the rule cannot be
    used (None when it can) and its estimated cost in evaluation steps."""

    tree: Tree[Any] | None
    problem: RuleProblem | None
    cost: int = 0


def _check_tree(tree: Tree[Any], expression: str, *, written: bool) -> Checked:
    try:
        typ, cost = _Checker(expression).visit(tree, dict(VARIABLES))
    except CheckError as err:
        return Checked(tree, err.problem)
    except RecursionError:
        return Checked(tree, RuleProblem("cel-syntax", f"the expression nests more than {cel.MAX_DEPTH} levels deep"))
    if typ.base != "bool":
        return Checked(tree, RuleProblem("cel-type", f"the rule yields {typ}, not a bool"), cost)
    if written and cost > MAX_COST:  # a generated rule grows with its signers: the policy's total bounds it
        message = (
            f"the rule may take {cost:,} evaluation steps, more than the budget of {MAX_COST:,}: a comprehension "
            f"costs its body times its list's length (a literal's, or up to {MAX_ATTESTATIONS} attestations), "
            "and nested ones multiply"
        )
        return Checked(tree, RuleProblem("cel-cost", message), cost)
    return Checked(tree, None, cost)


def check_expression(expression: str, *, written: bool = True) -> Checked:
    """Parse and check a rule: it must type-check against the facts, yield a bool and fit the budget (a rule
    gate built, `written=False`, is held to the policy's total budget alone, like its length)."""
    try:
        tree = cel.parse_once(expression, written=written)
    except cel.CELParseError as err:
        text = str(err.args[0]).rstrip() if err.args else "invalid CEL"
        return Checked(None, RuleProblem("cel-syntax", text, err.line, err.column))
    return _check_tree(tree, expression, written=written)
