"""Hallucination as a number: high-frequency error inside the anatomy, per slice.

A model that learnt knee texture and paints it onto a brain leaves fine structure that is
not in the target. We measure the energy of the high-pass filtered error inside the head,
relative to the high-pass energy of the target itself (in percent). The oracle G-hat never
saw a knee, so the excess of a model over the oracle on the same slice is what mixing
anatomies added; Figure 1 shows the slice where G's excess is largest.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

HIGHPASS_SIGMA = 1.5  # pixels: keeps edges and texture, drops smooth intensity errors


def highpass(image: np.ndarray, sigma: float = HIGHPASS_SIGMA) -> np.ndarray:
    """Image minus its Gaussian blur, in-plane (slice by slice for a volume)."""
    sigmas = (0,) * (image.ndim - 2) + (sigma, sigma)
    return image - ndimage.gaussian_filter(image, sigma=sigmas)


def anatomy_support(target: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """Inside the anatomy: above 5% of the volume maximum, holes filled, slice by slice."""
    mask = target > fraction * target.max()
    return np.stack([ndimage.binary_fill_holes(ndimage.binary_closing(m, iterations=2))
                     for m in mask])


def slice_scores(target: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Per-slice high-frequency error energy inside the support, % of the target's."""
    support = anatomy_support(target)
    error = highpass(recon - target) ** 2
    reference = highpass(target) ** 2
    num = (error * support).sum(axis=(1, 2))
    den = (reference * support).sum(axis=(1, 2)) + 1e-20
    return 100.0 * num / den


def worst_slice(excess: dict[str, np.ndarray]) -> tuple[str, int, float]:
    """(fname, slice, value) where a model's excess over the oracle is largest."""
    fname = max(excess, key=lambda f: excess[f].max())
    index = int(np.argmax(excess[fname]))
    return fname, index, float(excess[fname][index])


def error_box(target: np.ndarray, recon: np.ndarray, reference: np.ndarray, size: int = 16):
    """(r0, r1, c0, c1) of the window where |recon - target| exceeds the reference's most."""
    excess = np.abs(highpass(recon - target)) - np.abs(highpass(reference - target))
    window = ndimage.uniform_filter(excess, size=size)
    r, c = np.unravel_index(np.argmax(window), window.shape)
    half = size // 2
    r0 = int(np.clip(r - half, 0, target.shape[0] - size))
    c0 = int(np.clip(c - half, 0, target.shape[1] - size))
    return r0, r0 + size, c0, c0 + size
