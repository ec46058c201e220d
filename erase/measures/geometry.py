"""Figure 4, measured: how forgetting and fine-tuning pull on the weights.

For an unlearning method with both a forget and a retain term we replay its first epoch from
G and record, at every step, the cosine between the gradient of the forget term and the
gradient of the retain term (do the two objectives fight or cooperate?), and where the
weights are on the way from G to the oracle G-hat: the share of the G -> G-hat direction
travelled and the distance off that line. The replay is the loop
itself (``engine.run_loop`` with a ``Watch``): same data, start, terms and steps as the run it
mirrors. ``takeaway`` says what the traces show in one sentence.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from ..runs.engine import Watch, epoch_plan, run_loop


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _gradient(term, params) -> torch.Tensor:
    grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
    return _flat([torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)])


FIGURE4_METHODS = ("GA-l1-FT", "NL-FT", "FT")  # the methods chapter 4 replays


def trace_config(lab, job, steps: int | None = None) -> dict:
    """The key of a replay of ``job`` in the results store."""
    return {"kind": "trace", "of": lab.config(job), "steps": steps}


def trace(lab, method: str, steps: int | None = None, **knobs) -> list[dict]:
    """Per step of ``method``'s first unlearning epoch from G: gradient cosine and position.

    Kept in the results store like a run, so a rebuild reads it instead of replaying.
    """
    job = lab.job(method, **knobs)
    config = trace_config(lab, job, steps)
    record = lab.store.get(config)
    if record is None:
        with lab.store.lock(config):
            record = lab.store.get(config)
            if record is None:
                started = time.perf_counter()
                rows, _ = replay(lab, job, steps)
                record = lab.store.put(config, {
                    "name": f"Figure 4 replay of {method}", "rows": rows, "finished": time.time(),
                    "timing": {"train_seconds": time.perf_counter() - started, "steps": len(rows)}})
    return record["rows"]


def takeaway(traces: dict) -> str:
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


class _Figure4(Watch):
    """At every step: the cosine between the forget and the retain term's gradients (before
    the weights move), then where the weights are on the way from G to G-hat. G's weights are
    the model's at the first step, before it moves."""

    def __init__(self, model, theta_hat, method: str, last_step: int):
        self.model, self.theta_hat, self.method, self.last_step = model, theta_hat, method, last_step
        self.rows: list[dict] = []

    def before(self, step: int, terms: dict) -> None:
        if not self.rows:
            self.params = [p for p in self.model.parameters() if p.requires_grad]
            self.theta_g = _flat([p.detach().clone() for p in self.model.parameters()])
            self.axis = self.theta_hat.to(self.theta_g.device) - self.theta_g
        entry = {"step": step + 1, "method": self.method}
        if "forget" in terms and "retain" in terms:
            g_f = _gradient(terms["forget"], self.params)
            g_r = _gradient(terms["retain"], self.params)
            entry["cosine"] = float(torch.nn.functional.cosine_similarity(g_f, g_r, dim=0))
        self.rows.append(entry)

    def after(self, step: int, model) -> bool:
        delta = _flat([p.detach() for p in self.model.parameters()]) - self.theta_g
        along = float(delta @ self.axis / (self.axis @ self.axis))
        self.rows[-1]["toward_oracle"] = along
        self.rows[-1]["off_axis"] = float((delta - along * self.axis).norm() / self.axis.norm())
        return step >= self.last_step


def replay(lab, job, steps: int | None = None):
    """The first epoch of ``job``'s run (its first ``steps`` steps), through the loop itself
    (``engine.run_loop``: same inputs from ``Lab.loop``, same start, same steps), measured
    between steps. Returns (rows, the model after the last replayed step)."""
    oracle = lab.run(lab.job("oracle"))
    lab.run(lab.job("original"))
    loop = replace(lab.loop(job), progress=False)  # no checkpoint: nothing written
    first_epoch = len(epoch_plan(loop, 0))
    model = lab.new_model()
    theta_hat = _flat(lab.load_model(oracle).parameters()).detach()
    watch = _Figure4(model, theta_hat, job.name, min(steps or first_epoch, first_epoch))
    if watch.last_step > 0:
        run_loop(loop, model, lab.fabric, watch)
    return watch.rows, model
