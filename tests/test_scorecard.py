"""The scorecard decides each finding from per-seed results: holds, does not hold, inconclusive.

Records here are made up (summaries and timings only), so each verdict branch can be reached
on purpose; the book runs the same code on real runs.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from erase import paper
from erase.measures import scorecard
from erase.measures.scorecard import (
    FAILS,
    FRAGILE,
    HOLDS,
    STABLE,
    UNSURE,
    robustness_text,
    seeds_to_decide,
    undecided,
)
from erase.paper import FINDINGS

SEEDS = (0, 1, 2)
WOBBLE = (-0.05, 0.0, 0.05)  # a little seed-to-seed spread, the same for every run

# (BTA, KTA, training seconds) of each run, built so that every finding holds
PAPER_LIKE = {
    "oracle": (30.0, 20.0, 100.0), "original": (29.7, 24.0, 100.0),
    "FT": (29.6, 23.9, 1.0), "Full FT": (29.65, 23.8, 10.0),
    "GA-l1": (20.0, 15.0, 1.0), "NL": (22.0, 16.0, 1.0),
    "NL-FT": (29.5, 20.5, 2.0), "GA-l1-FT": (25.0, 19.0, 2.0),
}
# hallucination excess over the oracle (pp) per seed: G's, and NL-FT's (removed by unlearning)
EXCESS = {"original": (1.0, 1.2, 0.9), "NL-FT": (0.1, 0.0, 0.2)}


def make_records(values=PAPER_LIKE, excess=EXCESS, peak_inside=True, ablation_seeds=SEEDS,
                 **override):
    """{(name, seed): record} as ``scorecard.findings`` reads them: the runs' summaries and
    timings, ``("excess", seed)`` and ``(("ablation", method, fraction), seed)``; ``override``
    replaces a run's (BTA, KTA) per seed."""
    records = {}
    for name, (bta, kta, seconds) in values.items():
        for s, wobble in zip(SEEDS, WOBBLE):
            b, k = override[name][s] if name in override else (bta + wobble, kta + wobble)
            records[(name, s)] = {"summary": {"bta_psnr": b, "kta_psnr": k},
                                  "timing": {"train_seconds": seconds}}
    for i, s in enumerate(SEEDS):
        records[("excess", s)] = {"summary": {name: v[i] for name, v in excess.items()}}
    bta = {0.01: 29.0, 0.2: 29.8 if peak_inside else 29.1, 1.0: 29.3}
    for s, wobble in zip(SEEDS, WOBBLE):
        if s in ablation_seeds:
            for m in ("FT", "NL-FT", "GA-l1-FT"):
                for f, v in bta.items():
                    records[(("ablation", m, f), s)] = {"summary": {"bta_psnr": v + wobble}}
    return records


def verdicts(records, seeds=SEEDS, ablation_seeds=None):
    rows = scorecard.findings(records, seeds, ablation_seeds)
    assert [r["finding"] for r in rows] == list(range(1, 9))
    return {r["finding"]: r["verdict"] for r in rows}, rows


def test_every_finding_holds_on_records_built_to_match_the_paper():
    found, rows = verdicts(make_records())
    assert found == {n: HOLDS for n in range(1, 9)}
    assert undecided(rows) == []
    for row in rows:
        assert row["statement"] == FINDINGS[row["finding"]] and row["criterion"]
        assert row["seeds"] == ["0", "1", "2"]
        assert row["robustness"] in (STABLE, FRAGILE)
    # differences of runs that wobble together have no spread: no seed can flip them
    assert rows[0]["robustness"] == STABLE and rows[0]["flipped_by"] == {}


def test_a_small_gap_does_not_hold_and_a_straddling_one_is_inconclusive():
    small = {s: (29.7, 21.0 + 0.1 * s) for s in SEEDS}  # gap about 1 dB, tight
    found, rows = verdicts(make_records(original=small))
    assert found[1] == FAILS
    by_quantity = {c["quantity"]: c["verdict"] for c in rows[0]["checks"]}
    assert by_quantity == {"KTA(G) - KTA(G-hat)": HOLDS, "KTA(G) - KTA(G-hat), mean": FAILS}
    straddling = {0: (29.7, 20.5), 1: (29.7, 26.5), 2: (29.7, 21.5)}  # mean 2.8, wide
    found, rows = verdicts(make_records(original=straddling))
    assert found[1] == UNSURE
    by_quantity = {c["quantity"]: c["verdict"] for c in rows[0]["checks"]}
    assert by_quantity == {"KTA(G) - KTA(G-hat)": UNSURE, "KTA(G) - KTA(G-hat), mean": HOLDS}


def test_brain_cost_straddling_zero_is_inconclusive_and_says_how_many_seeds_would_decide():
    original = {0: (30.3, 24.0), 1: (29.5, 24.0), 2: (29.8, 24.0)}  # cost -0.35, +0.5, +0.25
    found, rows = verdicts(make_records(original=original))
    assert found[2] == UNSURE
    pending = [u for u in undecided(rows) if u["finding"] == 2]
    assert [u["quantity"] for u in pending] == ["BTA(G-hat) - BTA(G)"]
    assert pending[0]["mean"] == pytest.approx(0.4 / 3)
    assert pending[0]["threshold"] == 0.0
    assert pending[0]["seeds to decide"] > 3


def test_hallucinations_below_the_oracle_break_finding_two():
    found, _ = verdicts(make_records(excess={"original": (-1.0, -1.2, -0.9),
                                             "NL-FT": (-2.0, -2.2, -1.9)}))
    assert found[2] == FAILS
    assert found[8] == HOLDS  # NL-FT's excess is still below G's


def test_unlearning_that_keeps_the_hallucinations_breaks_finding_eight():
    found, rows = verdicts(make_records(excess={"original": (1.0, 1.2, 0.9),
                                                "NL-FT": (1.5, 1.6, 1.4)}))
    assert found[8] == FAILS and found[2] == HOLDS
    check = rows[7]["checks"][0]
    assert check["values"] == pytest.approx({"0": -0.5, "1": -0.4, "2": -0.5})


def test_fine_tuning_that_unlearns_breaks_finding_three():
    full_ft = {s: (29.7, 21.0 + 0.05 * s) for s in SEEDS}  # removes about 3/4 of the gap
    found, rows = verdicts(make_records(**{"Full FT": full_ft}))
    assert found[3] == FAILS
    removed = next(c for c in rows[2]["checks"]
                   if c["quantity"] == "Full FT: share of the gap removed")
    # (G - M) / (G - G-hat) per seed
    assert removed["values"] == pytest.approx({"0": 0.7375, "1": 0.7375, "2": 0.7375})
    assert removed["verdict"] == FAILS and removed["side"] == "below"


def test_a_collapse_that_spares_the_knee_breaks_finding_four():
    ga = {s: (20.0, 19.0) for s in SEEDS}  # KTA only about 1 dB below the oracle
    found, _ = verdicts(make_records(**{"GA-l1": ga}))
    assert found[4] == FAILS


def test_slow_unlearning_breaks_finding_six():
    slow = {**PAPER_LIKE, "NL-FT": (29.5, 20.5, 50.0)}  # half the oracle's training time
    found, rows = verdicts(make_records(values=slow))
    assert found[6] == FAILS
    ratio = next(c for c in rows[5]["checks"] if c["quantity"].startswith("NL-FT"))
    assert ratio["values"] == pytest.approx({"0": 0.5, "1": 0.5, "2": 0.5})
    assert scorecard.time_ratio(make_records(values=slow), "NL-FT", 0) == pytest.approx(0.5)


def test_a_retain_fraction_peak_at_the_edge_breaks_finding_seven():
    assert verdicts(make_records(peak_inside=False))[0][7] == FAILS


def test_finding_seven_is_decided_on_the_ablation_seeds():
    records = make_records(ablation_seeds=(0,))
    with pytest.raises(KeyError, match=r"NL-FT: BTA\(20%\) - BTA\(1%\): no run .* for seed 1"):
        verdicts(records)  # the ablation's seeds default to the headline seeds: 1 is missing
    found, rows = verdicts(records, ablation_seeds=[0])
    assert rows[6]["seeds"] == ["0"] and rows[0]["seeds"] == ["0", "1", "2"]
    assert found[7] == HOLDS  # one seed: decided on its value


def test_a_missing_run_is_an_error_not_a_gap():
    records = make_records()
    del records[("NL", 1)]
    with pytest.raises(KeyError, match=r"no run 'NL' for seed 1"):
        verdicts(records)


def test_a_zero_knowledge_gap_is_refused_rather_than_divided_by():
    flat = {s: (29.7, 20.0 + WOBBLE[s]) for s in SEEDS}  # G's KTA equals the oracle's
    with pytest.raises(ValueError) as err:
        verdicts(make_records(original=flat))
    assert str(err.value) == ("the knowledge gap KTA(G) - KTA(G-hat) is exactly 0: no share of "
                              "it can be removed")


def test_a_verdict_that_one_seed_carries_is_fragile():
    """Decided again with each seed left out: a flip names the seed and the other verdict."""
    seeds = (0, 1, 2, 3)
    gaps = (4.0, 4.1, 3.9, 0.5)
    records = {}
    for s, gap in zip(seeds, gaps):
        records[("oracle", s)] = {"summary": {"kta_psnr": 20.0}}
        records[("original", s)] = {"summary": {"kta_psnr": 20.0 + gap}}
    row = scorecard._row(scorecard.CRITERIA[0], records, list(seeds))
    assert row["verdict"] == HOLDS
    assert row["robustness"] == FRAGILE
    assert row["flipped_by"] == {"0": UNSURE, "1": UNSURE, "2": UNSURE}
    assert robustness_text(row) == ("fragile: without seed 0 it is inconclusive; without seed 1 "
                                    "it is inconclusive; without seed 2 it is inconclusive")
    assert robustness_text({"flipped_by": {}}) == STABLE


def test_robustness_is_decided_from_three_seeds_on():
    """Left out in turn, a seed of three can flip a verdict; of two seeds, none is left out
    (one seed is no interval)."""
    three = scorecard._row(scorecard.CRITERIA[0], make_gaps([4.0, 4.2, -1.0]), [0, 1, 2])
    assert three["verdict"] == UNSURE  # the mean 2.4 dB holds, the interval straddles 0
    assert three["flipped_by"] == {"0": FAILS, "1": FAILS, "2": HOLDS}
    two = scorecard._row(scorecard.CRITERIA[0], make_gaps([4.0, -1.0]), [0, 1])
    assert two["verdict"] == FAILS and two["flipped_by"] == {} and two["robustness"] == STABLE


def test_the_paper_column_reads_the_papers_tables():
    _, rows = verdicts(make_records())
    gap = paper.value(1, "original", "kta_psnr") - paper.value(1, "oracle", "kta_psnr")
    assert f"KTA(G) - KTA(G-hat): {gap:.2f} dB" in rows[0]["paper"]
    bta = paper.value(3, "NL-FT", "bta_psnr", retain_fraction=0.2) - \
        paper.value(3, "NL-FT", "bta_psnr", retain_fraction=0.01)
    assert f"NL-FT: BTA(20%) - BTA(1%): {bta:.2f} dB" in rows[6]["paper"]
    assert "hallucinations shown by eye" in rows[1]["paper"]


def test_every_check_carries_its_per_seed_values_and_threshold():
    _, rows = verdicts(make_records())
    for row in rows:
        assert row["checks"], row["finding"]
        for check in row["checks"]:
            assert list(check["values"]) == [str(s) for s in SEEDS]
            assert check["side"] in ("above", "below")
            assert check["on"] in ("interval", "mean")
            assert isinstance(check["threshold"], float)
            assert check["verdict"] in (HOLDS, FAILS, UNSURE)
            mean, lo, hi = check["interval"]
            assert lo <= mean <= hi


def test_seeds_to_decide_grows_with_the_spread_and_never_decides_a_mean_on_the_threshold():
    assert seeds_to_decide([0.1, 0.2, 0.3], 0.2) is None  # mean on the threshold
    assert seeds_to_decide([1.0], 0.0) is None  # no spread measured from one seed
    narrow, wide = seeds_to_decide([0.2, 0.3, 0.4], 0.0), seeds_to_decide([-0.2, 0.3, 0.8], 0.0)
    assert narrow is not None and wide is not None and narrow < wide
    assert seeds_to_decide([0.2, 0.3, 0.4], 0.0) <= 3  # already decided with three seeds
    assert seeds_to_decide([0.0, 0.01, 2.0], 0.0, limit=4) is None  # beyond the limit


# ------------------------------------------------------------------ with seed-to-seed spread
#
# Above, every run wobbles by the same offsets, so a difference of two runs is the same on every
# seed and its interval has no width. Here each run has its own wobble: differences spread from
# seed to seed and every criterion is decided on a real 95% t-interval. Each finding is driven
# to each of its verdicts.

NAMES = tuple(PAPER_LIKE)
PATTERNS = ((0.04, -0.03, -0.01), (-0.02, 0.05, -0.03), (0.01, -0.04, 0.03),
            (-0.05, 0.02, 0.03), (0.03, 0.01, -0.04), (-0.01, -0.02, 0.03),
            (0.02, -0.05, 0.03), (0.05, -0.01, -0.04))
ABLATION = {0.01: 29.0, 0.2: 29.9, 1.0: 29.3}  # BTA per retain fraction: the peak at 20%


def _per_seed(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * len(SEEDS)


def spread_records(bta=None, kta=None, seconds=None, excess=EXCESS, ablation=None):
    """{(name, seed): record}: PAPER_LIKE with each run's own wobble (BTA pattern i, KTA
    pattern i + 3, training time +-10% by pattern i + 5); ``bta`` and ``kta`` add to a run's
    values (a number, or one per seed), ``seconds`` replaces its training times, ``ablation``
    adds to the ablation's BTA of ``(method, fraction)``."""
    bta, kta, seconds, ablation = bta or {}, kta or {}, seconds or {}, ablation or {}
    records = {}
    for i, name in enumerate(NAMES):
        b0, k0, t0 = PAPER_LIKE[name]
        for j, s in enumerate(SEEDS):
            b = b0 + PATTERNS[i][j] + _per_seed(bta.get(name, 0.0))[j]
            k = k0 + PATTERNS[(i + 3) % 8][j] + _per_seed(kta.get(name, 0.0))[j]
            t = _per_seed(seconds[name])[j] if name in seconds else \
                t0 * (1 + 2 * PATTERNS[(i + 5) % 8][j])
            records[(name, s)] = {"summary": {"bta_psnr": b, "kta_psnr": k},
                                  "timing": {"train_seconds": t}}
    for j, s in enumerate(SEEDS):
        records[("excess", s)] = {"summary": {name: v[j] for name, v in excess.items()}}
    for m_i, m in enumerate(("FT", "NL-FT", "GA-l1-FT")):
        for f_i, (f, v) in enumerate(ABLATION.items()):
            wobble = PATTERNS[(3 * m_i + f_i) % 8]
            extra = _per_seed(ablation.get((m, f), 0.0))
            for j, s in enumerate(SEEDS):
                records[(("ablation", m, f), s)] = {"summary": {"bta_psnr": v + wobble[j] +
                                                                extra[j]}}
    return records


def interval_checks(row) -> list:
    return [c for c in row["checks"] if c["on"] == "interval"]


def test_with_spread_every_finding_holds_on_a_real_interval():
    found, rows = verdicts(spread_records())
    assert found == {n: HOLDS for n in range(1, 9)}
    for row in rows:
        for c in interval_checks(row):
            mean, lo, hi = c["interval"]
            assert lo < mean < hi, (row["finding"], c["quantity"])  # decided with spread
            assert c["verdict"] == HOLDS
        assert " [" in row["ours"]  # printed as an interval, not "the same on every seed"


# (finding, verdict, what changes): each finding to "does not hold" and to "inconclusive"
SPREAD_CASES = [
    (1, FAILS, dict(kta={"original": -3.0})),  # a 1 dB gap: its mean is below 2 dB
    (1, UNSURE, dict(kta={"original": (-3.0, 0.0, 3.0)})),  # mean 4 dB, interval across 0
    (2, FAILS, dict(bta={"original": 0.6})),  # G better on the brain than G-hat
    (2, FAILS, dict(bta={"original": -2.7})),  # a brain cost of 3 dB: mean above 2 dB
    (2, UNSURE, dict(excess={"original": (-1.0, 1.0, 3.0), "NL-FT": (0.1, 0.0, 0.2)})),
    (3, FAILS, dict(kta={"Full FT": -3.0})),  # Full FT removes 80% of the gap
    (3, UNSURE, dict(bta={"FT": (-0.5, 0.0, 0.5)})),  # FT's brain cost across 0.5 dB
    (4, FAILS, dict(kta={"NL": 3.0})),  # NL's knee only 1 dB below the oracle
    (4, UNSURE, dict(bta={"GA-l1": (-6.0, 0.0, 6.0)})),  # a collapse of 10 dB, across 5 dB
    (5, FAILS, dict(bta={"GA-l1-FT": 5.0})),  # GA-l1-FT keeps a better brain than NL-FT
    (5, FAILS, dict(kta={"NL-FT": 3.0})),  # NL-FT removes an eighth of the gap
    (5, UNSURE, dict(kta={"NL-FT": (-4.0, 0.0, 4.0)})),  # NL-FT's share across one half
    (6, FAILS, dict(seconds={"NL-FT": (50.0, 55.0, 45.0)})),  # half the oracle's time
    (6, UNSURE, dict(seconds={"NL-FT": (2.0, 10.0, 30.0)})),  # a fifth, within the interval
    (7, FAILS, dict(ablation={("NL-FT", 0.2): -0.7, ("GA-l1-FT", 0.2): -0.7})),  # no peak
    (7, UNSURE, dict(ablation={("NL-FT", 0.2): (-1.0, 0.0, 1.0),
                               ("GA-l1-FT", 0.2): (-1.0, 0.0, 1.0)})),
    (7, HOLDS, dict(ablation={("GA-l1-FT", 0.2): -0.7})),  # "any": NL-FT's peak is enough
    (7, UNSURE, dict(ablation={("NL-FT", 0.2): -0.7,  # one fails, the other undecided
                               ("GA-l1-FT", 0.2): (-1.0, 0.0, 1.0)})),
    (8, FAILS, dict(excess={"original": (1.0, 1.2, 0.9), "NL-FT": (1.5, 1.6, 1.4)})),
    (8, UNSURE, dict(excess={"original": (1.0, 1.2, 0.9), "NL-FT": (0.0, 1.0, 2.0)})),
]


@pytest.mark.parametrize("finding,verdict,change", SPREAD_CASES,
                         ids=[f"{n}-{v}-{i}" for i, (n, v, _) in enumerate(SPREAD_CASES)])
def test_with_spread_each_finding_reaches_each_verdict(finding, verdict, change):
    found, rows = verdicts(spread_records(**change))
    assert found[finding] == verdict, rows[finding - 1]["checks"]
    row = rows[finding - 1]
    widths = [c["interval"][2] - c["interval"][1] for c in interval_checks(row)]
    assert min(widths) > 0  # every criterion of it decided on a real interval
    verdicts_here = [c["verdict"] for c in row["checks"]]
    if verdict == FAILS:
        assert FAILS in verdicts_here
    elif verdict == UNSURE:
        assert UNSURE in verdicts_here
    # the other findings are untouched by a change aimed at this one... or at least decided
    assert set(found.values()) <= {HOLDS, FAILS, UNSURE}


def test_the_interval_is_the_95_percent_t_interval_over_seeds():
    """check() on three spread values: mean +- t(0.975, 2) s / sqrt(3), computed here."""
    from scipy import stats

    values = {0: 0.9, 1: 0.2, 2: 0.4}
    c = scorecard.check(scorecard.Criterion("q", None, 0.0), values)
    v = np.array(list(values.values()))
    half = stats.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3)
    assert c["interval"] == pytest.approx([v.mean(), v.mean() - half, v.mean() + half])
    assert c["interval"][1] < 0.0 < v.min()  # every seed above 0, the interval is not
    assert c["verdict"] == UNSURE
    on_mean = scorecard.check(scorecard.Criterion("q", None, 0.0, on="mean"), values)
    assert on_mean["verdict"] == HOLDS  # the mean alone is above 0
    assert c["values"] == {"0": 0.9, "1": 0.2, "2": 0.4} and c["threshold"] == 0.0


def crit(side, on="interval", threshold=1.0):
    return scorecard.Criterion("q", None, threshold, side=side, on=on)


@pytest.mark.parametrize("side,values,verdict", [
    # above: holds when the whole interval is above, fails when none of it is; a bound on the
    # threshold itself counts for the other side
    ("above", (1.5, 1.6, 1.7), HOLDS), ("above", (0.2, 0.3, 0.4), FAILS),
    ("above", (0.5, 1.5, 2.5), UNSURE), ("above", (1.0,), FAILS), ("above", (1.1,), HOLDS),
    ("below", (0.2, 0.3, 0.4), HOLDS), ("below", (1.5, 1.6, 1.7), FAILS),
    ("below", (0.5, 1.5, 2.5), UNSURE), ("below", (1.0,), FAILS), ("below", (0.9,), HOLDS),
    # within: inside (-1, 1)
    ("within", (-0.2, 0.1, 0.3), HOLDS), ("within", (1.5, 1.6, 1.7), FAILS),
    ("within", (-1.7, -1.6, -1.5), FAILS), ("within", (0.5, 1.5, 2.5), UNSURE),
    ("within", (-2.5, -1.5, -0.5), UNSURE), ("within", (1.0,), FAILS), ("within", (-1.0,), FAILS),
    ("within", (0.99,), HOLDS), ("within", (-0.99,), HOLDS),
])
def test_a_criterion_on_the_interval(side, values, verdict):
    assert scorecard.check(crit(side), dict(enumerate(values)))["verdict"] == verdict


@pytest.mark.parametrize("side,values,verdict", [
    ("above", (0.0, 3.0), HOLDS), ("above", (1.0, 1.0), FAILS), ("above", (0.0, 1.0), FAILS),
    ("below", (0.0, 1.0), HOLDS), ("below", (1.0, 1.0), FAILS), ("below", (2.0, 3.0), FAILS),
    ("below", (-3.0, -2.0), HOLDS),  # far below: holds (its size is not |mean|)
    ("within", (-0.5, 0.0), HOLDS), ("within", (-1.0, -1.0), FAILS),
    ("within", (1.0, 1.0), FAILS), ("within", (-3.0, 0.0), FAILS), ("within", (0.5, 0.6), HOLDS),
])
def test_a_criterion_on_the_mean_is_never_inconclusive(side, values, verdict):
    c = scorecard.check(crit(side, on="mean"), dict(enumerate(values)))
    assert c["verdict"] == verdict and c["on"] == "mean" and c["side"] == side


@pytest.mark.parametrize("combine,groups,verdict", [
    ("all", [[HOLDS, HOLDS], [HOLDS]], HOLDS), ("all", [[HOLDS, UNSURE], [HOLDS]], UNSURE),
    ("all", [[HOLDS, FAILS], [HOLDS]], FAILS), ("all", [[UNSURE, FAILS], [HOLDS]], FAILS),
    ("all", [[HOLDS], [UNSURE]], UNSURE), ("all", [[HOLDS], [FAILS]], FAILS),
    ("any", [[HOLDS, HOLDS], [FAILS]], HOLDS), ("any", [[HOLDS, UNSURE], [FAILS]], UNSURE),
    ("any", [[FAILS], [FAILS, HOLDS]], FAILS), ("any", [[UNSURE], [UNSURE]], UNSURE),
    ("any", [[FAILS, UNSURE], [UNSURE, HOLDS]], UNSURE), ("any", [[FAILS], [HOLDS]], HOLDS),
])
def test_groups_combine_into_a_verdict(combine, groups, verdict):
    finding = scorecard.Finding("X", "", (), combine=combine)
    assert scorecard.combine(finding, groups) == verdict


def test_a_criterion_the_paper_cannot_be_read_for_is_left_out_of_the_paper_column():
    def unreadable(get):
        raise KeyError("not in the paper")

    finding = scorecard.Finding("X", "c", ((
        scorecard.Criterion("on the mean", lambda get: get("oracle", "kta_psnr"), 0.0,
                            on="mean"),
        scorecard.Criterion("unreadable", unreadable, 0.0),
        scorecard.Criterion("readable", lambda get: get("oracle", "kta_psnr"), 0.0),), (
        scorecard.Criterion("also readable", lambda get: get("NL-FT", "bta_psnr"), 0.0,
                            unit=" x"),)), paper_note="a note")
    text = scorecard._paper_text(finding)
    assert text == (f"readable: {paper.value(1, 'oracle', 'kta_psnr'):.2f} dB; also readable: "
                    f"{paper.value(1, 'NL-FT', 'bta_psnr'):.2f} x; a note")
    hidden = scorecard.Finding("X", "c", finding.groups, paper_note="only the note",
                               on_paper=False)
    assert scorecard._paper_text(hidden) == "only the note"


def test_the_paper_view_reads_table_1_and_table_3_for_the_ablation():
    assert scorecard.paper_view("NL-FT", "bta_psnr") == paper.value(1, "NL-FT", "bta_psnr")
    assert scorecard.paper_view(("ablation", "NL-FT", 0.2), "bta_psnr") == \
        paper.value(3, "NL-FT", "bta_psnr", retain_fraction=0.2)


def test_a_difference_and_a_criterion_per_method():
    values = {("a", "kta_psnr"): 24.0, ("b", "kta_psnr"): 20.5, ("a", "bta_psnr"): 1.0}
    get = lambda name, column: values[(name, column)]  # noqa: E731
    assert scorecard.difference("a", "b", "kta_psnr")(get) == 3.5
    assert scorecard._per_method(("A", "B"), lambda m: (m, m + "!")) == (("A", "A!"),
                                                                         ("B", "B!"))


def test_ours_prints_an_interval_or_says_why_there_is_none():
    finding = scorecard.Finding("X", "c", ((scorecard.Criterion(
        "gap", difference_of("original", "oracle"), 0.0),),), statement="s")
    one = scorecard._row(finding, make_gaps([4.0]), [0])
    assert one["ours"] == "gap: 4.00 dB (one seed)"
    same = scorecard._row(finding, make_gaps([4.0, 4.0, 4.0]), [0, 1, 2])
    assert same["ours"] == "gap: 4.00 dB (the same on every seed)"
    spread = scorecard._row(finding, make_gaps([3.0, 4.0, 5.0]), [0, 1, 2])
    half = 4.302652729911275 * 1.0 / np.sqrt(3)  # t(0.975, 2) times sd 1 over sqrt(3)
    assert spread["ours"] == f"gap: 4.00 dB [{4 - half:.2f}, {4 + half:.2f}]"
    assert spread["statement"] == "s"  # a finding's own statement, not the paper's
    two = scorecard.Finding("X", "c", ((
        scorecard.Criterion("gap", difference_of("original", "oracle"), 0.0),
        scorecard.Criterion("gap, mean", difference_of("original", "oracle"), 0.0, on="mean"),
        scorecard.Criterion("half", lambda get: get("original", "kta_psnr") / 12, 0.0,
                            unit="")),), statement="s")
    row = scorecard._row(two, make_gaps([4.0]), [0])
    assert row["ours"] == "gap: 4.00 dB (one seed); half: 2.00 (one seed)"  # not the mean


def difference_of(a, b):
    return lambda get: get(a, "kta_psnr") - get(b, "kta_psnr")


def make_gaps(gaps) -> dict:
    records = {}
    for s, gap in enumerate(gaps):
        records[("oracle", s)] = {"summary": {"kta_psnr": 20.0}}
        records[("original", s)] = {"summary": {"kta_psnr": 20.0 + gap}}
    return records


def test_undecided_within_checks_take_the_nearer_boundary():
    row = {"finding": "X", "verdict": UNSURE, "checks": [
        {"quantity": "q", "verdict": UNSURE, "values": {"0": -0.6, "1": -0.1, "2": 0.1},
         "threshold": 0.3, "side": "within"},
        {"quantity": "decided", "verdict": HOLDS, "values": {"0": 1.0}, "threshold": 0.0,
         "side": "above"}]}
    [pending] = undecided([row, {**row, "verdict": HOLDS}])
    assert pending["quantity"] == "q" and pending["threshold"] == -0.3
    assert pending["mean"] == pytest.approx(-0.2)
    assert pending["seed sd"] == pytest.approx(np.std([-0.6, -0.1, 0.1], ddof=1))
    pair = {**row, "checks": [{**row["checks"][0], "values": {"0": 0.2, "1": 0.6}}]}
    assert undecided([pair])[0]["seed sd"] == pytest.approx(np.std([0.2, 0.6], ddof=1))
    one = {**row, "checks": [{**row["checks"][0], "values": {"0": 0.2}, "side": "above"}]}
    [pending] = undecided([one])
    assert math.isnan(pending["seed sd"]) and pending["threshold"] == 0.3
    assert pending["seeds to decide"] is None


def test_seeds_to_decide_without_spread_and_with():
    assert seeds_to_decide([1.0, 1.0, 1.0], 0.0) == 3  # no spread: decided already
    assert seeds_to_decide([0.0, 0.0], 0.0) is None  # on the threshold: never
    # mean 1, sd sqrt(2): t(0.975, n - 1) sqrt(2) / sqrt(n) first drops below 1 at n = 11
    assert seeds_to_decide([0.0, 2.0], 0.0) == 11
    assert seeds_to_decide([0.0, 2.0], 0.0, limit=10) is None
    assert seeds_to_decide([0.0, 2.0], 2.0) == 11  # the same distance from below
    assert seeds_to_decide([10.0, 10.1], 0.0) == 2  # far from the threshold: two seeds do
    # a margin that n = 201 seeds decide and 200 do not: beyond the default limit of 200
    from scipy import stats

    edge = [stats.t.ppf(0.975, n - 1) * np.sqrt(2) / np.sqrt(n) for n in (200, 201)]
    threshold = 1.0 - sum(edge) / 2
    assert seeds_to_decide([0.0, 2.0], threshold) is None
    assert seeds_to_decide([0.0, 2.0], threshold, limit=201) == 201


def test_every_quantity_the_diagnosis_reads_is_a_criterions():
    """The diagnosis names the checks it reads by their quantity's words: each of those words
    must be a criterion's (a renamed criterion would otherwise fail only when its finding's
    sentence is written), and the thresholds it shares with the criteria are theirs."""
    import ast
    import inspect

    from erase.measures import diagnosis

    quantities = {c.quantity for f in scorecard.CRITERIA for group in f.groups for c in group}
    constants = {"EXCESS": diagnosis.EXCESS, "EXCESS_DIFF": diagnosis.EXCESS_DIFF}
    read = set()
    for node in ast.walk(ast.parse(inspect.getsource(diagnosis))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("_check", "_mean", "_iv") and len(node.args) >= 2):
            arg = node.args[1]
            if isinstance(arg, ast.Constant):
                read.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in constants:
                read.add(constants[arg.id])
            elif isinstance(arg, ast.JoinedStr):  # f"{m}: ..." over the methods it names
                tail = "".join(v.value for v in arg.values if isinstance(v, ast.Constant))
                read |= {q for q in quantities if q.endswith(tail)} or {f"<none ending {tail}>"}
    assert len(read) >= 10
    assert read <= quantities, sorted(read - quantities)
    assert scorecard.finding_of(4).groups[0][0].threshold == scorecard.COLLAPSE_DB
    assert scorecard.finding_of(5).groups[0][1].threshold == scorecard.UNLEARNED
