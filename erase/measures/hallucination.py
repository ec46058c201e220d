"""Hallucination, analysed: the slice where a model's excess over the oracle is largest, and
the window of that slice where its error exceeds the reference's most (Figure 1).

The per-slice score itself (``slice_scores``) is computed at run time with every evaluation and
lives in ``erase.runs.slice_scores``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..runs.slice_scores import highpass


def scores_of(record: dict) -> dict[str, np.ndarray]:
    """{fname: per-slice hallucination scores} on the brain test set, from a run's record."""
    return {f: np.asarray(v) for f, v in record["metrics"]["bta"]["hallucination"].items()}


def excess_slices(record: dict, reference: dict) -> np.ndarray:
    """Per brain test slice, a model's hallucination score minus the reference's (pp)."""
    scores, ref = scores_of(record), scores_of(reference)
    return np.concatenate([scores[f] - ref[f] for f in sorted(scores)])


def excess_over(record: dict, reference: dict) -> float:
    """A model's mean hallucination excess over the reference (the oracle), in pp."""
    return float(excess_slices(record, reference).mean())


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
