"""Every run the book's verdicts rest on, gathered once: the regime, the paper's findings, the
methods beyond the paper and the forgetting audit.

``headline(lab)`` runs what is missing (or reads it from the results store) and returns it all;
the introduction's results-at-a-glance, the unlearning chapter and the scorecard chapter call it,
so the three can never disagree, and ``scorecard_json`` is what ``scorecard.json`` holds.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import paper
from ..measures import audit, frontier, per_example, regime, scorecard
from ..measures.hallucination import excess_over
from ..runs.lab import run_many
from ..runs.methods import BEYOND, UNLEARNING
from . import study


@dataclass
class Headline:
    seeds: list
    ablation_seeds: list
    records: dict  # {(name, seed): record}, ablation runs and hallucination excess included
    chosen: dict  # {method beyond the paper: (knob, value)}
    regime: list  # regime.criteria rows
    findings: list  # scorecard.findings rows
    beyond_paper: dict  # audit.scorecard_entry
    noise: dict  # {seed: the headline NL-FT's noisy label (runs.noise.strength)}
    lam: float | None  # a raw lambda asked for, else None (rho: the paper's, per seed)
    frontiers: dict  # {method: {seed: frontier.frontier points}}
    matched: dict  # {method: {target share: frontier.matched}}
    band: dict  # {"low" / "high": findings 4, 5, 7, 8 decided at that end of rho's band}


def headline(lab, seeds=None, workers=None, lam: float | None = None) -> Headline:
    """The headline runs on ``seeds`` (default: the scale's), the ablation on its seeds, the
    frontiers and the findings at the ends of rho's band. ``lam``: a raw lambda for the
    headline's noisy label instead of the paper's rho (the frontiers keep rho)."""
    seeds = list(seeds or lab.profile.seeds)
    workers = workers or lab.profile.workers
    labs = study.labs_for(lab, seeds)
    ablation_seeds = list(lab.profile.ablation_seeds)
    ablation_labs = study.labs_among(labs, lab, ablation_seeds)
    knobs = {} if lam is None else {"lam": lam}
    models = study.train_models(labs, workers)
    run_many(after_models(labs, ablation_labs, lam), workers)  # one batch, longest first
    records = {**models, **study.unlearn_all(labs, UNLEARNING, workers, **knobs)}
    beyond_runs, chosen, _ = study.beyond(labs, workers=workers)
    records.update(beyond_runs)
    ablation = study.ablation(ablation_labs, lab.profile.fractions, workers=workers, **knobs)
    records.update({(("ablation", m, f), s): r for (m, f, s), r in ablation.items()})
    add_excess(records, seeds)
    fronts = frontier_points(study.frontiers(labs, workers=workers), models)
    return Headline(
        seeds=seeds, ablation_seeds=ablation_seeds, records=records, chosen=chosen,
        regime=regime.criteria(models, {l.seed: l.zero_filled() for l in labs}, seeds),
        findings=scorecard.findings(records, seeds, ablation_seeds),
        beyond_paper=beyond_paper(labs, records, seeds, workers),
        noise={s: records[("NL-FT", s)]["noise"] for s in seeds}, lam=lam,
        frontiers=fronts, matched=matched_table(fronts),
        band=band_findings(records, study.band_jobs(labs, ablation_labs), seeds,
                           ablation_seeds, workers))


def beyond_paper(labs, records: dict, seeds, workers: int = 2) -> dict:
    """The forgetting audit of G-hat, G and every method (``audit.scorecard_entry``) with its
    per-example test under ``per_example_audit`` (each model scored on the pools first)."""
    audited = (*UNLEARNING, *BEYOND)
    entry = audit.scorecard_entry(records, seeds, methods=audited)
    pools = study.pool_losses(labs, records, (per_example.CONTROL, "original", *audited), workers)
    members = per_example.memberships({lab.seed: lab.manifest for lab in labs})
    entry["per_example_audit"] = per_example.scorecard_entry(
        pools, members, audited, seeds, population=entry["categories"])
    return entry


def after_models(labs, ablation_labs, lam: float | None = None) -> list:
    """(lab, job) pairs of the headline runs that need G and nothing else: the paper's methods
    on every Lab, the sweeps of the methods beyond the paper on the first, the retain-fraction
    ablation on ``ablation_labs``, the frontiers' start values and the runs at the ends of
    rho's band. Run as one batch, no worker idles between them; the runs of the methods
    beyond the paper on the other seeds wait for their sweeps' choice, a frontier's search
    for its start values."""
    knobs = {} if lam is None else {"lam": lam}
    ablation = study.ablation_jobs(ablation_labs, labs[0].profile.fractions, **knobs)
    band = study.band_jobs(labs, ablation_labs)
    return (study.unlearn_jobs(labs, UNLEARNING, **knobs) + study.beyond_sweep_jobs(labs)
            + [(l, job) for l, _, _, job in ablation] + study.frontier_start_jobs(labs)
            + [(l, job) for _, l, _, job in band])


def frontier_points(found: dict, models: dict) -> dict:
    """{method: {seed: points}} from ``study.frontiers``' records."""
    out: dict = {}
    for (m, seed), records in found.items():
        out.setdefault(m, {})[seed] = frontier.frontier(
            records, {n: models[(n, seed)] for n in ("original", "oracle")}, study.FRONTIER[m])
    return out


def matched_table(fronts: dict) -> dict:
    """{method: {target: frontier.matched}} at each share of ``frontier.TARGETS``."""
    return {m: {t: frontier.matched(by_seed, t) for t in frontier.TARGETS}
            for m, by_seed in fronts.items()}


def band_findings(records: dict, band: list, seeds, ablation_seeds, workers: int = 2) -> dict:
    """Findings 4, 5, 7 and 8 decided again with NL and NL-FT at each end of rho's band
    (``study.band_jobs``; the other methods' runs do not carry the noisy label):
    {"low": rows, "high": rows}."""
    out = {}
    ran = run_many([(lab, job) for _, lab, _, job in band], workers)
    for end in ("low", "high"):
        here = dict(records)
        here.update({(name, lab.seed): r for (e, lab, name, _), r in zip(band, ran) if e == end})
        add_excess(here, seeds)
        out[end] = scorecard.findings(here, seeds, ablation_seeds, criteria=[
            f for f in scorecard.CRITERIA if f.number in study.BAND_FINDINGS])
    return out


def band_verdicts(h: Headline) -> dict:
    """{finding: {"low", "paper", "high": verdict, "depends": the verdicts differ}}."""
    out = {}
    for row in h.findings:
        n = row["finding"]
        if n not in study.BAND_FINDINGS:
            continue
        v = {"low": _verdict(h.band["low"], n), "paper": row["verdict"],
             "high": _verdict(h.band["high"], n)}
        out[n] = {**v, "depends": len(set(v.values())) > 1}
    return out


def _verdict(rows: list, number) -> str:
    return next(r["verdict"] for r in rows if r["finding"] == number)


def add_excess(records: dict, seeds) -> dict:
    """Put each seed's hallucination excess over the oracle (G's, NL-FT's) into ``records`` as
    an ``("excess", seed)`` entry, the form the scorecard reads."""
    for s in seeds:
        records[("excess", s)] = {"summary": {
            n: excess_over(records[(n, s)], records[("oracle", s)]) for n in ("original", "NL-FT")}}
    return records


def without_ablation(records: dict, seeds) -> list:
    """The findings that need no retain-fraction ablation (all but 7), on ``records``."""
    return scorecard.findings(add_excess(records, seeds), seeds,
                              criteria=[f for f in scorecard.CRITERIA if f.seeds != "ablation"])


def scorecard_json(h: Headline, lab) -> dict:
    """What ``scorecard.json`` holds: the regime, the findings, the audit, their setting, the
    noisy label's strength, the frontiers and the comparison at matched forgetting."""
    fronts, table = h.frontiers, h.matched
    return {"scale": lab.profile.name, "seeds": h.seeds, "ablation_seeds": h.ablation_seeds,
            "protocol": lab.config(lab.job("NL-FT"))["protocol"],
            "lambda": h.lam if h.lam is not None else "rho x G's RMSE on Df, per seed",
            "rho_paper": paper.noise_strength(),
            "noise": {str(s): v for s, v in h.noise.items()},
            "chosen_beyond_paper": {m: list(kv) for m, kv in h.chosen.items()},
            "regime": {"criteria": h.regime, **regime.summary(h.regime)},
            "findings": h.findings,
            "band_ends": {"rho": {"low": study.BAND[0], "paper": study.BAND[1],
                                  "high": study.BAND[2]},
                          "verdicts": {str(n): v for n, v in band_verdicts(h).items()},
                          "findings": h.band},
            "frontiers": {m: {"knob": study.FRONTIER[m].name,
                              "per_seed": {str(s): pts for s, pts in by_seed.items()}}
                          for m, by_seed in fronts.items()},
            "matched_forgetting": {
                "methods": {m: {str(t): v for t, v in by_t.items()} for m, by_t in table.items()},
                "ranking_at_share_1": frontier.ranking(table),
                "finding_5": frontier.paired_cost_difference(fronts["NL-FT"],
                                                             fronts["GA-l1-FT"]),
                "paper": frontier.paper_points()},
            "beyond_paper": h.beyond_paper}
