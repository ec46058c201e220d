"""The book's progress: runs counted as their records appear in the store, stand-ins matched by
runs the plan could not name, the time left scaled by how the finished runs compared with
their estimates, and the line on a terminal (redrawn, then cleared) and in a log (plain)."""
from __future__ import annotations

import io
import json
from types import SimpleNamespace

from erase.book.progress import Progress, Tracker, clock_time, line
from erase.book.workload import Workload


def planned(key, kind="unlearn", standin=False):
    return SimpleNamespace(key=key, kind=kind, standin=standin)


def finish(results, key, kind="unlearn", wall=10.0):
    folder = results / "runs" / key
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps(
        {"config": {"kind": kind}, "timing": {"wall_seconds": wall}}))


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def workload():
    one = [planned("g", "train"), planned("a"), planned("b")]
    four = [planned("c"), planned("s", standin=True)]
    return Workload(chapters={"book/01": one, "book/04": four},
                    estimates={"g": 40.0, "a": 5.0, "b": 5.0, "c": 5.0, "s": 5.0},
                    step_seconds=0.1, workers=2)


def test_runs_are_done_when_their_records_appear_and_old_records_do_not_count(tmp_path):
    finish(tmp_path, "old")  # in the store before the build
    clock = Clock()
    tracker = Tracker(tmp_path, workload(), clock=clock)
    s = tracker.status("book/01")
    assert (s["done"], s["total"], s["chapter_done"], s["chapter_total"]) == (0, 5, 0, 3)
    assert s["left"] == 60.0 / 2, "before any run: the estimate, spread over the workers"
    clock.now = 110.0
    assert tracker.status("book/01")["left"] == 30.0 - 10.0, "counted down while runs run"
    clock.now = 200.0
    assert tracker.status("book/01")["left"] == 3.0, "no lower than a tenth of the estimate"
    finish(tmp_path, "g", "train", wall=80.0)  # twice its estimate
    finish(tmp_path, "zero", kind="zero_filled")  # not a run
    clock.now = 190.0
    s = tracker.status("book/01")
    assert (s["done"], s["chapter_done"], s["elapsed"]) == (1, 1, 90.0)
    assert s["left"] == 20.0 / 2 * 2.0 and s["chapter_left"] == 10.0 / 2 * 2.0, (
        "a run finished: the rest estimated anew, scaled by how that one ran")
    clock.now = 195.0
    assert tracker.status("book/01")["left"] == 20.0 - 5.0
    assert tracker.computed() == 1


def test_a_stand_in_is_done_when_a_run_the_plan_did_not_name_appears(tmp_path):
    tracker = Tracker(tmp_path, workload())
    finish(tmp_path, "chosen-knob")  # the sweep chose another knob than the stand-in's
    s = tracker.status("book/04")
    assert (s["done"], s["chapter_done"]) == (1, 1)
    finish(tmp_path, "another")  # more unplanned runs than stand-ins: done stays exact
    assert tracker.status("book/04")["done"] == 1
    assert tracker.computed() == 2


def test_the_line_says_counts_elapsed_and_time_left_here_and_in_all():
    status = {"done": 37, "total": 158, "chapter_done": 37, "chapter_total": 128,
              "elapsed": 190, "left": 460, "chapter_left": 320}
    assert line(status) == ("runs 37/158 (this chapter 37/128), 3:10 elapsed, about 5 min "
                            "left in this chapter, 8 min in all")
    one_chapter = {**status, "total": 128, "left": 320}
    assert line(one_chapter) == "runs 37/128, 3:10 elapsed, about 5 min left"
    assert line({**one_chapter, "done": 128, "chapter_done": 128}) == "runs 128/128, 3:10 elapsed"
    chapter_done = {**status, "done": 128, "chapter_done": 128}
    assert line(chapter_done) == ("runs 128/158 (this chapter 128/128), 3:10 elapsed, about "
                                  "8 min left in all")
    assert clock_time(3790) == "1:03:10" and clock_time(59) == "0:59"


def test_on_a_terminal_the_line_is_redrawn_and_cleared_in_a_log_plain_lines(tmp_path,
                                                                            monkeypatch):
    import erase.book.progress as progress

    monkeypatch.setattr(progress, "TERMINAL_EVERY", 0.01)
    tracker = Tracker(tmp_path, workload())
    out = io.StringIO()
    with Progress(tracker, "book/01", "[1/9] book/01", out=out, terminal=True):
        finish(tmp_path, "a")
        import time
        time.sleep(0.1)
    text = out.getvalue()
    assert text.startswith("\r\x1b[K[1/9] book/01 runs 0/5 (this chapter 0/3)")
    assert "runs 1/5 (this chapter 1/3)" in text and "\n" not in text
    assert text.endswith("\r\x1b[K"), "the caller prints the chapter's closing line"

    log = io.StringIO()
    with Progress(tracker, "book/01", "[1/9] book/01", out=log, terminal=False):
        finish(tmp_path, "b")
    assert log.getvalue().splitlines() == [
        f"  {line(tracker.status('book/01'))}"], "one closing line, none redrawn"
    assert "runs 2/5 (this chapter 2/3)" in log.getvalue()

    quiet = io.StringIO()
    with Progress(tracker, "book/07", "[7/9] book/07", out=quiet, terminal=True):
        pass
    assert quiet.getvalue() == "", "a chapter with nothing to compute shows no line"


def test_the_chapters_that_run_are_the_plans_keys_and_in_the_toc(lab):
    from pathlib import Path

    from erase.book.build import toc_documents
    from erase.book.workload import RUNNING_CHAPTERS, chapter_runs

    assert set(chapter_runs(lab)) == set(RUNNING_CHAPTERS)
    assert set(RUNNING_CHAPTERS) <= set(toc_documents(Path(__file__).resolve().parents[1]))
