"""The scorecard decides each finding from per-seed results: holds, does not hold, inconclusive.

Records here are made up (summaries and timings only), so each verdict branch can be reached
on purpose; the book runs the same code on real runs.
"""
from __future__ import annotations

import pytest

from erase import paper
from erase.measures import scorecard
from erase.measures.scorecard import (FAILS, FRAGILE, HOLDS, STABLE, UNSURE, robustness_text,
                                      seeds_to_decide, undecided)
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
    removed = next(c for c in rows[2]["checks"] if c["quantity"] == "Full FT: share of the gap removed")
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
    with pytest.raises(ValueError, match="knowledge gap .* is exactly 0"):
        verdicts(make_records(original=flat))


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
    assert robustness_text(row).startswith("fragile: without seed 0 it is inconclusive")
    assert robustness_text({"flipped_by": {}}) == STABLE


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
