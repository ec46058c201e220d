"""The embedded data set: synthetic brain and knee volumes as a directory of fastMRI files.

Generated on demand from a seed, byte-identical for the same seed and parameters, and reused
when a directory already holds a complete set made with the same parameters (a stamp file
records them). It is written next to the final directory and renamed into place, so an
interrupted generation never leaves a half-written data set behind.

Its size is estimated from the config (``estimate_bytes``) before anything is written: a set
that does not fit the free space of its file system is refused (naming --data-root and the
smaller profiles), and one over a gigabyte says what it takes on stderr.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ..config import SCALES, ConfigError, DataConfig, to_dict
from . import phantoms
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


# Per file, beyond its arrays: HDF5 superblock and object headers, the ISMRMRD header, the
# attributes (measured: about 6.7 KB on the embedded sets' files).
FILE_OVERHEAD = 8192
# Set to a number of bytes to stand in for the target file system's free space (tests).
FREE_BYTES_VARIABLE = "ERASE_FREE_BYTES"
ANNOUNCE_BYTES = 10**9  # a set larger than this says what it takes (on stderr) before writing


def estimate_bytes(config: DataConfig) -> int:
    """Disk the synthetic set of ``config`` takes: per slice its k-space (complex64, every
    coil) and its target (float32), plus the overhead of every file and the stamp."""
    pixels = config.image_size ** 2
    per_slice = pixels * (8 * config.coils + 4)
    volumes = config.brain_volumes + config.knee_volumes
    return volumes * (config.slices_per_volume * per_slice + FILE_OVERHEAD) + 4096


def human_bytes(n: float) -> str:
    """1.6 MB, 27.1 MB, 162.4 GB (decimal units, as disks are sold)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def free_bytes(path: Path) -> int:
    """Free space of the file system that would hold ``path`` (its nearest existing folder),
    or the number in the environment variable ERASE_FREE_BYTES when that is set."""
    if os.environ.get(FREE_BYTES_VARIABLE):
        try:
            return int(float(os.environ[FREE_BYTES_VARIABLE]))
        except ValueError:
            raise ConfigError(f"{FREE_BYTES_VARIABLE} must be a number of bytes, got "
                              f"{os.environ[FREE_BYTES_VARIABLE]!r}") from None
    existing = Path(path).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def describe(config: DataConfig) -> str:
    """'1500 volumes of 8 slices, 320x320, 16 coils'."""
    return (f"{config.brain_volumes + config.knee_volumes} volumes of "
            f"{config.slices_per_volume} slices, {config.image_size}x{config.image_size}, "
            f"{config.coils} coils")


def check_space(out: Path, config: DataConfig, free: int | None = None) -> tuple[int, int]:
    """Refuse, before anything is written, a synthetic set that does not fit the free space
    of ``out``'s file system; return (its estimated size, the free space) in bytes."""
    need = estimate_bytes(config)
    free = free_bytes(out) if free is None else free
    if need > free:
        smaller = [f"--scale {name} needs {human_bytes(estimate_bytes(scale.data))}"
                   for name, scale in SCALES.items() if estimate_bytes(scale.data) < need]
        raise ConfigError(
            f"the synthetic data set ({describe(config)}) needs about {human_bytes(need)} but "
            f"{Path(out).parent} has {human_bytes(free)} free; point --data-root at a "
            f"directory of fastMRI files, or use a smaller profile "
            f"({'; '.join(smaller) or 'none is smaller'})")
    return need, free


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


def synthesize(out: Path, config: DataConfig, seed: int = 0, quiet: bool = True,
               free: int | None = None) -> dict:
    """Make (or reuse) the synthetic data set in ``out``; return its stamp with timing.

    Refuses to touch a non-empty directory that it did not make itself, and a set larger
    than the free space of its file system (``check_space``; ``free`` stands in for that free
    space), before writing anything. Two processes asking for the same directory at once take
    turns (a lock next to it): the second reuses the first one's files.
    """
    out = Path(out)
    if is_current(out, config, seed):
        return {**json.loads((out / STAMP).read_text()), "reused": True}
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file: choose an empty or new --out directory")
    if out.exists() and any(out.iterdir()) and not (out / STAMP).exists():
        raise ConfigError(f"{out} is not empty and was not made by erase synth: "
                          "choose an empty or new --out directory")
    need, free = check_space(out, config, free)
    if need > ANNOUNCE_BYTES:
        print(f"writing the synthetic data set ({describe(config)}): about "
              f"{human_bytes(need)} to {out} ({human_bytes(free)} free)", file=sys.stderr,
              flush=True)
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
