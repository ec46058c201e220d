"""The book for its two readers: the pages after the chapters, and what every page carries.

* ``_toc.yml`` lists the nine chapters first, in order, then the pages for readers (glossary,
  MRI in one page, teaching guide, real data, how to cite); those with code are notebooks that
  take the chapters' parameters, the others plain pages;
* every page's footer names the build's date and the project's commit (``modified`` when the
  work tree has changes, ``not a git checkout`` for a copy), written into the assembled
  ``_build/source/_config.yml`` and never into the repository's own;
* a smoke build, and only a smoke build, shows a warning banner at the top of every page;
* the citation page agrees with ``CITATION.cff`` and ``references.bib``; the glossary defines
  the terms the chapters use.

The browser checks (banner and footer on every page, no placeholder or localhost links) are in
``test_book.py``.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from erase.book import build as book
from erase.book.chapter import COMMON

ROOT = Path(__file__).resolve().parents[1]  # the project: its _toc.yml and book/
READERS = ["book/mri_in_one_page", "book/glossary", "book/teaching_guide", "book/real_data",
           "book/how_to_cite"]
NOTEBOOKS = {"book/mri_in_one_page", "book/teaching_guide", "book/real_data"}
GIT = shutil.which("git")


# ------------------------------------------------------------------ the table of contents


def test_the_chapters_come_first_then_the_pages_for_readers():
    docs = book.toc_documents(ROOT)
    assert [Path(d).name[:3] for d in docs[:9]] == [f"0{i}_" for i in range(1, 10)]
    assert docs[9:] == READERS
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert [p["caption"] for p in toc["parts"]] == ["The book", "For readers"]
    for doc in READERS:
        assert book.is_notebook(ROOT / f"{doc}.md") == (doc in NOTEBOOKS), doc


def test_the_chapters_are_numbered_as_the_pages_call_them():
    """"chapter 4" in a page (formats.chapter_link) is the sidebar's "4. Unlearning"."""
    from erase.report.formats import CHAPTER_FILES, chapter_link

    docs = book.toc_documents(ROOT)[:9]
    assert [f"book/{CHAPTER_FILES[n]}" for n in range(1, 10)] == docs
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    titles = [entry["title"] for entry in toc["parts"][0]["chapters"]]
    assert [t.split(".")[0] for t in titles] == [str(n) for n in range(2, 10)]
    assert chapter_link(4) == "{doc}`chapter 4 <04_unlearning>`"
    with pytest.raises(ValueError, match="there is no chapter 10"):
        chapter_link(10)


@pytest.mark.parametrize("doc", sorted(NOTEBOOKS))
def test_a_notebook_page_takes_the_chapters_parameters(doc):
    import jupytext

    notebook = jupytext.read(ROOT / f"{doc}.md", fmt="md:myst")
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{doc} needs one parameters cell"
    names = re.findall(r"^(\w+) =", cells[0].source, re.M)
    assert names == list(COMMON), names
    assert "chapter.setup(globals(), _before)" in notebook_source(notebook)


def notebook_source(notebook) -> str:
    return "\n".join(c.source for c in notebook.cells if c.cell_type == "code")


# ------------------------------------------------------------------ the build's stamp


def _git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
                               "PATH": "/usr/bin:/bin", "HOME": str(cwd)}).stdout.strip()


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_the_commit_is_the_checkout_head_and_says_modified(tmp_path):
    assert book.source_commit(tmp_path) == "not a git checkout"
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    assert book.source_commit(repo) == "not a git checkout"  # no commit yet
    (repo / "a.txt").write_text("a\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "a")
    head = _git(repo, "rev-parse", "--short", "HEAD")
    assert book.source_commit(repo) == head
    (repo / "a.txt").write_text("b\n")
    assert book.source_commit(repo) == f"{head}, modified"
    (repo / "sub").mkdir()  # a folder inside a checkout is not the checkout
    assert book.source_commit(repo / "sub") == "not a git checkout"
    when = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc)
    assert book.build_stamp(repo, when) == f"Built 2026-01-02 03:04 UTC from commit {head} " \
                                           "(modified)."
    assert book.build_stamp(tmp_path, when) == "Built 2026-01-02 03:04 UTC (not a git checkout)."


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_the_project_stamp_names_its_head():
    if not (ROOT / ".git").exists():
        pytest.skip("the project is not a git checkout here")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    assert book.source_commit(ROOT).split(",")[0] == head


def test_stamp_config_adds_the_footer_and_the_banner_only_at_smoke():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    footer = config["html"]["extra_footer"]
    smoke = book.stamp_config(book.book_config(config), "Built X.", {"smoke"})
    default = book.stamp_config(book.book_config(config), "Built X.", {"default"})
    paper = book.stamp_config(book.book_config(config), "Built X.", ["paper"])
    assert smoke["html"]["announcement"] == book.SMOKE_BANNER
    assert "announcement" not in default["html"] and "announcement" not in paper["html"]
    for rendered in (smoke, default, paper):
        assert rendered["html"]["extra_footer"] == f"Built X. {footer}"
    assert config["html"]["extra_footer"] == footer  # the input is left alone
    mixed = book.stamp_config(config, "Built X.", {"default", "smoke"})
    assert mixed["html"]["announcement"] == book.SMOKE_BANNER  # any smoke chapter: banner
    assert book.stamp_config({}, "Built X.")["html"]["extra_footer"] == "Built X."


def _fake_executed(out: Path, doc: str, scale: str) -> None:
    """An executed notebook as papermill leaves it: its parameters in the metadata."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {doc}")]
    nb.metadata["papermill"] = {"parameters": {"scale": scale, "device": "cpu"}}
    path = out / "_build" / "notebooks" / f"{doc}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.fixture()
def small_root(tmp_path):
    root = tmp_path / "src"
    (root / "book").mkdir(parents=True)
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy2(ROOT / "references.bib", root / "references.bib")
    shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/01_a\nparts:\n"
                                   "  - caption: The book\n    chapters:\n"
                                   "      - file: book/02_b\n"
                                   "  - caption: For readers\n    chapters:\n"
                                   "      - file: book/glossary\n")
    kernel = "---\nkernelspec:\n  name: python3\n  display_name: Python 3\n---\n\n"
    (root / "book" / "01_a.md").write_text(kernel + "# A\n")
    (root / "book" / "02_b.md").write_text(kernel + "# B\n")
    (root / "book" / "glossary.md").write_text("# Glossary\n")
    return root


@pytest.mark.parametrize("scale", ["smoke", "default"])
def test_the_assembled_config_carries_the_stamp_and_the_banner_at_smoke(small_root, tmp_path,
                                                                        scale):
    assert book.toc_documents(small_root) == ["book/01_a", "book/02_b", "book/glossary"]
    out = tmp_path / "out"
    for doc in ("book/01_a", "book/02_b"):
        _fake_executed(out, doc, scale)
    repo_config = (ROOT / "_config.yml").read_bytes()
    source = book.assemble(small_root, out)
    config = yaml.safe_load((source / "_config.yml").read_text())
    assert re.fullmatch(r"Built \d{4}-\d\d-\d\d \d\d:\d\d UTC \(not a git checkout\)\. "
                        r"Figures and equations .*", config["html"]["extra_footer"])
    if scale == "smoke":
        assert config["html"]["announcement"] == book.SMOKE_BANNER
    else:
        assert "announcement" not in config["html"]
    assert (ROOT / "_config.yml").read_bytes() == repo_config  # the repository's file untouched
    assert (source / "book" / "glossary.md").is_file()  # a plain page, copied as it is


def test_the_build_shares_the_chapter_timings_so_far(tmp_path):
    path = book.share_timings(tmp_path, "smoke", "cpu", {"book/01_a": {"seconds": 1.5}})
    assert path == tmp_path / "_build" / "timings-so-far.json"
    assert json.loads(path.read_text()) == {"scale": "smoke", "device": "cpu",
                                            "chapters": {"book/01_a": {"seconds": 1.5}}}


# ------------------------------------------------------------------ the pages' content


def test_how_to_cite_agrees_with_citation_cff_and_references_bib():
    page = (ROOT / "book" / "how_to_cite.md").read_text()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert f"version = {{{cff['version']}}}" in page
    assert f"title   = {{{cff['title']}}}" in page
    assert f"license = {{{cff['license']}}}" in page
    bib = (ROOT / "references.bib").read_text()
    entry = re.search(r"@inproceedings\{xue2024erase,.*?\n\}", bib, re.S).group(0)
    assert entry in page  # verbatim
    assert "ABiiitH/CorrectiveMachineUnlearningForMRI" in page and "2a50cd9" in page
    for key in re.findall(r"\{cite\}`([^`]+)`", page):
        for k in key.split(","):
            assert f"{{{k.strip()}," in bib, k


GLOSSARY_TERMS = ["BTA", "KTA", "UA", "RTE", "D_r", "D_f", "D_r'", "D_rt", "D_ft", "G", "G-hat",
                  "G^U", "PSNR", "SSIM", "NMSE", "RSS", "k-space", "Coil sensitivity maps",
                  "Zero-filled", "Acceleration", "Centre fraction", "ACS", "Equispaced mask",
                  "Cascade", "Data consistency", "E2E-VarNet", "Noisy label, NL",
                  "Gradient ascent, GA", "l1 penalty", "Fine-tuning, FT", "Membership inference",
                  "Forget quality", "Knowledge gap", "Hallucination", "Protocol (code vs text)"]


def test_the_glossary_defines_every_term():
    text = (ROOT / "book" / "glossary.md").read_text()
    terms = [line for block in re.findall(r"```\{glossary\}\n(.*?)```", text, re.S)
             for line in block.splitlines() if line and not line.startswith(" ")]
    joined = "\n".join(terms)
    for term in GLOSSARY_TERMS:
        assert re.search(rf"(^|[ ,(]){re.escape(term)}($|[ ,)])", joined, re.M), term
    assert len({t.lower() for t in terms}) == len(terms)  # Sphinx warns on a duplicate term
