"""What a run will take, said before it starts: its length from the profile, its time from a
short step timing on this device, and a warning when the ``paper`` profile meets a CPU.

The disk a synthetic data set takes is said (and refused when it does not fit) where it is
made, in ``erase.data.synthetic``.
"""
from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from multiprocessing import get_context

import torch
from torch.utils.data import default_collate

from .engine import make_optimizer, on_device
from .evaluate import ACCURACY
from .lab import Job
from .methods import ReconstructionLoss
from .models import reconstruct

LONG_SECONDS = 60.0  # a run estimated to take longer is announced before it starts


@dataclass
class Plan:
    """A job's length and its estimated time on the Lab's device."""

    what: str  # "train original", "unlearn NL-FT"
    epochs: int
    slices: int  # slices pushed through the network in training, every run it needs included
    steps: int
    step_seconds: float
    eval_slices: int  # slices reconstructed by the per-epoch and final evaluations
    seconds: float
    device: str
    runs: tuple = ()  # the runs it starts, G first when unlearning needs it

    def line(self) -> str:
        runs = " and ".join(self.runs)
        return (f"plan: {runs}: {self.slices:,} training slices in {self.steps:,} steps and "
                f"{self.eval_slices:,} evaluated; about {duration(self.seconds)} on "
                f"{self.device} (a step took {self.step_seconds:.3g} s here)")


def duration(seconds: float) -> str:
    """45 s, 12 min, 3.4 h, 2.1 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def time_step(lab, steps: int = 2, patience: float = 10.0, ready=None) -> float:
    """Seconds of one training step (the profile's batch of retain slices, forward, loss,
    backward, clipped Adam step) of a throwaway copy of the Lab's network on its device: the
    fastest of ``steps`` (only one when that one took over ``patience`` seconds). ``ready``
    is called after the set-up, before the timed steps."""
    dataset = lab.dataset("retain")
    size = max(1, min(lab.train_config.batch_size, len(dataset)))
    device = torch.device(lab.device)
    batch = default_collate([dataset[i] for i in range(size)])
    batch = batch._replace(**{k: getattr(batch, k).to(device) for k in
                              ("masked_kspace", "mask", "target", "max_value")})
    state = torch.random.get_rng_state()
    model = on_device(lab.new_model(), device).train()
    torch.random.set_rng_state(state)  # the timing leaves the global generator as it was
    optimizer = make_optimizer(model, lab.train_config)
    loss_fn = ReconstructionLoss(lab.train_config.loss, lab.train_config.l1_weight).to(device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                if "bf16" in str(lab.precision) else None)
    if ready is not None:
        ready()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        if autocast is not None:
            with autocast:
                loss = loss_fn(reconstruct(model, batch), batch.target, batch.max_value)
        else:
            loss = loss_fn(reconstruct(model, batch), batch.target, batch.max_value)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), lab.train_config.grad_clip)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if times[-1] > patience:
            break
    return min(times)


def time_step_together(lab, processes: int, steps: int = 3) -> float:
    """Seconds of a training step while ``processes`` processes take steps at once, as
    ``run_many``'s workers do: they share the machine's memory and caches, and each is slower
    than one alone (1.15x for two at the default scale). The slowest process's fastest step;
    ``time_step`` in this process when ``processes`` is 1 or the processes fail."""
    if processes <= 1:
        return time_step(lab)
    ctx = get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=_time_in_process, daemon=True,
                           args=(lab.settings(), steps, barrier, results))
               for _ in range(processes)]
    for w in workers:
        w.start()
    try:
        return max(results.get(timeout=300) for _ in workers)
    except queue.Empty:
        return time_step(lab)
    finally:
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.kill()


def _time_in_process(settings: dict, steps: int, barrier, results) -> None:
    from .lab import Lab

    try:
        results.put(time_step(Lab(**settings), steps, ready=barrier.wait))
    except BaseException:
        barrier.abort()  # the others stop waiting; the caller times in its own process
        raise


def work(lab, job: Job) -> dict:
    """What one job pushes through the network, known before it runs: training ``slices`` in
    ``steps``, ``evaluated`` slices (after every epoch and at the end), ``epochs``."""
    counts = {name: c["slices"] for name, c in lab.counts().items()}
    tests = sum(counts[split] for split in ACCURACY.values())
    slices = lab.cost(job)
    epochs = lab.train_config.epochs if job.kind == "train" else int(job.knobs.get("epochs", 0))
    per_epoch = counts["val"] if job.kind == "train" else counts["brain_test"] + counts["knee_test"]
    return {"slices": slices, "steps": -(-slices // max(1, lab.train_config.batch_size)),
            "evaluated": epochs * per_epoch + tests, "epochs": epochs}


def seconds(lab, work_of: dict, step_seconds: float) -> float:
    """The time of a job's ``work`` at ``step_seconds`` a training step (a reconstruction
    costs about a third of a training step's slice: forward only)."""
    per_slice = step_seconds / max(1, lab.train_config.batch_size)
    return work_of["steps"] * step_seconds + work_of["evaluated"] * per_slice / 3


def plan(lab, job: Job, step_seconds: float | None = None) -> Plan:
    """How long ``job`` will take here, with every run it starts (G before an unlearning
    job, when G is not stored). ``step_seconds``: a timing already made (else ``time_step``).
    """
    jobs = [job]
    if job.kind == "unlearn" and lab.stored(Job("train", "original")) is None:
        jobs.insert(0, Job("train", "original"))
    parts = [work(lab, j) for j in jobs]
    step = time_step(lab) if step_seconds is None else step_seconds
    return Plan(what=f"{job.kind} {job.name}", epochs=sum(p["epochs"] for p in parts),
                slices=sum(p["slices"] for p in parts), steps=sum(p["steps"] for p in parts),
                step_seconds=step, eval_slices=sum(p["evaluated"] for p in parts),
                seconds=sum(seconds(lab, p, step) for p in parts), device=lab.device,
                runs=tuple(f"{j.kind} {j.name}" for j in jobs))


def cpu_warning(scale: str, device: str) -> str | None:
    """A warning line when the ``paper`` profile is about to run on a CPU."""
    if scale == "paper" and device == "cpu":
        return ("warning: the paper profile (a 12-cascade VarNet on 320x320 16-coil slices, "
                "50 epochs) is meant for a GPU: on a CPU it takes days. Use --device cuda, or "
                "--scale default for a CPU")
    return None


__all__ = ["LONG_SECONDS", "Plan", "duration", "time_step", "time_step_together", "work",
           "seconds", "plan", "cpu_warning"]
