"""The split: which volumes are retain, forget, validation and test, written down as a manifest.

A manifest is computed once from a data root and a seed, saved as JSON, and passed back in so
that two runs (or two papers) use the same split. Volumes are split, never slices.

Two rules, recorded in the manifest as ``rule``: a root holding fastMRI's four release folders
is split by them (``release``: pools and validation from ``*_train``, test sets from
``*_val``), any other root at random by the seed (``random``). Sizes adapt to the data found
(``held_out_sizes``): the profile's counts are upper targets, so a sample of a few dozen files
splits at every profile, and only a split that would be empty is refused.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..config import DataConfig
from .fastmri_files import (
    RELEASE_FOLDERS,
    DataError,
    fingerprint,
    outside_release,
    release_layout,
    resolve,
)

SPLITS = ("retain", "forget", "val", "brain_test", "knee_test")
MANIFEST_VERSION = 1
RULES = {
    "random": "random split of every volume found (validation, test and pools by seed)",
    "release": "fastMRI release folders: pools and validation from *_multicoil_train, "
               "brain and knee test sets from *_multicoil_val",
}
# Split sizes adapt to the data found: validation and test take at most these fractions of an
# anatomy's volumes (at least one each), the profile's counts being upper targets. The
# embedded data sets always reach their targets, so their split is the one they always had.
VAL_FRACTION = 0.15
TEST_FRACTION = 0.25


def release_folders_found(data_root: Path) -> list[str]:
    """The release folders present in ``data_root`` (to say why a partial set is not used)."""
    return [name for name in RELEASE_FOLDERS if (Path(data_root) / name).is_dir()]


def _release_role(volume: dict) -> str | None:
    """``train`` or ``val`` for a file inside a release folder, None elsewhere."""
    top = Path(volume["path"]).parts[0] if Path(volume["path"]).parts else ""
    return RELEASE_FOLDERS.get(top, (None, None))[1]


def held_out_sizes(n: int, val_target: int, test_target: int) -> tuple[int, int]:
    """(validation, test) volumes of one anatomy's ``n``: fractions of ``n`` (at least one
    each) capped by the profile's targets, always leaving one volume for the pool, then one
    for the test set, before validation gets any."""
    val = min(val_target, max(1, int(VAL_FRACTION * n)))
    test = min(test_target, max(1, int(TEST_FRACTION * n)))
    if n - val - test < 1:
        val = max(0, n - test - 1)
    if n - val - test < 1:
        test = max(0, n - val - 1)
    return val, test


def _take_forget(knee: list[dict], target_slices: float) -> int:
    """How many of the (shuffled) knee volumes make the forget set closest to the target."""
    total, best, best_gap = 0, 1, float("inf")
    for count, volume in enumerate(knee, start=1):
        total += volume["slices"]
        gap = abs(total - target_slices)
        if gap < best_gap:
            best, best_gap = count, gap
    return best


def _shuffled(rng: np.random.Generator, volumes: list[dict]) -> list[dict]:
    return [volumes[i] for i in rng.permutation(len(volumes))]


def make_manifest(volumes: list[dict], config: DataConfig, seed: int,
                  data_root: Path | None = None, rule: str | None = None) -> dict:
    """Split volumes into retain Dr, forget Df, validation, brain test Drt and knee test Dft.

    Brain AXT2 volumes give validation, brain test and retain; knee volumes give validation,
    knee test and forget, with forget about ``forget_ratio`` slices per retain slice. Other
    contrasts are left out and counted. Deterministic from ``seed``.

    ``rule`` (default: ``release`` when ``data_root`` holds fastMRI's four release folders, or
    without a root when the volumes' paths lie in them; else ``random``): under ``release`` the
    pools and the validation volumes come from the ``*_train`` folders and the test sets from
    the ``*_val`` folders; files elsewhere are left out and counted. Sizes adapt to the data
    (``held_out_sizes``); a split that would be empty is refused with the counts.
    """
    if rule is None:
        if data_root is not None:
            rule = "release" if release_layout(data_root) else "random"
        else:
            tops = {Path(v["path"]).parts[0] for v in volumes if Path(v["path"]).parts}
            rule = "release" if set(RELEASE_FOLDERS) <= tops else "random"
    if rule not in RULES:
        raise DataError(f"unknown split rule {rule!r}: choose one of {', '.join(RULES)}")
    rng = np.random.default_rng(seed)
    where = f" in {data_root}" if data_root else ""
    n_val, n_test = config.val_volumes, config.test_volumes
    if rule == "random":
        brain = _shuffled(rng, [v for v in volumes if v["anatomy"] == "brain"])
        knee = _shuffled(rng, [v for v in volumes if v["anatomy"] == "knee"])
        b_val, b_test = held_out_sizes(len(brain), n_val, n_test)
        k_val, k_test = held_out_sizes(len(knee), n_val, n_test)
        found = f"found {len(brain)} brain AXT2 and {len(knee)} knee volumes{where}"
        val = brain[:b_val] + knee[:k_val]
        brain_test, knee_test = brain[b_val:b_val + b_test], knee[k_val:k_val + k_test]
        retain, spare_knee = brain[b_val + b_test:], knee[k_val + k_test:]
    else:
        part = {(a, r): [v for v in volumes if v["anatomy"] == a and _release_role(v) == r]
                for a in ("brain", "knee") for r in ("train", "val")}
        # files scan did not read (with a root), or volumes given from elsewhere (without)
        outside = (outside_release(data_root) if data_root is not None and Path(data_root).is_dir()
                   else sum(_release_role(v) is None for v in volumes))
        brain, knee = (_shuffled(rng, part[(a, "train")]) for a in ("brain", "knee"))
        tests = {a: _shuffled(rng, part[(a, "val")]) for a in ("brain", "knee")}
        b_val, k_val = (max(0, min(n_val, max(1, int(VAL_FRACTION * len(pool))), len(pool) - 1))
                        for pool in (brain, knee))  # a pool keeps at least one volume
        found = (f"found {len(brain)} brain AXT2 and {len(knee)} knee volumes in the *_train "
                 f"folders, {len(tests['brain'])} and {len(tests['knee'])} in the *_val "
                 f"folders{where}")
        val = brain[:b_val] + knee[:k_val]
        brain_test, knee_test = (tests[a][:max(0, n_test)] for a in ("brain", "knee"))
        retain, spare_knee = brain[b_val:], knee[k_val:]
    n_forget = _take_forget(spare_knee, config.forget_ratio * sum(v["slices"] for v in retain)) \
        if spare_knee else 0
    splits = {
        "retain": retain,
        "forget": spare_knee[:n_forget],
        "val": val,
        "brain_test": brain_test,
        "knee_test": knee_test,
    }
    empty = [name for name, vols in splits.items() if not vols]
    if empty:
        need = ("each of brain and knee needs at least 2 volumes (one for its test set, one for "
                "its pool) and one of them 3 (one for validation)" if rule == "random" else
                "each *_train folder needs at least one volume of its anatomy (brain: AXT2) for "
                "its pool, one of them two (one for validation), and each *_val folder one for "
                "its test set")
        raise DataError(f"cannot split the data: {found}, so the {' and '.join(empty)} split"
                        f"{'s' if len(empty) > 1 else ''} would be empty; {need}")
    left_out = {"other_contrasts": sum(v["anatomy"] == "other" for v in volumes),
                "unused_knee": len(spare_knee) - n_forget}
    if rule == "release":
        left_out["unused_test"] = sum(len(tests[a]) for a in tests) - len(brain_test) \
            - len(knee_test)
        left_out["outside_release_folders"] = outside
    return {
        "version": MANIFEST_VERSION,
        "seed": seed,
        "rule": rule,
        "split_params": {"val_volumes": n_val, "test_volumes": n_test,
                         "forget_ratio": config.forget_ratio},
        "splits": {name: sorted((manifest_entry(v) for v in vols), key=lambda e: e["path"])
                   for name, vols in splits.items()},
        "left_out": left_out,
    }


def manifest_entry(volume: dict) -> dict:
    """What a manifest keeps of a scanned volume: its path, slices, fingerprint and anatomy."""
    return {k: volume[k] for k in ("path", "slices", "fingerprint", "anatomy")}


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
    root = Path(data_root).resolve()
    for name, vols in manifest["splits"].items():
        for v in vols:
            path = resolve(data_root, v["path"], root)
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
