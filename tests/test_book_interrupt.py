"""Ctrl-C and SIGTERM stop ``python -m erase book`` within seconds, and a rerun continues.

Tried as a user would, with real processes: the book is started with ``python -m erase book``,
and a signal is sent at a point read from the disk, never from the progress text:

* the real smoke book gets SIGINT once the first run of a chapter that trains is in the results
  store; the rerun gets SIGTERM once it has stored a run of its own; a third run completes and
  recomputes none of the runs stored before it;
* a small book whose chapter trains two runs in ``run_many``'s worker processes gets each
  signal once a worker has written its first checkpoint (the workers must be ended too);
* the small book, built once, gets SIGTERM while Jupyter Book renders it again: the previous
  ``_build/html`` stays as it was.

Each time: the process exits within 10 s with 130 (SIGINT) or 143 (SIGTERM), stderr is the one
line ``erase: interrupted; ...``, every process it had started (the kernel, the workers,
Jupyter Book) is gone, no record in the store is damaged, and the notebook of the interrupted
chapter is not left half-executed in ``_build/notebooks``.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import chapter

from erase.runs.store import Store

pytestmark = pytest.mark.slow  # real books: a few minutes on 2 cores

ROOT = Path(__file__).resolve().parents[1]
LINE = "erase: interrupted; rerun the same command to continue from the stored runs"
STOP_WITHIN = 10.0  # seconds from the signal to the exit
TIMEOUT = 600  # seconds any wait for a point to signal at may take
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


class Book:
    """One ``python -m erase book --scale smoke`` in a process of its own, its stdout and
    stderr in files."""

    def __init__(self, tmp: Path, root: Path, name: str, env: dict | None = None):
        self.results, self.out = tmp / "results", tmp / "out"
        self.stdout, self.stderr = tmp / f"{name}.out", tmp / f"{name}.err"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "erase", "book", "--scale", "smoke", "--root", str(root),
                 "--results", str(self.results), "--out", str(self.out)],
                stdout=out, stderr=err, cwd=tmp, env={**ENV, **(env or {})})

    def wait_for(self, condition, what: str, poll: float = 0.05):
        """Poll ``condition`` until it is true; fail if the book ends first."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            found = condition()
            if found:
                return found
            if self.proc.poll() is not None:
                pytest.fail(f"the book ended (exit {self.proc.returncode}) before {what}:\n"
                            f"{self.stdout.read_text()[-2000:]}\n{self.stderr.read_text()[-3000:]}")
            time.sleep(poll)
        pytest.fail(f"no {what} within {TIMEOUT} s")

    def processes(self) -> list[psutil.Process]:
        """Every process below the book's (kernel, workers, Jupyter Book), as they are now."""
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self, signum: int) -> tuple[list[psutil.Process], float]:
        """Send ``signum``; return the processes it had started and the seconds to its exit."""
        started = self.processes()
        self.commands = described(started)  # read now: the signal ends them
        sent = time.monotonic()
        self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout=STOP_WITHIN + 20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the book did not exit within {STOP_WITHIN + 20} s of the signal")
        return started, time.monotonic() - sent

    def stored(self) -> dict:
        """{run key: finished} of every record in the store (a damaged one fails here)."""
        if not (self.results / "runs").is_dir():
            return {}
        return {r["key"]: r["finished"] for r in Store(self.results).records()}

    def finished_chapters(self) -> set[str]:
        """The chapters the build says it has executed (its stdout, one line each)."""
        return {line.split("] ", 1)[1].split(" ...", 1)[0]
                for line in self.stdout.read_text().splitlines()
                if line.startswith("[") and " s  (cells " in line}


def alive(processes: list[psutil.Process]) -> list[str]:
    """Those of ``processes`` still running (the same process: a reused pid does not count)."""
    left = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return left


def described(processes) -> list[str]:
    """Each process as 'pid cmdline' (or 'pid gone' when it has exited since it was listed)."""
    out = []
    for p in processes:
        try:
            out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.Error:
            out.append(f"{p.pid} gone")
    return out


def is_kernel(command: str) -> bool:
    return "ipykernel_launcher" in command


def is_worker(command: str) -> bool:
    return "spawn_main" in command


def check_stopped(book: Book, signum: int, started: list, seconds: float) -> None:
    """The exit a stopped book owes: in time, its code, one line, nothing left running, no
    damaged record, no half-executed notebook."""
    assert seconds <= STOP_WITHIN, f"exit {seconds:.1f} s after the signal"
    assert book.proc.returncode == 128 + signum, (book.proc.returncode,
                                                 book.stderr.read_text()[-3000:])
    assert book.stderr.read_text().splitlines() == [LINE], book.stderr.read_text()[-3000:]
    assert not alive(started), f"left running: {alive(started)}"
    book.stored()  # every record whole
    notebooks = book.out / "_build" / "notebooks"
    executed = {str(p.relative_to(notebooks).with_suffix(""))
                for p in notebooks.rglob("*.ipynb")} if notebooks.is_dir() else set()
    assert executed <= book.finished_chapters(), executed - book.finished_chapters()


# ------------------------------------------------------------------ the real book

def test_the_smoke_book_stops_on_sigint_and_sigterm_and_a_rerun_completes(tmp_path):
    first = Book(tmp_path, ROOT, "first")
    first.wait_for(lambda: first.stored(), "a stored run")
    started, seconds = first.stop(signal.SIGINT)
    assert any(is_kernel(c) for c in first.commands), first.commands
    check_stopped(first, signal.SIGINT, started, seconds)
    assert not (first.out / "_build" / "html").exists()

    before = first.stored()
    second = Book(tmp_path, ROOT, "second")
    second.wait_for(lambda: set(second.stored()) - set(before), "a run stored by the rerun")
    started, seconds = second.stop(signal.SIGTERM)
    check_stopped(second, signal.SIGTERM, started, seconds)

    before = second.stored()
    third = Book(tmp_path, ROOT, "third")
    assert third.proc.wait(timeout=TIMEOUT) == 0, third.stderr.read_text()[-3000:]
    after = third.stored()
    assert {k: after[k] for k in before} == before, "a stored run was computed again"
    assert (third.out / "_build" / "html" / "index.html").is_file()
    assert (third.out / "_build" / "html" / "scorecard.json").is_file()


# ------------------------------------------------------------------ a small book with workers

SMALL_TOC = """\
format: jb-book
root: book/01_workers
"""

SMALL_CHAPTER = chapter("Two runs in worker processes", '''\
```{code-cell} ipython3
import os
from erase.runs.lab import Lab, run_many

if os.environ.get("SMALL_BOOK_TRAINS"):  # long enough to be stopped in the middle
    labs = [Lab(scale=scale, results_dir=results_dir, seed=s, epochs=500) for s in (0, 1)]
    run_many([(lab, lab.job("oracle")) for lab in labs], workers=2)
print("done")
```
''', scale="smoke")


@pytest.fixture
def small_root(tmp_path) -> Path:
    root = tmp_path / "src"
    (root / "book").mkdir(parents=True)
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy2(ROOT / "references.bib", root / "references.bib")
    if (ROOT / "book" / "_static").is_dir():
        shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static")
    (root / "_toc.yml").write_text(SMALL_TOC)
    (root / "book" / "01_workers.md").write_text(SMALL_CHAPTER)
    return root


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_workers_of_run_many_end_with_the_book(small_root, tmp_path, signum):
    book = Book(tmp_path, small_root, "workers", env={"SMALL_BOOK_TRAINS": "1"})
    book.wait_for(lambda: any(book.results.glob("runs/*/checkpoint.ckpt")),
                  "a worker's first checkpoint")
    started, seconds = book.stop(signum)
    assert sum(is_worker(c) for c in book.commands) >= 2, book.commands
    assert any(is_kernel(c) for c in book.commands), book.commands
    check_stopped(book, signum, started, seconds)
    assert not (book.out / "_build" / "notebooks" / "book" / "01_workers.ipynb").exists()


def test_a_stopped_rendering_leaves_the_previous_html_whole(small_root, tmp_path):
    first = Book(tmp_path, small_root, "first")
    assert first.proc.wait(timeout=TIMEOUT) == 0, first.stderr.read_text()[-3000:]
    html = first.out / "_build" / "html"
    pages = {p: p.read_bytes() for p in html.rglob("*.html")}
    assert html / "index.html" in pages

    again = Book(tmp_path, small_root, "again")
    again.wait_for(lambda: (again.out / "_build" / "rendering").exists(), "the rendering")
    started, seconds = again.stop(signal.SIGTERM)
    check_stopped(again, signal.SIGTERM, started, seconds)
    assert {p: p.read_bytes() for p in html.rglob("*.html")} == pages
