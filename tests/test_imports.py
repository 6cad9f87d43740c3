"""The import structure of `gate/`: no cycle between its modules (an import inside a function counts like
any other: a lazy import is how a cycle hides), no import inside a function but where a subcommand defers
what only it needs, and a command line that starts without the server's libraries."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "gate"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under `root` (a package is its `__init__`)."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """`name`, or the nearest package or module above it that is one of `modules` (None: not ours)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of `modules` that `module` imports, by every import statement wherever it is (in a
    function, under `if TYPE_CHECKING:`); `from p import x` is `p.x` when that is a module, else `p`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(_known(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else _known(base, modules))
    return {name for name in found if name is not None and name != module}


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = module_names(root)
    return {module: imported(module, path, modules) for module, path in modules.items()}


def test_gate_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert "gate.proxy.app" in graph and "gate.proxy.state" in graph["gate.proxy.app"]  # the graph is read
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle in gate/: {' -> '.join(err.args[1])}") from None
    assert set(order) == set(graph)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import B\nA = 1\n")
    (package / "b.py").write_text("B = 2\n\ndef later() -> int:\n    from pkg.a import A\n    return A\n")
    (package / "c.py").write_text("from . import a\n")
    graph = import_graph(package)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.a"}}


# Imports inside functions that are there on purpose: `gate serve` loads Flask and gunicorn when it runs, a
# progress bar loads rich when it draws on a terminal, the Redis and PostgreSQL engines load their client
# libraries (the `fleet` extra) when a URL names them, verification loads sigstore when there is evidence.
DEFERRED = {
    "gate/commands/serve.py": {"gate.proxy.server"},
    "gate/proxy/stores/__init__.py": {
        "gate.proxy.stores.redis", "gate.proxy.stores.postgres", "gate.proxy.stores.audit_table",
    },
    "gate/commands/progress.py": {"rich.console", "rich.progress"},
    # the Sigstore stack (sigstore, tuf, pypi-attestations, pydantic: most of a second) only for evidence
    "gate/verify/api.py": {"gate.verify.sigstore", "gate.verify.evidence", "gate.verify.cosign"},
    "gate/commands/check.py": {
        "gate.sources.rekor",  # the Rekor lookup (sigstore) only with --rekor-url
        # the index client and pip's resolver (requests, urllib3) only for planned files (pylock, pip
        # reports, requirements), an explicit environment's downloads only for a file that may be one
        "gate.preinstall.check", "gate.preinstall.gather", "gate.sources.pip_report", "gate.sources.conda_explicit",
    },
    # cel-python (its parser, lark, pendulum) only when a rule runs as CEL: the compiler's structured rules with
    # an exact native check (minimumAge, attestations.required) are loaded and judged without it
    "gate/policy/compile.py": {
        "gate.policy.cel", "gate.policy.cel_check", "gate.policy.schema",
        "gate.policy.slsa_rules", "gate.policy.vuln_rules",  # a structured field's rules only for a policy with it
    },
    "gate/report/check.py": {"gate.report.sarif"},  # SARIF only for --format sarif
    "gate/policy/conformance.py": {"gate.policy.cel"},  # (and jsonschema only for a document that does not conform)
    "gate/evaluate.py": {"gate.policy.activation"},
    "gate/commands/common.py": {"gate.sources.osv"},  # the OSV reader (zip, CVSS) only with --osv
    "gate/sources/pylock.py": {"tomllib"},  # a TOML parser only when a pylock.toml is read
    "gate/policy/model.py": {"packaging.specifiers"},  # only for an exception's selector with a version specifier
    # the HTTP client (requests, urllib3) only when release assets are fetched
    "gate/gather/releases.py": {"gate.sources.http"},
    # a subcommand's module (and all it loads) only when that subcommand runs
    "gate/cli.py": {"gate.commands"},
}


def test_no_import_inside_a_function_but_a_deferred_subcommand() -> None:
    hidden = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden += [
                    f"{path.relative_to(REPO)}:{inner.lineno}"
                    for inner in ast.walk(node)
                    if isinstance(inner, ast.Import | ast.ImportFrom)
                    and not (isinstance(inner, ast.ImportFrom) and inner.module in DEFERRED.get(
                        path.relative_to(REPO).as_posix(), set()))
                ]
    assert hidden == []


def test_the_command_line_starts_without_the_server() -> None:
    """`gate check` and the policy tools never pay for importing Flask, Werkzeug, gunicorn or a progress bar."""
    heavy = ("flask", "werkzeug", "gunicorn", "rich.progress")
    probe = f"import sys, gate.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert loaded.stdout.strip() == "[]"
