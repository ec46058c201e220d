"""Curve fits for Figure 5: a polynomial and its 95% confidence band, by least squares."""
from __future__ import annotations

import numpy as np
from scipy import stats


def polyfit_band(x: np.ndarray, y: np.ndarray, degree: int = 2, points: int = 60):
    """Fit y ~ poly(x) and return (grid, fit, lower, upper) of the 95% band of the mean.

    None when there are not more points than coefficients (no residual degrees of freedom).
    """
    n, k = len(x), degree + 1
    if n <= k:
        return None
    design = np.vander(x, k)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    sigma2 = residual @ residual / (n - k)
    cov = sigma2 * np.linalg.pinv(design.T @ design)
    grid = np.linspace(x.min(), x.max(), points)
    g = np.vander(grid, k)
    fit = g @ coef
    half = stats.t.ppf(0.975, n - k) * np.sqrt(np.einsum("ij,jk,ik->i", g, cov, g))
    return grid, fit, fit - half, fit + half
