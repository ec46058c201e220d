"""The unlearning methods, as rows of data, and the loss of one step.

A method says what happens to forget samples (nothing, gradient ascent, noisy label, away
from a teacher), which weight penalty applies (none, l1, a decaying l1), which retain data it
fine-tunes on (none, the subset Dr', all of Dr) and where it starts (the original model G or
scratch). One step's loss is built from the row's terms; how forget and retain samples share a
step is the protocol's ``steps`` switch (``erase.config.Protocol``). A new method is a new row.

The rows beyond the paper (``BEYOND``) needed three new kinds of part, each a field of the row
read by the one loop (``erase.runs.engine``): ``prepare`` (made at G before the epochs: SalUn's
weight mask, SSD's dampening), ``teacher`` (a frozen copy of G whose outputs the terms compare
with, SCRUB) and ``trains`` (False: no optimizer step at all, SSD). ``knobs`` lists a row's own
knobs with their defaults. The paper's rows keep every new field at its default, and ``hashed``
leaves defaults out, so their run keys are what they were before these fields existed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, fields

import torch
import torch.nn.functional as F
from fastmri.losses import SSIMLoss

from ..config import ConfigError, Protocol, check_choice, check_fraction, check_int, check_number
from .models import reconstruct

FORGET_TERMS = ("none", "ascent", "noisy_label", "away_from_teacher")
PENALTIES = ("none", "l1", "l1_decay")
RETAIN_DATA = ("none", "subset", "all")
PREPARES = ("none", "saliency", "dampen")
TEACHERS = ("none", "G")
DISTANCES = ("ssim", "l1")


@dataclass(frozen=True)
class Method:
    name: str
    start: str  # "G" (the original model, with its optimizer state) or "scratch"
    # per forget slice: "ascent" -J, "noisy_label" J against y + noise, "away_from_teacher"
    # -d(student, teacher) (SCRUB's max-step); one of FORGET_TERMS
    forget: str
    # "l1" gamma |theta|_1 carried by forget slices (GA-l1); "l1_decay" alpha_t |theta|_1 at
    # every step, alpha_t falling linearly to 0 over the run (l1-sparse)
    penalty: str
    retain: str  # one of RETAIN_DATA; with a teacher, retain slices carry J + d(student, teacher)
    summary: str
    # Fields grown by the rows beyond the paper; at their defaults they are left out of the
    # hashed row (``hashed``), so that the paper's rows keep their run keys.
    prepare: str = "none"  # at G, before the epochs: "saliency" (mask m), "dampen" (SSD)
    teacher: str = "none"  # "G": a frozen copy of G (its checkpoint) gives reference outputs
    trains: bool = True  # False: no optimizer step, the run is its ``prepare`` (SSD)
    knobs: tuple = ()  # (knob, default) pairs of the row's own knobs (ROW_KNOBS)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("Retrain", "scratch", "none", "none", "all", "train from scratch on Dr: the oracle"),
    Method("FT", "G", "none", "none", "subset", "fine-tune on Dr'"),
    Method("Full FT", "G", "none", "none", "all", "fine-tune on all of Dr"),
    Method("GA-l1", "G", "ascent", "l1", "none", "-J(x_f, y_f) + gamma |theta|_1"),
    Method("NL", "G", "noisy_label", "none", "none", "J(x_f, y_f + noise)"),
    Method("GA-l1-FT", "G", "ascent", "l1", "subset", "GA-l1 plus J on Dr' (Algorithm 1)"),
    Method("NL-FT", "G", "noisy_label", "none", "subset", "NL plus J on Dr' (Algorithm 2)"),
    # Beyond the paper: classification unlearning methods adapted to reconstruction.
    # Defaults: SalUn's 50% of the weights and SSD's alpha 10, lambda 1 are the reference
    # code's; SCRUB's max-steps in 2 of the 5 epochs follow its few max-epochs before its
    # min-only ones; l1-sparse's alpha 5e-4 is the reference's, kept because at the default
    # scale no smaller decade moves KTA beyond FT's (studies.study.SWEEPS sweeps it).
    Method("SalUn", "G", "noisy_label", "none", "subset",
           "NL-FT with the gradient masked to the salient weights (top |grad J(Df)| at G)",
           prepare="saliency", knobs=(("saliency", 0.5),)),
    Method("SSD", "G", "none", "none", "subset",
           "no training: dampen weights far more important to Df than to Dr' + Df",
           prepare="dampen", trains=False, knobs=(("alpha", 10.0), ("dampening", 1.0))),
    Method("SCRUB", "G", "away_from_teacher", "none", "subset",
           "-d(s, G) on Df (first epochs), J + d(s, G) on Dr', teacher G frozen",
           teacher="G", knobs=(("distance", "ssim"), ("max_epochs", 2))),
    Method("l1-sparse", "G", "none", "l1_decay", "subset",
           "J on Dr' + alpha_t |theta|_1, alpha_t linear from alpha to 0",
           knobs=(("alpha", 5e-4),)),
)}

# The six unlearning methods of Table 1, in the paper's order (Retrain is the reference).
UNLEARNING = ("FT", "Full FT", "GA-l1", "NL", "GA-l1-FT", "NL-FT")
# Four more, adapted from classification.
BEYOND = ("SalUn", "SSD", "SCRUB", "l1-sparse")
# The rows of the paper's table, whose run keys must never change.
PAPER_ROWS = ("Retrain", *UNLEARNING)

_DEFAULTS = {f.name: f.default for f in fields(Method) if f.default is not MISSING}


def hashed(row: Method) -> dict:
    """The row as it enters a run key: every field, except the grown ones at their default."""
    return {k: v for k, v in asdict(row).items() if not (k in _DEFAULTS and v == _DEFAULTS[k])}


def table_version(names) -> str:
    """A short hash of the rows ``names`` (hashed), in that order."""
    return hashlib.sha256(json.dumps([hashed(METHODS[n]) for n in names],
                                     sort_keys=True).encode()).hexdigest()[:12]


# Any change to the paper's rows changes this, and so the key of every unlearning result of
# theirs. Rows added after them are not part of it (their runs use TABLE_VERSION, over every
# row), so adding a method leaves the paper's results in the store.
METHODS_VERSION = table_version(PAPER_ROWS)
TABLE_VERSION = table_version(METHODS)


def version_of(name: str) -> str:
    """The table version a run of method ``name`` is keyed by."""
    return METHODS_VERSION if name in PAPER_ROWS else TABLE_VERSION


def get_method(name: str) -> Method:
    """The row called ``name``, or a ConfigError listing the known methods."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")
    return METHODS[name]


# The rows' own knobs: name -> check (a value in, the cleaned value out, ConfigError if bad).
ROW_KNOBS = {
    "saliency": lambda v: check_fraction("saliency (fraction of weights SalUn updates)", v),
    "alpha": lambda v: check_number("alpha", v),
    "dampening": lambda v: check_number("dampening (SSD's lambda)", v),
    "distance": lambda v: check_choice("distance", v, DISTANCES),
    "max_epochs": lambda v: check_int("max epochs (SCRUB's epochs with max-steps)", v),
}


def row_knobs(row: Method, given: dict | None = None) -> dict:
    """The row's own knobs: given values (checked) over the row's defaults.

    A knob of another row is dropped (SSD at saliency 0.1 is SSD); a knob no row knows is a
    ConfigError.
    """
    given = {k: v for k, v in (given or {}).items() if v is not None}
    unknown = sorted(set(given) - set(ROW_KNOBS))
    if unknown:
        raise ConfigError(f"unknown knob {unknown[0]!r}: the methods' own knobs are "
                          f"{', '.join(ROW_KNOBS)}")
    return {k: ROW_KNOBS[k](given.get(k, default)) for k, default in row.knobs}


def ascent_weights(protocol: Protocol, gamma: float | None,
                   ascent: float | None = None) -> tuple[float, float]:
    """(weight of -J, gamma) of a GA-l1 forget sample under the protocol's ``ga_l1`` switch.

    The public code computes ``loss *= -1; loss += loss + l1_regularization(net)``: -2 J plus an
    unweighted l1 norm. The text writes -J + gamma |theta|_1 without giving gamma (``gamma``,
    default 1e-5). Under ``code`` a ``gamma`` given explicitly replaces the 1; an ``ascent``
    given replaces the weight of -J under either (the strength knob of the trade-off frontiers).
    """
    weight, l1 = (2.0, 1.0) if protocol.ga_l1 == "code" else (1.0, 1e-5)
    return (weight if ascent is None else ascent), (l1 if gamma is None else gamma)


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
        return self.ssim_loss(output, target, max_value) + self.l1_weight * l1

    def ssim_loss(self, output, target, max_value) -> torch.Tensor:
        """1 - SSIM per slice, with ``max_value`` as the data range: J's SSIM part.

        fastMRI's SSIMLoss (its 7 x 7 uniform window, k1, k2 and sample covariance, read from
        ``self.ssim``) with its five window means taken by one average pooling of
        [X, Y, XX, YY, XY] instead of five one-channel convolutions, whose backward oneDNN runs
        slowly on a CPU: the same function, its sums in another order (equal to fastMRI's to
        float rounding, tests/test_methods_parts.py), a training step 1.1x faster.
        """
        s = self.ssim
        x, y = output.unsqueeze(1), target.unsqueeze(1)
        data_range = max_value[:, None, None, None]
        c1, c2 = (s.k1 * data_range) ** 2, (s.k2 * data_range) ** 2
        means = F.avg_pool2d(torch.cat([x, y, x * x, y * y, x * y], dim=1), s.win_size, stride=1)
        ux, uy, uxx, uyy, uxy = means.split(1, dim=1)
        vx, vy = s.cov_norm * (uxx - ux * ux), s.cov_norm * (uyy - uy * uy)
        vxy = s.cov_norm * (uxy - ux * uy)
        similarity = (((2 * ux * uy + c1) * (2 * vxy + c2))
                      / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2)))
        return 1 - similarity.mean(dim=(1, 2, 3))

    def distance(self, output, reference, max_value, kind: str = "ssim") -> torch.Tensor:
        """d(output, reference) per slice: 1 - SSIM (``ssim``) or the mean absolute
        difference relative to ``max_value`` (``l1``: scale-free, as 1 - SSIM is), with the
        target's maximum as the data range of both."""
        if kind == "ssim":
            return self.ssim_loss(output, reference, max_value)
        if kind == "l1":
            return (output - reference).abs().mean(dim=(-2, -1)) / max_value
        raise ConfigError(f"unknown distance {kind!r}: choose one of {', '.join(DISTANCES)}")

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
                  ascent: float, generator, reference=None, distance: str = "ssim") -> torch.Tensor:
    """Per forget slice: -ascent * J (gradient ascent), J against a noisy label, or
    -d(output, reference) (away from the teacher's output ``reference``)."""
    max_value = batch.max_value.to(output)
    if method.forget == "ascent":
        return -ascent * loss_fn.per_sample(output, batch.target, max_value)
    if method.forget == "away_from_teacher":
        return -loss_fn.distance(output, reference, max_value, distance)
    label = noisy_target(batch.target, lam, generator, protocol.noisy_label)
    return loss_fn.per_sample(output, label, max_value)


def l1_weight_at(alpha: float, step: int, total: int) -> float:
    """alpha_t of l1-sparse: alpha at step 0, falling linearly to 0 at step ``total`` (the end
    of the run; its last step, total - 1, still carries alpha / total)."""
    return alpha * max(0.0, 1.0 - step / total) if total > 0 else 0.0


def step_terms(method: Method, model, loss_fn, forget=None, retain=None, *,
               protocol: Protocol = Protocol(), gamma: float | None = None, lam: float = 0.0,
               ascent: float | None = None, generator: torch.Generator | None = None,
               teacher=None, distance: str = "ssim",
               alpha: float = 0.0) -> dict:
    """The terms of one step of ``method`` as tensors: forget, penalty and retain.

    ``forget`` and ``retain`` are batches (or None). Under ``steps="paired"`` (the text) a
    step is a forget batch and a retain batch: the mean forget term, the penalty once and the
    mean retain term are added. Under ``steps="alternating"`` (the code) the step's batch is
    drawn from one stream of both, every slice carries exactly its own term (a forget slice its
    forget term and the penalty, a retain slice J) and the step's loss is their mean.

    Rows beyond the paper: with a ``teacher`` (a frozen model; the row's ``teacher`` field),
    its outputs are the reference of the distance d (``distance``: 1 - SSIM or relative L1):
    forget slices carry -d(student, teacher), retain slices J + d(student, teacher). The
    ``l1_decay`` penalty, alpha_t |theta|_1 with ``alpha`` = alpha_t, is carried by every slice
    (so once per step under both protocols).
    """
    ascent, gamma = ascent_weights(protocol, gamma, ascent)
    use_forget = forget is not None and method.forget != "none"
    n_f = len(forget.target) if use_forget else 0
    n_r = len(retain.target) if retain is not None else 0
    if n_f + n_r == 0:
        raise ValueError(f"method {method.name} has no term for this step")
    if method.teacher != "none" and teacher is None:
        raise ValueError(f"method {method.name} needs its teacher for a step")
    outputs = _reconstruct_both(model, forget if use_forget else None, retain)
    reference = (None, None)
    if method.teacher != "none":
        with torch.no_grad():
            reference = _reconstruct_both(teacher, forget if use_forget else None, retain)

    def forget_term():
        return forget_losses(method, outputs[0], forget, loss_fn, protocol, lam, ascent,
                             generator, reference[0], distance)

    def retain_term():
        max_value = retain.max_value.to(outputs[1])
        per_slice = loss_fn.per_sample(outputs[1], retain.target, max_value)
        if reference[1] is not None:
            per_slice = per_slice + loss_fn.distance(outputs[1], reference[1], max_value, distance)
        return per_slice

    terms = {}
    if protocol.steps == "paired":
        if n_f:
            terms["forget"] = forget_term().mean()
        if method.penalty == "l1" and n_f:
            terms["penalty"] = gamma * l1_norm(model)
        if method.penalty == "l1_decay":
            terms["penalty"] = alpha * l1_norm(model)
        if n_r:
            terms["retain"] = (loss_fn(outputs[1], retain.target, retain.max_value.to(outputs[1]))
                               if reference[1] is None else retain_term().mean())
        return terms
    total = n_f + n_r
    if n_f:
        terms["forget"] = forget_term().sum() / total
        if method.penalty == "l1":
            terms["penalty"] = (n_f / total) * gamma * l1_norm(model)
    if method.penalty == "l1_decay":
        terms["penalty"] = alpha * l1_norm(model)
    if n_r:
        terms["retain"] = retain_term().sum() / total
    return terms


# ------------------------------------------------------------------ parts made before the epochs


def trainable(model) -> list:
    """theta: the trainable weights, in the model's order."""
    return [p for p in model.parameters() if p.requires_grad]


def _gradient_total(model, batches, loss_of, each=None) -> tuple[list, int]:
    """sum over ``batches`` of ``each``(grad_theta ``loss_of``(output, batch)), one tensor per
    weight tensor, and the number of slices read: the loop of both importances below."""
    params = trainable(model)
    total, n = [torch.zeros_like(p) for p in params], 0
    for b in batches:
        loss = loss_of(reconstruct(model, b), b)
        for t, g in zip(total, torch.autograd.grad(loss, params, allow_unused=True)):
            if g is not None:
                t += g if each is None else each(g)
        n += len(b.target)
    return total, n


def gradient_sum(model, loss_fn, batches) -> tuple[list, int]:
    """sum over the slices of ``batches`` of grad_theta J (one term per slice), and the number
    of slices: SalUn's saliency, at G."""
    return _gradient_total(model, batches, lambda out, b: loss_fn.per_sample(
        out, b.target, b.max_value.to(out)).sum())


def saliency_mask(gradients, fraction: float) -> list:
    """m: True on the ``fraction`` of all weights with the largest |gradient| (ties broken by
    position, so the mask is reproducible), one boolean tensor per weight tensor."""
    flat = torch.cat([g.abs().reshape(-1) for g in gradients])
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    order = torch.argsort(flat, descending=True, stable=True)
    chosen[order[:round(fraction * flat.numel())]] = True
    return [c.view_as(g) for c, g in zip(chosen.split([g.numel() for g in gradients]), gradients)]


def fisher_importance(model, loss_fn, slices) -> tuple[list, int]:
    """SSD's importance: the diagonal Fisher information with J for the log-likelihood, i.e.
    the mean over slices of the squared gradient of J on each slice (``slices``: batches of one
    slice each), and the number of slices."""
    total, n = _gradient_total(model, slices, lambda out, b: loss_fn(
        out, b.target, b.max_value.to(out)), torch.square)
    return [t / max(n, 1) for t in total], n


@torch.no_grad()
def dampen(model, forget_importance, data_importance, alpha: float, dampening: float) -> list:
    """SSD: where I_f > alpha I_D, theta <- theta * min(lambda I_D / I_f, 1); elsewhere theta is
    left as it is (bit for bit). Returns the selection, one boolean tensor per weight tensor."""
    selected = []
    for p, i_f, i_d in zip(trainable(model), forget_importance, data_importance):
        chosen = i_f > alpha * i_d
        factor = torch.where(chosen, dampening * i_d / torch.where(chosen, i_f, 1.0), 1.0)
        p[chosen] = p[chosen] * factor.clamp(max=1.0)[chosen]
        selected.append(chosen)
    return selected


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


def validate_knobs(method: str, retain_fraction, gamma, lam, rho=None, ascent=None):
    """Check unlearning knobs with the messages a user needs; returns cleaned values
    (retain fraction, gamma, lambda, rho, ascent).

    ``gamma`` and ``ascent`` may be None: the protocol's own (1 and 2 under the code's GA-l1,
    1e-5 and 1 under the text's). The noisy label's strength is ``lam`` (raw) or ``rho`` (times
    G's error on Df), never both.
    """
    get_method(method)
    if lam is not None and rho is not None:
        raise ConfigError(f"give the noisy label's strength once: lambda {lam!r} (raw) or rho "
                          f"{rho!r} (times G's RMSE on Df), not both")
    return (check_fraction("retain fraction", retain_fraction),
            None if gamma is None else check_number("gamma", gamma),
            None if lam is None else check_number("lambda", lam),
            None if rho is None else check_number("rho", rho),
            None if ascent is None else check_number("ascent", ascent))
