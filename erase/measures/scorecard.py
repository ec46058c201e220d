"""The paper's findings, each a table of written criteria, decided on this run's seeds.

A finding is data: its criteria (a quantity per seed, a threshold, which side) and how they
combine. Every criterion is decided on the 95% interval over seeds: "holds" when the whole
interval is on the paper's side of the threshold, "does not hold" when it is entirely on the
other, "inconclusive" otherwise (a criterion on the mean is never inconclusive). A finding
holds when all its criteria hold (for ``any`` findings: when all criteria of one group hold).
The same criteria are computed on the paper's tables for the "paper" column.

Robustness: every finding is decided again with each seed left out in turn; a verdict that
changes under any of these is "fragile", with the seeds that flip it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

from .. import paper
from ..paper import FINDINGS
from .intervals import interval

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
STABLE, FRAGILE = "stable", "fragile"


# ------------------------------------------------------------------ reading one seed


class SeedView:
    """``get(name, column)`` for one seed: a run's summary column (``bta_psnr``...), its
    ``train_seconds``, or a value of the extra per-seed measures (``("excess", name)``)."""

    def __init__(self, records: dict, seed):
        self.records, self.seed = records, seed

    def __call__(self, name, column: str) -> float:
        record = self.records.get((name, self.seed))
        if record is None:
            raise KeyError(f"no run {name!r} for seed {self.seed}")
        if column == "train_seconds":
            return float(record["timing"]["train_seconds"])
        return float(record["summary"][column])


def paper_view(name, column: str) -> float:
    """The same reading on the paper's tables (Table 3 for ``("ablation", method, f)``)."""
    if isinstance(name, tuple) and name[0] == "ablation":
        return paper.value(3, name[1], column, retain_fraction=name[2])
    return paper.value(1, name, column)


def gap_removed(get, method: str) -> float:
    """Share of the knowledge gap a method removed: (KTA(G) - KTA(M)) / (KTA(G) - KTA(G-hat)).

    A gap of zero leaves nothing to remove: the share is undefined, and we refuse to divide."""
    gap = get("original", "kta_psnr") - get("oracle", "kta_psnr")
    if gap == 0:
        raise ValueError("the knowledge gap KTA(G) - KTA(G-hat) is exactly 0: no share of it "
                         "can be removed")
    return (get("original", "kta_psnr") - get(method, "kta_psnr")) / gap


def difference(a, b, column: str) -> Callable:
    return lambda get: get(a, column) - get(b, column)


# ------------------------------------------------------------------ criteria as data


@dataclass(frozen=True)
class Criterion:
    quantity: str  # what is measured, in words
    value: Callable  # get -> float, for one seed (or the paper)
    threshold: float
    side: str = "above"  # the paper's side of the threshold; "within": |value| below it
    on: str = "interval"  # decide on the 95% "interval" over seeds, or on the "mean"
    unit: str = " dB"


@dataclass(frozen=True)
class Finding:
    number: int | str  # the paper's finding number, or a label of another table ("B1")
    criterion: str  # the criterion in words, as the book prints it
    groups: tuple  # tuples of Criteria; a group holds when all of its criteria hold
    combine: str = "all"  # "all": every group must hold; "any": one group is enough
    paper_note: str = ""  # said of the paper where a criterion cannot be read off its tables
    seeds: str = "headline"  # decided on the "headline" seeds or the retain-fraction "ablation"'s
    statement: str = ""  # the claim in words; empty: the paper's finding of that number
    on_paper: bool = True  # False: the criteria are not read off the paper's tables at all


def _per_method(methods, make) -> tuple:
    return tuple(tuple(make(m)) for m in methods)


# Thresholds named once: the criteria below use them, and so do the sentences of
# ``erase.measures.diagnosis`` that say what a number means.
NOT_UNLEARNED = 0.25  # a share of the gap removed below this: the method did not unlearn
UNLEARNED = 0.5  # more than half of the gap removed: it did
COLLAPSE_DB = 5.0  # BTA this far below the oracle: the model collapsed (finding 4)

CRITERIA: tuple[Finding, ...] = (
    Finding(1, "KTA(G) - KTA(G-hat): 95% interval above 0 and mean above 2 dB", ((
        Criterion("KTA(G) - KTA(G-hat)", difference("original", "oracle", "kta_psnr"), 0.0),
        Criterion("KTA(G) - KTA(G-hat), mean", difference("original", "oracle", "kta_psnr"),
                  2.0, on="mean")),)),
    Finding(2, "0 < BTA(G-hat) - BTA(G) (interval) with a mean below 2 dB, and G's "
               "hallucination score exceeds the oracle's (interval above 0)", ((
        Criterion("BTA(G-hat) - BTA(G)", difference("oracle", "original", "bta_psnr"), 0.0),
        Criterion("BTA(G-hat) - BTA(G), mean", difference("oracle", "original", "bta_psnr"),
                  2.0, side="below", on="mean"),
        Criterion("G's hallucination excess over G-hat", lambda get: get("excess", "original"),
                  0.0, unit=" pp")),), paper_note="hallucinations shown by eye"),
    Finding(3, "for FT and Full FT: share of the knowledge gap removed below 0.25 and "
               "BTA(G) - BTA(M) below 0.5 dB (whole intervals)", _per_method(
        ("FT", "Full FT"), lambda m: (
            Criterion(f"{m}: share of the gap removed", lambda get, m=m: gap_removed(get, m),
                      NOT_UNLEARNED, side="below", unit=""),
            Criterion(f"{m}: BTA(G) - BTA({m})", difference("original", m, "bta_psnr"), 0.5,
                      side="below")))),
    Finding(4, "for GA-l1 and NL: BTA more than 5 dB and KTA more than 3 dB below the oracle "
               "(whole intervals)", _per_method(
        ("GA-l1", "NL"), lambda m: (
            Criterion(f"{m}: BTA(G-hat) - BTA({m})", difference("oracle", m, "bta_psnr"),
                      COLLAPSE_DB),
            Criterion(f"{m}: KTA(G-hat) - KTA({m})", difference("oracle", m, "kta_psnr"), 3.0)))),
    Finding(5, "BTA(G-hat) - BTA(NL-FT) below 1 dB and NL-FT removes more than half of the gap; "
               "GA-l1-FT removes more than half of the gap with a lower BTA than NL-FT "
               "(whole intervals)", ((
        Criterion("BTA(G-hat) - BTA(NL-FT)", difference("oracle", "NL-FT", "bta_psnr"), 1.0,
                  side="below"),
        Criterion("NL-FT: share of the gap removed", lambda get: gap_removed(get, "NL-FT"),
                  UNLEARNED, unit=""),
        Criterion("GA-l1-FT: share of the gap removed", lambda get: gap_removed(get, "GA-l1-FT"),
                  UNLEARNED, unit=""),
        Criterion("BTA(NL-FT) - BTA(GA-l1-FT)", difference("NL-FT", "GA-l1-FT", "bta_psnr"),
                  0.0)),)),
    Finding(6, "unlearning time of FT, GA-l1-FT and NL-FT below 0.2 of the oracle's training "
               "time (whole intervals)", (tuple(
        Criterion(f"{m}: unlearning time / oracle's training time",
                  lambda get, m=m: get(m, "train_seconds") / get("oracle", "train_seconds"),
                  0.2, side="below", unit="") for m in ("FT", "GA-l1-FT", "NL-FT")),),
            paper_note="RTE shown only as a normalised radar axis (Figure 3)"),
    Finding(7, "for NL-FT or GA-l1-FT (where the paper's BTA peaks, at 20% retain data): BTA "
               "at 20% above BTA at 1% (interval above 0) and above BTA at 100% by more than "
               "0.2 dB (interval)", _per_method(
        ("NL-FT", "GA-l1-FT"), lambda m: (
            Criterion(f"{m}: BTA(20%) - BTA(1%)", difference(("ablation", m, 0.2),
                                                           ("ablation", m, 0.01), "bta_psnr"), 0.0),
            Criterion(f"{m}: BTA(20%) - BTA(100%)", difference(("ablation", m, 0.2),
                                                             ("ablation", m, 1.0), "bta_psnr"),
                      0.2))), combine="any", seeds="ablation"),
    Finding(8, "unlearning removes hallucinations: NL-FT's hallucination excess over the oracle "
               "is below G's (interval of G's minus NL-FT's above 0)", ((
        Criterion("G's excess - NL-FT's excess",
                  lambda get: get("excess", "original") - get("excess", "NL-FT"), 0.0,
                  unit=" pp"),),), paper_note="claimed in the title; shown by eye (Figure 1)"),
)


# ------------------------------------------------------------------ deciding


def _decide(triple, threshold: float, side: str) -> str:
    """Holds when the whole interval is on the paper's side of the threshold; does not hold
    when it is entirely on the other side; inconclusive otherwise. ``within``: holds when the
    whole interval is inside (-threshold, threshold), does not hold when it is entirely
    outside on one side."""
    mean, lo, hi = triple
    if side == "within":
        return (HOLDS if -threshold < lo and hi < threshold else
                FAILS if lo >= threshold or hi <= -threshold else UNSURE)
    if side == "above":
        return HOLDS if lo > threshold else FAILS if hi <= threshold else UNSURE
    return HOLDS if hi < threshold else FAILS if lo >= threshold else UNSURE


def seed_values(criterion: Criterion, records: dict, seeds) -> dict:
    """{seed: value} of a criterion; a seed whose runs are missing is an error, not a gap."""
    out = {}
    for seed in seeds:
        try:
            out[seed] = float(criterion.value(SeedView(records, seed)))
        except KeyError as err:
            raise KeyError(f"{criterion.quantity}: {err.args[0]}") from None
    return out


def check(criterion: Criterion, values: dict) -> dict:
    """One thresholded decision, with the per-seed values it was made from."""
    triple = interval(list(values.values()))
    if criterion.on == "mean":
        mean = triple[0]
        verdict = HOLDS if (mean > criterion.threshold if criterion.side == "above"
                            else abs(mean) < criterion.threshold if criterion.side == "within"
                            else mean < criterion.threshold) else FAILS
    else:
        verdict = _decide(triple, criterion.threshold, criterion.side)
    return {"quantity": criterion.quantity, "values": {str(s): v for s, v in values.items()},
            "threshold": criterion.threshold, "side": criterion.side, "on": criterion.on,
            "interval": list(triple), "verdict": verdict}


def combine(finding: Finding, group_verdicts: list[list[str]]) -> str:
    """A finding's verdict from its groups' criteria verdicts."""
    groups = [HOLDS if all(v == HOLDS for v in g) else FAILS if any(v == FAILS for v in g)
              else UNSURE for g in group_verdicts]
    if finding.combine == "any":
        return HOLDS if HOLDS in groups else FAILS if all(g == FAILS for g in groups) else UNSURE
    return HOLDS if all(g == HOLDS for g in groups) else FAILS if FAILS in groups else UNSURE


def decide(finding: Finding, values: list[list[dict]], seeds) -> tuple[str, list]:
    """(verdict, checks) of a finding on ``seeds`` (values: per group, per criterion)."""
    checks = [[check(c, {s: v[s] for s in seeds}) for c, v in zip(group, group_values)]
              for group, group_values in zip(finding.groups, values)]
    return combine(finding, [[c["verdict"] for c in g] for g in checks]), checks


def _fmt(triple, unit, seeds: int = 1) -> str:
    mean, lo, hi = triple
    if lo == hi:
        return f"{mean:.2f}{unit} ({'one seed' if seeds == 1 else 'the same on every seed'})"
    return f"{mean:.2f}{unit} [{lo:.2f}, {hi:.2f}]"


def _paper_text(finding: Finding) -> str:
    if not finding.on_paper:
        return finding.paper_note
    parts = []
    for group in finding.groups:
        for c in group:
            if c.on == "mean":
                continue
            try:
                parts.append(f"{c.quantity}: {c.value(paper_view):.2f}{c.unit}")
            except (KeyError, ValueError):
                continue
    text = "; ".join(parts)
    return "; ".join(p for p in (text, finding.paper_note) if p)


def findings(records: dict, seeds, ablation_seeds=None, criteria=CRITERIA) -> list[dict]:
    """The scorecard rows on ``records``: {(name, seed): record} holding the oracle, G, the
    methods, the ablation runs as ``(("ablation", method, fraction), seed)`` and the
    hallucination excess over the oracle as ``("excess", seed)`` records. Finding 7 is
    decided on ``ablation_seeds`` (default: ``seeds``). ``criteria``: another table of
    Findings decided the same way (the forgetting audit's, ``measures.audit.CRITERIA``)."""
    rows = []
    for finding in criteria:
        seeds_here = list(ablation_seeds if finding.seeds == "ablation" and ablation_seeds
                          is not None else seeds)
        rows.append(_row(finding, records, seeds_here))
    return rows


def _row(finding: Finding, records: dict, seeds: list) -> dict:
    """One finding decided on ``seeds``, and again with each seed left out."""
    values = [[seed_values(c, records, seeds) for c in group] for group in finding.groups]
    verdict, checks = decide(finding, values, seeds)
    flips = {}
    if len(seeds) > 2:
        for left_out in seeds:
            without = decide(finding, values, [s for s in seeds if s != left_out])[0]
            if without != verdict:
                flips[str(left_out)] = without
    flat = [c for g in checks for c in g]
    return {
        "finding": finding.number, "statement": finding.statement or FINDINGS[finding.number],
        "criterion": finding.criterion, "paper": _paper_text(finding),
        "ours": "; ".join(f"{c['quantity']}: "
                          f"{_fmt(c['interval'], _unit(finding, c['quantity']), len(seeds))}"
                          for c in flat if c["on"] == "interval"),
        "verdict": verdict, "seeds": [str(s) for s in seeds],
        "robustness": FRAGILE if flips else STABLE,
        "flipped_by": flips,  # {left-out seed: the verdict without it}
        "checks": flat}


def _unit(finding: Finding, quantity: str) -> str:
    return next(c.unit for g in finding.groups for c in g if c.quantity == quantity)


def _it(verdict: str) -> str:
    """A verdict after "it": "it holds", "it does not hold", "it is inconclusive"."""
    return f"it {verdict}" if verdict in (HOLDS, FAILS) else f"it is {verdict}"


def robustness_text(row: dict) -> str:
    """'stable' or 'fragile: without seed 3 it does not hold'."""
    if not row["flipped_by"]:
        return STABLE
    return "fragile: " + "; ".join(f"without seed {s} {_it(v)}"
                                   for s, v in row["flipped_by"].items())


def seeds_to_decide(values, threshold: float, limit: int = 200) -> int | None:
    """How many seeds would put the 95% interval on one side of ``threshold``, if the mean and
    the seed-to-seed spread stayed as observed; None when no number up to ``limit`` would
    (a mean on the threshold is never decided)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return None
    margin, spread = abs(values.mean() - threshold), values.std(ddof=1)
    if spread == 0:
        return len(values) if margin > 0 else None
    for n in range(2, limit + 1):
        if stats.t.ppf(0.975, n - 1) * spread / np.sqrt(n) < margin:
            return n
    return None


def undecided(rows: list[dict]) -> list[dict]:
    """The checks that left a finding inconclusive, each with the seeds that would decide it."""
    out = []
    for row in rows:
        if row["verdict"] != UNSURE:
            continue
        for c in row["checks"]:
            if c["verdict"] == UNSURE:
                values = np.asarray(list(c["values"].values()))
                threshold = c["threshold"]
                if c["side"] == "within":  # the boundary the mean is nearer to
                    threshold = float(np.copysign(threshold, values.mean()))
                out.append({"finding": row["finding"], "quantity": c["quantity"],
                            "mean": float(values.mean()),
                            "seed sd": (float(values.std(ddof=1)) if len(values) > 1
                                        else float("nan")),
                            "threshold": threshold,
                            "seeds to decide": seeds_to_decide(values, threshold)})
    return out


def time_ratio(records: dict, method: str, seed) -> float:
    """Unlearning time of ``method`` over the oracle's training time (the paper's RTE)."""
    get = SeedView(records, seed)
    return get(method, "train_seconds") / get("oracle", "train_seconds")


# ------------------------------------------------------------------ reporting (chapter 8)
# Words and tables about the verdicts above; nothing here decides or changes one.

CANNOT = "cannot be computed"
_SIDE_WORDS = {"above": "above", "below": "below", "within": "within +/-"}


def criterion_words(side: str, threshold: float, unit: str = "") -> str:
    """'above 1 dB', 'below 0.25', 'within +/-1 dB': the paper's side of a threshold."""
    return f"{_SIDE_WORDS[side]} {threshold:g}{unit}"


def finding_of(number, criteria=CRITERIA) -> Finding:
    """The Finding of that number (or label) in ``criteria``."""
    return next(f for f in criteria if f.number == number)


def paper_checks(finding: Finding) -> list[dict]:
    """Every criterion of ``finding`` decided on the paper's own numbers, by the same rule as
    ours (``check``) on its one value (its tables hold one run: no interval). ``value`` is
    None, and the verdict CANNOT, where its tables do not give the quantity (hallucinations,
    times) or the finding is not read off them at all."""
    out = []
    for group in finding.groups:
        for c in group:
            value = None
            if finding.on_paper:
                try:
                    value = float(c.value(paper_view))
                except (KeyError, ValueError):
                    value = None
            out.append({"quantity": c.quantity, "value": value, "threshold": c.threshold,
                        "side": c.side, "unit": c.unit,
                        "verdict": CANNOT if value is None else
                        check(c, {"paper": value})["verdict"]})
    return out


def paper_verdict(finding: Finding) -> str:
    """The finding's verdict on the paper's own numbers: HOLDS, FAILS or CANNOT (a criterion
    its tables do not give, where no computable one fails: ``combine`` reads it as
    undecided)."""
    checks, groups, i = paper_checks(finding), [], 0
    for group in finding.groups:
        groups.append([UNSURE if c["verdict"] == CANNOT else c["verdict"]
                       for c in checks[i:i + len(group)]])
        i += len(group)
    verdict = combine(finding, groups)
    return CANNOT if verdict == UNSURE else verdict


def paper_verdict_text(finding: Finding) -> str:
    """The paper's own numbers against the finding's criterion, in a few words: "holds",
    "does not hold: BTA(G-hat) - BTA(NL-FT) is 1.12 dB, not below 1 dB", or "cannot be
    computed" with what its tables lack."""
    verdict, checks = paper_verdict(finding), paper_checks(finding)
    if verdict == HOLDS:
        return HOLDS
    if verdict == FAILS:
        failed = [c for c in checks if c["verdict"] == FAILS]
        return FAILS + ": " + "; ".join(
            f"{c['quantity']} is {c['value']:.2f}{c['unit']}, not "
            f"{criterion_words(c['side'], c['threshold'], c['unit'])}" for c in failed)
    missing = [c["quantity"] for c in checks if c["verdict"] == CANNOT]
    if len(missing) == len(checks):
        return CANNOT + (f": {finding.paper_note}" if finding.paper_note else
                         ": its tables do not give it")
    rest = len(checks) - len(missing)
    return (f"{CANNOT}: its tables do not give {', '.join(missing)} (the other "
            + ("criterion holds)" if rest == 1 else f"{rest} criteria hold)"))


def _digits(threshold: float) -> int:
    return 3 if 0 < abs(threshold) < 0.1 else 2


def seeds_beyond(values: dict, threshold: float, side: str,
                 at_least: bool = False) -> dict:
    """{seed: value} of the seeds whose own value is not on the paper's side of the threshold
    (``side``: "above", "below", or "within" +/- threshold). ``at_least``: a value equal to an
    "above" threshold is on its side (the regime's criteria read "at least")."""
    wrong = {"above": (lambda v: v < threshold) if at_least else (lambda v: v <= threshold),
             "below": lambda v: v >= threshold, "within": lambda v: abs(v) >= threshold}[side]
    return {str(s): float(v) for s, v in values.items() if wrong(v)}


def seeds_beyond_text(values: dict, threshold: float, side: str, unit: str = "",
                      at_least: bool = False) -> str:
    """'seed 3 (0.072 dB/epoch) is not below 0.05 dB/epoch', or "" when every seed is on
    the paper's side (``at_least``: as in ``seeds_beyond``; a seed short of an "at least"
    threshold is "below" it)."""
    out = seeds_beyond(values, threshold, side, at_least)
    if not out:
        return ""
    d = _digits(threshold)
    seeds = " and ".join(", ".join(f"seed {s} ({v:.{d}f}{unit})" for s, v in out.items())
                         .rsplit(", ", 1))
    where = (f"below {threshold:g}{unit}" if at_least and side == "above"
             else f"not {criterion_words(side, threshold, unit)}")
    return f"{seeds} {'is' if len(out) == 1 else 'are'} {where}"


def passed_with_seeds_beyond(rows: list[dict], criteria=CRITERIA) -> list[dict]:
    """The checks that hold (on the mean or on the interval) while single seeds lie on the
    other side of the threshold: {"finding", "quantity", "on", "mean", "unit", "seeds":
    {seed: value}, "text"}. A pass on the mean says nothing about each seed; this says it."""
    out = []
    for row in rows:
        finding = finding_of(row["finding"], criteria)
        for c in row["checks"]:
            if c["verdict"] != HOLDS:
                continue
            unit = _unit(finding, c["quantity"])
            text = seeds_beyond_text(c["values"], c["threshold"], c["side"], unit)
            if text:
                out.append({"finding": row["finding"], "quantity": c["quantity"],
                            "on": c["on"], "mean": c["interval"][0], "unit": unit,
                            "seeds": seeds_beyond(c["values"], c["threshold"], c["side"]),
                            "text": text})
    return out


def _knob_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


NO_OP_DB = 0.005  # a row whose BTA and KTA are within this of G's on every seed: 0.00 dB shown


def knobs_used(records: dict, names, seeds) -> list[dict]:
    """Per method, the knob values its runs used, read from the runs' own records
    (``config["knobs"]``, the values the run's key was made of; a knob that does not apply to
    the row is None there and left out) and the largest distance of its BTA or KTA from G's
    over ``seeds`` (dB): a row within NO_OP_DB of G on every seed changed nothing
    measurable."""
    rows = []
    for m in names:
        used: dict = {}
        for s in seeds:
            for k, v in (records[(m, s)]["config"].get("knobs") or {}).items():
                if v is not None and k != "curve" and v not in used.setdefault(k, []):
                    used[k].append(v)
        shift = max(abs(records[(m, s)]["summary"][col] - records[("original", s)]["summary"][col])
                    for s in seeds for col in ("bta_psnr", "kta_psnr"))
        rows.append({"method": m,
                     "knobs used": ", ".join(f"{k} {'/'.join(map(_knob_text, vs))}"
                                             for k, vs in sorted(used.items())),
                     "largest change from G (dB)": shift,
                     "no-op": shift < NO_OP_DB})
    return rows


def _numbers(numbers) -> str:
    numbers = [str(n) for n in numbers]
    return " and ".join(", ".join(numbers).rsplit(", ", 1))


def paper_summary_words(criteria=CRITERIA) -> str:
    """The findings on the paper's own numbers (``paper_verdict``), as a Markdown list: those
    that hold, each one that does not with the criterion it fails (in bold: the paper's own
    result fails it), and each one its tables cannot decide, with why."""
    by = {f.number: paper_verdict(f) for f in criteria if f.on_paper}
    holds = [n for n, v in by.items() if v == HOLDS]
    lines = ["Decided by the same rule on the paper's own numbers (its tables: one run, no "
             "interval):", ""]
    if holds:
        lines.append(f"* finding{'s' if len(holds) > 1 else ''} {_numbers(holds)} "
                     f"{'hold' if len(holds) > 1 else 'holds'};")
    for f in criteria:
        verdict = by.get(f.number)
        if verdict == FAILS:
            lines.append(f"* **finding {f.number} does not hold on the paper's own numbers**: "
                         + paper_verdict_text(f).split(": ", 1)[1] + ". The criterion asks "
                         "more than the paper's own result gives, so a \"does not hold\" on it "
                         "alone would not tell this run from the paper's;")
        elif verdict == CANNOT:
            lines.append(f"* finding {f.number} cannot be decided from them: "
                         + paper_verdict_text(f).split(": ", 1)[1] + ";")
    lines[-1] = lines[-1][:-1] + "."
    return "\n".join(lines)


def no_op_words(knob_rows: list[dict]) -> str:
    """The rows of ``knobs_used`` that changed nothing measurable, in one sentence."""
    idle = [r for r in knob_rows if r["no-op"]]
    if not idle:
        return (f"Every row moved G's BTA or KTA by at least {NO_OP_DB:g} dB on some seed: none "
                "is a copy of G.")
    named = "; ".join(f"{r['method']} ({r['knobs used']})" for r in idle)
    one = len(idle) == 1
    return (f"{named} {'stays' if one else 'stay'} within {NO_OP_DB:g} dB of G's BTA and KTA "
            f"on every seed: at the knob values {'it' if one else 'they'} used, "
            f"{'it' if one else 'each'} changed nothing measurable, and "
            f"{'its row is' if one else 'their rows are'} G's.")
