"""The 95% interval over seeds that every verdict of the book is decided on."""
from __future__ import annotations

import numpy as np
from scipy import stats


def interval(values) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (half-width 0 for a single seed)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half
