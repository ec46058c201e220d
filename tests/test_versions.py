"""No stale results: the code that computes a run's numbers is the code ENGINE_VERSION was set for.

Run keys hold configs and ``engine.ENGINE_VERSION``; ``engine.ENGINE_CODE`` records a hash of
each piece of code that computes a run's numbers, as of the version's last bump (or last
confirmation). Any change to that code fails here until someone decides whether numbers change
(bump the version: every stored run is recomputed) or not (keep it), and writes the new hashes.
Comments, docstrings and layout are not part of a hash: rewording them asks nothing.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import textwrap

import pytest

from erase.runs import engine

RECORD = "ENGINE_CODE"  # the record's own assignment is left out of engine's hash


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _without_record(tree: ast.Module) -> ast.Module:
    tree.body = [n for n in tree.body
                 if not (isinstance(n, (ast.Assign, ast.AnnAssign)) and any(
                     isinstance(t, ast.Name) and t.id == RECORD
                     for t in (n.targets if isinstance(n, ast.Assign) else [n.target])))]
    return tree


def normalized(source: str) -> str:
    """The syntax tree of ``source``: no comments, docstrings, line numbers or layout."""
    tree = _without_record(_without_docstrings(ast.parse(textwrap.dedent(source))))
    return ast.dump(tree, include_attributes=False)


def code_hash(source: str) -> str:
    return hashlib.sha256(normalized(source).encode()).hexdigest()[:16]


def source_of(name: str) -> str:
    """Source of ``module`` or ``module:qualified.name``."""
    module_name, _, qualname = name.partition(":")
    obj = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
        obj = getattr(obj, part)
    return inspect.getsource(obj)


def current() -> dict:
    return {name: code_hash(source_of(name)) for name in engine.ENGINE_CODE}


def test_the_code_that_computes_numbers_is_what_engine_version_was_set_for():
    now = current()
    changed = {name: h for name, h in now.items() if engine.ENGINE_CODE[name] != h}
    listing = "\n".join(f'    "{n}": "{h}",' for n, h in now.items())
    assert not changed, (
        f"the code that computes a run's numbers changed since ENGINE_VERSION "
        f"{engine.ENGINE_VERSION} was set: {', '.join(changed)}. If the change can change any "
        f"number a run produces (a loss, a step, the order of an epoch, a mask, a metric), bump "
        f"ENGINE_VERSION in erase/runs/engine.py, which recomputes every stored run; if it "
        f"cannot (a refactor, a message), keep the version. Either way, record the code as it "
        f"is now in ENGINE_CODE:\n{listing}")


# What must stay guarded wherever it moves (modules move between wings): each of these must be
# inside a module of ENGINE_CODE, or be an entry of its own.
COMPUTES_NUMBERS = (
    "erase.runs.engine:run_loop", "erase.runs.engine:optimizer_step",
    "erase.runs.engine:epoch_steps", "erase.runs.engine:load_start",
    "erase.runs.engine:make_scheduler", "erase.runs.engine:prepare",
    "erase.runs.methods:step_terms", "erase.runs.methods:ReconstructionLoss",
    "erase.runs.methods:noisy_target", "erase.runs.models:reconstruct",
    "erase.runs.models:build_model", "erase.runs.evaluate:volume_metrics",
    "erase.runs.evaluate:evaluate_dataset", "erase.data.loading:mask_func",
    "erase.data.loading:Split", "erase.data.split:retain_subset", "erase.runs.lab:Lab.loop",
)


@pytest.mark.parametrize("name", COMPUTES_NUMBERS)
def test_every_function_that_computes_numbers_is_guarded(name):
    module_name, _, qualname = name.partition(":")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    where = inspect.getmodule(obj).__name__  # where it lives now, not where it is imported
    assert where in engine.ENGINE_CODE or f"{where}:{obj.__qualname__}" in engine.ENGINE_CODE, (
        f"{name} (defined in {where}) is not covered by engine.ENGINE_CODE: add its module")


def test_every_record_entry_names_existing_code():
    for name in engine.ENGINE_CODE:
        assert source_of(name).strip(), name


def test_a_hash_sees_code_and_ignores_comments_docstrings_and_layout():
    base = '''
def step(x, lr=0.1):
    """Take a step."""
    return x - lr * x  # descend
'''
    reworded = '''
def step(x, lr=0.1):
    """Take one step down the gradient (the docstring changed)."""
    # a new comment
    return x - lr*x
'''
    for changed in (base.replace("0.1", "0.2"), base.replace("x - lr", "x + lr"),
                    base.replace("return x - lr * x", "return x - lr * x * x")):
        assert code_hash(changed) != code_hash(base), changed
    assert code_hash(reworded) == code_hash(base)
    # the record's own line is not part of its module's hash, every other assignment is
    with_record = base + f'\n{RECORD} = {{"a": "0123"}}\n'
    assert code_hash(with_record) == code_hash(base + f'\n{RECORD} = {{"a": "4567"}}\n')
    assert code_hash(base + "\nPLATEAU = {'patience': 10}\n") != \
        code_hash(base + "\nPLATEAU = {'patience': 11}\n")


def test_a_change_to_the_loop_is_caught(monkeypatch):
    """What the guard does when the loop changes: the engine's hash no longer matches."""
    real = inspect.getsource

    def edited(obj):
        text = real(obj)
        return text.replace("optimizer.step()", "optimizer.step(); optimizer.step()") \
            if obj is engine else text

    monkeypatch.setattr(inspect, "getsource", edited)
    assert current()["erase.runs.engine"] != engine.ENGINE_CODE["erase.runs.engine"]
    with pytest.raises(AssertionError, match="bump ENGINE_VERSION"):
        test_the_code_that_computes_numbers_is_what_engine_version_was_set_for()
