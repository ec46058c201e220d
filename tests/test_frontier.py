"""The noisy label's strength as rho, the frontiers' search and the comparison at matched
forgetting."""
from __future__ import annotations

import math

import pytest

from erase import paper
from erase.measures import diagnosis, frontier
from erase.measures.frontier import Knob, crossing, matched, next_value
from erase.studies import study


def test_the_papers_rho_is_derived_from_its_table_and_the_knee_scale():
    g_ua = paper.value(1, "original", "ua_psnr")  # 37.13 dB
    assert paper.rho_at(5e-4) == pytest.approx(1e-5 / (5e-4 * 10 ** (-g_ua / 20)))
    strength = paper.noise_strength()
    assert (strength["low"], strength["rho"], strength["high"]) == (0.72, 1.4, 2.4)
    assert "Table 1" in strength["source"]
    assert study.BAND == (0.72, 1.4, 2.4)


RHO = Knob("rho", (0.72, 1.4, 2.4), 5, bounds=(0.05, 200.0))


def test_the_search_goes_outward_until_it_crosses_then_halves_the_bracket():
    shares = {0.72: 0.05, 1.4: 0.2, 2.4: 0.7}
    assert next_value(RHO, shares) == 9.6  # none reaches 1: four times the strongest
    shares[9.6] = 1.8
    assert next_value(RHO, shares) == 4.8  # the geometric mean of the bracket (2.4, 9.6)
    shares[4.8] = 1.1
    assert next_value(RHO, shares) is None  # five runs: the budget is spent


def test_the_search_goes_weaker_when_every_run_overshoots_and_stops_at_its_bounds():
    ascent = Knob("ascent", (2.0,), 4, bounds=(0.25, 32.0))
    assert next_value(ascent, {2.0: 2.2}) == 0.5
    assert next_value(ascent, {2.0: 2.2, 0.5: 1.4}) == 0.25  # clipped to the bound
    assert next_value(ascent, {2.0: 2.2, 0.5: 1.4, 0.25: 1.2}) is None  # at the bound


def test_a_grid_knob_that_forgets_more_downward_searches_its_grid():
    ssd = Knob("alpha", (1.9, 1.99), 4, stronger="down", grid=(1.1, 1.5, 1.9, 1.95, 1.99))
    assert next_value(ssd, {1.9: 0.3, 1.99: 0.0}) == 1.5  # stronger: the next smaller alpha
    assert next_value(ssd, {1.9: 1.3, 1.99: 0.0}) == 1.95  # inside the bracket
    assert next_value(ssd, {1.9: 1.3, 1.95: 1.1, 1.99: 0.0}) is None  # adjacent: nothing left


def pts(*triples):
    return [{"knob": k, "share_removed": s, "bta_cost": c} for k, s, c in triples]


def test_the_crossing_is_interpolated_between_the_two_runs_around_it():
    line = pts((0.72, 0.05, 1.0), (2.4, 0.7, 1.5), (4.8, 1.1, 2.0))
    assert crossing(line, 1.0)["cost"] == pytest.approx(1.5 + 0.75 * 0.5)
    assert crossing(line, 0.5)["cost"] == pytest.approx(1.0 + (0.45 / 0.65) * 0.5)
    assert crossing(line[:2], 1.0) == {"cost": None, "reason": "stops at share 0.70"}
    over = pts((1.0, 1.3, 3.0), (2.0, 2.0, 5.0))
    assert crossing(over, 1.0)["reason"].startswith("starts above it")


def test_matched_forgetting_pools_the_seeds_that_reach_it_and_names_the_others():
    fronts = {0: pts((1, 0.5, 1.0), (2, 1.5, 3.0)), 1: pts((1, 0.5, 2.0), (2, 1.5, 4.0)),
              2: pts((1, 0.2, 0.5), (2, 0.6, 0.7))}
    m = matched(fronts, 1.0)
    assert m["per_seed"] == {"0": pytest.approx(2.0), "1": pytest.approx(3.0)}
    assert m["cost"][0] == pytest.approx(2.5) and m["cost"][1] < 2.5 < m["cost"][2]
    assert m["missing"] == {"2": "stops at share 0.60"}
    assert matched({0: pts((1, 0.1, 0.0))}, 1.0)["cost"] is None


def test_the_comparison_says_who_wins_only_when_the_paired_interval_excludes_zero():
    cheap = {s: pts((1, 0.5, 0.0), (2, 1.5, 1.0 + 0.01 * s)) for s in range(5)}
    dear = {s: pts((1, 0.5, 0.0), (2, 1.5, 3.0 + 0.02 * s)) for s in range(5)}
    table = {m: {t: matched(f, t) for t in frontier.TARGETS}
             for m, f in (("A", cheap), ("B", dear))}
    assert frontier.ranking(table) == ["A", "B"]
    words = diagnosis.matched_words(table, {"A": cheap, "B": dear})
    assert words.startswith("At share 1, A loses the least brain") and "so it wins" in words
    noisy = {s: pts((1, 0.5, 0.0), (2, 1.5, 1.0 + (s % 2) * 4)) for s in range(5)}
    table["B"] = {t: matched(noisy, t) for t in frontier.TARGETS}
    words = diagnosis.matched_words(table, {"A": cheap, "B": noisy})
    assert "not separable" in words
    table["C"] = {t: matched({0: pts((1, 1.6, 15.0), (2, 1.9, 16.0))}, t) for t in frontier.TARGETS}
    words = diagnosis.matched_words(table, {"A": cheap, "B": noisy, "C": {0: pts((1, 1.6, 15.0),
                                                                             (2, 1.9, 16.0))}})
    assert words.endswith("C never reaches it: even its weakest run removes 1.60 of the gap or "
                          "more (knob 1).")
    diff = frontier.paired_cost_difference(cheap, dear)
    assert diff["seeds"] == 5 and diff["difference"][0] == pytest.approx(
        0.5 * (1.0 - 3.0) - 0.5 * 0.01 * 2)
    assert "NL-FT keeps more brain" in diagnosis.finding5_matched_words(diff, {}, {})
    ga = {0: pts((1, 1.6, 15.0))}
    never = {"NL-FT": matched(cheap, 1.0), "GA-l1-FT": matched(ga, 1.0)}
    words = diagnosis.finding5_matched_words({"difference": None, "seeds": 0}, never,
                                             {"NL-FT": cheap, "GA-l1-FT": ga})
    assert words.startswith("At share 1 the two cannot be paired: NL-FT reaches it at")
    assert "GA-l1-FT never reaches it (even its weakest run removes 1.60" in words


def test_the_papers_points_are_read_off_table_1():
    p = frontier.paper_points()
    assert p["NL-FT"]["share_removed"] == pytest.approx((36.65 - 31.18) / (36.65 - 31.82))
    assert p["GA-l1-FT"]["bta_cost"] == pytest.approx(39.36 - 31.81)


def test_a_calibrated_run_takes_rho_times_gs_error_and_records_both_units(lab, trained):
    error = lab.forget_error()
    g = trained[1] if isinstance(trained, tuple) else lab.run(lab.job("original"))
    assert error > 0 and math.isfinite(error)
    assert error == pytest.approx(sum(
        m * 10 ** (-v["psnr"] / 20) for m, v in zip(
            [lab.dataset("forget")[i].max_value for i in range(len(lab.dataset("forget")))],
            g["metrics"]["ua"]["per_volume"].values())) / len(g["metrics"]["ua"]["per_volume"]),
        rel=1e-4)
    job = lab.job("NL", rho=2.0, curve=False)
    assert lab.loop(job).lam == pytest.approx(2.0 * error)
    record = lab.run(job)
    assert record["noise"] == {"lambda": pytest.approx(2.0 * error), "rho": pytest.approx(2.0),
                               "g_rmse_on_df": pytest.approx(error)}
    raw = lab.job("NL", lam=3e-5, curve=False)
    assert lab.noise_of(raw)["rho"] == pytest.approx(3e-5 / error)
    assert lab.noise_of(lab.job("FT")) is None


def test_the_plan_walks_each_search_as_far_as_the_store_allows(lab):
    labs = [lab]
    shares = {0.72: 0.1, 1.4: 0.3, 2.4: 0.8, 9.6: 1.6}
    g = {"summary": {"kta_psnr": 30.0, "bta_psnr": 35.0}}
    o = {"summary": {"kta_psnr": 20.0, "bta_psnr": 36.0}}

    def read(l, job):
        if job.kind == "train":
            return g if job.name == "original" else o
        value = job.knobs["rho"]
        if value not in shares:
            return None
        return {"summary": {"kta_psnr": 30.0 - 10.0 * shares[value], "bta_psnr": 35.0}}

    found, pending = study.frontier_steps(labs, read, methods=("NL-FT",))
    assert sorted(found[("NL-FT", lab.seed)]) == [0.72, 1.4, 2.4, 9.6]
    assert [(m, x) for m, _, x in pending] == [("NL-FT", 4.8)]  # between 2.4 and 9.6
    assert study.frontier_job(lab, "NL-FT", 1.4) == lab.job("NL-FT")  # the headline run
    assert study.frontier_job(lab, "NL-FT", 4.8).knobs["curve"] is False


def test_a_run_without_its_curve_ends_with_the_same_numbers(lab, trained):
    """``curve=False`` only skips the test metrics after every epoch: the same training, the
    same final metrics, another key."""
    with_curve = lab.run(lab.job("GA-l1-FT", ascent=1.3))
    without = lab.run(lab.job("GA-l1-FT", ascent=1.3, curve=False))
    assert with_curve["key"] != without["key"]
    assert with_curve["summary"] == without["summary"]
    assert all("metrics" in h for h in with_curve["history"])
    assert not any("metrics" in h for h in without["history"])


def test_a_finding_depends_on_the_reading_of_lambda_when_its_verdicts_differ_in_the_band():
    from types import SimpleNamespace

    from erase.report.glance import band_text
    from erase.studies.headline import band_verdicts

    rows = lambda v4, v5: [{"finding": 4, "verdict": v4}, {"finding": 5, "verdict": v5}]  # noqa: E731
    h = SimpleNamespace(findings=rows("holds", "holds") + [{"finding": 1, "verdict": "holds"}],
                        band={"low": rows("holds", "does not hold"),
                              "high": rows("holds", "holds")})
    band = band_verdicts(h)
    assert set(band) == {4, 5}  # finding 1's runs carry no noisy label
    assert band[4] == {"low": "holds", "paper": "holds", "high": "holds", "depends": False}
    assert band[5]["depends"] and band[5]["low"] == "does not hold"
    assert band_text(band[4]) == " (the same across the band of the paper's rho)"
    assert band_text(band[5]).startswith(" (depends on the reading of lambda: does not hold at")
    assert band_text(None) == ""
