"""The paper's experiments as batches of runs over seeds, and their results as DataFrames.

A chapter asks for a set of runs (the headline runs over the profile's seeds, the
retain-fraction ablation, the lambda sweep); missing runs are computed in parallel worker
processes and everything is then read back from the results store, so a rebuild with a warm
store only reads JSON.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..runs.lab import Lab, run_many
from ..runs.methods import BEYOND, UNLEARNING, get_method

ABLATION_METHODS = ("FT", "NL-FT", "GA-l1-FT")
# One knob per method beyond the paper, and the values its sweep tries (on one seed, before the
# headline runs, which use the row's default: methods.METHODS[name].knobs).
SWEEPS = {
    # the reference's 50% and 10%
    "SalUn": ("saliency", (0.1, 0.5)),
    # I_D averages Df and Dr', so I_f / I_D <= 1 + |Dr'| / |Df|: 2 when Dr' is as large as Df
    # (10% of Dr against the 1:10 forget ratio), where alpha >= 2 selects no weight. The
    # reference's 10, and values just under that bound.
    "SSD": ("alpha", (1.9, 1.95, 1.99, 10.0)),
    "SCRUB": ("max_epochs", (0, 1, 2)),  # epochs with max-steps of the protocol's 5
    # alpha_0 from where it changes nothing measurable (1e-5) to the reference's 5e-4 (the
    # default), whose gradient outweighs J's on most weights
    "l1-sparse": ("alpha", (1e-5, 2e-4, 5e-4)),
}


def labs_for(lab: Lab, seeds=None) -> list[Lab]:
    """The same set-up as ``lab`` for each seed (split, initialisation and Dr' draw);
    ``None`` means the scale profile's seeds."""
    settings = lab.settings()
    return [lab if s == lab.seed else Lab(**{**settings, "seed": s})
            for s in (seeds or lab.profile.seeds)]


def labs_among(labs: list[Lab], lab: Lab, seeds) -> list[Lab]:
    """The Labs of ``seeds``, taken from ``labs`` where one has the seed (made by ``labs_for``
    where none has): each Lab makes and checks its split once."""
    by_seed = {l.seed: l for l in labs}
    return [by_seed.get(s) or labs_for(lab, [s])[0] for s in seeds]


# Each batch of runs is listed by a ``*_jobs`` function and run by its namesake; the book's
# plan (``erase.book.workload``) lists the same jobs to count and time them before they run.


def model_jobs(labs: list[Lab]) -> list:
    """(lab, job) pairs that train G-hat and G for every Lab."""
    return [(lab, lab.job(which)) for lab in labs for which in ("oracle", "original")]


def train_models(labs: list[Lab], workers: int = 2) -> dict:
    """G-hat and G for every Lab: {(name, seed): record}."""
    jobs = model_jobs(labs)
    return {(job.name, lab.seed): r for (lab, job), r in zip(jobs, run_many(jobs, workers))}


def unlearn_jobs(labs: list[Lab], methods=UNLEARNING, **knobs) -> list:
    """(lab, job) pairs of each method from each Lab's G."""
    return [(lab, lab.job(m, **knobs)) for lab in labs for m in methods]


def unlearn_all(labs: list[Lab], methods=UNLEARNING, workers: int = 2, **knobs) -> dict:
    """Each method from each Lab's G: {(method, seed): record}."""
    jobs = unlearn_jobs(labs, methods, **knobs)
    return {(job.name, lab.seed): r for (lab, job), r in zip(jobs, run_many(jobs, workers))}


def ablation_jobs(labs: list[Lab], fractions=None, methods=ABLATION_METHODS) -> list:
    """(lab, method, fraction, job) of the retain-fraction ablation.

    FT on 100% of Dr is Full FT: the same slices in the same order from the same G, the same
    computation, so the Full FT run (of the headline runs) stands for it."""
    fractions = fractions or labs[0].profile.fractions
    return [(lab, m, f, lab.job("Full FT") if (m, f) == ("FT", 1.0) else
             lab.job(m, retain_fraction=f)) for lab in labs for f in fractions for m in methods]


def ablation(labs: list[Lab], fractions=None, methods=ABLATION_METHODS, workers: int = 2) -> dict:
    """{(method, fraction, seed): record} for the retain-fraction ablation."""
    jobs = ablation_jobs(labs, fractions, methods)
    records = run_many([(lab, job) for lab, _, _, job in jobs], workers)
    return {(m, f, lab.seed): r for (lab, m, f, _), r in zip(jobs, records)}


def lambda_jobs(lab: Lab, lambdas=None, methods=("NL", "NL-FT")) -> list:
    """(lab, method, lambda, job) of the lambda sweep."""
    lambdas = lambdas or lab.profile.lambdas
    return [(lab, m, x, lab.job(m, lam=x)) for x in lambdas for m in methods]


def lambda_sweep(lab: Lab, lambdas=None, methods=("NL", "NL-FT"), workers: int = 2) -> dict:
    """{(method, lambda): record}: the sweep the paper did not run (it fixed lambda)."""
    jobs = lambda_jobs(lab, lambdas, methods)
    records = run_many([(lab, job) for lab, _, _, job in jobs], workers)
    return {(m, x): r for (_, m, x, _), r in zip(jobs, records)}


def sweep_jobs(lab: Lab, method: str, knob: str | None = None, values=None, **knobs) -> list:
    """(value, job) of ``method`` on ``lab``'s seed at each value of one knob (by default the
    method's entry in SWEEPS), the other knobs at ``knobs`` or their defaults."""
    default_knob, default_values = SWEEPS.get(method, (None, ()))
    knob = knob or default_knob
    values = default_values if values is None else values
    if knob is None or not values:
        raise ValueError(f"no sweep for {method}: name a knob and its values")
    get_method(method)
    return [(x, lab.job(method, **{**knobs, knob: x})) for x in values]


def sweep(lab: Lab, method: str, knob: str | None = None, values=None, workers: int = 2,
          **knobs) -> dict:
    """{value: record}: the runs of ``sweep_jobs``."""
    jobs = sweep_jobs(lab, method, knob, values, **knobs)
    records = run_many([(lab, job) for _, job in jobs], workers)
    return {x: r for (x, _), r in zip(jobs, records)}


def unlearning_share(lab: Lab, methods) -> dict:
    """{method: slices its unlearning run reads / slices G's training read}, from the plans
    (``Lab.cost``), so no run is needed."""
    training = lab.cost(lab.job("original"))
    return {m: lab.cost(lab.job(m)) / training for m in methods}


def closest_to_oracle(sweep_records: dict, oracle: dict) -> object:
    """The knob value whose run ends closest to the oracle: smallest |BTA - BTA(G-hat)| +
    |KTA - KTA(G-hat)| (the same rule as the lambda sweep's), the first on a tie."""
    def distance(record):
        s, o = record["summary"], oracle["summary"]
        return abs(s["bta_psnr"] - o["bta_psnr"]) + abs(s["kta_psnr"] - o["kta_psnr"])
    return min(sweep_records, key=lambda x: distance(sweep_records[x]))


def known_choice(lab: Lab, method: str):
    """The knob value ``beyond`` chooses for ``method`` when its sweep on ``lab`` and the
    oracle are stored (read from the store, nothing run), else None."""
    oracle = lab.stored(lab.job("oracle"))
    records = {x: lab.stored(job) for x, job in sweep_jobs(lab, method)}
    if oracle is None or any(r is None for r in records.values()):
        return None
    return closest_to_oracle(records, oracle)


def beyond_sweep_jobs(labs: list[Lab], methods=BEYOND) -> list:
    """(lab, job) of the sweeps that choose the knobs of the methods beyond the paper (on the
    first Lab's seed)."""
    return [(labs[0], job) for m in methods for _, job in sweep_jobs(labs[0], m)]


def beyond(labs: list[Lab], methods=BEYOND, workers: int = 2) -> tuple[dict, dict, dict]:
    """The methods beyond the paper on every Lab, each at the knob value its sweep on the first
    Lab's seed chose (``closest_to_oracle``), declared before the other seeds run.

    Returns ({(method, seed): record}, {method: (knob, value)}, {method: sweep records})."""
    first = labs[0]
    oracle = first.run(first.job("oracle"))
    run_many(beyond_sweep_jobs(labs, methods), workers)  # one batch: no worker waits between
    sweeps, chosen = {}, {}
    for m in methods:
        knob, _ = SWEEPS[m]
        sweeps[m] = sweep(first, m, workers=workers)
        chosen[m] = (knob, closest_to_oracle(sweeps[m], oracle))
    jobs = [(lab, m, lab.job(m, **{chosen[m][0]: chosen[m][1]})) for lab in labs for m in methods]
    records = run_many([(lab, job) for lab, _, job in jobs], workers)
    return {(m, lab.seed): r for (lab, m, _), r in zip(jobs, records)}, chosen, sweeps


# ------------------------------------------------------------------ frames


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


def interval(values) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (half-width 0 for a single seed)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


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
