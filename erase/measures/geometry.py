"""Figure 4, measured: how forgetting and fine-tuning pull on the weights.

For an unlearning method with both a forget and a retain term we replay its first epoch from
G and record, at every step, the cosine between the gradient of the forget term and the
gradient of the retain term (do the two objectives fight or cooperate?), and where the
weights are on the way from G to the oracle G-hat: the share of the G -> G-hat direction
travelled and the distance off that line. The replay uses the same terms as the loop
(``methods.step_terms``) and the same optimizer state as the run it mirrors. ``takeaway``
says what the traces show in one sentence.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..runs.engine import (Loop, batch_of, epoch_plan, load_start, make_optimizer,
                           make_scheduler, mask_seed, noise_generator, on_device, optimizer_step,
                           prepare, step_knobs)
from ..runs.methods import ReconstructionLoss, step_terms


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
                rows = _replay(lab, job, steps)
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


def _replay(lab, job, steps: int | None) -> list[dict]:
    """The loop's first epoch of ``job``, step by step: same inputs (``Lab.inputs``), same
    parts (``engine.prepare``: a weight mask, a teacher), same order and masks
    (``engine.epoch_plan``, ``engine.batch_of``), same terms and same step
    (``engine.optimizer_step``) from the same checkpoint, with measurements in between."""
    oracle = lab.run(lab.job("oracle"))
    lab.run(lab.job("original"))
    inputs = lab.inputs(job)
    fabric = lab.fabric
    train = lab.train_config
    model = on_device(lab.new_model(), fabric.device)  # as the loop (Adam's state follows)
    optimizer = make_optimizer(model, train)
    load_start(inputs.start_from, model, optimizer, make_scheduler(optimizer, lab.protocol))
    theta_g = _flat([p.detach().clone() for p in model.parameters()])
    theta_hat = _flat(lab.load_model(oracle).parameters()).detach().to(theta_g.device)
    axis = theta_hat - theta_g
    row, protocol = inputs.row, lab.protocol
    loss_fn = ReconstructionLoss(train.loss, train.l1_weight).to(fabric.device)
    loop = Loop(method=row, forget=inputs.forget, retain=inputs.retain, epochs=inputs.epochs,
                train=train, seed=lab.seed, checkpoint=None, protocol=protocol,
                gamma=inputs.gamma, lam=inputs.lam, ascent=inputs.ascent,
                start_from=inputs.start_from,
                knobs=inputs.knobs, teacher_from=inputs.teacher_from,
                forget_epochs=inputs.forget_epochs)
    parts = prepare(loop, model, optimizer, loss_fn, fabric)
    params = [p for p in model.parameters() if p.requires_grad]
    noise = noise_generator(lab.seed, 0)
    plan = epoch_plan(loop, 0)
    total = sum(len(epoch_plan(loop, e)) for e in range(loop.epochs))
    random_masks = protocol.training_masks == "random"
    rows = []
    model.train()
    for step, (f_indices, r_indices) in enumerate(plan[:steps]):
        f = batch_of(inputs.forget, f_indices, fabric,
                     mask_seed(lab.seed, 0, "forget") if random_masks else None)
        r = batch_of(inputs.retain, r_indices, fabric,
                     mask_seed(lab.seed, 0, "retain") if random_masks else None)
        terms = step_terms(row, model, loss_fn, f, r, generator=noise,
                           **step_knobs(loop, parts, step, total))
        entry = {"step": step + 1, "method": job.name}
        if "forget" in terms and "retain" in terms:
            g_f, g_r = _gradient(terms["forget"], params), _gradient(terms["retain"], params)
            entry["cosine"] = float(torch.nn.functional.cosine_similarity(g_f, g_r, dim=0))
        optimizer_step(fabric, model, optimizer, sum(terms.values()), train.grad_clip,
                       parts.mask)
        delta = _flat([p.detach() for p in model.parameters()]) - theta_g
        along = float(delta @ axis / (axis @ axis))
        entry["toward_oracle"] = along
        entry["off_axis"] = float((delta - along * axis).norm() / axis.norm())
        rows.append(entry)
    return rows
