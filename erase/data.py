"""The protocol's data: which volumes are retain, forget, validation and test, and how to load them.

A manifest is the split written down: computed once from a data root and a seed, saved as JSON,
and passed back in so that two runs (or two papers) use the same split. Volumes are split,
never slices. Loading goes through fastMRI's own ``SliceDataset`` and ``VarNetDataTransform``
with an equispaced mask, so synthetic and real files take exactly the same path.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import xml.etree.ElementTree as etree
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .config import ConfigError, DataConfig

SPLITS = ("retain", "forget", "val", "brain_test", "knee_test")
MANIFEST_VERSION = 1
ISMRMRD_NS = {"ns": "http://www.ismrm.org/ISMRMRD"}


class DataError(ValueError):
    """A data file or directory is not what the protocol needs; the message names it."""


# ------------------------------------------------------------------ reading one file


def anatomy_of(acquisition: str) -> str:
    """fastMRI acquisitions: AXT2 brain is retain data, knee (COR*) is forget data."""
    if acquisition == "AXT2":
        return "brain"
    if acquisition.startswith("COR"):
        return "knee"
    return "other"


def _header_sizes(raw, path: Path) -> dict:
    advice = "fastMRI's loader needs encodedSpace, reconSpace and encodingLimits"
    if isinstance(raw, np.ndarray) and raw.shape == (1,):
        raw = raw[0]
    if not isinstance(raw, (bytes, str)):
        raise DataError(f"{path}: malformed ismrmrd_header (a {type(raw).__name__}, not XML "
                        f"text); {advice}")
    try:
        root = etree.fromstring(raw)
    except etree.ParseError as err:
        raise DataError(f"{path}: malformed ismrmrd_header (not valid XML: {err}); "
                        f"{advice}") from None

    def number(element: str) -> int:
        node = root.find("ns:encoding/" + "/".join(f"ns:{part}" for part in element.split("/")),
                         ISMRMRD_NS)
        try:
            return int(node.text)
        except (AttributeError, TypeError, ValueError):
            found = "missing" if node is None else f"{node.text!r}, not an integer"
            raise DataError(f"{path}: malformed ismrmrd_header (encoding/{element} is {found}); "
                            f"{advice}") from None

    sizes = {space: (number(f"{space}/matrixSize/x"), number(f"{space}/matrixSize/y"))
             for space in ("encodedSpace", "reconSpace")}
    limits = "encodingLimits/kspace_encoding_step_1"
    return {"encoded": sizes["encodedSpace"], "recon": sizes["reconSpace"],
            "center": number(f"{limits}/center"), "maximum": number(f"{limits}/maximum")}


def fingerprint(path: Path) -> str:
    """Size plus a hash of the file's first and last MiB: cheap, and changes when content does."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            digest.update(f.read())
    return f"{size}:{digest.hexdigest()[:16]}"


def read_volume_info(path: Path, root: Path) -> dict:
    """Check one fastMRI multi-coil file and describe it; DataError names what is wrong."""
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file ({err}); is it truncated or not a "
                        "fastMRI .h5 file?") from None
    with f:
        if "kspace" not in f:
            raise DataError(f"{path}: no 'kspace' dataset; a fastMRI multi-coil file has "
                            "kspace [slices, coils, rows, cols]")
        kspace = f["kspace"]
        if kspace.ndim != 4 or not np.issubdtype(kspace.dtype, np.complexfloating):
            raise DataError(f"{path}: kspace has shape {kspace.shape} and dtype {kspace.dtype}; "
                            "expected complex [slices, coils, rows, cols] (multi-coil)")
        if "ismrmrd_header" not in f:
            raise DataError(f"{path}: no 'ismrmrd_header'; fastMRI's loader reads the matrix "
                            "sizes from it")
        header = _header_sizes(f["ismrmrd_header"][()], path)
        if "reconstruction_rss" not in f:
            raise DataError(f"{path}: no 'reconstruction_rss' target (test files without "
                            "targets cannot be used for training or metrics)")
        target = f["reconstruction_rss"]
        slices = kspace.shape[0]
        if min(kspace.shape) < 1:
            raise DataError(f"{path}: kspace has shape {kspace.shape}; it holds no data")
        if target.shape != (slices, *header["recon"]):
            raise DataError(f"{path}: reconstruction_rss has shape {target.shape} but kspace has "
                            f"{slices} slices and the header's recon matrix is {header['recon']}")
        acquisition = str(f.attrs.get("acquisition", ""))
        if "max" not in f.attrs:
            raise DataError(f"{path}: attribute 'max' (the target's maximum) is missing")
    return {"path": path.relative_to(root).as_posix(), "acquisition": acquisition,
            "anatomy": anatomy_of(acquisition), "slices": int(slices),
            "fingerprint": fingerprint(path)}


def scan(data_root: Path) -> list[dict]:
    """Every fastMRI file under ``data_root`` (recursively), checked and classified."""
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a directory")
    files = sorted(p for p in root.rglob("*.h5") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"data root {root} holds no .h5 files; point --data-root at a directory "
                        "of fastMRI multi-coil files (or leave it out for the embedded data)")
    for p in files:  # a link out of the root is refused here as in a manifest
        if not p.resolve().is_relative_to(root.resolve()):
            raise DataError(f"{p} links to {p.resolve()}, outside the data root {root}; "
                            "refusing to read it: copy the file in, or point --data-root at "
                            "the directory that holds it")
    names = [p.name for p in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"data root {root}: file names occur twice ({duplicates[:3]}); "
                        "fastMRI names are unique, remove the copies")
    return [read_volume_info(p, root) for p in files]


# ------------------------------------------------------------------ the split


def _take_forget(knee: list[dict], target_slices: float) -> int:
    """How many of the (shuffled) knee volumes make the forget set closest to the target."""
    total, best, best_gap = 0, 1, float("inf")
    for count, volume in enumerate(knee, start=1):
        total += volume["slices"]
        gap = abs(total - target_slices)
        if gap < best_gap:
            best, best_gap = count, gap
    return best


def make_manifest(volumes: list[dict], config: DataConfig, seed: int,
                  data_root: Path | None = None) -> dict:
    """Split volumes into retain Dr, forget Df, validation, brain test Drt and knee test Dft.

    Brain AXT2 volumes give validation, brain test and retain; knee volumes give validation,
    knee test and forget, with forget about ``forget_ratio`` slices per retain slice. Other
    contrasts are left out and counted. Deterministic from ``seed``.
    """
    rng = np.random.default_rng(seed)
    brain = [v for v in volumes if v["anatomy"] == "brain"]
    knee = [v for v in volumes if v["anatomy"] == "knee"]
    where = f" in {data_root}" if data_root else ""
    n_val, n_test = config.val_volumes, config.test_volumes
    if len(brain) < n_val + n_test + 1:
        raise DataError(f"found {len(brain)} brain AXT2 volumes{where}; the split needs at least "
                        f"{n_val + n_test + 1} (validation {n_val}, test {n_test}, retain >= 1)")
    if len(knee) < n_val + n_test + 1:
        raise DataError(f"found {len(knee)} knee volumes{where}; the split needs at least "
                        f"{n_val + n_test + 1} (validation {n_val}, test {n_test}, forget >= 1)")
    brain = [brain[i] for i in rng.permutation(len(brain))]
    knee = [knee[i] for i in rng.permutation(len(knee))]
    retain = brain[n_val + n_test:]
    spare_knee = knee[n_val + n_test:]
    n_forget = _take_forget(spare_knee, config.forget_ratio * sum(v["slices"] for v in retain))
    splits = {
        "retain": retain,
        "forget": spare_knee[:n_forget],
        "val": brain[:n_val] + knee[:n_val],
        "brain_test": brain[n_val:n_val + n_test],
        "knee_test": knee[n_val:n_val + n_test],
    }
    entry = lambda v: {k: v[k] for k in ("path", "slices", "fingerprint", "anatomy")}  # noqa: E731
    return {
        "version": MANIFEST_VERSION,
        "seed": seed,
        "split_params": {"val_volumes": n_val, "test_volumes": n_test,
                         "forget_ratio": config.forget_ratio},
        "splits": {name: sorted((entry(v) for v in vols), key=lambda e: e["path"])
                   for name, vols in splits.items()},
        "left_out": {"other_contrasts": sum(v["anatomy"] == "other" for v in volumes),
                     "unused_knee": len(spare_knee) - n_forget},
    }


def manifest_hash(manifest: dict) -> str:
    """Identity of a split: the files, their fingerprints and the split they are in."""
    text = json.dumps(manifest["splits"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def split_counts(manifest: dict) -> dict[str, dict[str, int]]:
    """Volumes and slices per split, for printing and for the book."""
    return {name: {"volumes": len(vols), "slices": sum(v["slices"] for v in vols)}
            for name, vols in manifest["splits"].items()}


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON via a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def load_manifest(path: Path) -> dict:
    """Read a saved manifest, checking that it is one."""
    if not Path(path).is_file():
        raise DataError(f"manifest {path} does not exist; make one with `erase manifest` or "
                        "leave --manifest out to split the data root afresh")
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"manifest {path} cannot be read as JSON ({err})") from None
    splits = manifest.get("splits") if isinstance(manifest, dict) else None
    if not isinstance(splits, dict) or set(splits) != set(SPLITS):
        raise DataError(f"manifest {path} is not an erase manifest (needs splits {SPLITS})")
    if manifest.get("version") != MANIFEST_VERSION:
        raise DataError(f"manifest {path} has version {manifest.get('version')!r}; this erase "
                        f"reads version {MANIFEST_VERSION}: rebuild it with `erase manifest`")
    kinds = {"path": str, "slices": int, "fingerprint": str, "anatomy": str}
    for name, volumes in splits.items():
        entries = volumes if isinstance(volumes, list) else [None]
        for entry in entries:
            if not (isinstance(entry, dict) and all(isinstance(entry.get(k), t) and
                                                    not isinstance(entry.get(k), bool)
                                                    for k, t in kinds.items())):
                raise DataError(f"manifest {path}: split {name!r} has an entry {entry!r} that is "
                                f"not {{path, slices, fingerprint, anatomy}}; rebuild it with "
                                "`erase manifest`")
    if not splits["retain"] or not splits["forget"]:
        raise DataError(f"manifest {path} has an empty retain or forget split; rebuild it")
    return manifest


def resolve(data_root: Path, relative: str) -> Path:
    """A manifest path inside the data root; refused if it escapes it (``..``, absolute, links)."""
    root = Path(data_root).resolve()
    if not isinstance(relative, str) or not relative:
        raise DataError(f"manifest path {relative!r} is not a file name relative to the data root")
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        link = Path(os.path.normpath(root / relative)).is_relative_to(root)
        raise DataError(f"manifest path {relative!r} points outside the data root {root}"
                        f"{f' (it is a link to {path})' if link else ''}; refusing to read it")
    return path


def verify_manifest(manifest: dict, data_root: Path) -> None:
    """Every file named by the manifest still exists inside the root, unchanged."""
    for name, vols in manifest["splits"].items():
        for v in vols:
            path = resolve(data_root, v["path"])
            if not path.is_file():
                raise DataError(f"manifest names {v['path']} ({name}) but {path} does not exist; "
                                "rebuild the manifest for this data root")
            if fingerprint(path) != v["fingerprint"]:
                raise DataError(f"{path} changed since the manifest was made (fingerprint "
                                "differs); rebuild the manifest or restore the file")


# ------------------------------------------------------------------ loading


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


def retain_subset(n_retain: int, fraction: float, seed: int) -> list[int]:
    """Indices of Dr', a random ``fraction`` of the retain slices (at least one), by ``seed``."""
    count = max(1, round(fraction * n_retain))
    rng = np.random.default_rng(seed + 1_000_003)
    return sorted(rng.choice(n_retain, size=count, replace=False).tolist())
