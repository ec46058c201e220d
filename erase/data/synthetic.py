"""The embedded data set: synthetic brain and knee volumes as a directory of fastMRI files.

Generated on demand from a seed, byte-identical for the same seed and parameters, and reused
when a directory already holds a complete set made with the same parameters (a stamp file
records them). It is written next to the final directory and renamed into place, so an
interrupted generation never leaves a half-written data set behind.
"""
from __future__ import annotations

import fcntl
import json
import shutil
import time
from pathlib import Path

import numpy as np

from . import phantoms
from ..config import ConfigError, DataConfig, to_dict
from .simulate import ACQUISITION, acquire, write_fastmri_file

STAMP = "erase-synthetic.json"
FORMAT_VERSION = 3  # bump when phantoms or acquisition change what a seed produces


def volume_plan(config: DataConfig, seed: int) -> list[dict]:
    """Name, anatomy and seed of each volume, in fastMRI's file naming."""
    plan = []
    for i in range(config.brain_volumes):
        plan.append({"name": f"brain/file_brain_AXT2_200_{6000000 + i}.h5", "anatomy": "brain",
                     "seed": seed * 100_003 + i})
    for i in range(config.knee_volumes):
        plan.append({"name": f"knee/file{1000000 + i}.h5", "anatomy": "knee",
                     "seed": seed * 100_003 + 50_000 + i})
    return plan


def stamp_of(config: DataConfig, seed: int) -> dict:
    """What a synthetic directory was made from; equal stamps mean equal files."""
    fields = ("image_size", "coils", "brain_volumes", "knee_volumes", "slices_per_volume",
              "noise_level")
    params = {k: v for k, v in to_dict(config).items() if k in fields}
    return {"format": FORMAT_VERSION, "seed": seed, "params": params}


def is_current(out: Path, config: DataConfig, seed: int) -> bool:
    """True when ``out`` already holds a complete set made from the same parameters."""
    stamp = Path(out) / STAMP
    try:
        return json.loads(stamp.read_text())["stamp"] == stamp_of(config, seed)
    except (OSError, ValueError, KeyError):
        return False


def write_volume(directory: Path, item: dict, config: DataConfig) -> None:
    """Draw one phantom volume, acquire it and write its fastMRI file."""
    make = phantoms.brain_volume if item["anatomy"] == "brain" else phantoms.knee_volume
    image, _ = make(item["seed"], config.slices_per_volume, config.image_size)
    rng = np.random.default_rng(item["seed"] + 7)
    kspace, target = acquire(image, config.coils, config.noise_level, rng)
    path = directory / item["name"]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_fastmri_file(path, kspace, target, ACQUISITION[item["anatomy"]],
                       patient_id=f"synthetic-{item['anatomy']}-{item['seed']}")


def synthesize(out: Path, config: DataConfig, seed: int = 0, quiet: bool = True) -> dict:
    """Make (or reuse) the synthetic data set in ``out``; return its stamp with timing.

    Refuses to touch a non-empty directory that it did not make itself. Two processes asking
    for the same directory at once take turns (a lock next to it): the second reuses the
    first one's files.
    """
    out = Path(out)
    if is_current(out, config, seed):
        return {**json.loads((out / STAMP).read_text()), "reused": True}
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file: choose an empty or new --out directory")
    if out.exists() and any(out.iterdir()) and not (out / STAMP).exists():
        raise ConfigError(f"{out} is not empty and was not made by erase synth: "
                          "choose an empty or new --out directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(f".{out.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if is_current(out, config, seed):  # another process made it while we waited
                return {**json.loads((out / STAMP).read_text()), "reused": True}
            return _write(out, config, seed, quiet)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(out: Path, config: DataConfig, seed: int, quiet: bool) -> dict:
    start = time.perf_counter()
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed run; we hold the lock
    partial.mkdir(parents=True)
    plan = volume_plan(config, seed)
    for item in plan:
        write_volume(partial, item, config)
    seconds = time.perf_counter() - start
    record = {"stamp": stamp_of(config, seed), "files": [p["name"] for p in plan],
              "seconds": round(seconds, 2)}
    (partial / STAMP).write_text(json.dumps(record, indent=1))
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    if not quiet:
        print(f"wrote {len(plan)} volumes to {out} in {seconds:.1f} s")
    return {**record, "reused": False}
