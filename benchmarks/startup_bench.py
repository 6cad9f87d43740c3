"""Benchmark: `gate check` of one wheel under an age-only policy against `pip --version`, wall time.

Each command runs --runs times, the commands alternating (a noisy neighbour slows both alike); the best
wall time and the best CPU time (user + system, from `getrusage`) of each are kept: on a shared machine the
wall time is mostly waiting for a core, so the CPU time is the steadier figure. The wheel is examples/pypi's
CircleCI wheel copied without its attestation (no evidence: nothing to verify). `gate check` is this
checkout's (`PYTHONPATH=<repo> python -m gate`, not the venv's `gate` script, which runs whichever checkout
is installed in it); with `--baseline DIR`, the same `gate check` also runs from another checkout
(`PYTHONPATH=DIR python -m gate`, e.g. /work/main: the code before a change).

pip's modules are byte-compiled when pip is installed; a checkout's are compiled on first import and cached
in `__pycache__`, unless PYTHONDONTWRITEBYTECODE is set (as on the project's machines): then every run of
`gate check` compiles gate's modules from source. `--bytecode` compiles them first (`compileall`, what `pip
install` does for an installed gate), so both sides run from bytecode.

Run: `.venv/bin/python benchmarks/startup_bench.py [--runs 9] [--baseline /work/main] [--bytecode]`
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WHEEL = REPO / "examples" / "pypi" / "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"
AGE = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: age}\nspec: {minimumAge: 7d}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--baseline", type=Path, help="another checkout of gate to time the same check from")
    parser.add_argument("--bytecode", action="store_true",
                        help="byte-compile this checkout's gate first, as installing gate does (writes __pycache__)")
    args = parser.parse_args()
    if args.bytecode:  # this checkout only (a --baseline checkout is run as it is)
        compileall.compile_dir(REPO / "gate", quiet=1)
    work = Path(tempfile.mkdtemp(prefix="gate-startup-"))
    try:
        shutil.copy(WHEEL, work / WHEEL.name)
        (work / "age.yaml").write_text(AGE)
        check = ["check", str(work / WHEEL.name), "--policy", str(work / "age.yaml"),
                 "--uploaded", "2025-01-01T00:00:00Z", "--now", "2025-02-01T00:00:00Z"]
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "pip --version": ([str(BIN / "pip"), "--version"], dict(os.environ)),
            "gate check": ([sys.executable, "-m", "gate", *check], {**os.environ, "PYTHONPATH": str(REPO)}),
        }
        if args.baseline:
            env = {**os.environ, "PYTHONPATH": str(args.baseline)}
            commands[f"gate check ({args.baseline})"] = ([sys.executable, "-m", "gate", *check], env)
        best = dict.fromkeys(commands, float("inf"))
        cpu = dict.fromkeys(commands, float("inf"))
        for _ in range(args.runs):
            for name, (command, env) in commands.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                subprocess.run(command, env=env, cwd=work, stdout=subprocess.DEVNULL, check=True)
                best[name] = min(best[name], time.perf_counter() - started)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                cpu[name] = min(cpu[name], used)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pip, pip_cpu = best["pip --version"], cpu["pip --version"]
    compiled = "gate byte-compiled first" if args.bytecode else "gate from source as the checkout has it"
    print(f"best of {args.runs} alternating runs ({compiled}): wall time, and CPU time (user + system)\n")
    print("| command | wall ms | / pip --version | CPU ms | / pip --version |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in best.items():
        used = cpu[name]
        print(f"| {name} | {seconds * 1000:.0f} | {seconds / pip:.2f} | {used * 1000:.0f} | {used / pip_cpu:.2f} |")
    print("\ntarget: gate check within 2x pip --version")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
