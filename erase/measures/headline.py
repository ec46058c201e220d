"""Every run the book's verdicts rest on, gathered once: the regime, the paper's findings, the
methods beyond the paper and the forgetting audit.

``headline(lab)`` runs what is missing (or reads it from the results store) and returns it all;
the introduction's results-at-a-glance, the unlearning chapter and the scorecard chapter call it,
so the three can never disagree, and ``scorecard_json`` is what ``scorecard.json`` holds.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..runs.lab import run_many
from ..runs.methods import BEYOND, UNLEARNING
from . import audit, regime, scorecard, study
from .hallucination import excess_over


@dataclass
class Headline:
    seeds: list
    ablation_seeds: list
    records: dict  # {(name, seed): record}, ablation runs and hallucination excess included
    chosen: dict  # {method beyond the paper: (knob, value)}
    regime: list  # regime.criteria rows
    findings: list  # scorecard.findings rows
    beyond_paper: dict  # audit.scorecard_entry
    noise: dict  # {seed: regime.noise_scale} of the headline lambda
    lam: float


def headline(lab, seeds=None, workers=None, lam: float | None = None) -> Headline:
    """The headline runs on ``seeds`` (default: the scale's), the ablation on its seeds."""
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
    ablation = study.ablation(ablation_labs, lab.profile.fractions, workers=workers)
    records.update({(("ablation", m, f), s): r for (m, f, s), r in ablation.items()})
    add_excess(records, seeds)
    used_lam = records[("NL-FT", seeds[0])]["config"]["knobs"]["lam"]
    return Headline(
        seeds=seeds, ablation_seeds=ablation_seeds, records=records, chosen=chosen,
        regime=regime.criteria(models, {l.seed: l.zero_filled() for l in labs}, seeds),
        findings=scorecard.findings(records, seeds, ablation_seeds),
        beyond_paper=audit.scorecard_entry(records, seeds, methods=(*UNLEARNING, *BEYOND)),
        noise={l.seed: regime.noise_scale(l, models[("original", l.seed)], used_lam)
               for l in labs},
        lam=used_lam)


def after_models(labs, ablation_labs, lam: float | None = None) -> list:
    """(lab, job) pairs of the headline runs that need G and nothing else: the paper's methods
    on every Lab, the sweeps of the methods beyond the paper on the first, the retain-fraction
    ablation on ``ablation_labs``. Run as one batch, no worker idles between them; the runs of
    the methods beyond the paper on the other seeds wait for their sweeps' choice."""
    knobs = {} if lam is None else {"lam": lam}
    ablation = study.ablation_jobs(ablation_labs, labs[0].profile.fractions)
    return (study.unlearn_jobs(labs, UNLEARNING, **knobs) + study.beyond_sweep_jobs(labs)
            + [(l, job) for l, _, _, job in ablation])


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
    """What ``scorecard.json`` holds: the regime, the findings, the audit, and their setting."""
    return {"scale": lab.profile.name, "seeds": h.seeds, "ablation_seeds": h.ablation_seeds,
            "protocol": lab.config(lab.job("NL-FT"))["protocol"], "lambda": h.lam,
            "noise_scale": {str(s): v for s, v in h.noise.items()},
            "chosen_beyond_paper": {m: list(kv) for m, kv in h.chosen.items()},
            "regime": {"criteria": h.regime, **regime.summary(h.regime)},
            "findings": h.findings, "beyond_paper": h.beyond_paper}
