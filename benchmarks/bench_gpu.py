"""GPU section: the paper-size VarNet at fastMRI's matrix size, ours vs fastMRI's Lightning step.

Skipped, with a message, when no GPU is visible. Data: a few synthetic volumes made with the
``paper`` profile's acquisition (``image_size`` x ``image_size`` k-space, the profile's coils;
320 x 320 with 16 coils today, fastMRI brain's reconstruction matrix), written as fastMRI files
and read back through ``SliceDataset`` + ``VarNetDataTransform`` like every other data set.

Rows (batch 1, Adam lr 1e-3, clip as in the profile, medians over steps after a warm-up):

- ``fastmri_lightning``: ``VarNetModule`` under ``pl.Trainer`` at fastMRI's default fp32 and
  with ``precision="bf16-mixed"``;
- ``ours``: our loop's step at ``32-true``, at Fabric ``bf16-mixed``, plus channels-last, plus
  ``torch.compile`` (the U-Net regularizers, or the whole network).

Each row reports ms/step, samples/s, peak GPU memory and its speed relative to fastMRI's fp32
Lightning step (the target on a GPU: >= 2.0).
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from bench_common import median, quiet, table, time_steps

VARIANTS = (  # name, precision, channels_last, compile mode
    ("ours fp32", "32-true", False, None),
    ("ours bf16-mixed", "bf16-mixed", False, None),
    ("ours bf16-mixed + channels-last", "bf16-mixed", True, None),
    ("ours bf16-mixed + channels-last + compile(regularizers)", "bf16-mixed", True,
     "regularizers"),
    ("ours bf16-mixed + channels-last + compile(full)", "bf16-mixed", True, "full"),
)


def paper_samples(scale="paper", volumes=2, slices=None, out_dir=None):
    """A few fastMRI-format volumes at the profile's matrix size, loaded into memory."""
    from fastmri.data import SliceDataset
    from fastmri.data.transforms import VarNetDataTransform

    from erase import data as data_lib
    from erase.config import get_scale
    from erase.data.synthetic import volume_plan, write_volume

    profile = get_scale(scale)
    config = dataclasses.replace(profile.data, brain_volumes=volumes, knee_volumes=0,
                                 slices_per_volume=slices or profile.data.slices_per_volume)
    folder = Path(out_dir or tempfile.mkdtemp(prefix="erase-gpu-bench-"))
    for item in volume_plan(config, seed=0):
        write_volume(folder, item, config)
    dataset = SliceDataset(root=folder / "brain", challenge="multicoil",
                           transform=VarNetDataTransform(data_lib.mask_func(config),
                                                         use_seed=True))
    return profile, [dataset[i] for i in range(len(dataset))]  # in memory: no I/O in the steps


def measure(make_step, device, warmup, steps) -> dict:
    import torch
    sync = torch.cuda.synchronize if device == "cuda" else None
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    step = make_step()
    first = time_steps(step, 0, 1, sync)[0]
    time_steps(step, 1, warmup, sync)
    warm_s = time.perf_counter() - start
    times = time_steps(step, warmup + 1, steps, sync)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return {"ms_per_step": 1e3 * median(times), "samples_per_s": 1.0 / median(times),
            "first_step_s": first, "setup_and_warmup_s": warm_s, "peak_gib": peak}


def run(scale="paper", device="cuda", warmup=10, steps=50, variants=VARIANTS,
        volumes=2) -> dict:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        return {"skipped": "no GPU visible to torch (torch.cuda.is_available() is False)"}
    from bench_step import fastmri_lightning_times, our_step
    quiet()
    profile, data = paper_samples(scale, volumes)
    out = {"scale": scale, "device": device, "model": dict(profile.model.__dict__),
           "sample": list(data[0].masked_kspace.shape), "samples": len(data), "rows": {},
           "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None}
    torch.manual_seed(0)
    for precision in ("32-true", "bf16-mixed"):
        name = f"fastmri_lightning {precision}"
        try:
            if device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            times = fastmri_lightning_times(profile, data, steps, device, precision,
                                            warmup=warmup)
            out["rows"][name] = {
                "ms_per_step": 1e3 * median(times), "samples_per_s": 1.0 / median(times),
                "setup_and_warmup_s": time.perf_counter() - start - sum(times),
                "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None}
        except Exception as err:  # noqa: BLE001 - a failed row is reported, the rest still run
            out["rows"][name] = {"error": f"{type(err).__name__}: {err}"[:300]}
    for name, precision, channels_last, mode in variants:
        try:
            out["rows"][name] = measure(
                lambda: our_step(profile, data, device, precision, mode, channels_last),
                device, warmup, steps)
        except Exception as err:  # noqa: BLE001
            out["rows"][name] = {"error": f"{type(err).__name__}: {err}"[:300]}
    base = out["rows"].get("fastmri_lightning 32-true", {}).get("samples_per_s")
    for row in out["rows"].values():
        if base and "samples_per_s" in row:
            row["vs_fastmri_lightning_fp32"] = row["samples_per_s"] / base
    return out


def report(out: dict) -> str:
    if "skipped" in out:
        return f"GPU section skipped: {out['skipped']}"
    rows = []
    for name, r in out["rows"].items():
        if "error" in r:
            rows.append([name, "failed: " + r["error"], "", "", "", ""])
            continue
        rows.append([name, r["ms_per_step"], r["samples_per_s"],
                     "-" if r.get("peak_gib") is None else f"{r['peak_gib']:.2f}",
                     r.get("setup_and_warmup_s", 0.0),
                     f"{r.get('vs_fastmri_lightning_fp32', float('nan')):.2f}x"])
    return "\n".join([
        f"{out.get('gpu') or out['device']}: VarNet {out['model']}, k-space {out['sample']}, "
        f"{out['samples']} slices, batch 1", "",
        table(rows, ["path", "ms/step", "samples/s", "peak GiB", "setup+warm-up s",
                     "vs fastMRI Lightning fp32"])])


if __name__ == "__main__":
    print(report(run()))
