"""Compile validated policies to named CEL rules (standard CEL only), and load policies end to end.

Each structured field becomes one rule with a fixed name, a summary message (what `gate compile` shows)
and a description that says, per file, what it showed and what the rule asks (`gate.policy.describe`);
`rules` entries are taken as written. The CEL reads the facts document: `file`, `attestations` (a list) and `now`.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from gate.errors import Finding, Issue, PolicyError
from gate.facts import Facts
from gate.policy.cel_types import MAX_POLICY_COST, RuleProblem
from gate.policy.conformance import conforms
from gate.policy.describe import (
    MAX_MESSAGE,
    AgeDescription,
    Describe,
    PredicateTypesDescription,
    RequiredDescription,
    SignersDescription,
    TargetChannelDescription,
    one_line,
    shown,
)
from gate.policy.duration import format_duration
from gate.policy.load import RawPolicy, format_path, load_paths, load_text
from gate.policy.model import (
    Attestations,
    ContinuityRule,
    IdentitySigner,
    MinimumAge,
    Mode,
    Policy,
    PublisherSigner,
    Signer,
    TimeSource,
    build_policy,
)
from gate.policy.native import AnyVerified, NativeCheck, OldEnough, TrustedAttestations, beyond_budget, exact_signers
from gate.policy.patterns import Pattern
from gate.policy.trust_rules import (
    BACKDATING_RULE,
    CONTINUITY_RULE,
    BackdatingDescription,
    ContinuityDescription,
    NoDowngrade,
    NotBackdated,
    OldEnoughFrom,
    age_expression,
    backdating_expression,
    continuity_expression,
    line_text,
)

if TYPE_CHECKING:
    from gate.policy.vuln_rules import DescribeAt


@dataclass(frozen=True)
class CompiledRule:
    """One named CEL rule: the file passes when `expression` evaluates to true."""

    name: str
    expression: str
    message: str
    program: Any  # celpy Runner (untyped library), or `Deferred`: use `compiled()`
    reads: frozenset[str]  # the identifiers the expression names (`file`, `attestations`, `now`, fields ...)
    file_fields: tuple[str, ...] | None  # the fields it reads as `file.<field>`; None: it may read all of `file`
    cost: int = 0  # the most evaluation steps it may take (gate.policy.cel_check)
    native: NativeCheck | None = None  # the same judgement without CEL (structured rules only: gate.policy.native)
    written: bool = True  # written in the policy (a custom rule); False: made by the compiler from a field
    describe: Describe | None = None  # why a file fails it, from its facts (structured rules: gate.policy.describe)
    describe_at: DescribeAt | None = None  # the same from its facts and `now` (gate.policy.vuln_rules)

    def failure(self, facts: Facts, now: dt.datetime | None = None) -> str:
        """The message of a violation of this rule by `facts` (at `now`): what the file showed and what the rule
        asks (structured rules), or the message the policy wrote (custom rules)."""
        if self.describe_at is not None and now is not None:
            return shown(self.describe_at(facts, now), MAX_MESSAGE)
        return self.message if self.describe is None else shown(self.describe(facts), MAX_MESSAGE)

    def compiled(self) -> Any:
        """The rule's CEL program (a deferred one is checked and compiled now; RuleError if it cannot be)."""
        return self.program.program() if isinstance(self.program, Deferred) else self.program

    def evaluate(self, activation: dict[str, Any]) -> tuple[bool, str | None]:
        """(passed, error): a rule that errors or yields a non-boolean fails closed, and so does one over
        more attestations or claims than its cost was checked for (it is not run)."""
        if "attestations" in self.reads and (beyond := _beyond_budget(activation)) is not None:
            return False, f"rule not evaluated: {beyond}"
        if "vulnerabilities" in self.reads and (beyond := _records_beyond_budget(activation)) is not None:
            return False, f"rule not evaluated: {beyond}"
        from gate.policy.cel import outcome  # noqa: PLC0415 (cel-python once a rule runs as CEL)

        try:
            result = outcome(self.compiled(), activation)
        except Exception as err:  # cel-python may raise anything on hostile values; deny
            return False, f"rule could not be evaluated: {type(err).__name__}: {err}"[:300]
        if result.error is not None:
            return False, f"rule could not be evaluated: {result.error}"
        if result.passed is None:
            return False, f"rule must yield a bool, got {type(result.value).__name__}"
        return result.passed, None


class Declared(NamedTuple):
    """What the compiler knows of a rule it makes without parsing its CEL: the identifiers it names, the
    `file` fields it reads and its cost (tests/policy/test_deferred.py holds each to its parse)."""

    reads: frozenset[str]
    file_fields: tuple[str, ...] | None
    cost: int


class Deferred:
    """The CEL of a compiler-made rule judged by its exact native check: checked and compiled only if it is
    ever run (a reference run, a test), so loading a policy that needs no CEL never builds the CEL parser.
    Raises RuleError when it cannot be used (then the rule fails closed, with the reason)."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._program: Any = None
        self._lock = threading.Lock()

    def program(self) -> Any:
        with self._lock:
            if self._program is None:
                self._program = cel_program(self.expression, written=False).program
            return self._program


def _beyond_budget(activation: dict[str, Any]) -> str | None:
    """Why the facts are larger than the static cost estimate assumed, or None."""
    attestations = activation.get("attestations") or ()
    return beyond_budget(len(attestations), (len(a.get("claims") or ()) for a in attestations))


def _records_beyond_budget(activation: dict[str, Any]) -> str | None:
    """Why the file has more OSV records (or a record longer lists) than rules are evaluated over, or None."""
    from gate.policy.vuln_rules import records_beyond_budget  # noqa: PLC0415 (a rule that reads them runs as CEL)

    return records_beyond_budget(
        activation.get("vulnerabilities") or (), lambda v: (len(v.get("aliases") or ()), len(v.get("fixed") or ()))
    )


@dataclass(frozen=True)
class CompiledPolicy:
    policy: Policy
    rules: tuple[CompiledRule, ...]

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def enforced(self) -> bool:
        return self.policy.mode is Mode.ENFORCE


def cel_string(value: str) -> str:
    """A CEL string literal (JSON escaping is valid CEL escaping)."""
    return json.dumps(value)


def _field_matches(expr: str, pattern: Pattern) -> str:
    if pattern.is_literal:
        return f"{expr} == {cel_string(pattern.source)}"
    return f"({expr} != null && {expr}.matches({cel_string(pattern.regex)}))"


def signer_expression(signer: Signer) -> str:
    """The CEL condition under which attestation `a` was made by `signer`."""
    match signer:
        case PublisherSigner(kind=kind, fields=fields):
            parts = [f"a.publisher.kind == {cel_string(kind)}"]
            parts += [_field_matches(f"a.publisher.{key}", pattern) for key, pattern in fields]
            return "(" + " && ".join(parts) + ")"
        case IdentitySigner(identity=identity, issuer=issuer):
            return f"({_field_matches('a.identity', identity)} && {_field_matches('a.issuer', issuer)})"


def _any_of(conditions: list[str]) -> str:
    """The conditions joined with ||, as a balanced tree: a long chain would nest past cel.MAX_DEPTH."""
    if len(conditions) <= 8:
        return " || ".join(conditions)
    half = len(conditions) // 2
    return f"({_any_of(conditions[:half])}) || ({_any_of(conditions[half:])})"


def _trusted(att: Attestations, extra: str = "") -> str:
    """`a` is verified, from an allowed signer (when signers are listed), and meets `extra`."""
    parts = ["a.verified"]
    if att.signers:
        signers = _any_of([signer_expression(s) for s in att.signers])
        parts.append(f"({signers})" if len(att.signers) > 1 else signers)
    if extra:
        parts.append(extra)
    return " && ".join(parts)


def _optional(att: Attestations, condition: str) -> str:
    """With `required: false`, a file without verified attestations is not judged by this rule."""
    return condition if att.required else f"!attestations.exists(a, a.verified) || {condition}"


@dataclass(frozen=True)
class RuleSource:
    """A rule before compiling: its name, CEL and message, and (for some rules the compiler makes of
    structured fields) the same judgement in Python, built from the same model object."""

    name: str
    expression: str
    message: str
    native: NativeCheck | None = None
    written: bool = False  # a custom rule, as the policy wrote it
    describe: Describe | None = None  # the per-file message of a structured rule
    describe_at: DescribeAt | None = None  # its per-file message (spec.vulnerabilities)
    declared: Declared | None = None  # with an exact `native`: its CEL is not parsed until it is run


def _attestation_rules(att: Attestations) -> list[RuleSource]:
    exact = exact_signers(att.signers)  # else these rules run as CEL only

    def native(**kwargs: Any) -> NativeCheck | None:
        return TrustedAttestations(att.signers, att.required, **kwargs) if exact else None

    rules = []
    if att.required:
        rules.append(
            RuleSource(
                "attestations.required",
                "attestations.exists(a, a.verified)",
                "no verified attestation for this file",
                AnyVerified(),
                describe=RequiredDescription(),
                declared=Declared(frozenset({"a", "attestations", "exists", "verified"}), (), 50),
            )
        )
    if att.signers:
        rules.append(
            RuleSource(
                "attestations.signers",
                _optional(att, f"attestations.exists(a, {_trusted(att)})"),
                "no verified attestation from an allowed signer",
                native(),
                describe=SignersDescription(att),
            )
        )
    if att.predicate_types:
        types = ", ".join(cel_string(t) for t in att.predicate_types)
        rules.append(
            RuleSource(
                "attestations.predicateTypes",
                _optional(att, f"[{types}].all(t, attestations.exists(a, {_trusted(att, 'a.predicateType == t')}))"),
                "missing a verified attestation of predicate type "
                + " and ".join(att.predicate_types)
                + (" from an allowed signer" if att.signers else ""),
                native(types=att.predicate_types),
                describe=PredicateTypesDescription(att),
            )
        )
    if att.target_channel is not None:
        if att.target_channel == "match":  # a known channel: a null index must not equal a null targetChannel
            channel = "file.index != null && a.targetChannel == file.index"
            shown = "the channel it is served from"
        else:
            channel, shown = f"a.targetChannel == {cel_string(att.target_channel)}", att.target_channel
        rules.append(
            RuleSource(
                "attestations.targetChannel",
                'file.ecosystem != "conda" || '
                + _optional(att, f"attestations.exists(a, {_trusted(att, channel)})"),
                f"no verified conda attestation whose targetChannel is {shown}",
                native(channel=att.target_channel, conda_only=True),
                describe=TargetChannelDescription(att),
            )
        )
    if att.slsa is not None:  # (the SLSA rules' module only for a policy that asks for SLSA provenance)
        from gate.policy.slsa_rules import SlsaCheck, SlsaDescription, required_text, slsa_fields  # noqa: PLC0415

        wanted = " && ".join(_field_matches(f"a.{fact}", pattern) for fact, pattern in slsa_fields(att.slsa))
        rules.append(
            RuleSource(
                "attestations.slsa",
                _optional(att, f"attestations.exists(a, {_trusted(att, wanted)})"),
                f"no verified SLSA provenance with {required_text(att.slsa)}"
                + (" from an allowed signer" if att.signers else ""),
                SlsaCheck(att),
                describe=SlsaDescription(att),
            )
        )
    return rules


_INDEX_AGE = Declared(frozenset({"duration", "file", "now", "uploaded"}), ("uploaded",), 12)


def _minimum_age_rules(minimum: MinimumAge) -> list[RuleSource]:
    """`minimumAge`, from its time sources, and `minimumAge.backdating` when it is asked for."""
    age = dt.timedelta(seconds=int(minimum.age.total_seconds()))
    native: NativeCheck = OldEnough(age, minimum.allow_unknown)
    if minimum.time_sources != (TimeSource.INDEX,):
        native = OldEnoughFrom(age, minimum.allow_unknown, minimum.time_sources)
    shown = format_duration(minimum.age)
    if minimum.allow_unknown:
        message = f"published less than {shown} ago"
    else:
        message = f"published less than {shown} ago, or its upload time is unknown (minimum age {shown})"
    # the index's time alone (as it always was): known reads, so its CEL is parsed only if it is ever run
    declared = _INDEX_AGE if minimum.time_sources == (TimeSource.INDEX,) else None
    rules = [RuleSource("minimumAge", age_expression(minimum), message, native, describe=AgeDescription(minimum),
                        declared=declared)]
    if minimum.backdating is not None:
        tolerance = minimum.backdating
        rules.append(RuleSource(
            BACKDATING_RULE, backdating_expression(tolerance),
            f"uploaded (says the index) more than {format_duration(tolerance)} before its evidence was signed",
            NotBackdated(tolerance), describe=BackdatingDescription(tolerance),
        ))
    return rules


def _continuity_rule(rule: ContinuityRule) -> RuleSource:
    return RuleSource(
        CONTINUITY_RULE, continuity_expression(rule),
        f"weaker verified provenance than the earlier release of its {line_text(rule)} that sets the bar",
        NoDowngrade(rule), describe=ContinuityDescription(rule),
    )


def rule_sources(policy: Policy) -> list[RuleSource]:
    """Every rule of a policy, in a stable order: the structured fields', then the custom rules."""
    rules = []
    if policy.minimum_age is not None:
        rules.extend(_minimum_age_rules(policy.minimum_age))
    if policy.continuity is not None:
        rules.append(_continuity_rule(policy.continuity))
    if policy.attestations is not None:
        rules.extend(_attestation_rules(policy.attestations))
    if policy.vulnerabilities is not None:  # (the vulnerability rules' module only for a policy that has them)
        from gate.policy.vuln_rules import vulnerability_rules  # noqa: PLC0415

        rules.extend(RuleSource(r.name, r.expression, r.message, r.native, describe_at=r.describe)
                     for r in vulnerability_rules(policy.vulnerabilities))
    rules.extend(RuleSource(r.name, r.expression, r.message, written=True) for r in policy.rules)
    return rules


class RuleError(ValueError):
    """A rule that cannot be used: it does not parse, type-check or fit the cost budget."""

    def __init__(self, problem: RuleProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def compile_rule(
    name: str, expression: str, message: str, *, written: bool = True, native: NativeCheck | None = None,
    describe: Describe | None = None, declared: Declared | None = None,
) -> CompiledRule:
    """A rule checked statically (`gate.policy.cel_check`) and compiled; raises RuleError. `written=False`:
    one gate made of structured fields (no length or per-rule cost limit: see `cel.parse`), with its
    `native` form when it has one and the `describe` that makes its per-file message. Its `message` is
    kept as one line (`gate.policy.describe.one_line`): reports, 403s and the audit log print it as one.
    `declared` (a compiler-made rule with an exact native check): its CEL is checked when first run."""
    if declared is not None and native is not None and not written:
        return CompiledRule(name, expression, one_line(message), Deferred(expression), declared.reads,
                            declared.file_fields, declared.cost, native, written, describe)
    made = cel_program(expression, written=written)
    return CompiledRule(
        name, expression, one_line(message), made.program, made.reads, made.file_fields, made.cost, native, written,
        describe,
    )


class CelProgram(NamedTuple):
    """A rule's CEL, checked and compiled: its program, the identifiers and `file` fields it reads, its cost."""

    program: Any
    reads: frozenset[str]
    file_fields: tuple[str, ...] | None
    cost: int


def cel_program(expression: str, *, written: bool) -> CelProgram:
    """Check `expression` statically (`gate.policy.cel_check`) and compile it; raise RuleError. cel-python
    (its parser, lark, pendulum) is loaded here, when a rule is first compiled to CEL: a policy whose every
    rule has an exact native check is loaded and judged without it."""
    from gate.policy.cel import CELCompileError, fields_read, identifiers, program  # noqa: PLC0415
    from gate.policy.cel_check import check_expression  # noqa: PLC0415

    checked = check_expression(expression, written=written)
    if checked.problem is not None or checked.tree is None:
        raise RuleError(checked.problem or RuleProblem("cel-syntax", "invalid CEL"))
    try:
        compiled = program(checked.tree)
    except CELCompileError as err:
        raise RuleError(RuleProblem("cel-type", str(err))) from err
    return CelProgram(compiled, identifiers(checked.tree), fields_read(checked.tree, "file"), checked.cost)


def compile_rules(policy: Policy) -> tuple[list[CompiledRule], list[Finding]]:
    """The rules of a built policy that compile, and a finding (lint code and issue) for each that does not."""
    rules: list[CompiledRule] = []
    problems: list[Finding] = []
    for source in rule_sources(policy):
        name = source.name
        try:
            rule = compile_rule(name, source.expression, source.message, written=source.written,
                                native=source.native, describe=source.describe, declared=source.declared)
            rules.append(rule if source.describe_at is None else replace(rule, describe_at=source.describe_at))
        except RuleError as err:
            custom = next((rule for rule in policy.rules if rule.name == name), None) if source.written else None
            path = custom.path if custom is not None else ("spec", *name.split("."))
            text = f"rule {name!r}{'' if source.written else ' (the rule gate makes of this field)'}: {err.problem}"
            issue = Issue(format_path(path), text, policy.file, policy.raw.line_of(path))
            problems.append(Finding(err.problem.code, issue))
    # CEL that runs: a rule with a native check is judged by it (its CEL, which `gate compile` shows, is the
    # specification, held to it by tests), so its cost is not spent (spec.vulnerabilities' ignore lists); the
    # attestation rules' natives may leave a file to their CEL, so theirs is
    if (total := sum(rule.cost for rule in rules if rule.native is None or _may_defer(rule))) > MAX_POLICY_COST:
        message = f"the policy's rules together may take {total:,} evaluation steps, more than {MAX_POLICY_COST:,}"
        issue = Issue("spec.rules", message, policy.file, policy.raw.line_of(("spec", "rules")))
        problems.append(Finding("cel-cost", issue))
    return rules, problems


def _may_defer(rule: CompiledRule) -> bool:
    return isinstance(rule.native, TrustedAttestations)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Every rule of a built policy; raises PolicyError (file, line, the rule's path and the place in its
    expression) when one cannot be used."""
    rules, problems = compile_rules(policy)
    if problems:
        raise PolicyError([problem.issue for problem in problems])
    return CompiledPolicy(policy=policy, rules=tuple(rules))


def load_policies(paths: list[Path]) -> list[CompiledPolicy]:
    """Load, validate, build and compile every policy under `paths`; raise PolicyError with all issues."""
    return compile_documents(load_paths(paths))


def load_policy_text(text: str, file: str = "<policy>") -> list[CompiledPolicy]:
    """The same as `load_policies` for YAML text (tests, policies embedded elsewhere)."""
    return compile_documents(load_text(text, file))


def duplicate_name(raw: RawPolicy, name: str, seen: dict[str, str]) -> Issue | None:
    """An issue when an earlier document already used `name`; `seen` maps each name to its first file."""
    if name not in seen:
        seen[name] = raw.file
        return None
    message = f"policy name {name!r} is already used in {seen[name]}"
    return Issue("metadata.name", message, raw.file, raw.line_of(("metadata", "name")))


def compile_documents(documents: list[RawPolicy]) -> list[CompiledPolicy]:
    """Validate, build and compile raw documents; raise PolicyError with every issue of every document."""
    issues: list[Issue] = []
    compiled: list[CompiledPolicy] = []
    names: dict[str, str] = {}
    for raw in documents:
        found = [] if conforms(raw.data) else _schema_issues(raw)
        if found:
            issues.extend(found)
            continue
        policy, coded = build_policy(raw)
        issues.extend(finding.issue for finding in coded)
        if policy is None:
            continue
        if (duplicate := duplicate_name(raw, policy.name, names)) is not None:
            issues.append(duplicate)
        try:
            compiled.append(compile_policy(policy))
        except PolicyError as err:
            issues.extend(err.issues)
    if issues:
        raise PolicyError(issues)
    return compiled


def _schema_issues(raw: RawPolicy) -> list[Issue]:
    """Every schema problem of a document that does not conform (or that `conforms` cannot judge): jsonschema,
    which says what is wrong where, is loaded only for such a document."""
    from gate.policy.schema import schema_issues  # noqa: PLC0415

    return schema_issues(raw)
