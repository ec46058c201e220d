"""Small helpers shared by the loop and engine tests (imported as ``helpers``: pytest puts
``tests/`` on the path)."""
from __future__ import annotations

import os

import torch

from erase.runs.models import build_model


def shared_unless_mutating(fixture_name: str, config) -> str:
    """Scope of a fixture that runs the loop once for several tests: the module, except under
    ``make mutants``. mutmut gives each mutant only the tests during which the mutated function
    ran, and a shared fixture runs during its first test alone: the other tests that read its
    result would never meet the mutant (they killed mutants mutmut counted as survivors).
    mutmut sets MUTANT_UNDER_TEST while it maps and runs tests; then every test makes its own."""
    return "function" if os.environ.get("MUTANT_UNDER_TEST") else "module"


def fresh_model(smoke, seed=0):
    """The smoke profile's network with the weights seed ``seed`` gives."""
    torch.manual_seed(seed)
    return build_model(smoke.model)


def record_calls(monkeypatch, module, name: str) -> list:
    """Wrap ``module.name`` so that every call is recorded as (args, kwargs, result); the
    original still runs and its result is returned."""
    calls = []
    real = getattr(module, name)

    def recorded(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    monkeypatch.setattr(module, name, recorded)
    return calls


class _MakesDirectory:
    """Unpickling this object creates a directory: code a checkpoint must never run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def save_with_code(path, state: dict, marker) -> None:
    """Write checkpoint ``path``: ``state`` plus an object whose unpickling would create the
    directory ``marker`` (a load that is not weights_only runs it)."""
    torch.save({**state, "x": _MakesDirectory(marker)}, path)


class Killed(Exception):
    """Raised where a run would have died: by a test's evaluate, or by ``kill_raises``."""


def kill_raises(monkeypatch) -> list:
    """The loop's stop hooks (``STOP_AFTER_*``) raise Killed instead of sending SIGKILL, so the
    test process lives on; returns the (pid, signal) of every kill asked for."""
    from erase.runs import engine

    calls = []

    def kill(pid, sig):
        calls.append((pid, sig))
        raise Killed

    monkeypatch.setattr(engine.os, "kill", kill)
    return calls


def impatient(monkeypatch) -> None:
    """The plateau scheduler made to drop after every epoch but the first (no epoch improves
    by 10, no bad epoch is tolerated)."""
    from erase.runs import engine

    for key, value in (("patience", 0), ("threshold", 10.0), ("threshold_mode", "abs")):
        monkeypatch.setitem(engine.PLATEAU, key, value)


def differs(a, b) -> bool:
    """Whether ``same`` finds a difference."""
    try:
        same(a, b)
    except AssertionError:
        return True
    return False


def same(a, b, where="state") -> None:
    """Nested state dicts or checkpoint contents equal, tensors bit for bit (dtype included);
    a failure names the path to the first difference."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), (where, sorted(a), sorted(b))
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


# The front matter of a chapter written as the book's are (jupytext MyST, the python3 kernel).
FRONT_MATTER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def chapter(title: str, body: str, scale: str = "default") -> str:
    """A small book's chapter: front matter, ``title``, the parameters cell every chapter
    has (``scale``, ``device``, ``results_dir``), then ``body``."""
    return (f'{FRONT_MATTER}\n# {title}\n\n```{{code-cell}} ipython3\n:tags: [parameters]\n'
            f'scale = "{scale}"\ndevice = "cpu"\nresults_dir = None\n```\n\n{body}')
