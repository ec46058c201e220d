"""The one training loop: train the oracle and the original model, retrain, and unlearn.

Everything that differs between those runs is data: a method row (what to do with forget
samples, which penalty, which retain data), the protocol's switches, the data sets and a
starting checkpoint. The loop below is meant to be read in one sitting; Lightning Fabric takes
care of the device, precision, multi-process DDP and checkpoint I/O.

Rows beyond the paper add parts through three hooks, each driven by a field of the row:
``prepare`` before the epochs (at G: SalUn's weight mask, SSD's dampening), the teacher's
outputs as an extra input of every step (SCRUB), and the weight mask applied to the gradient
after the backward pass (``optimizer_step``). A row that ``trains`` nothing (SSD) is its
prepare and zero epochs.

Determinism: the order of each epoch is drawn from (seed, epoch), a random training mask from
(seed, epoch, slice) and the noisy labels from (seed, epoch), so a run resumed from its last
checkpoint ends bit-identical (on CPU) to a run that was never interrupted.
"""
from __future__ import annotations

import copy
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch.utils.data import default_collate
from tqdm import tqdm

from ..config import ConfigError, Protocol, TrainConfig
from .methods import (
    Method,
    ReconstructionLoss,
    dampen,
    fisher_importance,
    gradient_sum,
    l1_weight_at,
    saliency_mask,
    step_terms,
    trainable,
)
from .store import checkpoint_errors

if TYPE_CHECKING:  # Lightning is imported only when a run trains: reading results stays fast
    from lightning_fabric import Fabric

ENGINE_VERSION = 4  # bump when a change to the code that computes a run's numbers changes them

# No stale results: ENGINE_VERSION enters every run key, and ENGINE_CODE records what it was
# last set (or confirmed) for: a hash of each piece of code that computes a run's numbers (the
# order of an epoch, a step, a loss, a transform or mask, a metric; this record itself is left
# out). tests/test_versions.py recomputes the hashes from the syntax trees (comments, docstrings
# and layout do not count) and fails, naming the code that changed, until someone decides: bump
# ENGINE_VERSION if the change can change a number (every stored run is then recomputed), and
# write the new hashes here either way. (Chosen over keying every run by a hash of this code,
# which would recompute the book's runs, about 15 minutes on two cores, in every developer's
# store after any rename or refactor of these modules, and never ask whether numbers changed.)
ENGINE_CODE = {
    "erase.runs.engine": "1a7fb6556369770b",  # the loop, a step, an epoch's order
    "erase.runs.methods": "f50fd4fb4b755d4d",  # the rows, their terms and losses
    "erase.runs.models": "038afdaf334f6652",  # the networks and a reconstruction
    "erase.runs.evaluate": "a7b9a1f933894d81",  # the metrics of a record
    "erase.runs.slice_scores": "8c9c1b910e97f204",  # per-slice hallucination scores
    "erase.data.loading": "0d2d06e7b68d0c00",  # masks and fastMRI's transform
    "erase.data.split:retain_subset": "47844e23e4596924",  # Dr'
    "erase.runs.lab:Lab.loop": "91e172b11b4d89d6",  # the data and start a run reads
    "erase.runs.lab:Lab._evaluation": "d114ce13139baae5",  # what is evaluated after every epoch
    "erase.runs.lab:Lab._record": "3f6b46a354c8824d",  # a record's final metrics
    "erase.runs.lab:Lab._by_anatomy": "d75158e407b04a4c",  # validation per anatomy
    "erase.runs.lab:Lab.zero_filled": "8e58ef22ded816e8",  # the zero-filled floor
    "erase.runs.noise": "6ac0da9e3f32592f",  # rho <-> lambda
    # G's error on Df, what rho is relative to
    "erase.runs.lab:Lab.forget_error": "6157d060c9f9e240",
    "erase.runs.lab:Lab.noise_of": "264274decc2638ce",  # a run's lambda from its rho
}

# Interruption tests kill a run at an exact point instead of watching its progress bar: with
# ERASE_TEST_STOP_AFTER_STEP=N the process sends itself SIGKILL right after the N-th optimizer
# step of the run (counted over the whole run, as its checkpoint counts them: a run resumed with
# the same setting stops at the same step again); with ERASE_TEST_STOP_AFTER_EPOCH=E, right
# after epoch E's checkpoint is written.
STOP_AFTER_STEP, STOP_AFTER_EPOCH = "ERASE_TEST_STOP_AFTER_STEP", "ERASE_TEST_STOP_AFTER_EPOCH"

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
    checkpoint: Path | None  # rewritten atomically after every epoch; None: none (a replay)
    protocol: Protocol = field(default_factory=Protocol)
    gamma: float | None = None  # None: the protocol's (see methods.ascent_weights)
    lam: float = 0.0
    ascent: float | None = None  # GA's weight of -J; None: the protocol's
    start_from: Path | None = None  # G's checkpoint (weights, optimizer and scheduler state)
    # G's retain stream keeps the oracle's order: the first ``oracle_order_of`` retain samples
    # are Dr in the order the oracle sees them, the rest (Df) inserted (see epoch_steps)
    oracle_order_of: int | None = None
    evaluate: Callable | None = None  # model -> metrics, called after every epoch
    progress: bool = True
    knobs: dict = field(default_factory=dict)  # the row's own knobs (Method.knobs), as given
    teacher_from: Path | None = None  # the teacher's checkpoint (a row with a teacher: G's)
    # forget slices are read only in the first ``forget_epochs`` epochs (None: in every one)
    forget_epochs: int | None = None


@dataclass
class Parts:
    """What a row adds to the plain loop, made once before the epochs (``prepare``)."""

    mask: list | None = None  # SalUn's m, one boolean tensor per weight tensor
    teacher: torch.nn.Module | None = None  # a frozen model (SCRUB: G)
    selected: list | None = None  # SSD's dampened weights, one boolean tensor per weight tensor
    samples: int = 0  # slices read to make them
    seconds: float = 0.0


def check_device(device: str, instead: str = "device='cpu'") -> str:
    """``device`` if it is 'cpu', or 'cuda' with a GPU visible; otherwise one error that says
    what to use ``instead`` (the Lab's and the command line's words differ)."""
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}: choose one of cpu, cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device 'cuda' was asked for but no GPU is visible; use {instead}")
    return device


def make_fabric(device: str = "cpu", precision: str = "32-true") -> Fabric:
    """A Fabric on ``device``; under torchrun it joins the process group (DDP)."""
    from lightning_fabric import Fabric

    check_device(device)
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
    if world == 1:
        return plan
    # equal steps per rank (or DDP waits forever), every slice trained: the plan is padded with
    # its first steps, as torch's DistributedSampler pads its indices
    per_rank = -(-len(plan) // world)
    padded = plan + plan[:per_rank * world - len(plan)]
    return padded[rank * per_rank:(rank + 1) * per_rank]


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


def epoch_plan(loop: Loop, epoch: int, rank: int = 0, world: int = 1) -> list:
    """The steps of one epoch of ``loop``: ``epoch_steps`` over the data the row reads in that
    epoch (no steps for a row that does not train; no forget slices for a row without a forget
    term, or after its ``forget_epochs``)."""
    if not loop.method.trains:
        return []
    reads_forget = (loop.forget is not None and loop.method.forget != "none"
                    and (loop.forget_epochs is None or epoch < loop.forget_epochs))
    n_forget = len(loop.forget) if reads_forget else 0
    n_retain = len(loop.retain) if loop.retain is not None else 0
    return epoch_steps(n_forget, n_retain, loop.seed, epoch, loop.train.batch_size,
                       loop.protocol.steps, loop.oracle_order_of, rank, world)


def prepare_reads(row: Method, n_forget: int, n_retain: int) -> int:
    """Slices a row's ``prepare`` reads: Df for SalUn's saliency, Df and Dr' for SSD."""
    return {"saliency": n_forget, "dampen": n_forget + n_retain}.get(row.prepare, 0)


# ------------------------------------------------------------------ the row's parts


def prepare(loop: Loop, model, optimizer, loss_fn, fabric) -> Parts:
    """Make a row's parts at the starting point (G), before any epoch.

    ``saliency`` (SalUn): m = 1 on the top ``saliency`` fraction of |sum over Df of grad J|.
    Adam's first moment of the masked weights is zeroed too: with a zero gradient from then on
    it stays zero, so Adam moves them by exactly nothing (G's momentum would move them on).
    ``dampen`` (SSD): I_f on Df, I_D on Dr' and Df, theta dampened where I_f > alpha I_D.
    A ``teacher`` is a frozen copy of the model loaded from ``loop.teacher_from``.
    Slices are read with their fixed (evaluation) masks, one pass each.
    """
    row, parts = loop.method, Parts()
    net = getattr(model, "module", model)  # the plain module: no DDP hooks, same weights
    started = time.perf_counter()
    if row.teacher != "none":
        parts.teacher = load_teacher(loop.teacher_from, net)
    if row.prepare == "saliency":
        gradients, parts.samples = gradient_sum(
            net, loss_fn, _in_order(loop.forget, loop.train.batch_size, fabric))
        parts.mask = saliency_mask(gradients, loop.knobs["saliency"])
        state = getattr(optimizer, "optimizer", optimizer).state
        for p, m in zip(trainable(net), parts.mask):
            if "exp_avg" in state.get(p, {}):  # (G's state may sit on another device)
                state[p]["exp_avg"].masked_fill_(~m.to(state[p]["exp_avg"].device), 0)
    elif row.prepare == "dampen":
        i_f, n_f = fisher_importance(net, loss_fn, _in_order(loop.forget, 1, fabric))
        i_r, n_r = fisher_importance(net, loss_fn, _in_order(loop.retain, 1, fabric))
        i_d = [(n_f * f + n_r * r) / (n_f + n_r) for f, r in zip(i_f, i_r)]  # over Dr' and Df
        parts.selected = dampen(net, i_f, i_d, loop.knobs["alpha"], loop.knobs["dampening"])
        parts.samples = n_f + n_r
    elif row.prepare != "none":
        raise ConfigError(f"unknown prepare {row.prepare!r} of method {row.name}")
    if row.prepare != "none":
        parts.seconds = time.perf_counter() - started
    return parts


def _in_order(dataset, size: int, fabric):
    """Every slice of ``dataset`` once, in order, in batches of ``size`` (fixed masks)."""
    for i in range(0, len(dataset), size):
        yield batch_of(dataset, list(range(i, min(i + size, len(dataset)))), fabric)


def load_teacher(path: Path, model) -> torch.nn.Module:
    """A frozen copy of ``model`` with the weights of checkpoint ``path`` (strictly)."""
    teacher = copy.deepcopy(model)
    with checkpoint_errors(path, f"delete {Path(path).parent} to retrain the model it came from"):
        teacher.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    return teacher.eval().requires_grad_(False)


def step_knobs(loop: Loop, parts: Parts, step: int, total: int) -> dict:
    """The keyword arguments of ``methods.step_terms`` at global step ``step`` of ``total``."""
    knobs = {"protocol": loop.protocol, "gamma": loop.gamma, "lam": loop.lam,
             "ascent": loop.ascent}
    if parts.teacher is not None:
        knobs.update(teacher=parts.teacher, distance=loop.knobs["distance"])
    if loop.method.penalty == "l1_decay":
        knobs["alpha"] = l1_weight_at(loop.knobs["alpha"], step, total)
    return knobs


# ------------------------------------------------------------------ one step


def on_device(model: torch.nn.Module, device) -> torch.nn.Module:
    """The model on ``device``; on a CPU with its convolution weights channels-last, which
    oneDNN runs 1.1x faster at the default's small shapes (benchmarks/RESULTS.md). Before
    Adam exists: its state then takes the weights' device and layout."""
    device = torch.device(device)
    layout = torch.channels_last if device.type == "cpu" else torch.preserve_format
    return model.to(device, memory_format=layout)


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


def optimizer_step(fabric: Fabric, model, optimizer, loss, grad_clip: float,
                   mask: list | None = None) -> None:
    """Backward, (a row's weight mask m: the gradient of the weights outside it set to zero),
    clip the gradient norm (the paper's 0.5), Adam step: the loop's and the replay's
    (``studies.replay``) one way of taking a step."""
    optimizer.zero_grad(set_to_none=True)
    fabric.backward(loss)
    if mask is not None:
        for p, m in zip(trainable(model), mask):
            if p.grad is not None:
                p.grad.masked_fill_(~m, 0)
    fabric.clip_gradients(model, optimizer, max_norm=grad_clip)
    optimizer.step()


def train_step(loop: Loop, model, optimizer, loss_fn, fabric: Fabric, parts: Parts, forget,
               retain, watch: Watch | None = None, step: int = 0, **knobs) -> torch.Tensor:
    """One step of the loop: the row's terms on the batches, then ``optimizer_step``. The one
    step body: ``run_loop`` takes it, and so do Figure 4's replay and the step benchmark.

    Args:
        watch: sees the terms before the weights move (``Watch.before``).
        step: the step's number in the run, for ``watch``.
        knobs: the row's knobs for this step (``step_knobs``) and the noisy label's generator.
    """
    terms = step_terms(loop.method, model, loss_fn, forget, retain, **knobs)
    if watch is not None:
        watch.before(step, terms)
    loss = sum(terms.values())
    optimizer_step(fabric, model, optimizer, loss, loop.train.grad_clip, parts.mask)
    return loss


class Watch:
    """Measurements that ride along ``run_loop``'s steps without changing them (Figure 4's
    replay). ``before`` sees a step's terms before the weights move; ``after`` the model once
    they have, and returns True to end the run there (no checkpoint or history for the part
    of an epoch that ran)."""

    def before(self, step: int, terms: dict) -> None:
        pass

    def after(self, step: int, model) -> bool:
        return False


def noise_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of an epoch's noisy labels: drawn from (seed, epoch) alone, so a resumed
    run draws what an uninterrupted one draws."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def mask_seed(seed: int, epoch: int, stream: str) -> tuple:
    """The seed of an epoch's random training masks for the forget or the retain stream
    (``batch_of`` adds the slice's index): G and the oracle draw the same retain masks."""
    return (seed, epoch, {"forget": 0, "retain": 1}[stream])


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


def stop_point(name: str) -> int | None:
    """The step or epoch at which a test wants this process killed (``STOP_AFTER_*``)."""
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def stop_if(point: int | None, count: int) -> None:
    """SIGKILL this process if ``count`` is the stop point a test asked for."""
    if point is not None and count == point:
        os.kill(os.getpid(), signal.SIGKILL)


def slices_read(plan, fabric) -> int:
    """Slices an epoch's plan reads, summed over the processes (under torchrun each has its
    share, the last one padded)."""
    count = sum(len(f) + len(r) for f, r in plan)
    if fabric.world_size > 1:
        count = int(fabric.all_reduce(torch.tensor(count), reduce_op="sum"))
    return count


def save_atomic(fabric: Fabric, path: Path, state: dict) -> None:
    """Write a checkpoint next to ``path`` and rename it in place: a kill never leaves half.
    ``path`` None: the run keeps no checkpoint (a replay)."""
    if path is None:
        return
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fabric.save(tmp, state)
    if fabric.is_global_zero:
        os.replace(tmp, path)
    fabric.barrier()


def load_start(path: Path, model, optimizer, scheduler) -> None:
    """G's weights, Adam state and (when both use one) scheduler state, loaded strictly: a
    checkpoint that does not fit this model is an error, never silently skipped.

    Called before ``fabric.setup``: model and optimizer are still the plain torch objects, so
    the checkpoint is read once, as tensors and plain values only (``weights_only``), on the
    CPU; Adam's state follows its parameters to their device when the optimizer loads it.
    """
    with checkpoint_errors(path, f"delete {Path(path).parent} to retrain the original model "
                           "it came from"):
        raw = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(raw["model"], strict=True)
        optimizer.load_state_dict(raw["optimizer"])
        if scheduler is not None and "scheduler" in raw:
            scheduler.load_state_dict(raw["scheduler"])


# ------------------------------------------------------------------ what a run shows


def on_terminal() -> bool:
    """Is stderr a terminal (a bar redrawn in place) or a log (plain lines)?"""
    return sys.stderr.isatty()


class RunProgress:
    """A run's progress on stderr: on a terminal one bar over all its remaining steps (row,
    epoch, loss, elapsed and time left), cleared at the end; in a log one line per epoch."""

    def __init__(self, loop: Loop, fabric, first_epoch: int):
        self.loop, self.started = loop, time.perf_counter()
        self.steps = [len(epoch_plan(loop, e, fabric.global_rank, fabric.world_size))
                      for e in range(loop.epochs)]
        self.first, self.shown = first_epoch, None
        self.bar = (tqdm(total=sum(self.steps[first_epoch:]), leave=False, file=sys.stderr)
                    if on_terminal() else None)

    def _name(self, epoch: int) -> str:
        return f"{self.loop.method.name} epoch {epoch + 1}/{self.loop.epochs}"

    def step(self, epoch: int, loss: float) -> None:
        if self.bar is not None:
            if epoch != self.shown:  # a new epoch: its name drawn at once
                self.bar.set_description(self._name(epoch))
                self.shown = epoch
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(1)

    def epoch_done(self, epoch: int, loss: float | None) -> None:
        if self.bar is not None:
            return
        elapsed = time.perf_counter() - self.started
        done, left = sum(self.steps[self.first:epoch + 1]), sum(self.steps[epoch + 1:])
        rest = f", about {left * elapsed / done:.0f} s left" if done and left else ""
        loss_text = "" if loss is None else f": loss {loss:.4f}"
        print(f"{self._name(epoch)}{loss_text}, {elapsed:.0f} s elapsed{rest}", file=sys.stderr,
              flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------ the loop


def run_loop(loop: Loop, model: torch.nn.Module, fabric: Fabric,
             watch: Watch | None = None) -> dict:
    """Run (or resume) the loop; returns history and timing. The model is trained in place.
    ``watch``: measurements between steps (``Watch``); it may end the run early."""
    torch.manual_seed(loop.seed)
    # on the run's device before Adam exists: G's Adam state then loads onto the device of its
    # weights (loaded onto CPU weights, it would stay there when Fabric moves the model)
    model = on_device(model, fabric.device)
    optimizer = make_optimizer(model, loop.train)
    scheduler = make_scheduler(optimizer, loop.protocol)
    if loop.start_from is not None:  # continue from G, as the paper's code resumes training
        load_start(loop.start_from, model, optimizer, scheduler)
    model, optimizer = fabric.setup(model, optimizer)
    loss_fn = ReconstructionLoss(loop.train.loss, loop.train.l1_weight).to(fabric.device)
    parts = prepare(loop, model, optimizer, loss_fn, fabric)  # at G, also when resuming
    state = {"model": model, "optimizer": optimizer, "epoch": 0, "history": [],
             "train_seconds": parts.seconds, "steps": 0, "samples": 0}
    if loop.method.prepare != "none":  # slices every rank read to prepare, and how long
        state.update(prepare_samples=parts.samples, prepare_seconds=parts.seconds)
    if scheduler is not None:
        state["scheduler"] = scheduler
    if loop.checkpoint is not None and Path(loop.checkpoint).exists():
        with checkpoint_errors(loop.checkpoint):  # resumed: its timing counts the prepare
            fabric.load(loop.checkpoint, state, weights_only=True)
    elif loop.epochs == 0:  # nothing to train (SSD): the prepared model is the result
        save_atomic(fabric, loop.checkpoint, state)
    random_masks = loop.protocol.training_masks == "random"
    stop_step, stop_epoch = stop_point(STOP_AFTER_STEP), stop_point(STOP_AFTER_EPOCH)
    total_steps = (sum(len(epoch_plan(loop, e, fabric.global_rank, fabric.world_size))
                   for e in range(loop.epochs)) if loop.method.penalty == "l1_decay" else 0)

    shown = RunProgress(loop, fabric, state["epoch"]) if loop.progress and fabric.is_global_zero \
        else None
    for epoch in range(state["epoch"], loop.epochs):
        model.train()
        plan = epoch_plan(loop, epoch, fabric.global_rank, fabric.world_size)
        noise = noise_generator(loop.seed, epoch)
        lr = optimizer.param_groups[0]["lr"]
        start, losses = time.perf_counter(), []
        for f_indices, r_indices in plan:
            forget = batch_of(loop.forget, f_indices, fabric,
                              mask_seed(loop.seed, epoch, "forget") if random_masks else None)
            retain = batch_of(loop.retain, r_indices, fabric,
                              mask_seed(loop.seed, epoch, "retain") if random_masks else None)
            loss = train_step(loop, model, optimizer, loss_fn, fabric, parts, forget, retain,
                              watch, state["steps"], generator=noise,
                              **step_knobs(loop, parts, state["steps"], total_steps))
            losses.append(float(loss.detach()))
            state["steps"] += 1
            stop_if(stop_step, state["steps"])
            if watch is not None and watch.after(state["steps"], model):
                return {"history": state["history"], "steps": state["steps"], "parts": parts}
            if shown is not None:
                shown.step(epoch, losses[-1])
        state["train_seconds"] += time.perf_counter() - start
        state["samples"] += slices_read(plan, fabric)
        mean_loss = float(np.mean(losses)) if losses else None
        if scheduler is not None and mean_loss is not None:
            scheduler.step(mean_loss)
        entry = {"epoch": epoch + 1, "loss": mean_loss, "lr": lr}
        if loop.evaluate is not None and fabric.is_global_zero:
            entry["metrics"] = loop.evaluate(model)
        state["history"] = state["history"] + [entry]
        state["epoch"] = epoch + 1
        save_atomic(fabric, loop.checkpoint, state)
        stop_if(stop_epoch, state["epoch"])
        if shown is not None:
            shown.epoch_done(epoch, mean_loss)
    if shown is not None:
        shown.close()
    return {"history": state["history"], "train_seconds": state["train_seconds"],
            "steps": state["steps"] * fabric.world_size,
            "samples": state["samples"] + state.get("prepare_samples", 0),
            "prepare_seconds": state.get("prepare_seconds", 0.0), "parts": parts}
