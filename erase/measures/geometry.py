"""Figure 4, measured: how forgetting and fine-tuning pull on the weights.

The replay (``erase.studies.replay``) records, at every step of a method's first unlearning
epoch from G, the cosine between the gradients of its forget and retain terms and where the
weights are on the way from G to the oracle G-hat. Here: the geometry those need (weights as
one vector, a term's gradient) and ``in_one_sentence``, what the traces show in one sentence.
"""
from __future__ import annotations

import numpy as np
import torch


def flat(tensors) -> torch.Tensor:
    """Tensors as one vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def gradient(term, params) -> torch.Tensor:
    """The gradient of ``term`` with respect to ``params`` as one vector (zeros where unused)."""
    grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
    return flat([torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)])


def in_one_sentence(traces: dict) -> str:
    """Figure 4 in one sentence (without its full stop), from ``{method: trace(...)}``: how far
    each method has moved towards the oracle after the replayed epoch and how far off the
    straight line to it; the mean cosine between its forget and retain gradients (methods with
    both terms) and whether the terms pull against each other (all cosines negative), do not
    (all positive) or differ by method; and, when every method ends further off the line than
    along it, that unlearning leaves G sideways."""
    ends = {m: tr[-1] for m, tr in traces.items()}
    cosines = {m: np.mean([t["cosine"] for t in tr if "cosine" in t]) for m, tr in traces.items()
               if any("cosine" in t for t in tr)}
    if all(c < 0 for c in cosines.values()):
        pull = ": the two terms pull against each other"
    elif all(c > 0 for c in cosines.values()):
        pull = ": the two terms do not oppose each other on average"
    else:
        pull = ": they oppose each other for some methods and not others"
    sideways = all(e["off_axis"] > abs(e["toward_oracle"]) for e in ends.values())
    return ("After one epoch, " + "; ".join(
        f"{m} has moved {e['toward_oracle']:.3f} of the way towards the oracle and "
        f"{e['off_axis']:.3f} off that line" for m, e in ends.items())
        + ". The mean cosine between the forget and retain gradients is "
        + ", ".join(f"{c:+.2f} for {m}" for m, c in cosines.items()) + pull
        + (". None of them travels along the straight line to the oracle: unlearning leaves G "
           "sideways, not backwards" if sideways else ""))
