"""The scorecard decides each finding from per-seed results: holds, does not hold, inconclusive.

Records here are made up (summaries and timings only), so each verdict branch can be reached
on purpose; the book runs the same code on real runs.
"""
from __future__ import annotations

import pytest

from erase.measures import scorecard
from erase.measures.scorecard import FAILS, HOLDS, UNSURE, seeds_to_decide, undecided

SEEDS = (0, 1, 2)
WOBBLE = (-0.05, 0.0, 0.05)  # a little seed-to-seed spread, the same for every run

# (BTA, KTA, training seconds) of each run, built so that every finding holds
PAPER_LIKE = {
    "oracle": (30.0, 20.0, 100.0), "original": (29.7, 24.0, 100.0),
    "FT": (29.6, 23.9, 1.0), "Full FT": (29.65, 23.8, 10.0),
    "GA-l1": (20.0, 15.0, 1.0), "NL": (22.0, 16.0, 1.0),
    "NL-FT": (29.5, 20.5, 2.0), "GA-l1-FT": (25.0, 19.0, 2.0),
}


def make_records(values=PAPER_LIKE, **override):
    """{(name, seed): record}; ``override`` replaces a run's (BTA, KTA) per seed."""
    records = {}
    for name, (bta, kta, seconds) in values.items():
        for s, wobble in zip(SEEDS, WOBBLE):
            b, k = override[name][s] if name in override else (bta + wobble, kta + wobble)
            records[(name, s)] = {"summary": {"bta_psnr": b, "kta_psnr": k},
                                  "timing": {"train_seconds": seconds}}
    return records


def make_ablation(peak_inside=True):
    bta = {0.01: 29.0, 0.1: 29.8 if peak_inside else 29.1, 1.0: 29.3}
    return {(m, f): {"summary": {"bta_psnr": v}} for m in ("FT", "NL-FT", "GA-l1-FT")
            for f, v in bta.items()}


def verdicts(records, ablation=None, excess=(1.0, 1.2, 0.9)):
    rows = scorecard.findings(records, ablation or make_ablation(), list(excess))
    assert [r["finding"] for r in rows] == list(range(1, 8))
    return {r["finding"]: r["verdict"] for r in rows}, rows


def test_every_finding_holds_on_records_built_to_match_the_paper():
    found, rows = verdicts(make_records())
    assert set(found.values()) == {HOLDS}
    assert undecided(rows) == []


def test_a_small_gap_does_not_hold_and_a_straddling_one_is_inconclusive():
    small = {s: (29.7, 21.0 + 0.1 * s) for s in SEEDS}  # gap about 1 dB, tight
    assert verdicts(make_records(original=small))[0][1] == FAILS
    straddling = {0: (29.7, 20.5), 1: (29.7, 23.5), 2: (29.7, 21.0)}  # mean 1.67, wide
    assert verdicts(make_records(original=straddling))[0][1] == UNSURE


def test_brain_cost_straddling_zero_is_inconclusive_and_says_how_many_seeds_would_decide():
    original = {0: (30.3, 24.0), 1: (29.5, 24.0), 2: (29.8, 24.0)}  # cost -0.3, +0.5, +0.2
    found, rows = verdicts(make_records(original=original))
    assert found[2] == UNSURE
    pending = [u for u in undecided(rows) if u["finding"] == 2]
    assert [u["quantity"] for u in pending] == ["BTA(G-hat) - BTA(G) (dB)"]
    assert pending[0]["mean"] == pytest.approx(0.4 / 3)
    assert pending[0]["seeds to decide"] > 3


def test_hallucinations_below_the_oracle_break_finding_two():
    found, _ = verdicts(make_records(), excess=(-1.0, -1.2, -0.9))
    assert found[2] == FAILS


def test_fine_tuning_that_unlearns_breaks_finding_three():
    full_ft = {s: (29.7, 21.0 + 0.05 * s) for s in SEEDS}  # removes about 3/4 of the gap
    found, rows = verdicts(make_records(**{"Full FT": full_ft}))
    assert found[3] == FAILS
    removed = next(c for c in rows[2]["checks"] if c["quantity"] == "Full FT: share of the gap removed")
    assert removed["values"] == pytest.approx([0.7375] * 3)  # (G - M) / (G - G-hat) per seed


def test_a_retain_fraction_peak_at_the_edge_breaks_finding_seven():
    assert verdicts(make_records(), make_ablation(peak_inside=False))[0][7] == FAILS


def test_every_check_carries_its_per_seed_values_and_threshold():
    _, rows = verdicts(make_records())
    for row in rows[:6]:
        assert row["checks"], row["finding"]
        for check in row["checks"]:
            assert len(check["values"]) == len(SEEDS)
            assert check["side"] in ("above", "below")
            assert check["verdict"] in (HOLDS, FAILS, UNSURE)


def test_seeds_to_decide_grows_with_the_spread_and_never_decides_a_mean_on_the_threshold():
    assert seeds_to_decide([0.1, 0.2, 0.3], 0.2) is None  # mean on the threshold
    assert seeds_to_decide([1.0], 0.0) is None  # no spread measured from one seed
    narrow, wide = seeds_to_decide([0.2, 0.3, 0.4], 0.0), seeds_to_decide([-0.2, 0.3, 0.8], 0.0)
    assert narrow is not None and wide is not None and narrow < wide
    assert seeds_to_decide([0.2, 0.3, 0.4], 0.0) <= 3  # already decided with three seeds
    assert seeds_to_decide([0.0, 0.01, 2.0], 0.0, limit=4) is None  # beyond the limit
