"""Loading one split through fastMRI's own ``SliceDataset`` and ``VarNetDataTransform``.

The mask is equispaced, so synthetic and real files take exactly the same path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, DataConfig
from .fastmri_files import resolve
from .split import SPLITS, manifest_hash


def mask_func(config: DataConfig):
    """fastMRI's equispaced Cartesian mask with the paper's 8x and centre fraction 0.04."""
    from fastmri.data.subsample import EquispacedMaskFractionFunc

    return EquispacedMaskFractionFunc(center_fractions=[config.center_fraction],
                                      accelerations=[config.acceleration])


def _link_farm(manifest: dict, split: str, data_root: Path, work_dir: Path) -> Path:
    """A directory of links to one split's files, so SliceDataset reads only those headers."""
    folder = Path(work_dir) / "splits" / manifest_hash(manifest) / split
    if not folder.is_dir():
        partial = folder.with_name(f".{split}.{os.getpid()}")
        partial.mkdir(parents=True, exist_ok=True)
        for v in manifest["splits"][split]:
            link = partial / Path(v["path"]).name
            if not link.exists():
                link.symlink_to(resolve(data_root, v["path"]))
        try:
            os.replace(partial, folder)
        except OSError:  # another process made it first
            import shutil
            shutil.rmtree(partial, ignore_errors=True)
    return folder


@dataclass
class InMemory:
    """A data set materialised once: the synthetic sets fit, and epochs then cost no I/O."""

    samples: list

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        return self.samples[i]


def load_split(manifest: dict, split: str, data_root: Path, config: DataConfig,
               work_dir: Path, in_memory_limit_mb: float = 2048):
    """One split as fastMRI VarNetSamples (masked k-space, mask, target, max value ...)."""
    from fastmri.data import SliceDataset
    from fastmri.data.transforms import VarNetDataTransform

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    folder = _link_farm(manifest, split, data_root, work_dir)
    dataset = SliceDataset(root=folder, challenge="multicoil",
                           transform=VarNetDataTransform(mask_func(config), use_seed=True))
    first = dataset[0] if len(dataset) else None
    size_mb = 0 if first is None else len(dataset) * first.masked_kspace.numel() * 4 / 2**20
    if size_mb <= in_memory_limit_mb:
        return InMemory([dataset[i] for i in range(len(dataset))])
    return dataset
