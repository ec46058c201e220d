"""The noisy label's strength as rho: the noise's root mean square over G's error on Df.

A raw lambda means nothing across data sets (it is on the targets' scale) or across models (a
better G has a smaller error to drown). rho divides it by what the noise competes with: G's
root-mean-square error on the forget slices, read from G's own record (its UA per volume) and
the forget targets' maxima. ``lambda = rho * error`` is how a calibrated run gets its lambda;
``rho = lambda / error`` is how a raw one is shown in the same unit.
"""
from __future__ import annotations

import numpy as np


def volume_maxima(dataset) -> dict[str, float]:
    """{file name: the volume's target maximum}, the data range of its PSNR.

    Args:
        dataset: a split of slices (``lab.dataset("forget")``) whose samples carry ``fname``
            and ``max_value``.
    """
    maxima: dict[str, float] = {}
    for i in range(len(dataset)):
        sample = dataset[i]
        maxima[sample.fname] = max(maxima.get(sample.fname, 0.0), float(sample.max_value))
    return maxima


def rmse_from_psnr(per_volume: dict, maxima: dict) -> float:
    """Mean over volumes of the RMSE that each volume's PSNR implies (PSNR = 20 log10(max /
    RMSE), fastMRI's data range being the volume's maximum).

    Args:
        per_volume: ``{fname: {"psnr": dB, ...}}``, a record's ``metrics[...]["per_volume"]``.
        maxima: ``{fname: target maximum}`` of the same volumes (``volume_maxima``).
    """
    return float(np.mean([maxima[f] * 10 ** (-m["psnr"] / 20) for f, m in per_volume.items()]))


def strength(lam: float, error: float) -> dict:
    """The noise of one run in both units: ``{"lambda", "rho", "g_rmse_on_df"}``.

    Half-normal ``|N(0, 1)| lambda`` and gaussian ``lambda N(0, 1)`` both have rms lambda.
    """
    return {"lambda": float(lam), "rho": float(lam / error), "g_rmse_on_df": float(error)}
