"""The per-example membership audit: a case whose answer is known, its statistics, and the pool
losses of a smoke build's real models (kept beside their records, the control at chance)."""
from __future__ import annotations

import numpy as np
import pytest

from erase.measures import per_example as pe
from erase.paper import ORACLE

SEEDS = tuple(range(5))


def known_case(n_slices: int = 300, effect: float = 0.7, seed: int = 0):
    """Pools of per-slice losses with a known answer. Every slice has a difficulty; a model's
    log-loss on a slice it trained on is ``effect`` lower. Each seed's G trained on its forget
    knees and its retain brains, its G-hat on the brains only; "rememberer" (unlearned from G)
    kept the knee effect, "forgetter" lost it, and both kept the brains."""
    rng = np.random.default_rng(seed)
    ids = {part: [f"{part}{i:03d}.h5#0" for i in range(n_slices)] for part in pe.PARTS}
    hard = {part: rng.normal(-3.0, 0.5, n_slices) for part in pe.PARTS}
    members = {s: {"knee": frozenset(rng.choice(ids["knee"], 2 * n_slices // 5, replace=False)),
                   "brain": frozenset(rng.choice(ids["brain"], 4 * n_slices // 5,
                                                 replace=False))} for s in SEEDS}

    def losses(part, seen):
        return {"ssim_loss": {x: float(np.exp(h - effect * (x in seen) + rng.normal(0, 0.1)))
                              for x, h in zip(ids[part], hard[part])}}

    pools = {}
    for s in SEEDS:
        knee_seen = {"original": members[s]["knee"], "rememberer": members[s]["knee"]}
        for name in ("original", "oracle", "rememberer", "forgetter"):
            pools[(name, s)] = {"knee": losses("knee", knee_seen.get(name, frozenset())),
                                "brain": losses("brain", members[s]["brain"])}
    return pools, members


@pytest.fixture(scope="module")
def known():
    pools, members = known_case()
    return pools, members, pe.scorecard_entry(pools, members, ("rememberer", "forgetter"), SEEDS,
                                              population={"rememberer": "forgot",
                                                          "forgetter": "forgot"})


def test_the_score_separates_slices_a_model_trained_on_from_those_it_did_not(known):
    _, _, entry = known
    models = entry["models"]
    for name in ("original", "rememberer"):
        forget = models[name]["forget"]
        assert forget["auc"] > 0.95 and forget["auc_interval"][0] > 0.9, name
        assert forget["tpr_at_1pct"] > 0.5 and models[name]["reading"] == pe.FINDS
        assert forget["member_share"][0] > 0.9
        assert forget["hardest_member_share"][0] == 1.0
    for name in ("oracle", "forgetter"):
        forget = models[name]["forget"]
        assert abs(forget["auc"] - 0.5) < 0.06, name
        assert forget["auc_interval"][0] < 0.5 < forget["auc_interval"][1]
        assert models[name]["reading"] in (pe.AT_CHANCE, pe.UNDECIDED)
        assert forget["tpr_at_1pct"] < 0.1 and forget["member_share"][0] < 0.2
    assert entry["control_at_chance"]  # its interval holds one half
    # every model kept its brains: the retain attack finds them on all four
    assert all(m["retain"]["auc"] > 0.9 for m in models.values())


def test_a_method_that_kept_its_memory_disagrees_with_a_population_verdict_of_forgot(known):
    _, _, entry = known
    assert entry["models"]["rememberer"]["agreement"] == "disagrees"
    assert entry["models"]["forgetter"]["agreement"] in ("agrees", "no comparison")
    assert "original" not in entry["models"] or "agreement" not in entry["models"]["original"]
    assert pe.agreement(pe.FINDS, "still remembers") == "agrees"
    assert pe.agreement(pe.BELOW, "over-unlearned") == "agrees"
    assert pe.agreement(pe.AT_CHANCE, "worse everywhere") == "no comparison"
    assert pe.agreement(pe.UNDECIDED, "forgot") == "no comparison"


def test_references_leave_out_every_model_of_the_tested_seed():
    pools, members = known_case(n_slices=40)
    pools[("original", 0)]["knee"]["ssim_loss"] = dict.fromkeys(
        pools[("original", 0)]["knee"]["ssim_loss"], 1e6)
    ins, outs = pe.references(pools, members, "knee", 0)
    assert max(max(v) for v in (*ins.values(), *outs.values())) < np.log(1e3)
    ins, outs = pe.references(pools, members, "knee", 1)
    assert max(max(v) for v in ins.values()) == pytest.approx(np.log(1e6))
    # the oracles never trained on a knee: they are "out" on every knee slice
    assert sum(len(v) for v in outs.values()) >= 4 * 40


def test_a_slice_without_in_references_takes_the_out_mean_shifted_by_the_median_shift():
    ins = {"a": [0.0, 0.2], "b": [1.0, 1.2]}
    outs = {"a": [1.0, 1.2], "b": [2.0, 2.2], "c": [3.0, 3.2]}
    scores = pe.lira_scores({"a": np.exp(0.1), "c": np.exp(2.1)}, ins, outs)
    # c's "in" mean is its "out" mean (3.1) minus 1: c sits exactly where a does
    assert scores["c"] == pytest.approx(scores["a"])
    assert scores["a"] > 0


def test_auc_is_scikit_learns_with_ties_and_tpr_is_read_at_the_false_positive_rate():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    members, non_members = (rng.integers(0, 5, 40).astype(float),
                            rng.integers(0, 4, 60).astype(float))
    y = np.r_[np.ones(40), np.zeros(60)]
    assert pe.auc(members, non_members) == pytest.approx(
        roc_auc_score(y, np.r_[members, non_members]))
    # non-members: one at 4.5 (1% FPR from there), four more at 4 (5%), ten at 2 (15%)
    non_members = np.r_[[4.5], [4.0] * 4, [2.0] * 10, np.zeros(85)]
    numbers = pe.roc_numbers(np.array([5.0, 3.5, 0.5]), non_members)
    assert numbers["tpr_at_1pct"] == pytest.approx(1 / 3)
    assert numbers["tpr_at_5pct"] == pytest.approx(2 / 3)
    assert np.isnan(pe.auc([], [1.0]))


def test_epsilon_counts_only_thresholds_with_enough_errors_of_both_kinds():
    separated = pe.epsilon(np.arange(10, 20.0), np.arange(0, 10.0))
    assert np.isnan(separated)  # no threshold errs five times each way
    members, non_members = np.arange(0, 100.0), np.arange(-50, 50.0)
    value = pe.epsilon(members, non_members, min_errors=5)
    # at the best threshold t: FNR = t/100 (members below t), FPR = (50 - t)/100
    grid = [max(np.log((1 - (50 - t) / 100) / (t / 100)), np.log((1 - t / 100) / ((50 - t) / 100)))
            for t in range(5, 46)]
    assert value == pytest.approx(max(grid))


def test_the_table_and_sentences_say_each_models_reading(known):
    _, _, entry = known
    table = pe.table(entry)
    assert list(table.index[:2]) == [ORACLE, "G"]
    assert table.loc["rememberer", "per-example reading"] == pe.FINDS
    assert table.loc["rememberer", "agreement"] == "disagrees"
    text = pe.sentences(entry)
    assert text[0].startswith("The control, G-hat")
    assert any(s.startswith("rememberer: finds D_f") and "against the population tests" in s
               for s in text)


def test_slice_ids_and_memberships_follow_the_manifest():
    manifest = {"splits": {"forget": [{"path": "knee/a.h5", "slices": 2}],
                           "retain": [{"path": "b.h5", "slices": 1}]}}
    members = pe.memberships({3: manifest})
    assert members[3] == {"knee": {"a.h5#0", "a.h5#1"}, "brain": {"b.h5#0"}}
    assert pe.trained_on("oracle", 3, "knee", members) == frozenset()
    assert pe.trained_on("oracle", 3, "brain", members) == {"b.h5#0"}


# ------------------------------------------------------------------ a smoke build's real models


def test_pool_losses_are_kept_beside_the_record_and_score_df_as_the_record_does(
        lab, trained, monkeypatch):
    from erase.measures import audit
    from erase.runs import pools

    losses = pools.pool_losses(lab, trained["original"])
    knees = [v for v in __import__("erase").data.scan(lab.data_root) if v["anatomy"] == "knee"]
    assert len(losses["knee"]["ssim_loss"]) == sum(v["slices"] for v in knees)
    assert set(losses["knee"]) == set(audit.LOSSES) and losses["brain"]["nmse"]
    for split in ("ua", "kta"):  # the same slices under the same fixed masks
        for x, value in audit.slice_losses(trained["original"], split).items():
            assert losses["knee"]["ssim_loss"][x] == pytest.approx(value, abs=1e-5), (split, x)
    monkeypatch.setattr(pools, "evaluate_pools", lambda *a: pytest.fail("scored twice"))
    assert pools.pool_losses(lab, trained["original"]) == losses


def test_a_pool_file_edited_by_hand_is_refused_with_what_to_do(tmp_path):
    from erase.runs.store import Store, StoreError

    store = Store(tmp_path)
    store.put_beside("abc", "pool-losses-x.json", {"losses": {"knee": {}}})
    assert store.get_beside("abc", "pool-losses-x.json")["losses"] == {"knee": {}}
    path = store.run_dir("abc") / "pool-losses-x.json"
    path.write_text(path.read_text().replace('"knee"', '"brain"'))
    with pytest.raises(StoreError, match="delete it to recompute it"):
        store.get_beside("abc", "pool-losses-x.json")
    assert store.get_beside("abc", "missing.json") is None


@pytest.mark.slow
def test_the_oracle_of_a_smoke_build_sits_near_chance(lab, trained):
    from erase.studies import study

    labs = study.labs_for(lab, [0, 1, 2])
    records = study.train_models(labs, workers=1)
    losses = study.pool_losses(labs, records, ("oracle", "original"), workers=1)
    members = pe.memberships({l.seed: l.manifest for l in labs})
    entry = pe.scorecard_entry(losses, members, (), [0, 1, 2])
    control = entry["models"]["oracle"]["forget"]
    assert control["members"] == sum(len(members[s]["knee"]) for s in (0, 1, 2))
    assert control["auc_interval"][0] < 0.5 < control["auc_interval"][1]
    assert entry["models"]["oracle"]["reading"] != pe.FINDS


def test_with_no_slice_on_both_sides_the_shift_is_the_difference_of_the_sides_means():
    # one other seed: every brain slice is "in" for both of its models or "out" for both
    mu_in, mu_out, shift, _, _ = pe.fit({"a": [0.0], "b": [0.2]}, {"c": [1.0], "d": [1.4]})
    assert shift == pytest.approx(0.1 - 1.2)
    scores = pe.lira_scores({"a": 1.0, "c": 1.0}, {"a": [0.0, 0.1], "b": [0.2, 0.3]},
                            {"c": [1.0, 1.1], "d": [1.4, 1.5]})
    assert all(np.isfinite(v) for v in scores.values())
