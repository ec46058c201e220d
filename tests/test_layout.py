"""The package's layout: wings along the data flow, every import pointing down it.

    config, paper, io (top level)  <  data/  <  runs/  <  measures/  <  studies/  <  report/
    <  book/  <  cli

``measures/`` only reads records (it computes from runs that exist); ``studies/`` decides
which runs a chapter needs and runs them (through ``runs.lab``), then measures them.

A module may import from its own wing or from any wing before it, never from one after it.
Imports inside functions count as well: a lazy import is still a dependency. The top level of
``erase/`` keeps at most six modules; everything else lives in a wing.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "erase"
# The parts of the package in data-flow order; each is (name, the modules or wings it holds).
# The package's own __init__ ("erase") is at the bottom with config and paper.
FLOW = (
    ("top level", {"erase", "erase.config", "erase.paper", "erase.io"}),
    ("data", {"erase.data"}),
    ("runs", {"erase.runs"}),
    ("measures", {"erase.measures"}),
    ("studies", {"erase.studies"}),
    ("report", {"erase.report"}),
    ("book", {"erase.book"}),
    ("command line", {"erase.cli", "erase.__main__"}),
)
MAX_TOP_LEVEL_MODULES = 6


def part_of(module: str) -> int:
    """Index in FLOW of the part that holds ``module`` (a dotted name under ``erase``)."""
    for i, (_, members) in enumerate(FLOW):
        if any(module == m or (m != "erase" and module.startswith(m + ".")) for m in members):
            return i
    raise AssertionError(f"{module} belongs to no part of the data flow; put it in a wing, or "
                         f"add it to FLOW in tests/test_layout.py if the layout itself changed")


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(module: str, source: str, is_package: bool = False):
    """(line, dotted name) of every ``erase`` module that ``module``'s source imports."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "erase" or alias.name.startswith("erase."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = package.split(".")
                if node.level - 1 >= len(up):
                    yield node.lineno, "." * node.level + (node.module or "")  # beyond erase
                    continue
                base = ".".join(up[:len(up) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if not (base == "erase" or base.startswith("erase.")):
                continue
            for alias in node.names:  # `from erase.runs import lab` imports erase.runs.lab
                candidate = f"{base}.{alias.name}"
                yield node.lineno, candidate if _is_module(candidate) else base


def upward_imports(module: str, source: str, is_package: bool = False) -> list[str]:
    """One message per import of ``module`` that points up the data flow."""
    here = part_of(module)
    problems = []
    for line, target in imported_modules(module, source, is_package):
        if not target.startswith("erase"):
            problems.append(f"{module} (line {line}) imports {target!r}, outside the package")
            continue
        there = part_of(target)
        if there > here:
            problems.append(f"{module} (line {line}) imports {target}: {FLOW[there][0]} comes "
                            f"after {FLOW[here][0]} in the data flow, so this points up")
    return problems


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_belongs_to_a_part_of_the_flow():
    for path in package_modules():
        part_of(module_name(path))  # raises, naming the module, when it fits nowhere


def test_imports_point_only_down_the_data_flow():
    problems = []
    for path in package_modules():
        problems += upward_imports(module_name(path), path.read_text(),
                                   is_package=path.name == "__init__.py")
    assert not problems, "imports that point up the data flow:\n" + "\n".join(problems)


def test_the_check_sees_upward_imports_of_every_form():
    """The rule is not vacuous: absolute, relative and lazy imports up the flow are caught."""
    assert upward_imports("erase.runs.engine", "from ..studies import study\n")
    assert upward_imports("erase.runs.engine", "import erase.studies.study\n")
    assert upward_imports("erase.runs.engine", "from erase.studies.study import interval\n")
    assert upward_imports("erase.runs.engine", "def f():\n    from ..report import tables\n")
    assert upward_imports("erase.data", "from ..runs import lab\n", is_package=True)
    assert upward_imports("erase.config", "from . import cli\n")
    assert upward_imports("erase.data.split", "from ... import something\n")  # beyond erase
    message, = upward_imports("erase.runs.engine", "x = 1\nfrom ..studies import study\n")
    assert message.startswith("erase.runs.engine (line 2) imports erase.studies.study")
    assert upward_imports("erase.measures.fits", "from ..studies import study\n")
    # and what is allowed: the own wing, the wings before, the top level's config and paper
    assert not upward_imports("erase.studies.study",
                              "from ..runs.lab import Lab\nfrom ..measures import fits\n"
                              "from .. import data, paper\nfrom ..config import to_dict\n")
    assert not upward_imports("erase.cli", "from .book import build\nfrom .runs import lab\n")


def test_the_top_level_keeps_at_most_six_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, (
        f"{len(top)} modules at the top level of erase/ ({', '.join(top)}); at most "
        f"{MAX_TOP_LEVEL_MODULES}: put the new one in the wing of the data flow it belongs to")


def test_measures_only_read_records():
    """No module of measures/ starts a run: none imports the Lab, run_many or the engine
    (the studies wing does)."""
    starts_runs = {"erase.runs.lab", "erase.runs.engine"}
    problems = []
    for path in sorted((PACKAGE / "measures").glob("*.py")):
        module = module_name(path)
        source = path.read_text()
        for line, target in imported_modules(module, source, path.name == "__init__.py"):
            if target in starts_runs:
                problems.append(f"{module} (line {line}) imports {target}")
        if "run_many" in source:
            problems.append(f"{module} names run_many")
    assert not problems, "\n".join(problems)
