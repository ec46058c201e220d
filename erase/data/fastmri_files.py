"""fastMRI files: reading and checking one file's header, scanning a data root, paths inside it.

Every check raises DataError naming the file and what is wrong with it.
"""
from __future__ import annotations

import hashlib
import os
import time
import xml.etree.ElementTree as etree
from pathlib import Path

import h5py
import numpy as np

ISMRMRD_NS = {"ns": "http://www.ismrm.org/ISMRMRD"}


class DataError(ValueError):
    """A data file or directory is not what the protocol needs; the message names it."""


# fastMRI's public release: training and validation folders per anatomy (its test folders have
# no fully sampled targets). A data root holding all four is split by them (``split``'s rule
# "release"), and only they are read.
RELEASE_FOLDERS = {"brain_multicoil_train": ("brain", "train"),
                   "brain_multicoil_val": ("brain", "val"),
                   "knee_multicoil_train": ("knee", "train"),
                   "knee_multicoil_val": ("knee", "val")}


def release_layout(data_root) -> bool:
    """True when ``data_root`` holds all four folders of fastMRI's multi-coil release."""
    return data_root is not None and all((Path(data_root) / name).is_dir()
                                         for name in RELEASE_FOLDERS)


def _h5_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.h5") if p.is_file() and not p.name.startswith("."))


def outside_release(data_root) -> int:
    """How many .h5 files of a release-layout root lie outside its four folders (not read)."""
    root = Path(data_root)
    return sum(p.relative_to(root).parts[0] not in RELEASE_FOLDERS for p in _h5_files(root))


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


# What this process has already read of a file, by the file's identity on disk (its path,
# device, inode, size and modification time): a Lab per seed and per protocol flip scans the same
# thousand files many times in one chapter, and a file that is replaced (the synthetic writer
# renames new files into place) or rewritten gets a new identity. Only files that passed their
# checks are remembered, and only once they are a few seconds old: file times are coarser than
# their nanoseconds (a clock tick), so a file rewritten within the same tick keeps its time.
_SEEN: dict = {}
SETTLED_NS = 2_000_000_000


def _remembered(kind: str, path: Path, compute, *extra):
    st = path.stat()
    if time.time_ns() - st.st_mtime_ns < SETTLED_NS:
        return compute()
    key = (kind, str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, *extra)
    if key not in _SEEN:
        _SEEN[key] = compute()
    return _SEEN[key]


def fingerprint(path: Path) -> str:
    """Size plus a hash of the file's first and last MiB: cheap, and changes when content does."""
    return _remembered("fingerprint", Path(path), lambda: _fingerprint(Path(path)))


def _fingerprint(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            digest.update(f.read())
    return f"{size}:{digest.hexdigest()[:16]}"


def read_volume_info(path: Path, root: Path) -> dict:
    """Check one fastMRI multi-coil file and describe it; DataError names what is wrong. A file
    this process has read before, unchanged, is not opened again."""
    info = _remembered("info", Path(path), lambda: _read_volume_info(Path(path), Path(root)),
                       str(Path(root)))
    return dict(info)


def _read_volume_info(path: Path, root: Path) -> dict:
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
    """Every fastMRI file under ``data_root`` (recursively), checked and classified.

    A root in fastMRI's release layout (``release_layout``) is read only in its four folders:
    others, such as the release's test folders without targets, are left alone.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a directory")
    if release_layout(root):
        files = [p for name in RELEASE_FOLDERS for p in _h5_files(root / name)]
    else:
        files = _h5_files(root)
    if not files:
        raise DataError(f"data root {root} holds no .h5 files; point --data-root at a directory "
                        "of fastMRI multi-coil files (or leave it out for the embedded data)")
    inside = root.resolve()
    for p in files:  # a link out of the root is refused here as in a manifest
        if not p.resolve().is_relative_to(inside):
            raise DataError(f"{p} links to {p.resolve()}, outside the data root {root}; "
                            "refusing to read it: copy the file in, or point --data-root at "
                            "the directory that holds it")
    names = [p.name for p in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"data root {root}: file names occur twice ({duplicates[:3]}); "
                        "fastMRI names are unique, remove the copies")
    return [read_volume_info(p, root) for p in files]



def resolve(data_root: Path, relative: str, resolved_root: Path | None = None) -> Path:
    """A manifest path inside the data root; refused if it escapes it (``..``, absolute, links).
    ``resolved_root``: ``data_root`` already resolved (a caller checking many paths)."""
    root = resolved_root or Path(data_root).resolve()
    if not isinstance(relative, str) or not relative:
        raise DataError(f"manifest path {relative!r} is not a file name relative to the data root")
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        link = Path(os.path.normpath(root / relative)).is_relative_to(root)
        raise DataError(f"manifest path {relative!r} points outside the data root {root}"
                        f"{f' (it is a link to {path})' if link else ''}; refusing to read it")
    return path


