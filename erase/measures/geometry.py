"""Figure 4, measured: how forgetting and fine-tuning pull on the weights.

For an unlearning method with both a forget and a retain term we replay its first epoch from
G and record, at every step, the cosine between the gradient of the forget term and the
gradient of the retain term (do the two objectives fight or cooperate?), and where the
weights are on the way from G to the oracle G-hat: the share of the G -> G-hat direction
travelled and the distance off that line. The replay uses the same terms as the loop
(``methods.step_terms``) and the same optimizer state as the run it mirrors.
"""
from __future__ import annotations

import time

import torch

from .. import data as data_lib
from ..runs.engine import epoch_pairs, make_optimizer, set_learning_rate
from ..runs.methods import ReconstructionLoss, get_method, step_terms


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _gradient(term, params) -> torch.Tensor:
    grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
    return _flat([torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)])


def trace(lab, method: str, steps: int | None = None, **knobs) -> list[dict]:
    """Per step of ``method``'s first unlearning epoch from G: gradient cosine and position.

    Kept in the results store like a run, so a rebuild reads it instead of replaying.
    """
    config = {"kind": "trace", "of": lab.unlearn_config_of(method, **knobs), "steps": steps}
    record = lab.store.get(config)
    if record is None:
        with lab.store.lock(config):
            record = lab.store.get(config)
            if record is None:
                started = time.perf_counter()
                rows = _replay(lab, method, config["of"], steps)
                record = lab.store.put(config, {
                    "name": f"Figure 4 replay of {method}", "rows": rows, "finished": time.time(),
                    "timing": {"train_seconds": time.perf_counter() - started, "steps": len(rows)}})
    return record["rows"]


def _replay(lab, method: str, config: dict, steps: int | None) -> list[dict]:
    from torch.utils.data import Subset, default_collate

    row = get_method(method)
    original, oracle = lab.train("original"), lab.train("oracle")
    model = lab.new_model()
    optimizer = make_optimizer(model, lab.train_config)
    state = torch.load(lab.store.run_dir(original["key"]) / "checkpoint.ckpt",
                       map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    set_learning_rate(optimizer, lab.train_config.unlearn_lr)  # unlearning's constant rate
    theta_g = _flat([p.detach().clone() for p in model.parameters()])
    theta_hat = _flat(lab.load_model(oracle).cpu().parameters()).detach()
    axis = theta_hat - theta_g
    forget = lab.dataset("forget")
    retain = None
    if row.retain != "none":
        retain = lab.dataset("retain")
        if row.retain == "subset":
            retain = Subset(retain, data_lib.retain_subset(
                len(retain), config["knobs"]["retain_fraction"], lab.seed))
    loss_fn = ReconstructionLoss(lab.train_config.loss, lab.train_config.l1_weight)
    params = [p for p in model.parameters() if p.requires_grad]
    noise = torch.Generator().manual_seed(lab.seed * 1_000_003)
    pairs = epoch_pairs(len(forget) if row.forget != "none" else 0,
                        len(retain) if retain is not None else 0, lab.seed, 0)
    rows = []
    model.train()
    for step, (fi, ri) in enumerate(pairs[:steps]):
        f = None if fi is None else default_collate([forget[fi]])
        r = None if ri is None else default_collate([retain[ri]])
        terms = step_terms(row, model, loss_fn, f, r, gamma=config["knobs"]["gamma"] or 0.0,
                           lam=config["knobs"]["lam"] or 0.0, generator=noise)
        entry = {"step": step + 1, "method": method}
        if "forget" in terms and "retain" in terms:
            g_f, g_r = _gradient(terms["forget"], params), _gradient(terms["retain"], params)
            entry["cosine"] = float(torch.nn.functional.cosine_similarity(g_f, g_r, dim=0))
        optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        torch.nn.utils.clip_grad_norm_(params, lab.train_config.grad_clip)
        optimizer.step()
        delta = _flat([p.detach() for p in model.parameters()]) - theta_g
        along = float(delta @ axis / (axis @ axis))
        entry["toward_oracle"] = along
        entry["off_axis"] = float((delta - along * axis).norm() / axis.norm())
        rows.append(entry)
    return rows
