"""Why each finding came out as it did, in one sentence, from the evidence this run holds.

A verdict alone ("does not hold") teaches nothing; the reasons are in the numbers the runs
recorded. Each rule below reads a finding's checks (and the noisy label's size against G's
error) and says what decided it. Rules are per finding number and written before the results:
they name the deciding quantity, never a conclusion the numbers do not carry.
"""
from __future__ import annotations

import numpy as np

from .. import paper
from .scorecard import COLLAPSE_DB, FAILS, HOLDS, NOT_UNLEARNED, UNLEARNED, UNSURE

# The paper's noisy label against its G's error on the forget set (rho, with its band):
# ``erase.paper.noise_strength``.
_PAPER_NOISE = paper.noise_strength()
PAPER_NOISE_TO_ERROR = (f"{_PAPER_NOISE['rho']:g} (between {_PAPER_NOISE['low']:g} and "
                        f"{_PAPER_NOISE['high']:g} by the reading of lambda's scale)")


# The sentences' own thresholds (the criteria's are scorecard's NOT_UNLEARNED, UNLEARNED and
# COLLAPSE_DB): a share above OVERSHOOT went past the oracle, not merely to it; a noise ratio
# within SAME_RHO of the paper's is the paper's strength.
OVERSHOOT = 1.25
SAME_RHO = 0.01

EXCESS = "G's hallucination excess over G-hat"
EXCESS_DIFF = "G's excess - NL-FT's excess"


def _check(row: dict, quantity: str) -> dict:
    return next(c for c in row["checks"] if c["quantity"] == quantity)


def _mean(row: dict, quantity: str) -> float:
    return float(_check(row, quantity)["interval"][0])


def _iv(row: dict, quantity: str, unit: str = " dB") -> str:
    check = _check(row, quantity)
    mean, lo, hi = check["interval"]
    if lo == hi:  # no interval: one seed, or no spread
        return f"{mean:.2f}{unit} ({'one seed' if len(check['values']) == 1 else 'every seed'})"
    return f"{mean:.2f}{unit} [{lo:.2f}, {hi:.2f}]"


def noise_ratio(noise: dict) -> float:
    """Mean over seeds of rho, the noise's rms over G's RMSE on Df."""
    return float(np.mean([v["rho"] for v in noise.values()]))


def spread_words(row: dict, effects) -> str:
    """Each effect's mean against its seed-to-seed standard deviation, from the per-seed
    values of its check: "the brain cost is 0.26 dB with a seed-to-seed sd of 0.15 dB (1.7
    sd from its threshold 0)". ``effects``: (words, quantity, unit) triples."""
    parts = []
    for words, quantity, unit in effects:
        c = _check(row, quantity)
        values = np.asarray(list(c["values"].values()), dtype=float)
        if len(values) < 2:
            continue
        mean, sd = float(values.mean()), float(values.std(ddof=1))
        distance = (f"{abs(mean - c['threshold']) / sd:.1f} sd from its threshold "
                    f"{c['threshold']:g}" if sd > 0 else "the same on every seed")
        parts.append(f"{words} is {mean:.2f}{unit} with a seed-to-seed sd of {sd:.2f}{unit} "
                     f"({distance})")
    return "; ".join(parts)


def cause(row: dict, noise: dict) -> str:
    """One sentence: what decided this finding on this run (plain text: a page shows it through
    ``erase.report.formats.link_chapters``, which makes "chapter 4" a link)."""
    n = row["finding"]
    ratio = noise_ratio(noise)
    if n == 1:
        return f"G is {_iv(row, 'KTA(G) - KTA(G-hat)')} better than the oracle on knees."
    if n == 2:
        text = (f"Mixing cost the brain {_iv(row, 'BTA(G-hat) - BTA(G)')} and added "
                f"{_iv(row, EXCESS, ' pp')} of hallucination.")
        spread = spread_words(row, (("the brain cost", "BTA(G-hat) - BTA(G)", " dB"),
                                    ("the hallucination excess", EXCESS, " pp")))
        if row["flipped_by"] and spread:
            text += f" Leaving one seed out changes the verdict: {spread}."
        return text
    if n == 3:
        return (f"FT removed {_iv(row, 'FT: share of the gap removed', '')} and Full FT "
                f"{_iv(row, 'Full FT: share of the gap removed', '')} of the knowledge gap, "
                "keeping the brain.")
    if n == 4:
        nl_drop = _mean(row, "NL: BTA(G-hat) - BTA(NL)")
        ga_drop = _mean(row, "GA-l1: BTA(G-hat) - BTA(GA-l1)")
        parts = [f"GA-l1 {'collapses' if ga_drop > COLLAPSE_DB else 'does not collapse'} "
                 f"(BTA {ga_drop:.1f} dB below the oracle)"]
        if nl_drop <= COLLAPSE_DB:
            parts.append(f"NL does not (BTA {nl_drop:.1f} dB below the oracle): its noise is "
                         f"{ratio:.2f} times G's error on Df")
        else:
            parts.append(f"NL collapses too (BTA {nl_drop:.1f} dB below the oracle)")
        return "; ".join(parts) + "."
    if n == 5:
        removed = _mean(row, "NL-FT: share of the gap removed")
        text = (f"NL-FT removed {_iv(row, 'NL-FT: share of the gap removed', '')} of the gap "
                f"with {_iv(row, 'BTA(G-hat) - BTA(NL-FT)')} of brain cost")
        if removed < NOT_UNLEARNED and abs(ratio - _PAPER_NOISE["rho"]) < SAME_RHO:
            text += (f" at the paper's strength (rho {ratio:.2f}: noise of the size of G's own "
                     f"error on Df); chapter 4's frontier shows how much stronger it must be")
        elif removed < NOT_UNLEARNED:
            text += (f"; its noisy label is {ratio:.2f} times G's error on Df, where the "
                     f"paper's is {PAPER_NOISE_TO_ERROR} (chapter 4's frontiers)")
        ga = _mean(row, "GA-l1-FT: share of the gap removed")
        ga_bta = _mean(row, "BTA(NL-FT) - BTA(GA-l1-FT)")
        text += (f". GA-l1-FT removed {ga:.2f} of it" + (", overshooting the oracle"
                 if ga > OVERSHOOT else "") + f", {ga_bta:.1f} dB below NL-FT on brain.")
        return text
    if n == 6:
        return ("Each forgetting method took "
                + ", ".join(f"{c['quantity'].split(':')[0]} {c['interval'][0]:.3f}"
                            for c in row["checks"]) + " of retraining's time.")
    if n == 7:
        parts = [f"{m}: BTA(20%) - BTA(100%) = {_iv(row, f'{m}: BTA(20%) - BTA(100%)')}"
                 for m in ("NL-FT", "GA-l1-FT")]
        n = len(row["seeds"])
        return "; ".join(parts) + (f" (on {n} seeds)." if n > 1 else ".")
    if n == 8:
        diff = _mean(row, EXCESS_DIFF)
        return (f"G's hallucination excess minus NL-FT's is {_iv(row, EXCESS_DIFF, ' pp')}"
                + (": NL-FT hallucinates less than G" if diff > 0 else
                   ": NL-FT hallucinates no less than G") + ".")
    return ""


def plain_sentences(findings: list[dict], noise: dict) -> list[str]:
    """The bottom line in plain words, from the verdicts (no interval jargon)."""
    by = {r["finding"]: r for r in findings}
    out = []
    f5 = by.get(5)
    if f5 is not None:
        removed = _check(f5, "NL-FT: share of the gap removed")["interval"]
        if removed[2] < NOT_UNLEARNED:
            out.append("NL-FT did not unlearn in this run: its knee accuracy stayed at G's.")
        elif removed[1] > UNLEARNED:
            out.append("NL-FT unlearned in this run: it removed more than half of the knee gap.")
        else:
            out.append("NL-FT unlearned part of the knee gap in this run.")
        ga = _check(f5, "GA-l1-FT: share of the gap removed")["interval"]
        bta = _check(f5, "BTA(NL-FT) - BTA(GA-l1-FT)")["interval"]
        if ga[1] > OVERSHOOT and bta[1] > COLLAPSE_DB:
            out.append("GA-l1-FT did not unlearn so much as break the model: it fell far below the "
                       "oracle on knees and on brains.")
    f8 = by.get(8)
    if f8 is not None:
        out.append("Unlearning removed G's hallucinations." if f8["verdict"] == HOLDS else
                   "Unlearning did not remove G's hallucinations here." if f8["verdict"] == FAILS
                   else "Whether unlearning removed G's hallucinations is undecided here.")
    f1 = by.get(1)
    if f1 is not None and f1["verdict"] != HOLDS:
        out.append("There was no clear knowledge gap to unlearn.")
    return out


def verdict_words(verdict: str) -> str:
    return {HOLDS: "holds", FAILS: "does not hold", UNSURE: "undecided"}[verdict]


# ------------------------------------------------------------------ sentences the chapters use

def brain_cost_words(interval) -> str:
    """Chapter 3: what the interval of BTA(G-hat) - BTA(G) says about mixing anatomies."""
    mean, lo, hi = interval
    if lo > 0:
        return ("mixing in knees cost brain quality, the price of sharing capacity with another "
                "anatomy")
    if hi < 0:
        return "here mixing in knees made brain images better, not worse"
    return ("with this many seeds we cannot tell whether mixing in knees cost any brain quality "
            "(the interval holds zero)")


NOISE_DOMINANCE = 2.0  # between-seed spread this many times the within-seed error: training


def noise_source_words(between: float, within: float) -> str:
    """Chapter 8: whether training or the test set makes a paired difference move."""
    if between > NOISE_DOMINANCE * within:
        return ("training, not the test set, is what makes the numbers move (in a seed, one model "
                "of the pair is ahead on nearly every test volume), so more test volumes would "
                "not help; more seeds or longer training would")
    return "the test volumes contribute a good part of it, so more test data would also help"


BRAIN_MARGIN = 1.0  # dB of brain quality a method may give up against NL-FT and still "beat" it


def compare_with(records: dict, seeds, methods, reference: str = "NL-FT") -> tuple[list, list]:
    """Chapter 4's "beyond the paper" comparison: per method (the reference first), the brain
    cost against the oracle, the share of the knowledge gap removed (95% intervals over seeds)
    and the time over retraining; and the methods that remove more of the gap than the
    reference (whole intervals apart) within BRAIN_MARGIN dB of its brain quality."""
    from .intervals import difference_interval, interval
    from .scorecard import SeedView, gap_removed

    oracle_time = float(np.mean([SeedView(records, s)("oracle", "train_seconds") for s in seeds]))
    rows = []
    for m in (reference, *methods):
        rows.append({"method": m,
                     "BTA below the oracle (dB)": difference_interval(records, "oracle", m,
                                                                      "bta_psnr"),
                     "share of the gap removed": interval([gap_removed(SeedView(records, s), m)
                                                           for s in seeds]),
                     "time / retraining": float(np.mean([SeedView(records, s)(m, "train_seconds")
                                                         for s in seeds])) / oracle_time})
    ref = rows[0]
    better = [r["method"] for r in rows[1:]
              if r["share of the gap removed"][1] > ref["share of the gap removed"][2]
              and r["BTA below the oracle (dB)"][2]
              < ref["BTA below the oracle (dB)"][1] + BRAIN_MARGIN]
    return rows, better


def compare_words(better: list, reference: str = "NL-FT") -> str:
    if better:
        return (", ".join(better) + (" removes" if len(better) == 1 else " remove")
                + f" more of the knowledge gap than {reference} (whole intervals apart) while "
                f"staying within {BRAIN_MARGIN:g} dB of {reference}'s brain quality")
    return (f"None of them removes more of the knowledge gap than {reference} with its brain "
            f"quality within {BRAIN_MARGIN:g} dB of {reference}'s (whole intervals apart)")


def where_it_stops(by_seed: dict, target: float = 1.0) -> str:
    """Why a method's frontier never crosses ``target``, over its seeds in a few words: every
    run short of it (the most it removed) or every run beyond it (the least, at which knob)."""
    points = [p for pts in by_seed.values() for p in pts]
    shares = [p["share_removed"] for p in points]
    if max(shares) < target:
        return f"at its strongest it removes at most {max(shares):.2f} of the gap"
    weakest = min(points, key=lambda p: p["share_removed"])
    if min(shares) > target:
        return (f"even its weakest run removes {weakest['share_removed']:.2f} of the gap or more "
                f"(knob {weakest['knob']:g})")
    return "its runs fall on both sides of it on different seeds, none crossing it on its own"


def matched_words(table: dict, fronts: dict, target: float = 1.0) -> str:
    """Chapter 4's verdict on the comparison at matched forgetting: which method loses the
    least brain where it removes ``target`` of the gap, and whether the runner-up is separable
    from it (the paired difference over the seeds both reach it has its interval above 0)."""
    from .frontier import paired_cost_difference, ranking

    order = ranking(table, target)
    reach = [m for m in order if table[m][target]["cost"] is not None]
    never = [m for m in order if m not in reach]
    tail = "".join(f" {m} never reaches it: {where_it_stops(fronts[m], target)}." for m in never)
    if not reach:
        return f"No method removes {target:g} of the gap on any seed." + tail
    best = reach[0]
    mean, lo, hi = table[best][target]["cost"]
    text = (f"At share {target:g}, {best} loses the least brain: {mean:.2f} dB [{lo:.2f}, "
            f"{hi:.2f}] over {table[best][target]['seeds']} seeds.")
    if len(reach) > 1:
        second = reach[1]
        diff = paired_cost_difference(fronts[second], fronts[best], target)
        if diff["difference"] is None:
            text += f" It shares no seed with {second}, the next, so the two are not compared."
        else:
            d, dlo, dhi = diff["difference"]
            verdict = ("so it wins" if dlo > 0 else "so the two are not separable")
            text += (f" {second}, the next, costs {d:.2f} dB [{dlo:.2f}, {dhi:.2f}] more on "
                     f"the {diff['seeds']} seeds both reach it, {verdict}.")
    return text + tail


def finding5_matched_words(difference: dict, table: dict, fronts: dict) -> str:
    """Finding 5 at matched forgetting: NL-FT's brain cost at share 1 minus GA-l1-FT's, paired
    by seed (``frontier.paired_cost_difference``), in one sentence; where one of them never
    reaches share 1, where it stops (``table``: the two methods' matched table at share 1,
    ``fronts``: their frontiers)."""
    if difference["difference"] is None:
        parts = []
        for m in ("NL-FT", "GA-l1-FT"):
            cell = table[m]
            if cell["cost"] is None:
                parts.append(f"{m} never reaches it ({where_it_stops(fronts[m])})")
            else:
                mean, lo, hi = cell["cost"]
                parts.append(f"{m} reaches it at {mean:.2f} dB [{lo:.2f}, {hi:.2f}] of brain")
        return "At share 1 the two cannot be paired: " + "; ".join(parts) + "."
    d, lo, hi = difference["difference"]
    side = ("NL-FT keeps more brain than GA-l1-FT" if hi < 0 else
            "GA-l1-FT keeps more brain than NL-FT" if lo > 0 else
            "neither keeps more brain than the other (the interval holds 0)")
    return (f"At share 1, NL-FT's brain cost minus GA-l1-FT's is {d:.2f} dB [{lo:.2f}, "
            f"{hi:.2f}] over {difference['seeds']} seeds: {side}.")
