"""The one training loop: train the oracle and the original model, retrain, and unlearn.

Everything that differs between those runs is data: a method row (what to do with forget
samples, which penalty, which retain data), the protocol's switches, the data sets and a
starting checkpoint. The loop below is meant to be read in one sitting; Lightning Fabric takes
care of the device, precision, multi-process DDP and checkpoint I/O.

Determinism: the order of each epoch is drawn from (seed, epoch), a random training mask from
(seed, epoch, slice) and the noisy labels from (seed, epoch), so a run resumed from its last
checkpoint ends bit-identical (on CPU) to a run that was never interrupted.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch.utils.data import default_collate
from tqdm import tqdm

from ..config import ConfigError, Protocol, TrainConfig
from .methods import Method, ReconstructionLoss, step_loss
from .store import checkpoint_errors

if TYPE_CHECKING:  # Lightning is imported only when a run trains: reading results stays fast
    from lightning_fabric import Fabric

ENGINE_VERSION = 3  # bump when the loop's arithmetic changes what a config produces

# The public code's scheduler: ReduceLROnPlateau on the training loss, per epoch.
PLATEAU = {"mode": "min", "factor": 0.1, "patience": 10}


@dataclass
class Loop:
    """One run of the loop: a method row, its data, its knobs, and where to checkpoint."""

    method: Method
    forget: object | None  # data set of forget samples (used when the row has a forget term)
    retain: object | None  # data set of retain samples (Dr, Dr', or Dr + Df for G)
    epochs: int
    train: TrainConfig
    seed: int
    checkpoint: Path  # progress checkpoint, rewritten atomically after every epoch
    protocol: Protocol = field(default_factory=Protocol)
    gamma: float | None = None  # None: the protocol's (see methods.ascent_weights)
    lam: float = 0.0
    start_from: Path | None = None  # G's checkpoint (weights, optimizer and scheduler state)
    # G's retain stream keeps the oracle's order: the first ``oracle_order_of`` retain samples
    # are Dr in the order the oracle sees them, the rest (Df) inserted (see epoch_steps)
    oracle_order_of: int | None = None
    evaluate: Callable | None = None  # model -> metrics, called after every epoch
    progress: bool = True


def make_fabric(device: str = "cpu", precision: str = "32-true") -> Fabric:
    """A Fabric on ``device``; under torchrun it joins the process group (DDP)."""
    from lightning_fabric import Fabric

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no GPU is visible; use device='cpu'")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}: choose 'cpu' or 'cuda'")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    strategy = "ddp" if world > 1 else "auto"
    fabric = Fabric(accelerator=device, devices=world if world > 1 else 1, strategy=strategy,
                    precision=precision)
    if world > 1:
        fabric.launch()
    return fabric


# ------------------------------------------------------------------ the order of an epoch


def epoch_steps(n_forget: int, n_retain: int, seed: int, epoch: int, batch_size: int = 1,
                steps: str = "alternating", oracle_order_of: int | None = None, rank: int = 0,
                world: int = 1) -> list[tuple[list[int], list[int]]]:
    """(forget indices, retain indices) of every step of an epoch, this rank's share.

    ``alternating`` (the public code): Df and Dr' form one shuffled stream, cut into batches;
    every slice appears once per epoch. ``paired`` (the text's Algorithms 1 and 2): each step
    takes ``batch_size`` forget and ``batch_size`` retain slices; the epoch is as long as the
    longer stream and the shorter one cycles.

    ``oracle_order_of``: the first that many retain indices keep exactly the order a run over
    only them would draw, and the others are inserted at random places. G (trained on Dr + Df)
    then sees Dr in the oracle's order: the two runs differ only by the forget slices (common
    random numbers), so their paired difference is not buried in order noise.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    if oracle_order_of is not None and oracle_order_of < n_retain:
        retain = _insert_extra(rng.permutation(oracle_order_of),
                               np.arange(oracle_order_of, n_retain), [seed, epoch, 1])
    else:
        retain = rng.permutation(n_retain)
    forget = rng.permutation(n_forget)
    if steps == "paired" and n_forget and n_retain:
        length = max(n_forget, n_retain)
        f_stream = [int(forget[i % n_forget]) for i in range(length)]
        r_stream = [int(retain[i % n_retain]) for i in range(length)]
        plan = [(f_stream[i:i + batch_size], r_stream[i:i + batch_size])
                for i in range(0, length, batch_size)]
    elif steps in ("paired", "alternating"):
        stream = [("f", int(i)) for i in forget] + [("r", int(i)) for i in retain]
        if n_forget and n_retain:  # one shuffled stream of both (the retain order is kept)
            stream = _insert_extra_items([s for s in stream if s[0] == "r"],
                                         [s for s in stream if s[0] == "f"], [seed, epoch, 2])
        plan = [([i for k, i in stream[j:j + batch_size] if k == "f"],
                 [i for k, i in stream[j:j + batch_size] if k == "r"])
                for j in range(0, len(stream), batch_size)]
    else:
        raise ConfigError(f"unknown steps {steps!r}: choose 'alternating' or 'paired'")
    per_rank = len(plan) // world
    return plan[rank * per_rank:(rank + 1) * per_rank] if world > 1 else plan


def _insert_extra(base: np.ndarray, extra: np.ndarray, seed) -> np.ndarray:
    """``base`` in its order with ``extra`` (shuffled) inserted at random places."""
    return np.array(_insert_extra_items(list(base), list(extra), seed), dtype=int)


def _insert_extra_items(base: list, extra: list, seed) -> list:
    rng = np.random.default_rng(seed)
    total = len(base) + len(extra)
    places = np.zeros(total, bool)
    places[rng.choice(total, size=len(extra), replace=False)] = True
    shuffled = [extra[i] for i in rng.permutation(len(extra))]
    merged, b, e = [], iter(base), iter(shuffled)
    for is_extra in places:
        merged.append(next(e) if is_extra else next(b))
    return merged


# ------------------------------------------------------------------ one step


def make_optimizer(model: torch.nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """The paper's Adam; fused: one kernel for all parameters, same update (1.1x on CPU)."""
    return torch.optim.Adam(model.parameters(), lr=train.lr, fused=True)


def make_scheduler(optimizer, protocol: Protocol):
    """ReduceLROnPlateau on the epoch's training loss (the code), or None (a constant rate)."""
    if protocol.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **PLATEAU)
    if protocol.lr_schedule == "constant":
        return None
    raise ConfigError(f"unknown lr schedule {protocol.lr_schedule!r}: choose 'plateau' or "
                      "'constant'")


def optimizer_step(fabric: Fabric, model, optimizer, loss, grad_clip: float) -> None:
    """Backward, clip the gradient norm (the paper's 0.5), Adam step: the loop's and the
    replay's (``measures.geometry``) one way of taking a step."""
    optimizer.zero_grad(set_to_none=True)
    fabric.backward(loss)
    fabric.clip_gradients(model, optimizer, max_norm=grad_clip)
    optimizer.step()


def batch_of(dataset, indices, fabric, mask_seed=None):
    """Slices ``indices`` of a data set as one batch on the loop's device, or None.

    With ``mask_seed`` (training under random masks) each slice gets a mask drawn from
    (mask_seed, index), as the public code draws a new one at every load.
    """
    if not indices:
        return None
    if mask_seed is not None and hasattr(dataset, "masked"):
        samples = [dataset.masked(i, (*mask_seed, i)) for i in indices]
    else:
        samples = [dataset[i] for i in indices]
    return fabric.to_device(default_collate(samples))


def save_atomic(fabric: Fabric, path: Path, state: dict) -> None:
    """Write a checkpoint next to ``path`` and rename it in place: a kill never leaves half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fabric.save(tmp, state)
    if fabric.is_global_zero:
        os.replace(tmp, path)
    fabric.barrier()


def load_start(fabric: Fabric, path: Path, model, optimizer, scheduler) -> None:
    """G's weights, Adam state and (when both use one) scheduler state, loaded strictly: a
    checkpoint that does not fit this model is an error, never silently skipped."""
    state = {"model": model, "optimizer": optimizer}
    with checkpoint_errors(path, f"delete {Path(path).parent} to retrain the original model "
                           "it came from"):
        raw = torch.load(path, map_location="cpu", weights_only=True)
        if scheduler is not None and "scheduler" in raw:
            state["scheduler"] = scheduler
        fabric.load(path, state, strict=True, weights_only=True)


# ------------------------------------------------------------------ the loop


def run_loop(loop: Loop, model: torch.nn.Module, fabric: Fabric) -> dict:
    """Run (or resume) the loop; returns history and timing. The model is trained in place."""
    torch.manual_seed(loop.seed)
    optimizer = make_optimizer(model, loop.train)
    scheduler = make_scheduler(optimizer, loop.protocol)
    if loop.start_from is not None:  # continue from G, as the paper's code resumes training
        load_start(fabric, loop.start_from, model, optimizer, scheduler)
    model, optimizer = fabric.setup(model, optimizer)
    loss_fn = ReconstructionLoss(loop.train.loss, loop.train.l1_weight).to(fabric.device)
    state = {"model": model, "optimizer": optimizer, "epoch": 0, "history": [],
             "train_seconds": 0.0, "steps": 0, "samples": 0}
    if scheduler is not None:
        state["scheduler"] = scheduler
    if Path(loop.checkpoint).exists():
        with checkpoint_errors(loop.checkpoint):
            fabric.load(loop.checkpoint, state, weights_only=True)
    n_forget = len(loop.forget) if loop.forget is not None and loop.method.forget != "none" else 0
    n_retain = len(loop.retain) if loop.retain is not None else 0
    random_masks = loop.protocol.training_masks == "random"

    for epoch in range(state["epoch"], loop.epochs):
        model.train()
        plan = epoch_steps(n_forget, n_retain, loop.seed, epoch, loop.train.batch_size,
                           loop.protocol.steps, loop.oracle_order_of, fabric.global_rank,
                           fabric.world_size)
        noise = torch.Generator().manual_seed(loop.seed * 1_000_003 + epoch)
        lr = optimizer.param_groups[0]["lr"]
        bar = tqdm(plan, desc=f"{loop.method.name} epoch {epoch + 1}/{loop.epochs}",
                   disable=not (loop.progress and fabric.is_global_zero), leave=False)
        start, losses = time.perf_counter(), []
        for f_indices, r_indices in bar:
            forget = batch_of(loop.forget, f_indices, fabric,
                              (loop.seed, epoch, 0) if random_masks else None)
            retain = batch_of(loop.retain, r_indices, fabric,
                              (loop.seed, epoch, 1) if random_masks else None)
            loss, _ = step_loss(loop.method, model, loss_fn, forget, retain,
                                protocol=loop.protocol, gamma=loop.gamma, lam=loop.lam,
                                generator=noise)
            optimizer_step(fabric, model, optimizer, loss, loop.train.grad_clip)
            losses.append(float(loss.detach()))
            state["steps"] += 1
            state["samples"] += len(f_indices) + len(r_indices)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        state["train_seconds"] += time.perf_counter() - start
        mean_loss = float(np.mean(losses)) if losses else None
        if scheduler is not None and mean_loss is not None:
            scheduler.step(mean_loss)
        entry = {"epoch": epoch + 1, "loss": mean_loss, "lr": lr}
        if loop.evaluate is not None and fabric.is_global_zero:
            entry["metrics"] = loop.evaluate(model)
        state["history"] = state["history"] + [entry]
        state["epoch"] = epoch + 1
        save_atomic(fabric, loop.checkpoint, state)
    return {"history": state["history"], "train_seconds": state["train_seconds"],
            "steps": state["steps"] * fabric.world_size,
            "samples": state["samples"] * fabric.world_size}
