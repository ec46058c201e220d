"""The forgetting audit: membership inference and distribution tests on loss arrays with known
answers, the "beyond the paper" criteria on made-up audit rows (each verdict reached on
purpose, a collapsed model flagged), and one audit of real smoke runs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from erase import paper
from erase.measures import audit, scorecard
from erase.measures.scorecard import FAILS, HOLDS, UNSURE

RNG = np.random.default_rng(0)
SAME_A, SAME_B = RNG.normal(0.2, 0.03, 2000), RNG.normal(0.2, 0.03, 2000)
LOW, HIGH = RNG.normal(0.1, 0.01, 300), RNG.normal(0.3, 0.01, 300)


# ------------------------------------------------------------------ known answers


def test_identical_distributions_look_like_chance():
    assert audit.membership_auc(SAME_A, SAME_B) == pytest.approx(0.5, abs=0.03)
    statistic, p = audit.ks_test(SAME_A, SAME_B)
    assert statistic < 0.05 and p > 0.1
    assert audit.attack_accuracy(SAME_A, SAME_B) == pytest.approx(0.5, abs=0.06)
    # the threshold is fitted to noise: about a half on average over the attack's seeds
    assert np.mean([audit.mia_efficacy(SAME_A[:200], SAME_B[:100], seed=s)
                    for s in range(10)]) == pytest.approx(0.5, abs=0.2)
    assert audit.forget_quality(SAME_A, SAME_B) > 0.1


def test_well_separated_members_are_found():
    """Members with lower losses: AUC near 1, KS statistic near 1 with a tiny p-value, the
    attack right nearly always and calling no member a non-member."""
    assert audit.membership_auc(LOW, HIGH) > 0.99
    statistic, p = audit.ks_test(LOW, HIGH)
    assert statistic > 0.99 and p < 1e-10
    assert audit.attack_accuracy(LOW, HIGH) > 0.95
    assert audit.mia_efficacy(LOW, HIGH) < 0.05
    assert audit.forget_quality(LOW, HIGH) < 1e-10


def test_orientation_members_with_higher_losses_look_like_non_members():
    assert audit.membership_auc(HIGH, LOW) < 0.01  # the forget set now looks worse than unseen
    assert audit.mia_efficacy(HIGH, LOW) == 1.0  # over-unlearning in the SalUn convention
    assert audit.attack_accuracy(HIGH, LOW) > 0.95  # the learned attack still tells them apart
    assert audit.membership_auc(np.full(5, 0.2), np.full(7, 0.2)) == 0.5  # ties: chance


def test_tiny_sets_give_nan_not_an_error():
    assert np.isnan(audit.attack_accuracy([0.1], [0.2, 0.3]))
    assert np.isnan(audit.mia_efficacy([0.1], [0.2, 0.3]))
    assert np.isnan(audit.membership_auc([], [0.2]))
    # three slices a side (the smoke scale) still decide
    assert 0 <= audit.attack_accuracy([0.1, 0.11, 0.12], [0.3, 0.31, 0.32]) <= 1


def test_calibration_removes_a_difficulty_shared_with_the_oracle():
    """Forget slices happen to be easier (lower difficulty) than test slices: the plain attack
    is fooled, the calibrated one is not; a real membership effect survives calibration."""
    rng = np.random.default_rng(1)
    hard_f, hard_t = rng.uniform(0.05, 0.2, 400), rng.uniform(0.15, 0.4, 400)
    oracle_f, oracle_t = hard_f + rng.normal(0, 0.005, 400), hard_t + rng.normal(0, 0.005, 400)
    model_f, model_t = hard_f + rng.normal(0, 0.005, 400), hard_t + rng.normal(0, 0.005, 400)
    assert audit.membership_auc(model_f, model_t) > 0.8
    assert audit.calibrated_auc(model_f, model_t, oracle_f, oracle_t) == pytest.approx(0.5,
                                                                                       abs=0.06)
    remembers = model_f - 0.02  # the model fits its training slices better than their difficulty
    assert audit.calibrated_auc(remembers, model_t, oracle_f, oracle_t) > 0.95
    assert audit.calibrated_auc(oracle_f, oracle_t, oracle_f, oracle_t) == 0.5  # the oracle


# ------------------------------------------------------------------ records


def fake_record(name, df, dft, drt, key=None):
    """A record with per-slice losses as evaluation stores them (volumes of two slices)."""
    def split(values):
        values = list(map(float, values))
        return {"per_slice": {f"vol{i // 2:03d}.h5": {"ssim_loss": values[i:i + 2],
                                                      "nmse": [2 * v for v in values[i:i + 2]]}
                              for i in range(0, len(values), 2)}}
    return {"name": name, "key": key, "metrics": {"ua": split(df), "kta": split(dft),
                                                  "bta": split(drt)}}


def test_audit_model_reads_per_slice_losses_and_pairs_them_with_the_oracle():
    oracle = fake_record("oracle", HIGH[:40], HIGH[40:80], LOW[:40])
    g = fake_record("original", LOW[:40], HIGH[40:80], LOW[:40] * 1.1)
    mine = audit.audit_model(oracle, oracle)
    assert mine["calibrated_auc"] == 0.5 and mine["forget_quality"] == 1.0
    assert mine["df_ratio"] == mine["dft_ratio"] == mine["drt_ratio"] == 1.0
    found = audit.audit_model(g, oracle)
    assert found["auc"] > 0.99 and found["calibrated_auc"] > 0.99 and found["ks"] > 0.99
    assert found["drt_ratio"] == pytest.approx(1.1)
    assert found["members"] == found["non_members"] == 40
    assert audit.audit_model(g, oracle, loss="nmse")["df_ratio"] == pytest.approx(
        found["df_ratio"])
    with pytest.raises(ValueError, match="unknown loss"):
        audit.slice_losses(g, "ua", "psnr")
    other = fake_record("FT", LOW[:38], HIGH[40:80], LOW[:40])  # another seed's split
    with pytest.raises(ValueError, match="same 'ua' slices"):
        audit.audit_model(other, oracle)
    with pytest.raises(KeyError, match="per-slice"):
        audit.slice_losses({"name": "old", "metrics": {"ua": {}}}, "ua")


def test_audit_all_pairs_each_run_with_its_seeds_oracle_and_summarises_over_seeds():
    records = {}
    for seed in (0, 1, 2):
        shift = 0.01 * seed
        records[("oracle", seed)] = fake_record("oracle", HIGH[:20] + shift, HIGH[20:40] + shift,
                                                LOW[:20])
        records[("original", seed)] = fake_record("original", LOW[:20], HIGH[20:40] + shift,
                                                  LOW[:20])
    records[("excess", 0)] = {"summary": {"original": 1.0}}  # not a run: skipped
    records[("FT", 7)] = fake_record("FT", LOW[:20], LOW[:20], LOW[:20])  # no oracle: skipped
    rows = audit.audit_all(records)
    assert {(r["name"], r["seed"]) for r in rows} == {(n, s) for n in ("oracle", "original")
                                                      for s in (0, 1, 2)}
    summary = audit.summarise(rows)
    g = summary[(summary["name"] == "original") & (summary["measure"] == "auc")].iloc[0]
    assert g["seeds"] == 3 and g["lo"] <= g["mean"] <= g["hi"]
    shown = audit.table(summary, ["auc", "calibrated_auc"])
    assert list(shown.index) == [paper.ORACLE, "G"]
    assert shown.loc[paper.ORACLE, "calibrated AUC"] == "0.50"  # no spread: the value alone


# ------------------------------------------------------------------ criteria beyond the paper

SEEDS = (0, 1, 2, 3, 4)
WOBBLE = (-0.01, 0.0, 0.01, 0.005, -0.005)
ORACLE = dict(auc=0.5, calibrated_auc=0.5, drt_ratio=1.0, dft_ratio=1.0)
BEHAVIOUR = {  # per model: the audit numbers it should produce, and what the reading says
    "original": dict(auc=0.8, calibrated_auc=0.85, drt_ratio=1.0, dft_ratio=0.7),
    "FT": dict(auc=0.75, calibrated_auc=0.8, drt_ratio=1.0, dft_ratio=0.7),  # remembers
    "Full FT": dict(auc=0.5, calibrated_auc=0.5, drt_ratio=0.95, dft_ratio=1.0),  # forgot
    # collapsed: both attacks at the oracle's level, losses three times the oracle's
    "GA-l1": dict(auc=0.5, calibrated_auc=0.5, drt_ratio=3.0, dft_ratio=3.0),
    "NL": dict(auc=0.3, calibrated_auc=0.2, drt_ratio=1.2, dft_ratio=1.2),  # over-unlearned
    "GA-l1-FT": dict(auc=0.5, calibrated_auc=0.5, drt_ratio=2.0, dft_ratio=1.1),  # at a cost
    "NL-FT": dict(auc=0.52, calibrated_auc=0.6, drt_ratio=1.0, dft_ratio=1.0),  # straddles
}
EXPECTED = {"FT": audit.REMEMBERS, "Full FT": audit.FORGOT, "GA-l1": audit.WORSE_EVERYWHERE,
            "NL": audit.OVER, "GA-l1-FT": audit.COSTLY, "NL-FT": audit.UNDECIDED}


def made_up_rows(behaviour=BEHAVIOUR, seeds=SEEDS):
    rows = []
    for seed, wobble in zip(seeds, WOBBLE):
        rows.append({"name": "oracle", "seed": seed, **ORACLE,
                     "auc": ORACLE["auc"] + wobble})
        for name, values in behaviour.items():
            noisy = {k: v + (wobble * 10 if name == "NL-FT" and k == "calibrated_auc" else wobble)
                     for k, v in values.items()}
            rows.append({"name": name, "seed": seed, **noisy})
    return rows


def test_beyond_paper_table_decides_every_row_and_flags_the_collapsed_model():
    rows = audit.beyond_paper(made_up_rows(), SEEDS)
    assert [r["finding"] for r in rows] == [f"B{i}" for i in range(1, 15)]
    by = {(r["method"], r["kind"]): r for r in rows}
    assert by[("original", "distinguishable")]["verdict"] == HOLDS
    assert by[("oracle", "reference")]["verdict"] == HOLDS
    # the collapsed model passes the attacks like the oracle, but is worse everywhere
    assert by[("GA-l1", "forgets")]["verdict"] == HOLDS
    assert by[("GA-l1", "keeps")]["verdict"] == FAILS
    assert by[("FT", "forgets")]["verdict"] == FAILS
    assert by[("NL-FT", "forgets")]["verdict"] == UNSURE
    assert audit.categories(rows) == EXPECTED
    reading = audit.plain_reading(rows)
    assert reading[0].startswith("G is distinguishable") and "alike" in reading[1]
    collapsed = next(s for s in reading if s.startswith("GA-l1 "))
    assert "worse everywhere" in collapsed and "no evidence of forgetting" in collapsed
    for row in rows:
        assert row["paper"] and row["robustness"] in (scorecard.STABLE, scorecard.FRAGILE)
        assert row["statement"] and row["criterion"]
    json.dumps(rows)  # ready for scorecard.json
    pending = scorecard.undecided(rows)
    assert {p["finding"] for p in pending} == {by[("NL-FT", "forgets")]["finding"]}


def test_a_g_that_cannot_be_told_apart_and_a_biased_reference_are_said_so():
    behaviour = {**BEHAVIOUR, "original": dict(auc=0.5, calibrated_auc=0.5, drt_ratio=1.0,
                                               dft_ratio=1.0)}
    rows = made_up_rows(behaviour)
    for r in rows:
        if r["name"] == "oracle":
            r["auc"] += 0.3  # the oracle's D_f is much easier than D_ft
    decided = {r["kind"]: r for r in audit.beyond_paper(rows, SEEDS)}
    assert decided["distinguishable"]["verdict"] == FAILS
    assert decided["reference"]["verdict"] == FAILS
    reading = audit.plain_reading(audit.beyond_paper(rows, SEEDS))
    assert reading[0].startswith("Even G is not distinguishable")
    assert reading[1].startswith("The oracle tells D_f from D_ft")


def test_within_criterion_is_two_sided_and_leave_one_out_is_reported():
    within = scorecard.Criterion("x", lambda get: 0.0, 0.05, side="within", unit="")
    assert scorecard.check(within, {0: 0.01, 1: -0.01, 2: 0.0})["verdict"] == HOLDS
    assert scorecard.check(within, {0: 0.2, 1: 0.21, 2: 0.19})["verdict"] == FAILS
    assert scorecard.check(within, {0: -0.2, 1: -0.21, 2: -0.19})["verdict"] == FAILS
    assert scorecard.check(within, {0: 0.0, 1: 0.1, 2: 0.05})["verdict"] == UNSURE
    # one wild seed makes the verdict fragile: without it the rest are tight
    rows = made_up_rows()
    for r in rows:
        if r["name"] == "Full FT" and r["seed"] == 4:
            r["auc"] = 0.9
    full_ft = next(r for r in audit.beyond_paper(rows, SEEDS)
                   if r["method"] == "Full FT" and r["kind"] == "forgets")
    assert full_ft["verdict"] == UNSURE and full_ft["flipped_by"] == {"4": HOLDS}


def test_methods_without_runs_are_left_out():
    rows = [r for r in made_up_rows() if r["name"] in ("oracle", "original", "NL-FT")]
    decided = audit.beyond_paper(rows, SEEDS)
    assert [r["method"] for r in decided] == ["original", "oracle", "NL-FT", "NL-FT"]


# ------------------------------------------------------------------ real smoke runs


def test_audit_of_real_smoke_runs(lab, trained):
    """G, G-hat and NL-FT of the shared smoke Lab: every measure in range, the oracle equal
    to itself, the table decided on one seed; the figure draws."""
    from erase.report import figures

    nlft = lab.unlearn("NL-FT")
    records = {("oracle", lab.seed): trained["oracle"], ("original", lab.seed): trained["original"],
               ("NL-FT", lab.seed): nlft}
    rows = {r["name"]: r for r in audit.audit_all(records)}
    assert set(rows) == {"oracle", "original", "NL-FT"}
    assert rows["oracle"]["calibrated_auc"] == 0.5 and rows["oracle"]["forget_quality"] == 1.0
    for r in rows.values():
        assert r["members"] > 0 and r["non_members"] > 0
        for key in ("auc", "calibrated_auc", "ks", "forget_quality", "efficacy", "accuracy"):
            assert 0.0 <= r[key] <= 1.0, (r["name"], key, r[key])
        assert all(r[k] > 0 for k in ("df_ratio", "dft_ratio", "drt_ratio"))
    entry = audit.scorecard_entry(records, [lab.seed], methods=("NL-FT",))
    assert [r["finding"] for r in entry["criteria"]] == ["B1", "B2", "B3", "B4"]
    assert set(entry["categories"]) == {"NL-FT"}
    json.dumps(entry)
    losses = {name: {"D_f": audit.scores(records[(name, lab.seed)], "ua"),
                     "D_ft": audit.scores(records[(name, lab.seed)], "kta")}
              for name in ("oracle", "original", "NL-FT")}
    fig = figures.loss_distributions(losses)
    assert len(fig.data) == 6


def test_evaluate_json_carries_the_audit(lab, trained, results_dir, capsys):
    from erase import cli

    assert cli.main(["evaluate", "--method", "NL-FT", "--scale", "smoke", "--results",
                     str(results_dir), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["name"] == "NL-FT"
    assert set(audit.MEASURES) <= set(record["audit"])
    assert record["audit"]["members"] > 0
