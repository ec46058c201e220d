"""The one training loop: train the oracle and the original model, retrain, and unlearn.

Everything that differs between those runs is data: a method row (what to do with forget
samples, which penalty, which retain data), the data sets and a starting checkpoint. The loop
below is meant to be read in one sitting; Lightning Fabric takes care of the device, precision,
multi-process DDP and checkpoint I/O.

Determinism: the order of each epoch is drawn from (seed, epoch) and the noisy labels from
(seed, epoch, step), so a run resumed from its last checkpoint ends bit-identical (on CPU) to
a run that was never interrupted.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch.utils.data import default_collate
from tqdm import tqdm

from ..config import ConfigError, TrainConfig
from .methods import Method, ReconstructionLoss, step_loss
from .store import checkpoint_errors

if TYPE_CHECKING:  # Lightning is imported only when a run trains: reading results stays fast
    from lightning_fabric import Fabric

ENGINE_VERSION = 2  # bump when the loop's arithmetic changes what a config produces


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
    gamma: float = 0.0
    lam: float = 0.0
    start_from: Path | None = None  # G's checkpoint (weights and optimizer state)
    shared_order: int | None = None  # retain samples ordered as the oracle's (see epoch_pairs)
    evaluate: Callable | None = None  # model -> metrics, called after every epoch
    progress: bool = True
    history: list = field(default_factory=list)


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


def epoch_pairs(n_forget: int, n_retain: int, seed: int, epoch: int, rank: int = 0,
                world: int = 1, shared: int | None = None) -> list[tuple[int | None, int | None]]:
    """(forget index, retain index) for every step of an epoch, this rank's share.

    As in the paper's Algorithms 1 and 2, each step pairs one forget and one retain sample;
    the epoch is as long as the longer stream and the shorter one cycles.

    ``shared``: the first ``shared`` retain indices keep exactly the order a run over only
    them would draw, and the others are inserted at random places. G (trained on Dr + Df)
    then sees Dr in the oracle's order: the two runs differ only by the forget slices
    (common random numbers), so their paired difference is not buried in order noise.
    """
    rng = np.random.default_rng([seed, epoch])
    forget = rng.permutation(n_forget) if n_forget else None
    if shared is not None and shared < n_retain:
        retain = _insert_extra(rng.permutation(shared), np.arange(shared, n_retain),
                               [seed, epoch, 1])
    else:
        retain = rng.permutation(n_retain) if n_retain else None
    steps = max(n_forget, n_retain)
    pairs = [(None if forget is None else int(forget[i % n_forget]),
              None if retain is None else int(retain[i % n_retain])) for i in range(steps)]
    per_rank = len(pairs) // world
    return pairs[rank * per_rank:(rank + 1) * per_rank] if world > 1 else pairs


def _insert_extra(base: np.ndarray, extra: np.ndarray, seed) -> np.ndarray:
    """``base`` in its order with ``extra`` (shuffled) inserted at random places."""
    rng = np.random.default_rng(seed)
    total = len(base) + len(extra)
    places = np.zeros(total, bool)
    places[rng.choice(total, size=len(extra), replace=False)] = True
    merged = np.empty(total, int)
    merged[places], merged[~places] = rng.permutation(extra), base
    return merged


def drop_epoch(train: TrainConfig) -> int:
    """The first epoch (0-based) at the dropped learning rate; ``epochs`` when it never drops."""
    if train.lr_step is None:
        return train.epochs
    return min(train.epochs, round(train.lr_step * train.epochs))


def learning_rate(train: TrainConfig, epoch: int) -> float:
    """The step schedule of fastMRI's VarNet recipe: lr, then lr * lr_gamma from lr_step on."""
    if train.lr_step is None or epoch < drop_epoch(train):
        return train.lr
    return train.lr * train.lr_gamma


def unlearning_schedule(train: TrainConfig) -> TrainConfig:
    """Unlearning's settings: the paper's constant rate (``unlearn_lr``), no drop."""
    return replace(train, lr=train.unlearn_lr, lr_step=None)


def make_optimizer(model: torch.nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """The paper's Adam; fused: one kernel for all parameters, same update (1.1x on CPU)."""
    return torch.optim.Adam(model.parameters(), lr=train.lr, fused=True)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _batch(dataset, index, fabric):
    """One sample as a batch of one, on the loop's device."""
    if index is None:
        return None
    return fabric.to_device(default_collate([dataset[index]]))


def save_atomic(fabric: Fabric, path: Path, state: dict) -> None:
    """Write a checkpoint next to ``path`` and rename it in place: a kill never leaves half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fabric.save(tmp, state)
    if fabric.is_global_zero:
        os.replace(tmp, path)
    fabric.barrier()


def run_loop(loop: Loop, model: torch.nn.Module, fabric: Fabric) -> dict:
    """Run (or resume) the loop; returns history and timing. The model is trained in place."""
    torch.manual_seed(loop.seed)
    optimizer = make_optimizer(model, loop.train)
    if loop.start_from is not None:  # continue from G with its optimizer state, as the paper's code
        with checkpoint_errors(loop.start_from, f"delete {Path(loop.start_from).parent} to "
                               "retrain the original model it came from"):
            fabric.load(loop.start_from, {"model": model, "optimizer": optimizer}, strict=False,
                        weights_only=True)
    model, optimizer = fabric.setup(model, optimizer)
    loss_fn = ReconstructionLoss(loop.train.loss, loop.train.l1_weight).to(fabric.device)
    state = {"model": model, "optimizer": optimizer, "epoch": 0, "history": [],
             "train_seconds": 0.0, "steps": 0, "samples": 0}
    if Path(loop.checkpoint).exists():
        with checkpoint_errors(loop.checkpoint):
            fabric.load(loop.checkpoint, state, weights_only=True)
    n_forget = len(loop.forget) if loop.forget is not None and loop.method.forget != "none" else 0
    n_retain = len(loop.retain) if loop.retain is not None else 0

    for epoch in range(state["epoch"], loop.epochs):
        model.train()
        set_learning_rate(optimizer, learning_rate(loop.train, epoch))
        pairs = epoch_pairs(n_forget, n_retain, loop.seed, epoch, fabric.global_rank,
                            fabric.world_size, shared=loop.shared_order)
        noise = torch.Generator().manual_seed(loop.seed * 1_000_003 + epoch)
        bar = tqdm(pairs, desc=f"{loop.method.name} epoch {epoch + 1}/{loop.epochs}",
                   disable=not (loop.progress and fabric.is_global_zero), leave=False)
        start, losses = time.perf_counter(), []
        for f_index, r_index in bar:
            forget = _batch(loop.forget, f_index, fabric)
            retain = _batch(loop.retain, r_index, fabric)
            loss, terms = step_loss(loop.method, model, loss_fn, forget, retain,
                                    gamma=loop.gamma, lam=loop.lam, generator=noise)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            fabric.clip_gradients(model, optimizer, max_norm=loop.train.grad_clip)
            optimizer.step()
            losses.append(float(loss.detach()))
            state["steps"] += 1
            state["samples"] += (forget is not None) + (retain is not None)
            bar.set_postfix(loss=f"{losses[-1]:.4f}",
                            samples_s=f"{state['samples'] / max(state['train_seconds'] + time.perf_counter() - start, 1e-9):.1f}")
        state["train_seconds"] += time.perf_counter() - start
        entry = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None}
        if loop.evaluate is not None and fabric.is_global_zero:
            entry["metrics"] = loop.evaluate(model)
        state["history"] = state["history"] + [entry]
        state["epoch"] = epoch + 1
        save_atomic(fabric, loop.checkpoint, state)
    return {"history": state["history"], "train_seconds": state["train_seconds"],
            "steps": state["steps"] * fabric.world_size,
            "samples": state["samples"] * fabric.world_size}
