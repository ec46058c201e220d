"""The score of the last mutation run (``make mutants``), per module, and every surviving mutant.

Reads mutmut's own results (``mutants/**/*.py.meta``: an exit code per mutant) and prints a
Markdown table for benchmarks/RESULTS.md. A mutant counts as killed when a test failed on it
(or it ran past its time limit, or crashed the test process); "survived" and "no tests" (no
selected test reaches its function) are not killed; mutants not run yet are listed apart.
``python benchmarks/mutation_scores.py --diff`` also prints each survivor's change.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KILLED = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout",
          152: "timeout", 255: "timeout", -11: "crashed", -9: "crashed", 37: "type check"}
NOT_KILLED = {0: "survived", 5: "no tests", 33: "no tests"}


def status(code) -> str:
    if code is None:
        return "not run"
    return KILLED.get(code) or NOT_KILLED.get(code) or "suspicious"


def results(root: Path = ROOT) -> dict:
    """{module: {mutant: status}} of every mutated file."""
    out = {}
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        module = meta.relative_to(root / "mutants").as_posix()[:-len(".py.meta")].replace("/", ".")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            out[module] = {name: status(code) for name, code in codes.items()}
    return out


def table(found: dict) -> str:
    lines = ["| module | mutants | killed | survived | no tests | not run | score |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for module, by_mutant in found.items():
        counts = Counter(by_mutant.values())
        killed = sum(counts[s] for s in set(KILLED.values()))
        run = len(by_mutant) - counts["not run"]
        score = f"{100 * killed / run:.1f}%" if run else "-"
        lines.append(f"| {module} | {len(by_mutant)} | {killed} | {counts['survived']} | "
                     f"{counts['no tests']} | {counts['not run']} | {score} |")
    return "\n".join(lines)


def main(argv) -> int:
    found = results()
    if not found:
        print("no mutation results: run `make mutants` first", file=sys.stderr)
        return 1
    print(table(found))
    print()
    for module, by_mutant in found.items():
        left = [m for m, s in by_mutant.items() if s in ("survived", "no tests", "suspicious")]
        for name in left:
            print(f"- `{name}`: {by_mutant[name]}")
            if "--diff" in argv:
                diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT,
                                      capture_output=True, text=True).stdout
                print("\n".join("    " + line for line in diff.splitlines()[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
