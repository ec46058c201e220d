"""The 95% interval over seeds that every verdict of the book is decided on, and the paired
comparisons of runs it is taken of (records keyed by (name, seed))."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def interval(values) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (half-width 0 for a single seed)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def interval_text(mean: float, lo: float, hi: float, digits: int = 2) -> str:
    """'0.52 [0.31, 0.74]': a mean and its interval."""
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def estimate_text(mean: float, lo: float, hi: float, digits: int = 2,
                  exact_width: bool = False) -> str:
    """A mean with its interval, or the mean alone when the interval has no width (one seed,
    or no spread): ``lo`` and ``hi`` equal within ``np.isclose``, or exactly equal when
    ``exact_width``."""
    flat = lo == hi if exact_width else np.isclose(lo, hi)
    return f"{mean:.{digits}f}" if flat else interval_text(mean, lo, hi, digits)


# ------------------------------------------------------------------ records compared, seed by seed


def per_seed_frame(records: dict) -> pd.DataFrame:
    """One row per (run, seed): means over volumes, times, store provenance."""
    rows = []
    for (name, seed), r in records.items():
        row = {"name": name, "seed": seed, **r["summary"],
               "train_seconds": r.get("timing", {}).get("train_seconds", np.nan),
               "key": r["key"], "from_store": r.get("from_store", False)}
        rows.append(row)
    return pd.DataFrame(rows)


def pooled_volumes(records: dict, name: str, accuracy: str, metric: str) -> np.ndarray:
    """Per-volume values of one run pooled over seeds (the paper's mean +/- std is over volumes)."""
    values = []
    for (n, _), r in records.items():
        if n == name:
            values += [v[metric] for v in r["metrics"][accuracy]["per_volume"].values()]
    return np.array(values)


def paired_differences(records: dict, a: str, b: str, column: str) -> list[float]:
    """Per seed, run a's summary column minus run b's (same seed, same split)."""
    seeds = sorted(s for (n, s) in records if n == a)
    return [records[(a, s)]["summary"][column] - records[(b, s)]["summary"][column]
            for s in seeds if (b, s) in records]


def difference_interval(records: dict, a: str, b: str, column: str) -> tuple[float, float, float]:
    """Interval over seeds of the paired difference a - b (same seed, same split)."""
    return interval(paired_differences(records, a, b, column))


def noise_sources(records: dict, a: str, b: str, accuracy: str = "bta",
                  metric: str = "psnr") -> dict:
    """Where the spread of a paired difference a - b comes from.

    ``between seeds``: the standard deviation over seeds of the per-seed difference (training
    randomness, split and test set together); ``within a seed``: the standard error of that
    difference over the test volumes of one seed, averaged over seeds. When the first is much
    larger, more test volumes would not help; more seeds (or steadier training) would.
    """
    per_seed, within = [], []
    for s in sorted(s for (n, s) in records if n == a and (b, s) in records):
        va = records[(a, s)]["metrics"][accuracy]["per_volume"]
        vb = records[(b, s)]["metrics"][accuracy]["per_volume"]
        d = np.array([va[v][metric] - vb[v][metric] for v in va if v in vb])
        per_seed.append(d.mean())
        within.append(d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan)
    return {"between seeds": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan"),
            "within a seed": float(np.nanmean(within)) if within else float("nan")}
