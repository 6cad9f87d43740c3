"""`gate compile`: print the CEL each policy compiles to, with its match and exceptions."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gate.commands.common import add_policy_option, policies
from gate.policy.compile import CompiledPolicy

HELP = "print the compiled CEL of policies"


def configure(parser: argparse.ArgumentParser) -> None:
    add_policy_option(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _as_json(policy: CompiledPolicy) -> dict[str, Any]:
    model = policy.policy
    return {
        "policy": policy.name,
        "file": model.file,
        "mode": model.mode.value,
        "match": {
            "ecosystems": sorted(e.value for e in model.match.ecosystems) if model.match.ecosystems else None,
            "packages": [p.source for p in model.match.packages],
            "exclude": [p.source for p in model.match.exclude],
        },
        "rules": [{"name": r.name, "expression": r.expression, "message": r.message} for r in policy.rules],
        "exceptions": [
            {
                "packages": [str(s.name.source) + (str(s.versions) if s.versions else "") for s in e.packages],
                "waive": list(e.waive),
                "expires": e.expires.isoformat(),
                "reason": e.reason,
            }
            for e in model.exceptions
        ],
    }


def _as_text(policy: CompiledPolicy) -> str:
    data = _as_json(policy)
    match = data["match"]
    lines = [
        f"# policy {policy.name} ({data['mode']}) from {data['file']}",
        f"# match: ecosystems={match['ecosystems'] or 'any'} packages={match['packages'] or ['*']}"
        f" exclude={match['exclude']}",
    ]
    for exc in data["exceptions"]:
        lines.append(f"# exception: {exc['packages']} waive {exc['waive']} until {exc['expires']}: {exc['reason']}")
    for rule in policy.rules:
        lines += [f"rule {rule.name}:", f"  message: {rule.message}", f"  cel: {rule.expression}"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    compiled = policies(args)
    if args.format == "json":
        print(json.dumps([_as_json(p) for p in compiled], indent=2))
    else:
        print("\n\n".join(_as_text(p) for p in compiled))
    return 0
