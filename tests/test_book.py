"""The book: every chapter executes at smoke scale, the book renders, and its pages work offline.

* every chapter of ``_toc.yml`` runs under papermill (in toc order, one shared results dir);
* the executed notebooks render with Jupyter Book with no warning;
* a small book of its own checks what the real chapters may not have yet (math, a citation,
  a glued figure, the scorecard copy), the kernel's Python, and that a failing chapter stops
  the build with its cell and error;
* headless Chromium, with every host name unresolvable, opens every built page over a local
  HTTP server (and the small book's pages as file:// too): each plotly figure must draw,
  each equation must be typeset by MathJax, no request may leave 127.0.0.1, no script may
  throw, no link may point at a placeholder host or at localhost, and every page of a smoke
  build must show its warning banner. Chromium is driven over the DevTools protocol on a pipe
  (no extra package).
"""
from __future__ import annotations

import fcntl
import functools
import http.server
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import FRONT_MATTER, chapter

from erase.book import build as book

ROOT = Path(__file__).resolve().parents[1]  # the project: its _toc.yml and book/
DOCUMENTS = book.toc_documents(ROOT)  # the chapters, then the pages for readers
CHAPTERS = [d for d in DOCUMENTS if book.is_notebook(ROOT / f"{d}.md")]  # what executes
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
# the real chapters train models (minutes at smoke scale): `-m "not slow"` leaves them out
slow = pytest.mark.slow
# Where Chromium must be there (CI: .ci/run sets this, saying why), its absence fails the browser
# tests instead of skipping them: a green CI must never mean "the book was not opened".
REQUIRE_CHROMIUM = "ERASE_REQUIRE_CHROMIUM"
REQUIRED = os.environ.get(REQUIRE_CHROMIUM, "").strip()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not REQUIRED,
    reason=f"Chromium is not installed (apt-get install chromium); set {REQUIRE_CHROMIUM} to make "
           "its absence a failure, as .ci/run does under CI")


def chromium_or_fail() -> str:
    """The browser's path; where it is required and missing, a failure that says why."""
    if CHROMIUM is None:
        pytest.fail(f"Chromium is required ({REQUIRE_CHROMIUM}: {REQUIRED}) but none of "
                    "chromium, chromium-browser, google-chrome is on PATH: the book's pages "
                    "cannot be opened and checked. Install it (apt-get install chromium).",
                    pytrace=False)
    return CHROMIUM


# --------------------------------------------------------------------------- the real book

@pytest.fixture(scope="session")
def executed(smoke_book):
    """Every chapter executed at smoke scale into one temporary build folder (conftest)."""
    return smoke_book


def _notebook(out: Path, doc: str):
    import nbformat

    return nbformat.read(out / "_build" / "notebooks" / f"{doc}.ipynb", as_version=4)


@slow
@pytest.mark.parametrize("doc", CHAPTERS)
def test_chapter_executes_at_smoke_scale(executed, doc):
    if doc not in executed["timings"]:
        pytest.fail(executed["error"] or f"{doc} was not executed")
    nb = _notebook(executed["out"], doc)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{doc} has no code cell"
    assert all(c.get("execution_count") for c in code), f"{doc}: a code cell did not run"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert outputs, f"{doc}: no cell produced an output"
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, f"{doc}: {errors[0].ename}: {errors[0].evalue}"
    assert nb.metadata["papermill"]["parameters"]["scale"] == "smoke"
    assert not any(book.RESET_TAG in c.metadata.get("tags", []) for c in nb.cells)


@slow
def test_the_plan_counts_every_run_the_chapters_compute_and_says_so(executed):
    """Before the first chapter: how many runs of each kind and about how long; during each
    chapter that computes: plain lines with runs done / total; the plan was exact."""
    if executed["error"]:
        pytest.fail(executed["error"])
    log, timings = executed["log"], executed["timings"]
    first = log.splitlines()[0]
    plan = re.fullmatch(r"book: (\d+) trainings, (\d+) unlearning runs and (\d+) replays to "
                        r"compute \(0 already stored(?:; (\d+) of the runs are searches' later "
                        r"steps, which a search that ends early skips)?\): about \d+ (s|min) on "
                        r"this machine with 1 worker process \(a training step took [0-9.e-]+ s "
                        r"here\)", first)
    assert plan, first
    trainings, unlearning, replays = map(int, plan.groups()[:3])
    later = int(plan.group(4) or 0)
    runs = {doc: t["runs"] for doc, t in timings.items()}
    # a chapter's plan, once its searches' unused later steps are dropped, is what it computed
    assert all(r["planned"] == r["computed"] for r in runs.values()), runs
    total = sum(r["computed"] for r in runs.values())
    planned = trainings + unlearning + replays
    assert (trainings, replays) == (4, 3) and planned - later <= total <= planned, (
        "smoke: G-hat and G on 2 seeds, Figure 4's 3 replays", total, planned, later)
    assert f"runs {total}/{total}" in log
    computing = [doc for doc, r in runs.items() if r["planned"]]
    assert computing[0] == "book/01_introduction"
    for doc in computing:
        assert f"{doc} ...\n" in log, f"{doc}: its progress lines start on a line of their own"
    # a chapter's last progress line (the one before its closing line) counts all its runs
    closing = re.findall(r"^ +runs (\d+)/(\d+)(?: \(this chapter (\d+)/(\d+)\))?, "
                         r"\d+:\d\d elapsed.*\n(?=\[)", log, flags=re.M)
    assert closing and all(c[2] == c[3] for c in closing if c[2]), closing


@pytest.fixture(scope="session")
def rendered(executed):
    """The real book rendered from the executed notebooks (Sphinx warnings fail it)."""
    if executed["error"]:
        pytest.fail(f"chapters failed, nothing to render: {executed['error']}")
    return book.render(ROOT, executed["out"])


@slow
def test_book_renders_every_chapter(rendered):
    for doc in DOCUMENTS:
        page = rendered / f"{doc}.html"
        assert page.is_file(), f"no page for {doc}"
    assert (rendered / "index.html").is_file()
    assert (rendered / "search.html").is_file()
    assert (rendered / "_static" / "plotly.min.js").is_file()
    assert (rendered / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert "Erase to Enhance, reproduced" in (rendered / f"{CHAPTERS[0]}.html").read_text()
    for doc in CHAPTERS:  # the download button offers the executed notebook
        assert (rendered / "_sources" / f"{doc}.ipynb").is_file()


class _Prose(HTMLParser):
    """A page's visible text, each piece with whether it is inside a link and inside code."""

    def __init__(self):
        super().__init__()
        self.open, self.pieces = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in ("br", "img", "hr", "input", "meta", "link", "wbr"):
            self.open.append((tag, dict(attrs).get("class") or ""))

    def handle_endtag(self, tag):
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        tags = [t for t, _ in self.open]
        if "script" in tags or "style" in tags:
            return
        code = any(t in ("pre", "code") or "highlight" in c or "cell_input" in c
                   for t, c in self.open)
        self.pieces.append((data, "a" in tags, code))


def _prose(page: Path) -> list[tuple[str, bool, bool]]:
    parser = _Prose()
    parser.feed(page.read_text())
    return parser.pieces


@slow
def test_pages_show_no_machine_path_no_raw_markdown_and_link_every_chapter(rendered, executed):
    """What a reader sees: no absolute path of the machine that built the book (in a page or
    its .ipynb download), no Markdown that reached the page as text (``**``, a ``* `` list),
    and every "chapter N" in the prose a link (code cells and their comments aside)."""
    machine = {str(ROOT), str(executed["out"]), str(Path(executed["out"]).resolve())}
    home = str(Path.home())
    if home not in ("/", ""):
        machine.add(home)
    pages = sorted(rendered.glob("book/*.html"))
    downloads = sorted((rendered / "_sources").glob("book/*.ipynb"))
    assert pages and downloads
    problems = []
    for path in pages + downloads:
        text = path.read_text()
        problems += [f"{path.name}: shows the path {p}" for p in machine if p in text]
    for page in pages:
        for data, linked, code in _prose(page):
            if code:
                continue
            if "**" in data or re.search(r"(^|\n)\s*\* \S", data):
                problems.append(f"{page.name}: raw Markdown {data.strip()[:80]!r}")
            for m in re.finditer(r"\b[Cc]hapters? \d", data):
                if not linked:
                    problems.append(f"{page.name}: {data[max(0, m.start() - 40):m.end() + 20]!r}"
                                    " names a chapter without a link")
    assert not problems, "\n".join(problems)


@slow
def test_the_papers_tables_come_with_their_csv(rendered):
    """Tables 1 to 3 of the paper, as this run measured them, are a link away as CSV files
    beside the HTML; each page links its own."""
    downloads = rendered / "_static" / "downloads"
    for page, names in (("book/04_unlearning", ("table1-psnr", "table1-ssim", "table2")),
                        ("book/06_data_efficiency", ("table3",))):
        text = (rendered / f"{page}.html").read_text()
        for name in names:
            csv = downloads / f"{name}.csv"
            assert csv.is_file() and len(csv.read_text().splitlines()) > 2, name
            assert f"_static/downloads/{name}.csv" in text, (page, name)


@slow
def test_the_scorecard_chapter_writes_and_shows_every_finding_with_its_verdict(executed,
                                                                              rendered):
    """What the book says, not only that it ran: scorecard.json holds the regime (its criteria,
    each passed or not) and the paper's eight findings, each with a verdict decided by checks
    that carry per-seed values; the scorecard page shows each finding's verdict."""
    from erase.measures.scorecard import FAILS, HOLDS, UNSURE

    if executed["error"]:
        pytest.fail(executed["error"])
    card = json.loads((executed["out"] / "_output" / "scorecard.json").read_text())
    assert {"seeds", "regime", "findings", "beyond_paper"} <= set(card)
    regime = card["regime"]
    assert regime["criteria"] and {"all_pass", "failed"} <= set(regime)
    assert all(isinstance(c["passes"], bool) and c["values"] for c in regime["criteria"])
    assert regime["failed"] == [c["criterion"] for c in regime["criteria"] if not c["passes"]]
    findings = card["findings"]
    assert [f["finding"] for f in findings] == list(range(1, 9))
    seeds = [str(s) for s in card["seeds"]]
    for f in findings:
        assert f["verdict"] in (HOLDS, FAILS, UNSURE), f
        assert f["statement"] and f["criterion"] and f["checks"], f["finding"]
        for check in f["checks"]:
            assert check["verdict"] in (HOLDS, FAILS, UNSURE)
            assert all(isinstance(v, float) for v in check["values"].values())
        if f["finding"] != 7:  # decided on the headline seeds (7: the ablation's)
            assert f["seeds"] == seeds
    doc = next(d for d in CHAPTERS if "scorecard" in d)
    page = (rendered / f"{doc}.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    for f in findings:
        assert f["verdict"] in text, (f["finding"], f["verdict"])


@slow
def test_plotly_js_is_linked_once_and_only_where_figures_are(rendered):
    for page in rendered.rglob("*.html"):
        text = page.read_text()
        links = len(re.findall(r'<script[^>]*src="[^"]*_static/plotly\.min\.js', text))
        has_figure = "plotly-graph-div" in text
        assert links == (1 if has_figure else 0), f"{page.name}: plotly.js linked {links} times"
        assert "cdn.plot.ly" not in text and "require.js" not in text


# --------------------------------------------------------------------------- a small book

MINI_CONFIG_TOC = """\
format: jb-book
root: book/01_figures
chapters:
  - file: book/02_fails
  - file: book/03_references
"""

MINI_CHAPTER = FRONT_MATTER + '''
# Figures and math

The error is $e = \\lVert x - \\hat{x} \\rVert_2$ and, displayed,

$$
\\mathrm{PSNR} = 10 \\log_{10} \\frac{\\max(x)^2}{\\mathrm{MSE}}
$$

as in {cite}`xue2024erase`.

```{code-cell} ipython3
:tags: [parameters]
scale = "default"
device = "cpu"
results_dir = None
fail = False
```

```{code-cell} ipython3
import json, sys
from pathlib import Path
from IPython.display import HTML
from myst_nb import glue
import plotly.graph_objects as go
from erase.book import offline

offline.enable()
print("kernel python:", sys.executable)
from erase.runs.lab import default_results  # the store the build names (ERASE_RESULTS)
results = Path(results_dir or default_results())
results.mkdir(parents=True, exist_ok=True)
(results / "scorecard.json").write_text(json.dumps({"findings": []}))
fig = go.Figure(go.Scatter(y=[1, 3, 2]))
glue("ratio", 0.25, display=False)
glue("fig_html", HTML(offline.figure_html(go.Figure(go.Bar(y=[2, 1])))), display=False)
fig
```

The ratio is {glue:text}`ratio:.2f`.
'''

MINI_FAILS = chapter("Fails on demand", '''\
```{code-cell} ipython3
import os
if os.environ.get("ERASE_TEST_FAIL") == "1":
    print("about to fail")
    1 / 0
```

A glued figure from the first chapter:

```{glue:} fig_html
:doc: 01_figures.ipynb
```
''')

MINI_REFERENCES = """\
# References

A plain page, rendered as it is.

```{bibliography}
```
"""


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini-src")
    (root / "book").mkdir()
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy2(ROOT / "references.bib", root / "references.bib")
    if (ROOT / "book" / "_static").is_dir():
        shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static")
    (root / "_toc.yml").write_text(MINI_CONFIG_TOC)
    (root / "book" / "01_figures.md").write_text(MINI_CHAPTER)
    (root / "book" / "02_fails.md").write_text(MINI_FAILS)
    (root / "book" / "03_references.md").write_text(MINI_REFERENCES)
    return root


def test_toc_order_and_plain_pages(mini_root):
    docs = book.toc_documents(mini_root)
    assert docs == ["book/01_figures", "book/02_fails", "book/03_references"]
    assert book.is_notebook(mini_root / "book" / "01_figures.md")
    assert not book.is_notebook(mini_root / "book" / "03_references.md")
    assert book.select(docs, ["02"]) == ["book/02_fails"]
    with pytest.raises(book.BookError):
        book.select(docs, ["09"])
    assert [Path(d).name[:3] for d in DOCUMENTS[:9]] == [f"0{i}_" for i in range(1, 10)]
    assert CHAPTERS[:9] == DOCUMENTS[:9] and CHAPTERS[0] == "book/01_introduction"


def test_failing_chapter_stops_the_build_with_its_cell_and_error(mini_root, tmp_path,
                                                                 capsys, monkeypatch):
    monkeypatch.setenv("ERASE_TEST_FAIL", "1")
    code = book.build_book(mini_root, scale="smoke", results_dir=tmp_path / "results",
                           out=tmp_path)
    err = capsys.readouterr().err
    assert code == 1
    assert "book/02_fails" in err and "1 / 0" in err
    assert "ZeroDivisionError: division by zero" in err
    assert str(tmp_path / "_build" / "notebooks" / "book" / "02_fails.ipynb") in err
    assert not (tmp_path / "_build" / "html").exists()


def test_fresh_kernel_is_this_environment_python(mini_root, tmp_path):
    timings = book.execute(scale="smoke", results_dir=tmp_path / "r", out=tmp_path,
                           root=mini_root, chapters=["01"], quiet=True, shared_kernel=False)
    assert list(timings) == ["book/01_figures"]
    text = json.dumps([c.get("outputs") for c in _notebook(tmp_path, "book/01_figures").cells])
    assert f"kernel python: {sys.executable}" in text


@pytest.fixture(scope="session")
def mini_built(mini_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("mini-out")
    code = book.build_book(mini_root, scale="smoke", results_dir=out / "results", out=out,
                           quiet=True)
    assert code == 0, (out / "_build" / "book.log").read_text()[-3000:]
    return out / "_build" / "html"


def test_build_renders_math_citations_glue_and_copies_the_scorecard(mini_built):
    page = (mini_built / "book" / "01_figures.html").read_text()
    assert 'class="math' in page and "mathjax/tex-mml-chtml.js" in page
    assert "0.25" in page  # glued number
    assert "Xue" in (mini_built / "book" / "03_references.html").read_text()
    assert "plotly.min.js" in (mini_built / "book" / "02_fails.html").read_text()  # glued figure
    assert "plotly.min.js" not in (mini_built / "book" / "03_references.html").read_text()
    assert json.loads((mini_built / "scorecard.json").read_text()) == {"findings": []}
    timings = json.loads((mini_built.parent / "timings.json").read_text())
    assert set(timings["chapters"]) == {"book/01_figures", "book/02_fails"}


# --------------------------------------------------------------------------- offline checks

class _Loads(HTMLParser):
    """URLs a page loads by itself: scripts, stylesheets, images, frames (not plain links)."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed") and a.get("src"):
            self.urls.append(a["src"])
        if (tag == "link" and a.get("href")
                and (a.get("rel") or "") not in ("canonical", "alternate")):
            self.urls.append(a["href"])


def _off_host(url: str) -> bool:
    return bool(re.match(r"(https?:)?//", url)) and not re.match(
        r"(https?:)?//(127\.0\.0\.1|localhost)([:/]|$)", url)


@pytest.mark.parametrize("which", [pytest.param("rendered", marks=slow), "mini_built"])
def test_no_page_or_stylesheet_loads_anything_off_host(request, which):
    html = request.getfixturevalue(which)
    for page in html.rglob("*.html"):
        parser = _Loads()
        parser.feed(page.read_text())
        remote = [u for u in parser.urls if _off_host(u)]
        assert not remote, f"{page.relative_to(html)} loads {remote}"
        assert "unpkg.com" not in page.read_text(), f"{page.name} names a CDN"
    for css in (html / "_static").rglob("*.css"):
        remote = [u for u in re.findall(r"""url\(\s*['"]?([^'")]+)""", css.read_text())
                  + re.findall(r"""@import\s+['"]([^'"]+)""", css.read_text())
                  if _off_host(u)]
        assert not remote, f"{css.relative_to(html)} loads {remote}"


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--remote-debugging-pipe"]

    def __init__(self, profile: Path):
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def fds():  # fd 3: commands in, fd 4: replies out (above 9 first: no clobbering)
            a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *self.FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._id = 0
        self._replies: dict = {}
        self.events: queue.Queue = queue.Queue()
        self._lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        self._replies[msg["id"]] = msg
                        self._lock.notify_all()
                else:
                    self.events.put(msg)

    def send(self, method, session=None, timeout=30, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        with self._lock:
            if not self._lock.wait_for(lambda: self._id in self._replies, timeout):
                raise TimeoutError(f"Chromium did not answer {method}")
            reply = self._replies.pop(self._id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


PAGE_STATE = """(() => {
  const figs = [...document.querySelectorAll('.plotly-graph-div')];
  const math = [...document.querySelectorAll('.math')];
  return {figures: figs.length, drawn: figs.filter(d => d.querySelector('.main-svg')).length,
          math: math.length, typeset: math.filter(m => m.querySelector('mjx-container')).length,
          sidebar: !!document.querySelector('#pst-primary-sidebar, .bd-sidebar-primary'),
          search: !!document.querySelector('.search-button, form.bd-search, #search-input'),
          banner: (document.querySelector('.bd-header-announcement') || {}).innerText || '',
          footer: (document.querySelector('.extra_footer') || {}).innerText || '',
          links: [...document.querySelectorAll('a[href], area[href], form[action], iframe[src]')]
            .map(e => e.getAttribute('href') || e.getAttribute('action')
                      || e.getAttribute('src')),
          ready: document.readyState, href: location.href};
})()"""


def _visit(chrome, session, url, timeout=40):
    """Open ``url``; wait until its figures drew and its math typeset; return what happened."""
    while not chrome.events.empty():
        chrome.events.get_nowait()
    requests, exceptions, state, loaded = [], [], {}, False

    def drain():
        nonlocal loaded
        try:
            while True:
                ev = chrome.events.get_nowait()
                method = ev.get("method")
                if method == "Network.requestWillBeSent":
                    requests.append(ev["params"]["request"]["url"])
                elif method == "Runtime.exceptionThrown":
                    d = ev["params"]["exceptionDetails"]
                    exceptions.append(d.get("exception", {}).get("description") or d.get("text"))
                elif method == "Page.loadEventFired":
                    loaded = True
        except queue.Empty:
            pass

    chrome.send("Page.navigate", session=session, url=url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        drain()
        if not loaded:
            continue
        state = chrome.send("Runtime.evaluate", session=session, expression=PAGE_STATE,
                            returnByValue=True)["result"].get("value") or {}
        if (state.get("ready") == "complete" and state["drawn"] == state["figures"]
                and state["typeset"] == state["math"]):
            time.sleep(0.5)  # late requests (fonts, lazy MathJax parts) still get logged
            drain()
            break
    return state, requests, exceptions


@pytest.fixture(scope="session")
def chrome(tmp_path_factory):
    chromium_or_fail()
    browser = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target,
                               flatten=True)["sessionId"]
        for domain in ("Network", "Page", "Runtime"):
            browser.send(f"{domain}.enable", session=session)
        yield browser, session
    finally:
        browser.close()


def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# a link to one of these is a placeholder or a machine of the author's, not a page for readers
PLACEHOLDER = re.compile(
    r"^(?:[a-z+.-]+:)?//(?:[^/?#@]*@)?(?:localhost|127(?:\.\d+){3}|0\.0\.0\.0|\[::1?\]"
    r"|(?:[\w-]+\.)*example(?:\.[a-z]+)?|(?:[\w-]+\.)*(?:invalid|test|localhost))(?:[:/?#]|$)"
    r"|executablebooks/jupyter-book|your-?(?:org|user|name|repo)|placeholder", re.I)


def _placeholder_links(links) -> list[str]:
    return [u for u in links if u and (PLACEHOLDER.search(u) or "localhost" in u.lower())]


def _check_pages(chrome, html: Path, base: str, allowed: str):
    browser, session = chrome
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if "_static" not in p.parts and "_sources" not in p.parts)
    assert pages
    seen = {}
    for rel in pages:
        state, requests, exceptions = _visit(browser, session, base + rel)
        where = f"{base}{rel}"
        assert state.get("ready") == "complete", f"{where} did not load: {state}"
        assert state["href"].startswith(allowed), f"{where} did not load: {state['href']}"
        assert state["drawn"] == state["figures"], (
            f"{where}: {state['drawn']} of {state['figures']} plotly figures drew")
        assert state["typeset"] == state["math"], (
            f"{where}: MathJax typeset {state['typeset']} of {state['math']} equations")
        off = [u for u in requests if not u.startswith((allowed, "data:", "blob:", "about:"))]
        assert not off, f"{where} requested {off}"
        assert not exceptions, f"{where}: script errors {exceptions}"
        bad = _placeholder_links(state["links"])
        assert not bad, f"{where} links to a placeholder host or localhost: {bad}"
        assert state["footer"].startswith("Built "), f"{where}: no build stamp in the footer"
        seen[rel] = state
    return seen


@slow
@needs_chromium
def test_every_page_of_the_book_works_offline(chrome, rendered):
    server, base = _serve(rendered)
    try:
        seen = _check_pages(chrome, rendered, base, base)
    finally:
        server.shutdown()
    assert all(s["sidebar"] and s["search"] for s in seen.values())
    assert sum(s["figures"] for s in seen.values()) >= 1, "the book shows no plotly figure"
    # a smoke build: every page shows the banner at its top
    assert all(s["banner"].strip() == book.SMOKE_BANNER for s in seen.values()), {
        rel: s["banner"] for rel, s in seen.items() if s["banner"].strip() != book.SMOKE_BANNER}


@needs_chromium
@pytest.mark.parametrize("how", ["http", "file"])
def test_small_book_figures_and_math_work_offline(chrome, mini_built, how):
    if how == "http":
        server, base = _serve(mini_built)
        allowed = base
    else:
        server, base, allowed = None, mini_built.as_uri() + "/", "file://"
    try:
        seen = _check_pages(chrome, mini_built, base, allowed)
    finally:
        if server:
            server.shutdown()
    first = seen["book/01_figures.html"]
    assert first["figures"] == 1 and first["math"] >= 2 and first["typeset"] == first["math"]
    assert seen["book/02_fails.html"]["figures"] == 1  # the glued one
    assert all(s["banner"].strip() == book.SMOKE_BANNER for s in seen.values())
    assert "(not a git checkout)" in first["footer"]  # the small book's source is a tmp folder


def test_placeholder_links_are_recognised():
    bad = ["http://localhost:8000/tree", "https://127.0.0.1/x", "//localhost",
           "https://example.org/x", "https://www.example.com/",
           "https://github.com/executablebooks/jupyter-book",
           "https://mybinder.org/v2/gh/your-org/erase/main", "http://[::1]:8888/",
           "https://hub.test/x"]
    good = ["../book/02_fails.html", "#section", "https://arxiv.org/abs/2405.15517",
            "https://github.com/ABiiitH/CorrectiveMachineUnlearningForMRI", "_static/x.csv",
            "https://doi.org/10.1148/ryai.2020190007", "mailto:someone@uni.ac.uk"]
    assert _placeholder_links(bad) == bad
    assert _placeholder_links(good) == []
