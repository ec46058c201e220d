"""Hallucination as a number: high-frequency error inside the anatomy, per slice.

A model that learnt knee texture and paints it onto a brain leaves fine structure that is
not in the target. We measure the energy of the high-pass filtered error inside the head,
relative to the high-pass energy of the target itself (in percent). The oracle G-hat never
saw a knee, so the excess of a model over the oracle on the same slice is what mixing
anatomies added; Figure 1 shows the slice where G's excess is largest.

Here is the score every evaluation computes; the analysis of it (the worst slice, the window
that shows it) is in ``erase.measures.hallucination``.
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
