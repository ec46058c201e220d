"""How far the book's runs are, while a chapter runs: one updating line on a terminal, a plain
line every half minute in a log.

The worker processes that compute the runs write each finished run into the results store
(``runs/<key>/record.json``, written last); the ``erase book`` process watches that folder.
A planned run is done when its key appears; a stand-in (``workload.Planned.standin``) when a
run the plan did not name appears. The time left is the estimate of what is not done, scaled
by how the runs done so far compared with their estimates (each record has its wall time).
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from ..runs.plan import duration
from ..runs.store import RECORD, finished_keys
from .workload import Workload

RUN_KINDS = ("train", "unlearn", "trace")  # records that are runs (not the zero-filled floor)
PLAIN_EVERY = 30.0  # seconds between lines when the output is not a terminal
TERMINAL_EVERY = 1.0


class Tracker:
    """Runs done since the build started, against the plan ``workload``."""

    def __init__(self, results: Path, workload: Workload, clock=time.monotonic):
        self.results, self.workload, self.clock = Path(results), workload, clock
        self.before = finished_keys(results)
        self.started = clock()
        self._seen: dict = {}  # key -> (is a run, wall seconds) of the records that appeared
        self._last = (0, self.started)  # runs done, and since when

    def _new(self) -> dict:
        for key in finished_keys(self.results) - self.before - set(self._seen):
            try:
                record = json.loads((self.results / "runs" / key / RECORD).read_text())
            except (OSError, ValueError):  # being replaced: read it next time
                continue
            timing = record.get("timing") or {}
            self._seen[key] = (record.get("config", {}).get("kind") in RUN_KINDS,
                               float(timing.get("wall_seconds", timing.get("train_seconds", 0))))
        return {k: v for k, v in self._seen.items() if v[0]}

    def computed(self) -> int:
        """Runs the store gained since the build started (planned or not)."""
        return len(self._new())

    def done(self) -> list:
        """The planned runs done so far (stand-ins matched by the unplanned runs that
        appeared), and the wall seconds those runs recorded."""
        new = self._new()
        runs = self.workload.runs()
        keys = {p.key for p in runs}
        unplanned = [k for k in new if k not in keys]
        done, spare = [], len(unplanned)
        for p in runs:
            if p.key in new:
                done.append(p)
            elif p.standin and spare:
                done.append(p)
                spare -= 1
        seconds = sum(new[p.key][1] for p in done if p.key in new)
        seconds += sum(new[k][1] for k in unplanned[:len(unplanned) - spare])
        return done, seconds

    def settle(self, chapter: str) -> int:
        """After ``chapter`` finished: drop its stand-ins that no run matched (a search that
        stopped before its budget); how many. Its plan is then what it computed."""
        done = {id(p) for p in self.done()[0]}
        runs = self.workload.chapters.get(chapter, [])
        kept = [p for p in runs if not p.standin or id(p) in done]
        if kept or chapter in self.workload.chapters:
            self.workload.chapters[chapter] = kept
        return len(runs) - len(kept)

    def status(self, chapter: str) -> dict:
        """Counts and times for the progress line of ``chapter``."""
        done, actual = self.done()
        runs, estimates = self.workload.runs(), self.workload.estimates
        # how the runs done so far ran against their estimates: the rest will run alike
        scale = actual / max(1e-9, sum(estimates[p.key] for p in done)) if done else 1.0
        finished = {id(p) for p in done}
        here = self.workload.chapters.get(chapter, [])
        now = self.clock()
        if len(done) != self._last[0]:
            self._last = (len(done), now)
        # the runs under way have run since the last one finished: count that down (to a
        # tenth of the estimate at most, until the next one finishes and it is estimated anew)

        def left(plan):
            estimate = self.workload.seconds([p for p in plan if id(p) not in finished]) * scale
            return max(estimate - (now - self._last[1]), estimate / 10)

        return {"done": len(done), "total": len(runs),
                "chapter_done": sum(id(p) in finished for p in here), "chapter_total": len(here),
                "elapsed": now - self.started, "left": left(runs), "chapter_left": left(here)}


def line(status: dict) -> str:
    """``runs 37/158 (this chapter 37/128), 3:10 elapsed, about 5 min left here, 7 min in all``"""
    s = status
    text = f"runs {s['done']}/{s['total']}"
    if s["chapter_total"] != s["total"]:
        text += f" (this chapter {s['chapter_done']}/{s['chapter_total']})"
    text += f", {clock_time(s['elapsed'])} elapsed"
    if s["done"] < s["total"]:
        if s["chapter_total"] != s["total"] and s["chapter_done"] < s["chapter_total"]:
            text += (f", about {duration(s['chapter_left'])} left in this chapter, "
                     f"{duration(s['left'])} in all")
        else:
            text += f", about {duration(s['left'])} left"
            text += " in all" if s["chapter_total"] != s["total"] else ""
    return text


def clock_time(seconds: float) -> str:
    """12:05, 1:02:03."""
    seconds = int(seconds)
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """While a chapter runs, its progress line: rewritten in place every second on a terminal,
    a plain line every ``PLAIN_EVERY`` seconds otherwise (when something changed)."""

    def __init__(self, tracker: Tracker, chapter: str, prefix: str, out=None,
                 terminal: bool | None = None):
        self.tracker, self.chapter, self.prefix = tracker, chapter, prefix
        self.out = out or sys.stdout
        self.terminal = self.out.isatty() if terminal is None else terminal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._last = None

    def __enter__(self):
        if self.tracker.workload.chapters.get(self.chapter):
            if self.terminal:  # at once, then every second
                self.show()
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        alive = self._thread.is_alive()
        if alive:
            self._thread.join()
        if exc[0] is None:
            self.tracker.settle(self.chapter)
        if alive:
            if self.terminal:
                self.out.write("\r\x1b[K")  # the caller prints the chapter's closing line
                self.out.flush()
            elif exc[0] is None:
                self.show(always=True)
        return False

    def show(self, always: bool = False) -> None:
        text = line(self.tracker.status(self.chapter))
        if self.terminal:
            self.out.write(f"\r\x1b[K{self.prefix} {text}")
        elif always or text != self._last:
            self.out.write(f"  {text}\n")
        self.out.flush()
        self._last = text

    def _loop(self) -> None:
        every = TERMINAL_EVERY if self.terminal else PLAIN_EVERY
        while not self._stop.wait(every):
            self.show()
