"""What the book's pages used to compute in their own cells, now library functions they call:
Figure 4's take-away (``measures.geometry.in_one_sentence``), the chapters' small formats
(``report.formats``), the teaching guide's timings and rerun costs (``studies.costs``,
``report.teaching``), the pictures of MRI in one page (``report.mri``), and the one name
readers see for the oracle (``paper.ORACLE``)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from erase import paper
from erase.measures import geometry
from erase.report import figures, formats, mri, tables, teaching
from erase.runs.lab import Job
from erase.studies import costs

# ------------------------------------------------------------------ Figure 4's sentence

def trace(cosines, toward, off):
    rows = [{"step": i + 1, "toward_oracle": 0.0, "off_axis": 0.0} for i in range(2)]
    for row, c in zip(rows, cosines):
        if c is not None:
            row["cosine"] = c
    rows[-1].update(toward_oracle=toward, off_axis=off)
    return rows


def test_the_takeaway_says_how_far_each_method_went_and_whether_its_terms_fight():
    traces = {"GA-l1-FT": trace([-0.5, -0.1], 0.0123, 0.2),
              "NL-FT": trace([-0.2, -0.4], -0.01, 0.05), "FT": trace([None, None], 0.001, 0.01)}
    assert geometry.in_one_sentence(traces) == (
        "After one epoch, GA-l1-FT has moved 0.012 of the way towards the oracle and 0.200 off "
        "that line; NL-FT has moved -0.010 of the way towards the oracle and 0.050 off that "
        "line; FT has moved 0.001 of the way towards the oracle and 0.010 off that line. The "
        "mean cosine between the forget and retain gradients is -0.30 for GA-l1-FT, -0.30 for "
        "NL-FT: the two terms pull against each other. None of them travels along the straight "
        "line to the oracle: unlearning leaves G sideways, not backwards")


def test_the_takeaway_when_the_terms_agree_differ_or_a_method_goes_straight():
    agree = geometry.in_one_sentence({"NL-FT": trace([0.1, 0.3], 0.5, 0.1)})
    assert agree.endswith("0.20 for NL-FT: the two terms do not oppose each other on average")
    mixed = geometry.in_one_sentence({"A": trace([0.1, 0.1], 0.0, 1.0),
                               "B": trace([-0.1, -0.1], 0.0, 1.0)})
    assert ": they oppose each other for some methods and not others. None of them" in mixed


# ------------------------------------------------------------------ formats

def test_an_estimate_with_its_interval_or_alone():
    assert formats.interval_text(1.234, 0.5, 2.0) == "1.23 [0.50, 2.00]"
    assert formats.interval_text(1.0, 1.0, 1.0) == "1.00 [1.00, 1.00]"  # always the interval
    assert formats.estimate_text(0.5, 0.4, 0.6) == "0.50 [0.40, 0.60]"
    assert formats.estimate_text(0.5, 0.5, 0.5 + 1e-12) == "0.50"  # no width within isclose
    assert formats.estimate_text(0.5, 0.5, 0.5 + 1e-12, exact_width=True) == "0.50 [0.50, 0.50]"
    assert formats.estimate_text(-0.123, -0.123, -0.123, digits=3, exact_width=True) == "-0.123"
    summary = pd.DataFrame([{"name": "oracle", "measure": "auc", "mean": 0.5, "lo": 0.4, "hi": 0.6},
                            {"name": "G", "measure": "auc", "mean": 0.9, "lo": 0.9, "hi": 0.9}])
    assert formats.summary_estimate(summary, "oracle", "auc") == "0.50 [0.40, 0.60]"
    assert formats.summary_estimate(summary, "G", "auc") == "0.90"


def test_sets_in_html_and_lists_of_a_category():
    assert formats.sets_html("D_f and D_ft, not D_rt's D_fx") == (
        "<i>D</i><sub>f</sub> and <i>D</i><sub>ft</sub>, not <i>D</i><sub>rt</sub>'s D_fx")
    kinds = {"NL-FT": "forgot", "FT": "remembers", "SalUn": "forgot"}
    assert formats.listed(kinds, "forgot") == "NL-FT, SalUn"
    assert formats.listed(kinds, "over") == "none"


# ------------------------------------------------------------------ the teaching guide

def record(kind, seconds=None, environment=None, model=None):
    r = {"config": {"kind": kind, "model": model}}
    if seconds is not None:
        r["timing"] = {"wall_seconds": seconds}
    if environment:
        r["environment"] = environment
    return r


def test_durations_and_what_the_runs_cost():
    assert teaching.duration(1.25) == "1.2 s" and teaching.duration(45) == "45 s"
    assert teaching.duration(600) == "10 min"
    assert costs.wall_seconds({"timing": {"train_seconds": 3.0}}) == 3.0
    assert math.isnan(costs.wall_seconds({}))
    runs = [record("train", 10.0), record("train", 30.0), record("unlearn", 2.0)]
    by_kind = costs.seconds_by_kind(runs, teaching.KINDS)
    assert by_kind == {"train": [10.0, 30.0], "unlearn": [2.0], "trace": []}
    typical = costs.typical_seconds(by_kind)
    assert typical["train"] == 20.0 and typical["unlearn"] == 2.0 and math.isnan(typical["trace"])
    table = teaching.compute_table(by_kind, typical)
    assert list(table.index) == ["training G-hat or G", "one unlearning run"]
    assert table.loc["training G-hat or G"].tolist() == [2, 20.0, 40.0]


def test_machines_and_the_chapters_times(tmp_path):
    runs = [record("train", 1.0, {"processor": "x86_64", "cpus": 2}),
            record("train", 1.0, {"processor": "x86_64", "cpus": 2, "gpu": "H200"}),
            record("train", 1.0)]
    assert teaching.machines(runs) == "x86_64, 2 CPUs; x86_64, 2 CPUs, H200"
    assert teaching.machines(runs[2:]) == "no machine recorded"
    path = tmp_path / "timings.json"
    path.write_text(json.dumps({"chapters": {"book/01_a": {"seconds": 1.26}}}))
    assert teaching.chapter_times(path).to_dict() == {"seconds": {"01_a": 1.3}}
    assert teaching.chapter_times(tmp_path / "missing.json") is None


class FakeLab:
    def __init__(self, stored):
        self._stored = stored

    def stored(self, job):
        return {"key": job.name} if job.name in self._stored else None


def test_what_a_rerun_still_needs_and_what_it_takes():
    lab = FakeLab({"oracle"})
    pairs = [(lab, Job("train", "oracle")), (lab, Job("train", "original")),
             (lab, Job("unlearn", "NL-FT")), (lab, Job("unlearn", "FT"))]
    missing = costs.missing(pairs)
    assert [job.name for _, job in missing] == ["original", "NL-FT", "FT"]
    typical = {"train": 100.0, "unlearn": 10.0}
    assert costs.rerun_seconds(missing, typical, workers=2) == 60.0
    assert teaching.rerun_cost(missing, typical, 2) == "3 new run(s), about 60 s of training"
    assert teaching.rerun_cost(missing[1:], typical, 4) == "2 new run(s), about 10 s of training"
    assert teaching.rerun_cost([], typical, 2) == "no new run: every run it needs is in the store"
    assert teaching.rerun_cost(missing, {"train": np.nan, "unlearn": 1.0}, 2) == (
        "3 new run(s), time not measured at this scale")


# ------------------------------------------------------------------ MRI in one page

def test_the_image_grid_puts_each_image_on_its_own_scale():
    images = [np.full((4, 4), 2.0), np.zeros((4, 4)), np.arange(16.0).reshape(4, 4)]
    fig = mri.image_grid(images, ["a", "b", "c"], cols=2)
    assert [float(np.max(t.z)) for t in fig.data] == [1.0, 0.0, 1.0]
    assert fig.layout.height == 320 * 2 + 40
    k = np.array([[1.0, 10.0], [100.0, 1000.0]])
    assert mri.log_kspace(k, k)[1, 1] == pytest.approx(np.log1p(1000.0))


# ------------------------------------------------------------------ the oracle's one name

def test_readers_see_one_name_for_the_oracle():
    assert paper.display_name("oracle") == paper.ORACLE == "G-hat (oracle)"
    assert paper.display_name("original") == "G" and paper.display_name("NL-FT") == "NL-FT"
    radar = figures.radar({"oracle": {"UA": 1, "BTA": 1, "KTA": 1, "1/RTE": 1},
                           "NL-FT": {"UA": 0.5, "BTA": 0.5, "KTA": 0.5, "1/RTE": 0.5}})
    assert [t.name for t in radar.data] == [paper.ORACLE, "NL-FT"]
    assert paper.ORACLE in figures.COLORS


def test_table_1_names_its_rows_as_readers_see_them(monkeypatch):
    monkeypatch.setattr(tables, "pooled_volumes", lambda *a: np.array([30.0, 31.0]))
    frame = tables.table1({}, ["oracle", "original", "NL-FT"])
    assert list(frame.index) == [paper.ORACLE, "G", "NL-FT"]


def test_a_source_listing_is_the_librarys_code_broken_to_fit_the_page():
    """Chapter 4 shows ``step_terms`` as the library has it: the same syntax tree (docstring
    text re-filled aside), lines broken to the page's width where a comma allows."""
    import ast
    import inspect

    from erase.runs import methods

    listing = tables.source_listing(methods.step_terms)
    code = listing.removeprefix("```python\n").removesuffix("```").rstrip("\n")

    def tree(source):
        node = ast.parse(source).body[0]
        node.body = node.body[1:]  # the docstring: its paragraphs are re-filled
        return ast.dump(node)

    assert tree(code) == tree(inspect.getsource(methods.step_terms))
    long = [line for line in code.splitlines() if len(line) > tables.PAGE_WIDTH]
    assert len(long) <= 3 and all(len(line) <= tables.PAGE_WIDTH + 6 for line in long), long
