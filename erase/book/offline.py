"""Figures and equations that draw with no network: the kernel side and the Sphinx side.

Kernel side (every chapter calls :func:`enable` through ``chapter.setup``)
    A plotly renderer whose output is ``text/html`` *without* plotly.js: myst-nb drops
    plotly's default mime type, and the ``notebook`` renderer inlines 4.8 MB of plotly.js per
    figure plus a MathJax CDN tag. The bundle also carries plotly's own JSON mime type, which
    myst-nb ignores (it picks ``text/html`` first) and JupyterLab draws with its plotly
    extension, so the same notebook works when opened in Jupyter.

Sphinx side (``extra_extensions: [erase.book.offline]`` in ``_config.yml``)
    * plotly.js: copied from the installed plotly package into ``_static/plotly.min.js`` of the
      built HTML and linked in the ``<head>`` of exactly the pages that hold a plotly figure
      (glued ones included), once per page. Nothing is copied into the source tree.
    * MathJax 3: fetched once into a cache (``npm pack mathjax@3.2.2``, or the PyPI wheel
      ``sphinx-mathjax-offline`` that bundles the same release when npm is absent), checked
      against a pinned SHA-256, and copied into ``_static/mathjax/`` of the built HTML.
      ``mathjax_path`` in ``_config.yml`` points there. Sphinx links MathJax only on pages
      with math.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

RENDERER = "erase_offline"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
FIGURE_HEIGHT = 480

MATHJAX_VERSION = "3.2.2"
# (client, package spec, file it writes, its sha256, the folder in it that is MathJax's es5/)
MATHJAX_SOURCES = (
    ("npm", f"mathjax@{MATHJAX_VERSION}", f"mathjax-{MATHJAX_VERSION}.tgz",
     "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09", "package/es5/"),
    # the same MathJax 3.2.2 es5 tree inside a small Sphinx extension's wheel
    ("pip", "sphinx-mathjax-offline==0.0.2", "sphinx_mathjax_offline-0.0.2-py3-none-any.whl",
     "206418155b2ff2f57496fb8501fdccae3da978e53031ff296c73729ba16062c4",
     "sphinx-mathjax-offline/static/mathjax/"),
)
# what a page needs besides the entry component: dynamically loaded extensions and fonts
MATHJAX_DIRS = ("input", "output", "ui", "a11y", "adaptors", "sre")


class OfflineError(RuntimeError):
    """Something the offline book needs could not be found or fetched."""


# --------------------------------------------------------------------------- kernel side

def plotly_js() -> Path:
    """The plotly.js bundle that ships inside the installed plotly package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise OfflineError(f"plotly.min.js not found at {path}: reinstall plotly")
    return path


def figure_html(fig, config=None, height=FIGURE_HEIGHT) -> str:
    """A figure as an HTML fragment that needs plotly.js loaded by the page (for myst-nb glue).

    ``glue("name", IPython.display.HTML(figure_html(fig)))`` shows it on another page; the
    Sphinx side links plotly.js on every page whose HTML holds a figure, glued or not.
    """
    import plotly.io as pio

    return pio.to_html(fig, include_plotlyjs=False, include_mathjax=False, full_html=False,
                       config=config, default_width="100%", default_height=height,
                       validate=False)


def _renderer_class():
    from plotly.io._base_renderers import MimetypeRenderer

    class OfflineRenderer(MimetypeRenderer):
        """``text/html`` without plotly.js, plus plotly's JSON for Jupyter front-ends."""

        def __init__(self, config=None, include_json=True):
            self.config = dict(config) if config else {}
            self.include_json = include_json

        def to_mimebundle(self, fig_dict):
            import plotly.io as pio

            bundle = {"text/html": figure_html(fig_dict, config=self.config)}
            if self.include_json:
                bundle.update(pio.renderers["plotly_mimetype"].to_mimebundle(dict(fig_dict)))
            return bundle

    return OfflineRenderer


def enable(include_json: bool = True) -> None:
    """Register the offline renderer and make it plotly's default in this process."""
    import plotly.io as pio

    pio.renderers[RENDERER] = _renderer_class()(include_json=include_json)
    pio.renderers.default = RENDERER


# --------------------------------------------------------------------------- MathJax cache

def cache_dir() -> Path:
    """Where fetched assets live: $ERASE_CACHE, else the virtual environment, else ~/.cache."""
    if os.environ.get("ERASE_CACHE"):
        return Path(os.environ["ERASE_CACHE"])
    venv = Path(sys.prefix) / "share" / "erase"
    if sys.prefix != sys.base_prefix and os.access(sys.prefix, os.W_OK):
        return venv
    return Path.home() / ".cache" / "erase"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(how: str, spec: str, name: str, into: Path) -> Path:
    if how == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise OfflineError("npm is not installed")
        cmd = [npm, "pack", spec, "--pack-destination", str(into), "--silent"]
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--dest", str(into), spec]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    path = into / name
    if done.returncode != 0 or not path.is_file():
        raise OfflineError(f"{' '.join(cmd[:3])} ... failed: "
                           f"{(done.stderr or done.stdout).strip()[-500:]}")
    return path


def _extract(archive: Path, prefix: str, dest: Path) -> None:
    """Copy the members of ``archive`` under ``prefix`` into ``dest`` (no path escapes)."""
    def target(member_name: str):
        if not member_name.startswith(prefix) or member_name.endswith("/"):
            return None
        rel = Path(member_name[len(prefix):])
        if rel.is_absolute() or ".." in rel.parts:
            raise OfflineError(f"unsafe path {member_name!r} in {archive.name}")
        return dest / rel

    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                out = target(info.filename)
                if out is not None:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(z.read(info))
    else:
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                out = target(member.name)
                if out is not None and member.isfile():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(t.extractfile(member).read())


def ensure_mathjax(cache: Path | None = None, quiet: bool = True) -> Path:
    """MathJax's ``es5`` directory, fetched and verified once, then reused."""
    cache = Path(cache) if cache is not None else cache_dir()
    final = cache / f"mathjax-{MATHJAX_VERSION}"
    if (final / "tex-mml-chtml.js").is_file() and (final / ".complete").is_file():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    problems = []
    for how, spec, name, sha, prefix in MATHJAX_SOURCES:
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            tmp = Path(tmp)
            try:
                archive = _download(how, spec, name, tmp)
            except (OfflineError, OSError, subprocess.TimeoutExpired) as err:
                problems.append(f"{how}: {err}")
                continue
            got = _sha256(archive)
            if got != sha:
                problems.append(f"{how}: {name} has sha256 {got}, expected {sha}")
                continue
            staging = tmp / "es5"
            _extract(archive, prefix, staging)
            if not (staging / "tex-mml-chtml.js").is_file():
                problems.append(f"{how}: {name} holds no tex-mml-chtml.js under {prefix}")
                continue
            (staging / ".complete").write_text(f"{how} {name} {sha}\n")
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
            if not quiet:
                print(f"MathJax {MATHJAX_VERSION} fetched with {how} into {final}")
            return final
    raise OfflineError(f"could not fetch MathJax {MATHJAX_VERSION} for offline equations: "
                       + "; ".join(problems)
                       + f". Put MathJax's es5/ folder at {final} (with an empty .complete "
                         "file) or set ERASE_CACHE to a folder that holds it.")


def copy_mathjax(into: Path, entry: str = "tex-mml-chtml.js", cache: Path | None = None) -> Path:
    """Copy what pages need of MathJax into ``into`` (the built ``_static/mathjax``)."""
    source = ensure_mathjax(cache)
    into = Path(into)
    stamp = into / ".complete"
    wanted = (source / ".complete").read_text() + entry
    if stamp.is_file() and stamp.read_text() == wanted and (into / entry).is_file():
        return into
    into.mkdir(parents=True, exist_ok=True)
    if not (source / entry).is_file():
        raise OfflineError(f"mathjax_path names {entry!r}, which MathJax {MATHJAX_VERSION} "
                           f"does not ship (see {source})")
    shutil.copy2(source / entry, into / entry)
    for sub in MATHJAX_DIRS:
        if (source / sub).is_dir():
            shutil.copytree(source / sub, into / sub, dirs_exist_ok=True)
    stamp.write_text(wanted)
    return into


# --------------------------------------------------------------------------- Sphinx side

def _local_mathjax_entry(app):
    """The file under ``_static/mathjax/`` that ``mathjax_path`` names, or None if remote."""
    path = app.config.mathjax_path or ""
    if "://" in path or path.startswith("/") or not path.startswith("mathjax/"):
        return None
    return path[len("mathjax/"):]


def _builder_inited(app) -> None:
    if app.builder.format != "html":
        return
    plotly_js()  # fail early with a clear message
    if _local_mathjax_entry(app):
        ensure_mathjax(quiet=False)


def _page_context(app, pagename, templatename, context, doctree) -> None:
    """Link plotly.js where a figure is; tidy the page's scripts.

    Runs after the other extensions (priority 900). sphinx-thebe (always loaded by Jupyter
    Book) adds its inline configuration twice, a SyntaxError in every notebook page's console,
    and names a CDN: with ``launch_buttons.thebe`` off, its scripts are dropped; otherwise only
    duplicates are.
    """
    if app.builder.format != "html":
        return
    if "plotly-graph-div" in context.get("body", ""):
        app.builder.add_js_file("plotly.min.js", priority=400)
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    theme = app.config.html_theme_options or {}
    thebe = bool((theme.get("launch_buttons") or {}).get("thebe") or theme.get("use_thebe"))
    seen, keep = set(), []
    for js in scripts:
        name = str(getattr(js, "filename", js) or "")
        body = str((getattr(js, "attributes", None) or {}).get("body", ""))
        if (name, body) in seen:
            continue
        if not thebe and ("thebe" in name or "THEBE_JS_URL" in body):
            continue
        seen.add((name, body))
        keep.append(js)
    scripts[:] = keep


def _source_read(app, docname, source) -> None:
    """Drop plotly's JSON from outputs that also carry HTML, before myst-nb reads them.

    The JSON is for live Jupyter front-ends; myst-nb would warn that it cannot show it (and
    the build treats warnings as errors). An output with *only* plotly JSON (a figure shown
    without :func:`enable`) is left alone, so that warning still catches a blank figure. The
    notebook offered for download is the untouched file.
    """
    if not str(app.env.doc2path(docname)).endswith(".ipynb") or PLOTLY_MIME not in source[0]:
        return
    import json

    notebook = json.loads(source[0])
    changed = False
    for cell in notebook.get("cells", ()):
        for output in cell.get("outputs", ()):
            data = output.get("data", {})
            if PLOTLY_MIME in data and "text/html" in data:
                del data[PLOTLY_MIME]
                changed = True
    if changed:
        source[0] = json.dumps(notebook)


def _build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    src = plotly_js()
    dest = static / "plotly.min.js"
    if not dest.is_file() or dest.stat().st_size != src.stat().st_size:
        shutil.copyfile(src, dest)
    entry = _local_mathjax_entry(app)
    if entry:
        copy_mathjax(static / "mathjax", entry)


def setup(app):
    """Sphinx extension entry point (``extra_extensions: [erase.book.offline]``)."""
    app.connect("builder-inited", _builder_inited)
    app.connect("source-read", _source_read)
    app.connect("html-page-context", _page_context, priority=900)
    app.connect("build-finished", _build_finished)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
