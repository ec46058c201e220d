"""The paper's experiments as batches of runs over seeds, and their results as DataFrames.

A chapter asks for a set of runs (the headline runs over the profile's seeds, the
retain-fraction ablation, the frontiers); missing runs are computed in parallel worker
processes and everything is then read back from the results store, so a rebuild with a warm
store only reads JSON.
"""
from __future__ import annotations

from .. import paper
from ..measures.frontier import Knob, next_value, point
from ..runs.lab import Lab, run_many
from ..runs.methods import BEYOND, UNLEARNING, get_method
from ..runs.pools import pool_losses_many

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


def pool_losses(labs: list[Lab], records: dict, names, workers: int = 2) -> dict:
    """Every model ``names`` of ``records`` ({(name, seed): record}) on the Labs' seeds scored
    on the pools of slices (``runs.pools``; kept in the store, each once):
    {(name, seed): {pool: {loss: {slice id: value}}}}."""
    wanted = [(lab, (name, lab.seed)) for lab in labs for name in names
              if (name, lab.seed) in records]
    losses = pool_losses_many([(lab, records[k]) for lab, k in wanted], workers)
    return {k: v for (_, k), v in zip(wanted, losses)}


def unlearn_jobs(labs: list[Lab], methods=UNLEARNING, **knobs) -> list:
    """(lab, job) pairs of each method from each Lab's G."""
    return [(lab, lab.job(m, **knobs)) for lab in labs for m in methods]


def unlearn_all(labs: list[Lab], methods=UNLEARNING, workers: int = 2, **knobs) -> dict:
    """Each method from each Lab's G: {(method, seed): record}."""
    jobs = unlearn_jobs(labs, methods, **knobs)
    return {(job.name, lab.seed): r for (lab, job), r in zip(jobs, run_many(jobs, workers))}


def ablation_job(lab: Lab, method: str, fraction: float, **knobs):
    """One run of the retain-fraction ablation: ``method`` on ``fraction`` of Dr, its test
    metrics at the end only. FT on 100% of Dr is Full FT (the same slices in the same order
    from the same G, the same computation), and at the default fraction the headline run
    stands for it: the same runs are never made twice."""
    if (method, fraction) == ("FT", 1.0):
        return lab.job("Full FT", **knobs)
    job = lab.job(method, retain_fraction=fraction, **knobs)
    return job if job == lab.job(method, **knobs) else lab.job(
        method, retain_fraction=fraction, curve=False, **knobs)


def ablation_jobs(labs: list[Lab], fractions=None, methods=ABLATION_METHODS, **knobs) -> list:
    """(lab, method, fraction, job) of the retain-fraction ablation (``ablation_job``)."""
    fractions = fractions or labs[0].profile.fractions
    return [(lab, m, f, ablation_job(lab, m, f, **knobs))
            for lab in labs for f in fractions for m in methods]


def ablation(labs: list[Lab], fractions=None, methods=ABLATION_METHODS, workers: int = 2,
             **knobs) -> dict:
    """{(method, fraction, seed): record} for the retain-fraction ablation."""
    jobs = ablation_jobs(labs, fractions, methods, **knobs)
    records = run_many([(lab, job) for lab, _, _, job in jobs], workers)
    return {(m, f, lab.seed): r for (lab, m, f, _), r in zip(jobs, records)}


def sweep_jobs(lab: Lab, method: str, knob: str | None = None, values=None, **knobs) -> list:
    """(value, job) of ``method`` on ``lab``'s seed at each value of one knob (by default the
    method's entry in SWEEPS), the other knobs at ``knobs`` or their defaults."""
    default_knob, default_values = SWEEPS.get(method, (None, ()))
    knob = knob or default_knob
    values = default_values if values is None else values
    if knob is None or not values:
        raise ValueError(f"no sweep for {method}: name a knob and its values")
    get_method(method)
    return [(x, lab.job(method, **{"curve": False, **knobs, knob: x})) for x in values]


def sweep(lab: Lab, method: str, knob: str | None = None, values=None, workers: int = 2,
          **knobs) -> dict:
    """{value: record}: the runs of ``sweep_jobs``."""
    jobs = sweep_jobs(lab, method, knob, values, **knobs)
    records = run_many([(lab, job) for _, job in jobs], workers)
    return {x: r for (x, _), r in zip(jobs, records)}


# ------------------------------------------------------------------ noise strength and frontiers

# The paper's rho and its band (``erase.paper.noise_strength``): the default noisy label, and
# the two ends at which the findings that depend on it are decided again.
NOISE = paper.noise_strength()
BAND = (NOISE["low"], NOISE["rho"], NOISE["high"])
BAND_FINDINGS = (4, 5, 7, 8)  # the findings whose runs carry the noisy label
BAND_FRACTIONS = (0.01, 0.2, 1.0)  # the retain fractions finding 7 reads

# Each method's strength knob and its search toward the oracle's forgetting (share 1):
# values run first on every seed, then outward by a factor 4 (or across the grid) until a run
# crosses share 1, then halving the bracket (log scale), ``points`` runs per seed in all.
# Starts: the noisy label's at the band (the findings need them), GA's at the code's weight 2,
# the others at the values their sweeps tried; SSD's alpha selects no weight at or above
# 1 + |Dr'| / |Df| = 2, SCRUB's max-steps run in whole epochs (grids). SalUn is NL-FT with
# its gradient masked to the reference's 50% most salient weights: its strength is its noisy
# label's rho, as NL-FT's (its own knob, the masked share, is its sweep's, below).
FRONTIER = {
    "NL-FT": Knob("rho", BAND, 5, bounds=(0.05, 200.0)),
    "GA-l1-FT": Knob("ascent", (2.0,), 4, bounds=(1 / 256, 32.0)),
    "NL": Knob("rho", BAND, 4, bounds=(0.05, 200.0)),
    "GA-l1": Knob("ascent", (2.0,), 3, bounds=(1 / 256, 32.0)),
    "SalUn": Knob("rho", BAND, 4, bounds=(0.05, 200.0)),
    "SSD": Knob("alpha", (1.9, 1.99), 3, stronger="down",
                grid=(1.1, 1.3, 1.5, 1.7, 1.8, 1.9, 1.95, 1.99)),
    "SCRUB": Knob("max_epochs", (1, 2), 3, grid=(0, 1, 2, 3, 4, 5)),
    "l1-sparse": Knob("alpha", (2e-4, 5e-4), 4, bounds=(1e-7, 0.1)),
}
# The paper's two methods and NL (finding 4 at the band's ends) on every seed; the others on
# the first three.
FRONTIER_ALL_SEEDS = ("NL-FT", "GA-l1-FT", "NL")
FRONTIER_SEEDS = 3


def frontier_labs(labs: list[Lab], method: str) -> list[Lab]:
    """The Labs a method's frontier runs on."""
    return list(labs) if method in FRONTIER_ALL_SEEDS else list(labs[:FRONTIER_SEEDS])


def frontier_job(lab: Lab, method: str, value):
    """The run of ``method`` at knob ``value``: for the paper's methods at their default the
    headline run itself (Table 2 reads its curve), else a run whose test metrics are taken at
    the end only (the same key as a sweep's run at that value)."""
    knob = FRONTIER[method].name
    job = lab.job(method, **{knob: value})
    if method in UNLEARNING and job == lab.job(method):
        return job
    return lab.job(method, curve=False, **{knob: value})


def frontier_start_jobs(labs: list[Lab], methods=tuple(FRONTIER)) -> list:
    """(lab, job) of every frontier's start values (known before anything runs)."""
    return [(lab, frontier_job(lab, m, x)) for m in methods for lab in frontier_labs(labs, m)
            for x in FRONTIER[m].start]


def _share(lab: Lab, record: dict, read) -> float:
    return point(record, read(lab, lab.job("original")), read(lab, lab.job("oracle")))[
        "share_removed"]


def frontier_steps(labs: list[Lab], read, methods=tuple(FRONTIER)):
    """Walk every frontier's search with ``read(lab, job)`` giving a record (or None when it
    is not there). Returns ({(method, seed): {value: record}}, [(method, lab, value) to run
    next]): a search waits at its first value without a record."""
    found, pending = {}, []
    for m in methods:
        knob = FRONTIER[m]
        for lab in frontier_labs(labs, m):
            records, todo = {}, list(knob.start)
            while todo:
                value = todo.pop(0)
                record = read(lab, frontier_job(lab, m, value))
                if record is None:
                    pending += [(m, lab, value)] + [(m, lab, x) for x in todo]
                    break
                records[value] = record
                if not todo:
                    shares = {x: _share(lab, r, read) for x, r in records.items()}
                    nxt = next_value(knob, shares)
                    todo = [] if nxt is None else [nxt]
            found[(m, lab.seed)] = records
    return found, pending


def frontiers(labs: list[Lab], methods=tuple(FRONTIER), workers: int = 2) -> dict:
    """Run every frontier's search, a round of runs at a time (all methods and seeds together):
    {(method, seed): {knob value: record}}."""
    while True:
        found, pending = frontier_steps(labs, lambda lab, job: lab.stored(job), methods)
        if not pending:
            return found
        run_many([(lab, frontier_job(lab, m, x)) for m, lab, x in pending], workers)


def band_jobs(labs: list[Lab], ablation_labs: list[Lab]) -> list:
    """(end, lab, name, job) of the runs that decide findings 4, 5, 7 and 8 again at each end of
    the band of rho: NL and NL-FT on every seed, NL-FT's ablation at the fractions finding 7
    reads. ``name`` is the record's name in the findings' records."""
    out = []
    for end, rho in (("low", BAND[0]), ("high", BAND[2])):
        out += [(end, lab, m, frontier_job(lab, m, rho)) for m in ("NL", "NL-FT") for lab in labs]
        out += [(end, lab, ("ablation", "NL-FT", f), ablation_job(lab, "NL-FT", f, rho=rho))
                for lab in ablation_labs for f in BAND_FRACTIONS]
    return out


def unlearning_share(lab: Lab, methods) -> dict:
    """{method: slices its unlearning run reads / slices G's training read}, from the plans
    (``Lab.cost``), so no run is needed."""
    training = lab.cost(lab.job("original"))
    return {m: lab.cost(lab.job(m)) / training for m in methods}


def closest_to_oracle(sweep_records: dict, oracle: dict) -> object:
    """The knob value whose run ends closest to the oracle: smallest |BTA - BTA(G-hat)| +
    |KTA - KTA(G-hat)|, the first on a tie."""
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


def beyond_job(lab: Lab, method: str, value):
    """A method beyond the paper at ``value`` of its sweep's knob (nothing reads its curve: the
    same key as its frontier's run at that value)."""
    return lab.job(method, curve=False, **{SWEEPS[method][0]: value})


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
    jobs = [(lab, m, beyond_job(lab, m, chosen[m][1])) for lab in labs for m in methods]
    records = run_many([(lab, job) for lab, _, job in jobs], workers)
    return {(m, lab.seed): r for (lab, m, _), r in zip(jobs, records)}, chosen, sweeps
