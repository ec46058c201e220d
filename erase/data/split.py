"""The split: which volumes are retain, forget, validation and test, written down as a manifest.

A manifest is computed once from a data root and a seed, saved as JSON, and passed back in so
that two runs (or two papers) use the same split. Volumes are split, never slices.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..config import DataConfig
from .fastmri_files import DataError, fingerprint, resolve

SPLITS = ("retain", "forget", "val", "brain_test", "knee_test")
MANIFEST_VERSION = 1


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


def retain_subset(n_retain: int, fraction: float, seed: int) -> list[int]:
    """Indices of Dr', a random ``fraction`` of the retain slices (at least one), by ``seed``."""
    count = max(1, round(fraction * n_retain))
    rng = np.random.default_rng(seed + 1_000_003)
    return sorted(rng.choice(n_retain, size=count, replace=False).tolist())
