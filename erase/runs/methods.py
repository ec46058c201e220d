"""The unlearning methods of the paper, as rows of data, and the loss of one step.

A method says what happens to forget samples (nothing, gradient ascent, noisy label), which
weight penalty applies (none or gamma * l1), which retain data it fine-tunes on (none, the
subset Dr', all of Dr) and where it starts (the original model G or scratch). One step's loss
is the sum of the row's terms; forget and retain samples are paired as in the paper's
Algorithms 1 and 2. A new method is a new row.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import torch
from fastmri.losses import SSIMLoss

from ..config import ConfigError
from .models import reconstruct

FORGET_TERMS = ("none", "ascent", "noisy_label")
RETAIN_DATA = ("none", "subset", "all")


@dataclass(frozen=True)
class Method:
    name: str
    start: str  # "G" (the original model, with its optimizer state) or "scratch"
    forget: str  # one of FORGET_TERMS
    penalty: str  # "none" or "l1"
    retain: str  # one of RETAIN_DATA
    summary: str


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("Retrain", "scratch", "none", "none", "all", "train from scratch on Dr: the oracle"),
    Method("FT", "G", "none", "none", "subset", "fine-tune on Dr'"),
    Method("Full FT", "G", "none", "none", "all", "fine-tune on all of Dr"),
    Method("GA-l1", "G", "ascent", "l1", "none", "-J(x_f, y_f) + gamma |theta|_1"),
    Method("NL", "G", "noisy_label", "none", "none", "J(x_f, y_f + lambda N(0, I))"),
    Method("GA-l1-FT", "G", "ascent", "l1", "subset", "GA-l1 plus J on Dr' (Algorithm 1)"),
    Method("NL-FT", "G", "noisy_label", "none", "subset", "NL plus J on Dr' (Algorithm 2)"),
)}

# The six unlearning methods of Table 1, in the paper's order (Retrain is the reference).
UNLEARNING = ("FT", "Full FT", "GA-l1", "NL", "GA-l1-FT", "NL-FT")

# Any change to the table changes this, and so the key of every unlearning result.
METHODS_VERSION = hashlib.sha256(
    json.dumps([asdict(m) for m in METHODS.values()], sort_keys=True).encode()).hexdigest()[:12]


def get_method(name: str) -> Method:
    """The row called ``name``, or a ConfigError listing the known methods."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")
    return METHODS[name]


class ReconstructionLoss(torch.nn.Module):
    """J: the public code's SSIM loss + 1e-5 * L1 (``ssim+l1``), or the paper's written L1."""

    def __init__(self, kind: str = "ssim+l1", l1_weight: float = 1e-5):
        super().__init__()
        if kind not in ("ssim+l1", "l1"):
            raise ConfigError(f"unknown loss {kind!r}: choose 'ssim+l1' or 'l1'")
        self.kind, self.l1_weight = kind, l1_weight
        self.ssim = SSIMLoss()

    def forward(self, output, target, max_value):
        l1 = torch.nn.functional.l1_loss(output, target)
        if self.kind == "l1":
            return l1
        ssim = self.ssim(output.unsqueeze(1), target.unsqueeze(1), data_range=max_value)
        return ssim + self.l1_weight * l1


def noisy_target(target, max_value, lam: float, generator: torch.Generator):
    """y + lambda * max(y) * N(0, I): the noise is relative to each target's maximum.

    The paper's lambda = 1e-5 was on fastMRI's raw target scale; relative to the target's
    maximum the same number means the same thing on synthetic and real data.
    """
    noise = torch.randn(target.shape, generator=generator, dtype=target.dtype)
    return target + lam * max_value.reshape(-1, 1, 1) * noise.to(target.device)


def l1_norm(model) -> torch.Tensor:
    """||theta||_1 over all trainable weights."""
    return sum(p.abs().sum() for p in model.parameters() if p.requires_grad)


def step_terms(method: Method, model, loss_fn, forget=None, retain=None, *, gamma: float = 0.0,
               lam: float = 0.0, generator: torch.Generator | None = None) -> dict:
    """The terms of one step of ``method`` as tensors: forget, penalty and retain."""
    terms = {}
    if forget is not None and method.forget != "none":
        output = reconstruct(model, forget)
        max_value = forget.max_value.to(output)
        if method.forget == "ascent":
            terms["forget"] = -loss_fn(output, forget.target, max_value)
        else:
            label = noisy_target(forget.target, max_value, lam, generator)
            terms["forget"] = loss_fn(output, label, max_value)
    if method.penalty == "l1":
        terms["penalty"] = gamma * l1_norm(model)
    if retain is not None:
        output = reconstruct(model, retain)
        terms["retain"] = loss_fn(output, retain.target, retain.max_value.to(output))
    if not terms:
        raise ValueError(f"method {method.name} has no term for this step")
    return terms


def step_loss(method: Method, model, loss_fn, forget=None, retain=None, **knobs):
    """One step's loss, the sum of the row's terms, and the terms as floats for logging."""
    terms = step_terms(method, model, loss_fn, forget, retain, **knobs)
    return sum(terms.values()), {k: float(v.detach()) for k, v in terms.items()}


def validate_knobs(method: str, retain_fraction, gamma, lam, epochs=None):
    """Check unlearning knobs with the messages a user needs; returns cleaned values."""
    from ..config import check_fraction, check_int, check_number

    get_method(method)
    cleaned = (check_fraction("retain fraction", retain_fraction),
               check_number("gamma", gamma), check_number("lambda", lam))
    return (*cleaned, None if epochs is None else check_int("epochs", epochs, minimum=1))
