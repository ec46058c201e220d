"""Loading one split through fastMRI's own ``SliceDataset`` and ``VarNetDataTransform``.

Synthetic and real files take exactly the same path. A split keeps its k-space unmasked and
applies the equispaced mask on access: at evaluation with the mask fastMRI seeds from the file
name (one mask per volume), in training either the same or, as the paper's public code does,
a new random offset at every load (``Split.masked``), drawn from a seed so that a resumed run
sees the masks an uninterrupted one would have seen.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

from ..config import ConfigError, DataConfig
from .fastmri_files import resolve
from .split import manifest_hash

MASKS = ("equispaced", "equispaced_fraction")


def mask_func(config: DataConfig):
    """fastMRI's equispaced Cartesian mask at the config's acceleration and centre fraction.

    ``equispaced`` is ``EquiSpacedMaskFunc`` (a line exactly every ``acceleration`` columns
    plus the centre, the paper's public code); ``equispaced_fraction`` is
    ``EquispacedMaskFractionFunc`` (spacing adjusted so the centre counts towards the rate).
    """
    from fastmri.data.subsample import EquispacedMaskFractionFunc, EquiSpacedMaskFunc

    if config.mask not in MASKS:
        raise ConfigError(f"unknown mask {config.mask!r}: choose one of {', '.join(MASKS)}")
    kind = EquiSpacedMaskFunc if config.mask == "equispaced" else EquispacedMaskFractionFunc
    return kind(center_fractions=[config.center_fraction], accelerations=[config.acceleration])


def split_folder(manifest: dict, split: str, data_root: Path, work_dir: Path) -> Path:
    """A directory of links to one split's files, so SliceDataset reads only those headers
    (and fastMRI's ``evaluate`` finds exactly the split's targets there)."""
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


class Split:
    """Slices of a split; ``split[i]`` is the evaluation sample, ``masked(i, seed)`` a training
    sample with a freshly drawn mask.

    ``raw`` is anything that gives fastMRI's raw slice tuples (kspace, mask, target, attributes,
    file name, slice number): a list held in memory (the synthetic sets fit, and epochs then cost
    no I/O) or a lazily read ``SliceDataset`` without transform (real data too large to hold).
    ``select`` (Dr' from Dr) and ``join`` (Dr + Df for G) give new Splits over the same slices.
    """

    def __init__(self, raw, config: DataConfig, in_memory: bool, _cache=None):
        from fastmri.data.transforms import VarNetDataTransform

        self.raw, self.in_memory, self.config = raw, in_memory, config
        self._fixed = VarNetDataTransform(mask_func(config), use_seed=True)
        self._drawn_mask = mask_func(config)
        self._drawn = VarNetDataTransform(self._drawn_mask, use_seed=False)
        # evaluation samples never change: made once when the raw slices are in memory
        if _cache is None and in_memory:
            _cache = [self._fixed(*item) for item in raw]
        self._cache = _cache

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i: int):
        return self._cache[i] if self._cache is not None else self._fixed(*self.raw[i])

    def masked(self, i: int, seed) -> object:
        """Slice ``i`` under an equispaced mask whose offset is drawn from ``seed`` (ints)."""
        self._drawn_mask.rng.seed([int(x) % 2**32 for x in seed])
        return self._drawn(*self.raw[i])

    def fname(self, i: int) -> str:
        """The file name of slice ``i``, without applying a mask (or reading k-space)."""
        if self.in_memory:
            return self.raw[i][4]
        return self.raw.fname(i)

    def select(self, indices) -> "Split":
        """The slices at ``indices``, in that order."""
        indices = [int(i) for i in indices]
        raw = [self.raw[i] for i in indices] if self.in_memory else _Lazy(self.raw, indices)
        cache = None if self._cache is None else [self._cache[i] for i in indices]
        return Split(raw, self.config, self.in_memory, cache)

    def join(self, other: "Split") -> "Split":
        """This split's slices followed by ``other``'s."""
        if self.in_memory and other.in_memory:
            return Split(list(self.raw) + list(other.raw), self.config, True,
                         self._cache + other._cache)
        return Split(_Lazy.concat(self.raw, other.raw), self.config, False)


class _Lazy:
    """Slices of lazily read data sets, by (data set, index) pairs."""

    def __init__(self, dataset, indices=None, pairs=None):
        self.pairs = pairs if pairs is not None else [(dataset, i) for i in indices]

    @classmethod
    def concat(cls, a, b):
        parts = []
        for d in (a, b):
            parts += d.pairs if isinstance(d, _Lazy) else [(d, i) for i in range(len(d))]
        return cls(None, pairs=parts)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        dataset, j = self.pairs[i]
        return dataset[j]

    def fname(self, i):
        dataset, j = self.pairs[i]
        if isinstance(dataset, _Lazy):
            return dataset.fname(j)
        if hasattr(dataset, "raw_samples"):  # fastMRI's SliceDataset: from its index
            return Path(dataset.raw_samples[j].fname).name
        return dataset[j][4]  # raw slice tuples held in memory (a join with an in-memory split)


# A process keeps the splits it read, newest last, up to this many MB held in memory: the Labs
# of one split under another protocol (chapter 7's flips, in a worker or the kernel) then share
# them instead of reading every file again (2-3 s a Lab at the default scale). The key holds
# the manifest's hash, and with it every file's fingerprint: a changed file is a new key.
KEPT_MB = 1024.0
_KEPT: OrderedDict = OrderedDict()  # key -> (Split, MB in memory)


def load_split(manifest: dict, split: str, data_root: Path, config: DataConfig,
               work_dir: Path, in_memory_limit_mb: float = 2048) -> Split:
    """One split through fastMRI's ``SliceDataset``, held in memory when it fits (read once
    per process: see ``KEPT_MB``)."""
    if split not in manifest["splits"]:  # a protocol's SPLITS, or the audit's pools
        raise ConfigError(f"unknown split {split!r}: choose one of {', '.join(manifest['splits'])}")
    key = (manifest_hash(manifest), split, str(Path(data_root).resolve()), config,
           in_memory_limit_mb)
    if key in _KEPT:
        _KEPT.move_to_end(key)
        return _KEPT[key][0]
    loaded, size_mb = _read_split(manifest, split, data_root, config, work_dir,
                                  in_memory_limit_mb)
    _KEPT[key] = (loaded, size_mb if loaded.in_memory else 0.0)
    while len(_KEPT) > 1 and sum(mb for _, mb in _KEPT.values()) > KEPT_MB:
        _KEPT.popitem(last=False)
    return loaded


def _read_split(manifest, split, data_root, config, work_dir, in_memory_limit_mb):
    from fastmri.data import SliceDataset

    folder = split_folder(manifest, split, data_root, work_dir)
    dataset = SliceDataset(root=folder, challenge="multicoil", transform=None)
    first = dataset[0] if len(dataset) else None
    size_mb = 0 if first is None else len(dataset) * first[0].size * 8 / 2**20
    if size_mb <= in_memory_limit_mb:
        return Split([dataset[i] for i in range(len(dataset))], config, in_memory=True), size_mb
    return Split(_Lazy(dataset, range(len(dataset))), config, in_memory=False), size_mb
