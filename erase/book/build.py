"""Build the book: execute every chapter with papermill, then let Jupyter Book render them.

    python -m erase book --scale smoke|default|paper --device cpu|cuda [--results DIR]
                         [--root DIR] [--out DIR]

The project whose book is built (``_toc.yml``, ``_config.yml``, ``book/``) is always passed in
as ``root``; the command line finds it with ``find_root`` (the current directory, else the
repository this package sits in). Steps, in ``_toc.yml`` order (a later chapter reuses what an
earlier one trained):

1. each chapter ``book/NN_name.md`` (jupytext MyST) is converted in memory and executed by
   papermill in ``book/`` with the venv's Python kernel; the executed notebook is written to
   ``_build/notebooks/book/NN_name.ipynb``. A failing chapter stops the build, with the cell
   and the error on stderr and the executed notebook (full traceback) kept for reading.
2. ``_build/source/`` is assembled: ``_config.yml`` (its repository and launch buttons only
   when ``repository.url`` is set, see ``book_config``; every page's footer names the commit
   and date of the build, and a smoke build shows a warning banner on every page, see
   ``stamp_config``), ``_toc.yml``, ``references.bib``, the
   rest of ``book/`` (``_static``, images, plain pages), the executed notebooks and the CSV
   files the chapters wrote (``erase.report.downloads``: ``_build/downloads/`` goes to
   ``book/_static/downloads/``, next to the HTML). The markdown sources never sit beside
   their notebooks, so Sphinx sees one file per document.
3. ``jupyter-book build _build/source --all -W --keep-going`` renders it without executing
   anything (``execute_notebooks: "off"``) into ``_build/rendering/``, whose HTML then
   replaces ``_build/html`` whole; every Sphinx warning (a glue key not found, an output
   myst-nb cannot show, a bad citation...) fails the build. The log is ``_build/book.log``.
4. ``<results>/scorecard.json``, if a chapter wrote one, is copied to
   ``_build/html/scorecard.json``.

SIGINT (Ctrl-C) or SIGTERM stops ``build_book`` within seconds: the Jupyter kernel (it runs in
a session of its own, out of reach of the terminal's Ctrl-C) and every process it started
(``run_many``'s workers) are killed, so is Jupyter Book, the notebook of the chapter that was
running is removed, and ``Interrupted`` is raised. Nothing half-written stays: a run's record
and checkpoints are written aside and renamed, and an interrupted rendering never replaces
``_build/html``. Rerunning the same command continues from the runs in the results store.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from ..io import atomic, write_text

if TYPE_CHECKING:
    from .workload import Workload

CONFIG_FILES = ("_config.yml", "_toc.yml")
# The folder this package sits in: the project's checkout when it runs from one (an editable
# install or PYTHONPATH), site-packages when it was installed. Only ``find_root`` looks here.
PACKAGE_CHECKOUT = Path(__file__).resolve().parents[2]
KERNEL = "python3"
SMOKE_BANNER = ("Smoke build: tiny models trained for seconds on tiny data; its numbers mean "
                "nothing. Build the default scale to read the results.")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class BookError(RuntimeError):
    """A chapter or the rendering failed; the message says where and why."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the build; its kernel, workers and renderer are ended."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal: 130 (SIGINT), 143 (SIGTERM)."""
        return 128 + self.signum


# --------------------------------------------------------------------------- the project

def find_root(start: Path | None = None) -> Path:
    """The project whose book to build: ``start`` (default: the current directory) when it
    holds ``_toc.yml``, else the repository this package sits in (a checkout, or an editable
    install of one); BookError when neither holds a book (a package installed without its
    repository has none)."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    if (here / "_toc.yml").is_file():
        return here
    repository = PACKAGE_CHECKOUT
    if (repository / "_toc.yml").is_file():
        return repository
    raise BookError(f"no book to build: neither {here} nor {repository} holds _toc.yml; run "
                    "from the project's root (the folder with _toc.yml) or pass --root DIR")


def book_root(root: Path) -> Path:
    """``root`` resolved, or BookError when it holds no ``_toc.yml``."""
    root = Path(root).resolve()
    if not (root / "_toc.yml").is_file():
        raise BookError(f"{root} holds no book (no _toc.yml): pass the project's root, the "
                        "folder with _toc.yml, _config.yml and book/")
    return root


# --------------------------------------------------------------------------- stopping

# Processes the build started and must end when it is stopped: the kernels (each leads a
# process group of its own, with the run_many workers it spawned) and Jupyter Book.
_STARTED: set[int] = set()
_SIGNALLED: list[int] = []  # the signal that is stopping the build, while it stops


def end_processes(pids) -> None:
    """SIGKILL each process in ``pids`` with every process below it (its process group, when
    it leads one of its own, and its descendants), and wait until they are gone.

    SIGKILL, not SIGTERM: a worker's half-done epoch is worth nothing (runs resume from their
    last checkpoint), and a process that gets time to clean up prints on the way out
    (multiprocessing's resource tracker warns about the semaphores its dead parent left).
    """
    import psutil

    doomed = []
    for pid in pids:
        try:
            leader = psutil.Process(pid)
            doomed += [leader, *leader.children(recursive=True)]
        except psutil.Error:
            continue
        try:
            if os.getpgid(pid) == pid != os.getpgrp():  # a group of its own, never ours
                os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    for proc in doomed:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(doomed, timeout=5)


@contextmanager
def stop_on_signals():
    """While the book builds, SIGINT and SIGTERM end it at once: every process the build
    started is killed (``end_processes``) and ``Interrupted`` is raised where the build is.
    A second signal while it stops is ignored (one stop, one message). Only the main thread
    can receive signals: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        if _SIGNALLED:
            return
        _SIGNALLED.append(signum)
        end_processes(sorted(_STARTED))
        raise Interrupted(signum)

    _SIGNALLED.clear()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _SIGNALLED.clear()


def _interrupted() -> Interrupted | None:
    """The stop a signal asked for, if one did (a chapter that fails because its kernel was
    killed was stopped, not broken)."""
    return Interrupted(_SIGNALLED[0]) if _SIGNALLED else None


# --------------------------------------------------------------------------- table of contents

def toc_documents(root: Path) -> list[str]:
    """Document names of ``root``'s ``_toc.yml`` in reading order (``book/01_introduction``,
    ...)."""
    import yaml

    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or ():
            if "file" in entry:
                names.append(entry["file"])
            for key in ("chapters", "sections"):
                walk(entry.get(key))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return [re.sub(r"\.(md|ipynb)$", "", n) for n in names]


def is_notebook(source: Path) -> bool:
    """A jupytext notebook (front matter with a kernelspec), not a plain MyST page."""
    head = source.read_text(encoding="utf-8")[:2000]
    return head.startswith("---") and "kernelspec:" in head.split("\n---", 1)[0]


def select(documents: list[str], chapters) -> list[str]:
    """The documents that ``chapters`` names ("03", "03_knowledge_gap", "book/03_...")."""
    if chapters is None:
        return list(documents)
    if isinstance(chapters, str):
        chapters = [chapters]
    chosen = []
    for want in chapters:
        want = str(want).removesuffix(".md")
        hits = [d for d in documents
                if d == want or Path(d).name == want or Path(d).name.startswith(f"{want}_")]
        if len(hits) != 1:
            raise BookError(f"chapter {want!r} matches {len(hits)} of: {', '.join(documents)}")
        chosen.append(hits[0])
    return [d for d in documents if d in chosen]


# --------------------------------------------------------------------------- kernel

def kernel_environment() -> None:
    """Make the kernel named ``python3`` the Python of this environment, whatever else is
    installed for the user: the environment's kernelspecs come first on JUPYTER_PATH, and
    jupyter_client starts a spec whose command is plain ``python`` with ``sys.executable``."""
    mine = str(Path(sys.prefix) / "share" / "jupyter")
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if not paths or paths[0] != mine:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([mine] + [p for p in paths if p != mine])
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugger start-up chatter
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        raise BookError(f"no Jupyter kernel {KERNEL!r}: run `{sys.executable} -m ipykernel "
                        f"install --prefix {sys.prefix}`") from None
    exe = spec.argv[0]
    plain = {"python", f"python{sys.version_info[0]}",
             f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    if exe not in plain and Path(exe).resolve() != Path(sys.executable).resolve():
        raise BookError(f"the Jupyter kernel {KERNEL!r} ({spec.resource_dir}) runs {exe}, not "
                        f"this environment's {sys.executable}: run `{sys.executable} -m "
                        f"ipykernel install --prefix {sys.prefix}`")


# --------------------------------------------------------------------------- execution

def _failure(doc: str, err: Exception, out_ipynb: Path, seconds: float) -> str:
    from papermill.exceptions import PapermillExecutionError

    where = f"chapter {doc} failed after {seconds:.1f} s"
    if isinstance(err, PapermillExecutionError):
        source = "\n".join("    | " + line for line in err.source.splitlines()[:20])
        trace = _ANSI.sub("", "\n".join(err.traceback or []))
        trace = "\n".join(trace.splitlines()[-25:]).rstrip()
        last = f"{err.ename}: {err.evalue}"
        if not trace.endswith(last):
            trace += "\n" + last
        return (f"{where}, in code cell {err.exec_count} (cell {err.cell_index} of the "
                f"executed notebook):\n{source}\n{trace}\n"
                f"the executed notebook, with the full traceback: {out_ipynb}")
    return f"{where}: {type(err).__name__}: {_ANSI.sub('', str(err))}\n(notebook: {out_ipynb})"


RESET_TAG = "erase-kernel-reset"


def _reset_cell(cwd: Path):
    """First cell of a chapter run in a shared kernel: a clean namespace, counts from 1."""
    import nbformat

    return nbformat.v4.new_code_cell(
        "%reset -f\nimport os as _os\n"
        f"_os.chdir({str(cwd)!r})\n"
        "del _os\nget_ipython().execution_count = 1",
        metadata={"tags": [RESET_TAG, "remove-cell"]})


def _tidy(path: Path, source_name: str) -> None:
    """Drop the shared-kernel reset cell; fold papermill's injected-parameters cell; name the
    source and the notebook in papermill's metadata by their place in the book
    (``source_name``), not by this machine's paths (papermill keeps a notebook it was given as
    an object whole there, our reset cell's working directory included).

    The injected cell (the values the book ran with: scale, device) stays in the
    notebook and on the page behind a "show code" toggle (``hide-input``).
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if RESET_TAG not in c.get("metadata", {}).get("tags", [])]
    run = nb.metadata.get("papermill", {})
    run["input_path"], run["output_path"] = f"{source_name}.md", f"{source_name}.ipynb"
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and not any(t.startswith(("hide-", "remove-"))
                                                     for t in tags):
            cell.metadata["tags"] = tags + ["hide-input"]
    with atomic(path) as tmp:  # a stop while it writes leaves the notebook as papermill wrote it
        nbformat.write(nb, tmp)


class Kernel:
    """A Jupyter kernel the build starts and ends itself, for one chapter or, shared, for
    several: start-up and imports (torch, fastmri, Lightning) are then paid once. In a shared
    kernel each chapter starts with ``%reset -f`` (names of the previous chapter are gone;
    imported modules stay cached) and execution counts restart at 1.

    The kernel runs in a session of its own (jupyter_client starts it so), out of reach of a
    terminal's Ctrl-C; while it lives, its process id is in ``_STARTED`` so that a signal to
    the build ends it and everything it started (``end_processes``).
    """

    def __init__(self, cwd: Path, shared: bool = True):
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        self.shared, self.killed = shared, False
        clients = self.clients = []

        class Manager(AsyncKernelManager):
            def client(self, **kwargs):  # nbclient makes one per notebook; we close it
                kc = super().client(**kwargs)
                clients.append(kc)
                return kc

        self.km = Manager(kernel_name=KERNEL)
        try:
            run_sync(self.km.start_kernel)(cwd=str(cwd), extra_arguments=KERNEL_ARGUMENTS)
        except BaseException:
            self.kill()
            raise
        self.pid = self._pid()
        if self.pid is not None:
            _STARTED.add(self.pid)

    def _pid(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return getattr(process, "pid", None)

    def release_clients(self) -> None:
        while self.clients:
            self.clients.pop().stop_channels()

    def close(self) -> None:
        """Shut the kernel down (its workers exit with it)."""
        from jupyter_core.utils import run_sync

        if self.killed:
            return
        self.release_clients()
        if self.km.has_kernel:
            run_sync(self.km.shutdown_kernel)(now=True)
        _STARTED.discard(self.pid)

    def kill(self) -> None:
        """End the kernel and every process it started now, without asking it."""
        self.killed = True
        pid = self._pid()
        if pid is not None:
            end_processes([pid])
            _STARTED.discard(pid)
        try:
            self.release_clients()
        except Exception:  # noqa: BLE001 - the channels of a killed kernel may be gone
            pass


# quieter kernel log: ipykernel 7 warns at every start that it talks TCP on loopback, and
# logs an ERROR for the interrupt that comes with every shutdown. The history in memory, as
# papermill keeps it when it starts a kernel itself, not in the user's IPython profile.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL", "--HistoryManager.hist_file=:memory:"]


def execute_chapter(source: Path, out_ipynb: Path, parameters: dict, cwd: Path,
                    timeout: int | None = None, kernel: Kernel | None = None) -> dict:
    """Execute one jupytext chapter with papermill; return its timings.

    ``kernel``: a shared kernel to run it in; without one, a kernel of its own is started and
    shut down. ``kernel_seconds`` is the wall time not spent inside the chapter's cells:
    kernel start-up (none in a shared kernel), the namespace reset, parameter injection and
    saving. Stopped (``Interrupted``, or any other exception that is not the chapter's own
    error), it ends a kernel of its own and leaves no notebook behind.
    """
    import jupytext
    import papermill

    out_ipynb = Path(out_ipynb)
    out_ipynb.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(source, fmt="md:myst")
    notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3",
                                       "language": "python"}
    start = time.perf_counter()
    own = None
    if kernel is None:
        kernel = own = Kernel(cwd, shared=False)
    if kernel.shared:
        notebook.cells.insert(0, _reset_cell(cwd))
    try:
        executed = papermill.execute_notebook(
            notebook, str(out_ipynb), parameters=parameters, cwd=str(cwd),
            kernel_name=KERNEL, language="python", progress_bar=False,
            execution_timeout=timeout, km=kernel.km)
    except BaseException as err:
        # A signal stopped it (Interrupted, or the error of a cell whose kernel it killed):
        # stopped, not failed, and no half-executed notebook stays.
        stopped = _interrupted()
        if isinstance(err, Exception) and stopped is None:  # the chapter's own error
            raise BookError(_failure(str(source), err, out_ipynb,
                                     time.perf_counter() - start)) from err
        if own is not None:
            own.kill()
        out_ipynb.unlink(missing_ok=True)
        if stopped is not None and not isinstance(err, Interrupted):
            raise stopped from None
        raise
    finally:
        if own is not None:
            own.close()
        else:
            kernel.release_clients()
        if out_ipynb.is_file():
            _tidy(out_ipynb, f"{Path(source).parent.name}/{Path(source).stem}")
    seconds = time.perf_counter() - start
    in_cells = sum(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0
                   for c in executed.cells
                   if RESET_TAG not in c.get("metadata", {}).get("tags", []))
    return {"seconds": seconds, "cells_seconds": in_cells,
            "kernel_seconds": max(0.0, seconds - in_cells)}


def execute(root: Path, scale: str = "default", device: str = "cpu", results_dir=None,
            chapters=None, quiet: bool = False, out: Path | None = None,
            timeout: int | None = None, shared_kernel: bool | None = None) -> dict:
    """Execute the (chosen) chapters of the book in ``root`` in toc order; return {document:
    timings}. ``out``: where ``_build`` goes (default: ``root``).

    ``shared_kernel``: run every chapter in one kernel (default: yes, unless the environment
    variable ERASE_BOOK_KERNEL is ``fresh``, which starts a new kernel per chapter).
    """
    from ..report.downloads import DOWNLOADS_VARIABLE
    from ..report.teaching import TIMINGS_VARIABLE  # the teaching guide shows the timings
    from ..runs.lab import RESULTS_VARIABLE
    from .progress import Tracker

    root = book_root(root)
    out = Path(out).resolve() if out is not None else root
    results = Path(results_dir).resolve() if results_dir is not None else root / "_output"
    if shared_kernel is None:
        shared_kernel = os.environ.get("ERASE_BOOK_KERNEL", "shared") != "fresh"
    documents = toc_documents(root)
    chosen = select(documents, chapters)
    kernel_environment()
    # The kernels find the results store by the environment (erase.runs.lab.default_results),
    # not by an injected parameter: the page and its .ipynb download show no path of this machine.
    parameters = {"scale": scale, "device": device}
    timings = {}
    notebooks = [d for d in chosen if is_notebook(root / f"{d}.md")]
    tracker = Tracker(results, plan_runs(scale, device, results, notebooks))
    if not quiet:
        print(tracker.workload.line(), flush=True)
    kernels_see = {DOWNLOADS_VARIABLE: str(out / "_build" / "downloads"),
                   TIMINGS_VARIABLE: str(share_timings(out, scale, device, timings)),
                   RESULTS_VARIABLE: str(results)}
    with environment(kernels_see):
        return _execute(root, notebooks, tracker, parameters, out, timings, quiet, timeout,
                        shared_kernel)


@contextmanager
def environment(variables: dict):
    """Set environment variables (the kernels and their workers inherit them) until the block
    ends, then restore what was there."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _execute(root, notebooks, tracker, parameters, out, timings, quiet, timeout, shared_kernel):
    """``execute``'s loop over the chapters, in the environment the kernels need."""
    from .progress import Progress

    terminal = sys.stdout.isatty()
    kernel = None
    try:
        for i, doc in enumerate(notebooks, 1):
            cwd = (root / doc).parent
            head = f"[{i}/{len(notebooks)}] {doc}"
            live = not quiet and bool(tracker.workload.chapters.get(doc))
            if not quiet:  # with a progress line in a log, the lines come between
                print(f"{head} ...", end="\n" if live and not terminal else "", flush=True)
            started = time.perf_counter()
            computed = tracker.computed()
            try:
                if shared_kernel and kernel is None:
                    try:
                        kernel = Kernel(cwd)
                    except Exception as err:
                        raise BookError(f"the Jupyter kernel {KERNEL!r} did not start: "
                                        f"{type(err).__name__}: {err}") from err
                with Progress(tracker, doc, head, terminal=terminal) if live else nullcontext():
                    t = execute_chapter(root / f"{doc}.md",
                                        out / "_build" / "notebooks" / f"{doc}.ipynb",
                                        parameters, cwd=cwd, timeout=timeout, kernel=kernel)
            except BookError:
                if not quiet:
                    print(" FAILED", flush=True)
                raise
            except KeyboardInterrupt:  # Interrupted too
                if not quiet:
                    print(" interrupted", flush=True)
                raise
            t["seconds"] = time.perf_counter() - started  # a shared kernel's start included
            t["kernel_seconds"] = max(0.0, t["seconds"] - t["cells_seconds"])
            t["runs"] = {"planned": len(tracker.workload.chapters.get(doc, [])),
                         "computed": tracker.computed() - computed}
            timings[doc] = t
            share_timings(out, parameters["scale"], parameters["device"], timings)
            if not quiet:
                runs = f", {t['runs']['computed']} runs" if live else ""
                print(f"{head + ' ...' if live else ''} {t['seconds']:6.1f} s  (cells "
                      f"{t['cells_seconds']:.1f} s, kernel start and overhead "
                      f"{t['kernel_seconds']:.1f} s{runs})", flush=True)
    except BaseException:
        if kernel is not None:  # stopped or failed: end the kernel and its workers now
            kernel.kill()
        raise
    finally:
        if kernel is not None:
            kernel.close()
    return timings


def plan_runs(scale: str, device: str, results: Path, notebooks) -> "Workload":
    """The runs the chapters ``notebooks`` still need, counted and timed before they run (at
    their default parameters, as the build runs them: ``erase.book.workload``)."""
    from ..runs.lab import Lab
    from .workload import RUNNING_CHAPTERS, Workload, workload

    if not set(notebooks) & set(RUNNING_CHAPTERS):  # another book (a test's): no Lab needed
        return Workload()
    return workload(Lab(scale=scale, device=device, results_dir=results), notebooks)


def share_timings(out: Path, scale: str, device: str, timings: dict) -> Path:
    """Write the chapters' timings so far to ``_build/timings-so-far.json``; return its path."""
    path = Path(out) / "_build" / "timings-so-far.json"
    write_text(path, json.dumps({"scale": scale, "device": device, "chapters": timings},
                                   indent=1))
    return path


# --------------------------------------------------------------------------- rendering

def book_config(config: dict) -> dict:
    """The book's configuration as rendered: the repository is configured in one place,
    ``repository.url``. While it is empty the book shows no repository, issue, edit or launch
    buttons and names no repository or hub; once it is set, the repository and issue buttons
    and the Binder launch button point at it."""
    config = copy.deepcopy(config or {})
    repository = config.setdefault("repository", {}) or {}
    config["repository"] = repository
    url = str(repository.get("url") or "").strip()
    html = config.setdefault("html", {}) or {}
    config["html"] = html
    launch = config.setdefault("launch_buttons", {}) or {}
    config["launch_buttons"] = launch
    repository["url"] = url  # never Jupyter Book's own default repository
    if url:
        html["use_repository_button"] = html["use_issues_button"] = True
    else:
        for button in ("use_repository_button", "use_issues_button", "use_edit_page_button"):
            html[button] = False
        for hub in ("binderhub_url", "jupyterhub_url", "colab_url"):
            launch[hub] = ""
        launch["thebe"] = False
    return config


def source_commit(root: Path) -> str:
    """The project's commit: ``dd8b3d6``, ``dd8b3d6, modified`` when ``git status`` shows
    changes (untracked files included), ``not a git checkout`` when ``root`` is not the top of
    a git work tree (a copy, an archive, or a folder inside another repository)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=60)

    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != Path(root).resolve():
            return "not a git checkout"
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode != 0:  # a repository without a commit yet
            return "not a git checkout"
        status = git("status", "--porcelain")
    except FileNotFoundError:
        return "commit unknown (git is not installed)"
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    commit = head.stdout.strip()
    return f"{commit}, modified" if status.returncode != 0 or status.stdout.strip() else commit


def build_stamp(root: Path, when=None) -> str:
    """One line for every page's footer: when the book was built, and from which commit."""
    import datetime as dt
    import html

    when = (when or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    commit = source_commit(root)
    if commit.startswith(("not ", "commit unknown")):
        source = f"({commit})"
    else:
        source = "from commit " + commit.replace(", modified", " (modified)")
    return html.escape(f"Built {when:%Y-%m-%d %H:%M} UTC {source}.")


def executed_scales(notebooks) -> set[str]:
    """The ``scale`` parameters the executed notebooks ran with (papermill's metadata)."""
    import nbformat

    scales = set()
    for path in notebooks:
        parameters = nbformat.read(path, as_version=4).metadata.get("papermill", {}).get(
            "parameters", {})
        if parameters.get("scale"):
            scales.add(str(parameters["scale"]))
    return scales


def stamp_config(config: dict, stamp: str, scales=()) -> dict:
    """The rendered configuration with the build's stamp first in every page's footer and,
    when any chapter ran at the ``smoke`` scale, a warning banner at the top of every page."""
    config = copy.deepcopy(config or {})
    html = config.setdefault("html", {}) or {}
    config["html"] = html
    footer = str(html.get("extra_footer") or "").strip()
    html["extra_footer"] = f"{stamp} {footer}".strip()
    if "smoke" in set(scales):
        html["announcement"] = SMOKE_BANNER
    else:
        html.pop("announcement", None)
    return config


def assemble(root: Path, out: Path | None = None) -> Path:
    """Lay out ``_build/source`` for the book in ``root``: configuration, ``book/`` assets,
    executed notebooks, and the chapters' CSV downloads."""
    import yaml

    from ..report.downloads import STATIC_FOLDER

    root = book_root(root)
    out = Path(out).resolve() if out is not None else root
    source = out / "_build" / "source"
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    for name in CONFIG_FILES:
        shutil.copy2(root / name, source / name)
    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    for bib in config.get("bibtex_bibfiles", []):
        (source / bib).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / bib, source / bib)
    documents = toc_documents(root)
    executed = out / "_build" / "notebooks"
    folders = sorted({Path(d).parts[0] for d in documents if len(Path(d).parts) > 1})
    for folder in folders:
        shutil.copytree(root / folder, source / folder, ignore=shutil.ignore_patterns(
            "*.md", "*.ipynb", "__pycache__", ".ipynb_checkpoints"))
    missing, notebooks = [], []
    for doc in documents:
        md = root / f"{doc}.md"
        target = source / doc
        target.parent.mkdir(parents=True, exist_ok=True)
        if md.is_file() and not is_notebook(md):
            shutil.copy2(md, target.with_suffix(".md"))  # a plain page: rendered as it is
        elif (executed / f"{doc}.ipynb").is_file():
            shutil.copy2(executed / f"{doc}.ipynb", target.with_suffix(".ipynb"))
            notebooks.append(target.with_suffix(".ipynb"))
        else:
            missing.append(doc)
    if missing:
        raise BookError(f"not executed yet: {', '.join(missing)} (build without `chapters` "
                        "to execute every chapter)")
    rendered = stamp_config(book_config(config), build_stamp(root), executed_scales(notebooks))
    (source / "_config.yml").write_text(yaml.safe_dump(rendered, sort_keys=False))
    downloads = out / "_build" / "downloads"
    static = [Path(p) for p in config.get("sphinx", {}).get("config", {}).get(
        "html_static_path", [])]
    if downloads.is_dir() and any(downloads.glob("*.csv")) and static:
        target = source / static[0] / STATIC_FOLDER
        target.mkdir(parents=True, exist_ok=True)
        for csv in sorted(downloads.glob("*.csv")):
            shutil.copy2(csv, target / csv.name)
    return source


def _jupyter_book() -> list[str]:
    script = Path(sys.executable).parent / "jupyter-book"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


def render(root: Path, out: Path | None = None) -> Path:
    """Assemble and render the book in ``root``; return ``_build/html``. Any Sphinx warning
    fails. Jupyter Book writes into ``_build/rendering``; its HTML replaces ``_build/html``
    once Jupyter Book has finished (warnings or not, as it would have written it in place), so
    a stopped rendering leaves the previous book whole."""
    root = book_root(root)
    out = Path(out).resolve() if out is not None else root
    source = assemble(root, out)
    log = out / "_build" / "book.log"
    staging = out / "_build" / "rendering"
    if staging.exists():
        shutil.rmtree(staging)
    cmd = _jupyter_book() + ["build", str(source), "--path-output", str(staging), "--all",
                             "-W", "--keep-going"]
    env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1")
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=str(out), env=env) as proc:
        _STARTED.add(proc.pid)
        try:
            stdout, stderr = proc.communicate()
        except BaseException:  # stopped: Jupyter Book goes with the build
            end_processes([proc.pid])
            raise
        finally:
            _STARTED.discard(proc.pid)
    text = _ANSI.sub("", stdout + stderr)
    write_text(log, text)
    html = out / "_build" / "html"
    if (staging / "_build" / "html").is_dir():
        _replace_tree(staging / "_build" / "html", html)
    shutil.rmtree(staging, ignore_errors=True)  # Sphinx's caches: every build is --all
    problems = [line for line in text.splitlines()
                if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback|Exception occurred", line)]
    if proc.returncode != 0 or problems or not (html / "index.html").is_file():
        shown = "\n".join("    " + p for p in problems[:40]) or "\n".join(
            "    " + line for line in text.splitlines()[-30:])
        raise BookError(f"Jupyter Book failed (exit {proc.returncode}, {len(problems)} warning "
                        f"or error lines):\n{shown}\nfull log: {log}")
    return html


def _replace_tree(new: Path, old: Path) -> None:
    """Put the folder ``new`` where ``old`` is, by renames (the previous one is set aside and
    then deleted)."""
    aside = old.with_name(f".{old.name}-previous")
    if aside.exists():
        shutil.rmtree(aside)
    if old.exists():
        os.replace(old, aside)
    os.replace(new, old)
    shutil.rmtree(aside, ignore_errors=True)


# --------------------------------------------------------------------------- all of it

def build_book(root: Path, scale="default", device="cpu", results_dir=None, chapters=None,
               quiet=False, out: Path | None = None) -> int:
    """Execute every chapter (or the chosen ones) of the book in ``root`` and render it; 0 if
    all went well, 1 (with the reason on stderr) if a chapter or the rendering failed.

    ``out``: where ``_build`` goes (default: ``root``); ``results_dir``: the results store
    (default: ``root/_output``). SIGINT or SIGTERM stops it within seconds, with the kernel,
    its workers and Jupyter Book ended: ``Interrupted`` is raised (``stop_on_signals``).
    """
    from ..config import check_choice, get_scale

    get_scale(scale)  # ConfigError -> `erase: error: ...`, exit 2, nothing run
    check_choice("device", device, ("cpu", "cuda"))
    root = book_root(root)
    out = Path(out).resolve() if out is not None else root
    results = Path(results_dir).resolve() if results_dir is not None else root / "_output"
    started = time.perf_counter()
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    say(f"book: executing chapters at scale {scale!r} on {device}, results in {results}")
    with stop_on_signals():
        try:
            timings = execute(root, scale, device, results, chapters, quiet, out)
            executed_at = time.perf_counter()
            say("book: rendering with Jupyter Book ...")
            html = render(root, out)
        except BookError as err:
            stopped = _interrupted()
            if stopped is not None:
                raise stopped from None
            print(f"book: {err}", file=sys.stderr, flush=True)
            return 1
        rendered = time.perf_counter() - executed_at
        scorecard = results / "scorecard.json"
        if scorecard.is_file():
            shutil.copy2(scorecard, html / "scorecard.json")
        write_text(out / "_build" / "timings.json", json.dumps(
            {"scale": scale, "device": device, "chapters": timings, "render_seconds": rendered,
             "total_seconds": time.perf_counter() - started}, indent=1))
    total = time.perf_counter() - started
    kernels = sum(t["kernel_seconds"] for t in timings.values())
    say(f"book: {len(timings)} chapters executed in {executed_at - started:.1f} s "
        f"({kernels:.1f} s of it kernel start and overhead), rendered in {rendered:.1f} s, "
        f"total {total:.1f} s")
    say(f"book: open {html / 'index.html'}")
    return 0
