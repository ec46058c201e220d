"""The unlearning methods of the paper, as rows of data, and the loss of one step.

A method says what happens to forget samples (nothing, gradient ascent, noisy label), which
weight penalty applies (none or l1), which retain data it fine-tunes on (none, the subset Dr',
all of Dr) and where it starts (the original model G or scratch). One step's loss is built
from the row's terms; how forget and retain samples share a step is the protocol's ``steps``
switch (``erase.config.Protocol``). A new method is a new row.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import torch
from fastmri.losses import SSIMLoss

from ..config import ConfigError, Protocol
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
    Method("NL", "G", "noisy_label", "none", "none", "J(x_f, y_f + noise)"),
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


def ascent_weights(protocol: Protocol, gamma: float | None) -> tuple[float, float]:
    """(weight of -J, gamma) of a GA-l1 forget sample under the protocol's ``ga_l1`` switch.

    The public code computes ``loss *= -1; loss += loss + l1_regularization(net)``: -2 J plus an
    unweighted l1 norm. The text writes -J + gamma |theta|_1 without giving gamma (``gamma``,
    default 1e-5). Under ``code`` a ``gamma`` given explicitly replaces the 1.
    """
    if protocol.ga_l1 == "code":
        return 2.0, 1.0 if gamma is None else gamma
    return 1.0, 1e-5 if gamma is None else gamma


class ReconstructionLoss(torch.nn.Module):
    """J: the public code's SSIM loss + 1e-5 * L1 (``ssim+l1``), or the paper's written L1.

    ``per_sample`` gives one value per slice of the batch, so that forget and retain slices in
    one batch can carry different terms; calling the module gives their mean.
    """

    def __init__(self, kind: str = "ssim+l1", l1_weight: float = 1e-5):
        super().__init__()
        if kind not in ("ssim+l1", "l1"):
            raise ConfigError(f"unknown loss {kind!r}: choose 'ssim+l1' or 'l1'")
        self.kind, self.l1_weight = kind, l1_weight
        self.ssim = SSIMLoss()

    def per_sample(self, output, target, max_value) -> torch.Tensor:
        l1 = (output - target).abs().mean(dim=(-2, -1))
        if self.kind == "l1":
            return l1
        similarity = 1 - self.ssim(output.unsqueeze(1), target.unsqueeze(1),
                                   data_range=max_value, reduced=False)
        return (1 - similarity.mean(dim=(1, 2, 3))) + self.l1_weight * l1

    def forward(self, output, target, max_value):
        return self.per_sample(output, target, max_value).mean()


def noisy_target(target, lam: float, generator: torch.Generator, form: str = "half_normal"):
    """The noisy label: y + lambda |N(0, I)| (``half_normal``, the public code, which adds
    ``abs(randn * lambda)`` to the raw target) or y + lambda N(0, I) (``gaussian``, the text).

    lambda is on the raw target scale (the paper's 1e-5; our synthetic files share fastMRI's
    scale, ``simulate.SIGNAL_SCALE``); the SSIM data range stays the clean target's maximum.
    """
    noise = torch.randn(target.shape, generator=generator, dtype=target.dtype)
    if form == "half_normal":
        noise = noise.abs()
    elif form != "gaussian":
        raise ConfigError(f"unknown noisy label {form!r}: choose 'half_normal' or 'gaussian'")
    return target + lam * noise.to(target.device)


def l1_norm(model) -> torch.Tensor:
    """||theta||_1 over all trainable weights."""
    return sum(p.abs().sum() for p in model.parameters() if p.requires_grad)


def forget_losses(method: Method, output, batch, loss_fn, protocol: Protocol, lam: float,
                  ascent: float, generator) -> torch.Tensor:
    """Per forget slice: -ascent * J (gradient ascent) or J against a noisy label."""
    max_value = batch.max_value.to(output)
    if method.forget == "ascent":
        return -ascent * loss_fn.per_sample(output, batch.target, max_value)
    label = noisy_target(batch.target, lam, generator, protocol.noisy_label)
    return loss_fn.per_sample(output, label, max_value)


def step_terms(method: Method, model, loss_fn, forget=None, retain=None, *,
               protocol: Protocol = Protocol(), gamma: float | None = None, lam: float = 0.0,
               generator: torch.Generator | None = None) -> dict:
    """The terms of one step of ``method`` as tensors: forget, penalty and retain.

    ``forget`` and ``retain`` are batches (or None). Under ``steps="paired"`` (the text) a
    step is a forget batch and a retain batch: the mean forget term, the penalty once and the
    mean retain term are added. Under ``steps="alternating"`` (the code) the step's batch is
    drawn from one stream of both, every slice carries exactly its own term (a forget slice its
    forget term and the penalty, a retain slice J) and the step's loss is their mean.
    """
    ascent, gamma = ascent_weights(protocol, gamma)
    use_forget = forget is not None and method.forget != "none"
    n_f = len(forget.target) if use_forget else 0
    n_r = len(retain.target) if retain is not None else 0
    if n_f + n_r == 0:
        raise ValueError(f"method {method.name} has no term for this step")
    outputs = _reconstruct_both(model, forget if use_forget else None, retain)
    terms = {}
    if protocol.steps == "paired":
        if n_f:
            terms["forget"] = forget_losses(method, outputs[0], forget, loss_fn, protocol, lam,
                                            ascent, generator).mean()
        if method.penalty == "l1" and n_f:
            terms["penalty"] = gamma * l1_norm(model)
        if n_r:
            terms["retain"] = loss_fn(outputs[1], retain.target, retain.max_value.to(outputs[1]))
        return terms
    total = n_f + n_r
    if n_f:
        terms["forget"] = forget_losses(method, outputs[0], forget, loss_fn, protocol, lam,
                                        ascent, generator).sum() / total
        if method.penalty == "l1":
            terms["penalty"] = (n_f / total) * gamma * l1_norm(model)
    if n_r:
        terms["retain"] = loss_fn.per_sample(outputs[1], retain.target,
                                             retain.max_value.to(outputs[1])).sum() / total
    return terms


def _reconstruct_both(model, forget, retain):
    """(forget output, retain output): one forward pass when the two batches can share one."""
    if forget is None or retain is None:
        return (None if forget is None else reconstruct(model, forget),
                None if retain is None else reconstruct(model, retain))
    if (forget.masked_kspace.shape[1:] != retain.masked_kspace.shape[1:]
            or forget.target.shape[1:] != retain.target.shape[1:]
            or not torch.equal(_low(forget), _low(retain))):
        return reconstruct(model, forget), reconstruct(model, retain)
    both = forget._replace(**{k: torch.cat([getattr(forget, k), getattr(retain, k)]) for k in
                              ("masked_kspace", "mask", "target", "max_value",
                               "num_low_frequencies")})
    output = reconstruct(model, both)
    return output[:len(forget.target)], output[len(forget.target):]


def _low(batch):
    low = batch.num_low_frequencies
    return low.reshape(-1)[:1] if torch.is_tensor(low) else torch.tensor([low])


def step_loss(method: Method, model, loss_fn, forget=None, retain=None, **knobs):
    """One step's loss, the sum of the row's terms, and the terms as floats for logging."""
    terms = step_terms(method, model, loss_fn, forget, retain, **knobs)
    return sum(terms.values()), {k: float(v.detach()) for k, v in terms.items()}


def validate_knobs(method: str, retain_fraction, gamma, lam):
    """Check unlearning knobs with the messages a user needs; returns cleaned values.

    ``gamma`` may be None: the protocol's own (1 under the code's GA-l1, 1e-5 under the text's).
    """
    from ..config import check_fraction, check_number

    get_method(method)
    return (check_fraction("retain fraction", retain_fraction),
            None if gamma is None else check_number("gamma", gamma),
            check_number("lambda", lam))
