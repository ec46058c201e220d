"""Figure 4's replay: the first unlearning epoch of a method, run again through the loop itself
(``engine.run_loop`` with a ``Watch``: same data, start, terms and steps as the run it mirrors),
measured between steps: the cosine between the gradients of the forget and the retain term (do
the two objectives fight or cooperate?) and where the weights are on the way from G to the
oracle G-hat (the share of the G -> G-hat direction travelled, the distance off that line).
Kept in the results store like a run. ``erase.measures.geometry`` reads the traces.
"""
from __future__ import annotations

import time
from dataclasses import replace

import torch

from ..measures.geometry import flat, gradient
from ..runs.engine import Watch, epoch_plan, run_loop

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


class _Figure4(Watch):
    """At every step: the cosine between the forget and the retain term's gradients (before
    the weights move), then where the weights are on the way from G to G-hat. G's weights are
    the model's at the first step, before it moves."""

    def __init__(self, model, theta_hat, method: str, last_step: int):
        self.model, self.theta_hat = model, theta_hat
        self.method, self.last_step = method, last_step
        self.rows: list[dict] = []

    def before(self, step: int, terms: dict) -> None:
        if not self.rows:
            self.params = [p for p in self.model.parameters() if p.requires_grad]
            self.theta_g = flat([p.detach().clone() for p in self.model.parameters()])
            self.axis = self.theta_hat.to(self.theta_g.device) - self.theta_g
        entry = {"step": step + 1, "method": self.method}
        if "forget" in terms and "retain" in terms:
            g_f = gradient(terms["forget"], self.params)
            g_r = gradient(terms["retain"], self.params)
            entry["cosine"] = float(torch.nn.functional.cosine_similarity(g_f, g_r, dim=0))
        self.rows.append(entry)

    def after(self, step: int, model) -> bool:
        delta = flat([p.detach() for p in self.model.parameters()]) - self.theta_g
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
    theta_hat = flat(lab.load_model(oracle).parameters()).detach()
    watch = _Figure4(model, theta_hat, job.name, min(steps or first_epoch, first_epoch))
    if watch.last_step > 0:
        run_loop(loop, model, lab.fabric, watch)
    return watch.rows, model
