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
