"""Multi-coil acquisition of a phantom, written as a fastMRI-format HDF5 file.

A phantom is a magnitude image. A scanner sees it through several receive coils, each with a
smooth sensitivity, with a smooth background phase and complex Gaussian noise, in k-space.
We simulate exactly that and write the file the way fastMRI does (``kspace``,
``reconstruction_rss``, ``ismrmrd_header``, attributes), so one reader serves synthetic and
real data.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..io import atomic

# fastMRI's raw targets peak around 1e-4 .. 1e-3; we write at that scale so that loss weights
# such as the public code's 1e-5 * L1 mean the same thing on our files.
SIGNAL_SCALE = 5e-4

ACQUISITION = {"brain": "AXT2", "knee": "CORPD_FBK"}


def fft2c(image: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D FFT over the last two axes (fastMRI's convention)."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=axes), norm="ortho"), axes=axes)


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    """Centred orthonormal inverse 2-D FFT over the last two axes."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=axes), norm="ortho"),
                           axes=axes)


def rss(coil_images: np.ndarray, axis: int = -3) -> np.ndarray:
    """Root-sum-of-squares coil combination, as fastMRI's ``reconstruction_rss``."""
    return np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=axis))


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    return y, x


def coil_sensitivities(rng: np.random.Generator, coils: int, size: int) -> np.ndarray:
    """Smooth complex maps of coils placed around the object, normalised to unit RSS.

    Unit RSS means the noiseless RSS image equals the magnitude image, as a well-calibrated
    array would give.
    """
    y, x = _grid(size)
    angles = 2 * np.pi * (np.arange(coils) / coils + rng.uniform(0, 1))
    width = rng.uniform(0.8, 1.2)
    maps = []
    for angle in angles:
        cy, cx = 1.3 * np.sin(angle), 1.3 * np.cos(angle)
        magnitude = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * width**2))
        phase = angle + rng.uniform(-0.5, 0.5) * (x * np.cos(angle) + y * np.sin(angle))
        maps.append(magnitude * np.exp(1j * phase))
    maps = np.stack(maps)
    return (maps / rss(maps, axis=0)).astype(np.complex64)


def smooth_phase(rng: np.random.Generator, size: int) -> np.ndarray:
    """A low-order polynomial background phase, as field inhomogeneity gives."""
    y, x = _grid(size)
    c = rng.uniform(-1, 1, size=5) * np.array([np.pi, 0.8, 0.8, 0.4, 0.4])
    return c[0] + c[1] * x + c[2] * y + c[3] * x * y + c[4] * (x**2 - y**2)


def acquire(volume: np.ndarray, coils: int, noise_level: float, rng: np.random.Generator):
    """K-space [slices, coils, H, W] of a magnitude volume [slices, H, W], and its RSS target.

    The noise std is ``noise_level`` times the volume maximum, per coil, per real/imag part.
    """
    slices, size, _ = volume.shape
    sens = coil_sensitivities(rng, coils, size)
    phase = smooth_phase(rng, size)
    image = SIGNAL_SCALE * volume * np.exp(1j * phase)[None]
    coil_images = image[:, None] * sens[None]
    kspace = fft2c(coil_images)
    sigma = noise_level * SIGNAL_SCALE * float(volume.max())
    noise = rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape)
    kspace = (kspace + sigma * noise).astype(np.complex64)
    target = rss(ifft2c(kspace)).astype(np.float32)
    return kspace, target


def ismrmrd_header(rows: int, cols: int) -> bytes:
    """The part of an ISMRMRD XML header that fastMRI's loader reads: matrix sizes and limits."""
    ns = "http://www.ismrm.org/ISMRMRD"
    space = "<{tag}><matrixSize><x>{r}</x><y>{c}</y><z>1</z></matrixSize>" \
            "<fieldOfView_mm><x>{r}</x><y>{c}</y><z>5</z></fieldOfView_mm></{tag}>"
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<ismrmrdHeader xmlns="{ns}"><encoding>'
        + space.format(tag="encodedSpace", r=rows, c=cols)
        + space.format(tag="reconSpace", r=rows, c=cols)
        + "<encodingLimits><kspace_encoding_step_1>"
        f"<minimum>0</minimum><maximum>{cols - 1}</maximum><center>{cols // 2}</center>"
        "</kspace_encoding_step_1></encodingLimits></encoding></ismrmrdHeader>"
    ).encode()


def write_fastmri_file(path: Path, kspace: np.ndarray, target: np.ndarray, acquisition: str,
                       patient_id: str) -> None:
    """Write one volume exactly in fastMRI's multi-coil layout, atomically (tmp + rename)."""
    path = Path(path)
    with atomic(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("kspace", data=kspace)
        f.create_dataset("reconstruction_rss", data=target)
        f.create_dataset("ismrmrd_header", data=ismrmrd_header(*kspace.shape[-2:]))
        f.attrs["acquisition"] = acquisition
        f.attrs["max"] = float(target.max())
        f.attrs["norm"] = float(np.linalg.norm(target))
        f.attrs["patient_id"] = patient_id
