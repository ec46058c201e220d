"""``erase check-gpu``: the ``paper`` model shape through the real Lab and loop on a GPU.

A few synthetic volumes at the ``paper`` profile's acquisition (320 x 320 k-space, 16 coils,
8x) are written as fastMRI files in a temporary directory; a Lab of the ``paper`` profile
(the 12-cascade VarNet, batch 1) trains G on them for one epoch and unlearns with NL-FT for
one epoch, each through ``Lab.run`` and the one loop, optionally under bf16 autocast. It
prints steps/s and peak GPU memory of each, and says so in one line when no GPU is visible.

The same code runs on a CPU at any profile (``check(device="cpu", scale="smoke")``), which
is how the test suite exercises it without a GPU.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from ..config import get_scale
from ..data.synthetic import volume_plan, write_volume
from .lab import Lab

NO_GPU = ("check-gpu: no GPU visible to torch (torch.cuda.is_available() is False); nothing "
          "was run")


def write_check_data(folder: Path, scale: str = "paper", brain: int = 4, knee: int = 3,
                     slices: int = 2) -> Path:
    """A handful of volumes at the profile's acquisition, as fastMRI files in ``folder``."""
    config = dataclasses.replace(get_scale(scale).data, brain_volumes=brain,
                                 knee_volumes=knee, slices_per_volume=slices)
    for item in volume_plan(config, seed=0):
        write_volume(Path(folder), item, config)
    return Path(folder)


def _measure(lab: Lab, job, device: str) -> dict:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    record = lab.run(job)
    wall = time.perf_counter() - start
    timing = record["timing"]
    seconds = max(timing["train_seconds"], 1e-9)
    return {"run": f"{job.kind} {job.name}", "steps": timing["steps"],
            "samples": timing["samples"], "train_seconds": timing["train_seconds"],
            "steps_per_second": timing["steps"] / seconds,
            "samples_per_second": timing["samples"] / seconds, "wall_seconds": wall,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
            "summary": record["summary"]}


def check(device: str = "cuda", bf16: bool = False, scale: str = "paper", workdir=None,
          brain: int = 4, knee: int = 3, slices: int = 2, method: str = "NL-FT",
          say=print) -> dict:
    """Train G one epoch and unlearn it one epoch at ``scale``'s model and acquisition on
    ``device``; return and print what it measured. Without a visible GPU (``device`` cuda)
    it prints ``NO_GPU`` and returns {"skipped": ...}."""
    if device == "cuda" and not torch.cuda.is_available():
        say(NO_GPU)
        return {"skipped": NO_GPU}
    precision = "bf16-mixed" if bf16 else "32-true"
    with tempfile.TemporaryDirectory(prefix="erase-check-gpu-", dir=workdir) as tmp:
        root = write_check_data(Path(tmp) / "data", scale, brain, knee, slices)
        lab = Lab(scale=scale, device=device, data_root=root, results_dir=Path(tmp) / "results",
                  epochs=1, precision=precision, progress=False)
        profile = lab.profile
        gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
        params = sum(p.numel() for p in lab.new_model().parameters())
        say(f"check-gpu: {gpu or device}, {precision}: VarNet {profile.model.cascades} cascades "
            f"({params:,} parameters), {profile.data.image_size}x"
            f"{profile.data.image_size} k-space, {profile.data.coils} coils, batch "
            f"{profile.train.batch_size}; {sum(c['slices'] for c in lab.counts().values())} "
            f"slices in {tmp}")
        rows = [_measure(lab, lab.job("original"), device),
                _measure(lab, lab.job(method, epochs=1), device)]
        for row in rows:
            peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.2f} GiB"
            say(f"check-gpu: {row['run']:16s} {row['steps']:4d} steps in "
                f"{row['train_seconds']:7.2f} s: {row['steps_per_second']:7.2f} steps/s, "
                f"{row['samples_per_second']:7.2f} slices/s, peak memory {peak}")
    return {"device": device, "gpu": gpu, "precision": precision, "scale": scale,
            "parameters": params, "rows": rows}


__all__ = ["NO_GPU", "write_check_data", "check"]
