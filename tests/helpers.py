"""Small helpers shared by the loop and engine tests (imported as ``helpers``: pytest puts
``tests/`` on the path)."""
from __future__ import annotations

import torch

from erase.runs.models import build_model


def fresh_model(smoke, seed=0):
    """The smoke profile's network with the weights seed ``seed`` gives."""
    torch.manual_seed(seed)
    return build_model(smoke.model)


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
