"""Small things a user meets: CSV downloads beside the book's tables, no placeholder links,
a help line for every flag, and a citation file.

* ``erase.report.downloads.downloadable(frame, name)`` writes ``name.csv`` and displays the
  table with a download link; in ``erase book`` the file ends up next to the HTML;
* the repository is configured once (``_config.yml``'s ``repository.url``); while it is empty
  the built HTML names no repository, hub or ``localhost``;
* every flag of every command has a help line, and ``--method`` lists the methods;
* ``CITATION.cff`` cites this project and the paper.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import chapter

from erase.book import build as book
from erase.cli import parser
from erase.report import downloads

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ downloads


def test_downloadable_writes_the_csv_and_shows_the_table_with_a_link(tmp_path):
    frame = pd.DataFrame({"method": ["FT", "NL-FT"], "BTA PSNR": [31.25, 30.5]})
    shown = downloads.downloadable(frame, "Table 1 (this run)", directory=tmp_path / "dl")
    path = tmp_path / "dl" / "table-1-this-run.csv"
    assert shown.path == path and path.is_file()
    pd.testing.assert_frame_equal(pd.read_csv(path), frame)
    html = shown._repr_html_()
    assert html.startswith(frame._repr_html_())
    assert '<a href="dl/table-1-this-run.csv" download>' in html
    assert "table-1-this-run.csv" in repr(shown)


def test_downloadable_keeps_a_meaningful_index(tmp_path):
    frame = pd.DataFrame({"PSNR": [1.0, 2.0]},
                         index=pd.MultiIndex.from_tuples([("FT", 1), ("NL", 2)],
                                                         names=["method", "epoch"]))
    shown = downloads.downloadable(frame, "table 2", directory=tmp_path)
    back = pd.read_csv(shown.path, index_col=[0, 1])
    pd.testing.assert_frame_equal(back, frame)


def test_in_the_book_build_the_file_goes_to_the_build_and_the_link_next_to_the_html(
        tmp_path, monkeypatch):
    monkeypatch.setenv(downloads.DOWNLOADS_VARIABLE, str(tmp_path / "_build" / "downloads"))
    shown = downloads.downloadable(pd.DataFrame({"a": [1]}), "scores")
    assert shown.path == tmp_path / "_build" / "downloads" / "scores.csv"
    assert 'href="../_static/downloads/scores.csv"' in shown._repr_html_()
    with pytest.raises(ValueError, match="letters or digits"):
        downloads.downloadable(pd.DataFrame({"a": [1]}), "  ")


# ------------------------------------------------------------------ repository in one place


def test_the_repository_is_configured_in_one_place_and_empty():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == ""
    text = (ROOT / "_config.yml").read_text()
    assert "localhost" not in text and "erase-mri" not in text
    rendered = book.book_config(config)
    assert rendered["repository"]["url"] == ""
    assert not any(rendered["html"].get(b) for b in ("use_repository_button",
                                                     "use_issues_button",
                                                     "use_edit_page_button"))
    assert all(not rendered["launch_buttons"].get(h) for h in ("binderhub_url",
                                                              "jupyterhub_url", "colab_url"))


def test_a_set_repository_turns_the_buttons_on():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["repository"]["url"] = "https://example.org/someone/erase"
    rendered = book.book_config(config)
    assert rendered["html"]["use_repository_button"] and rendered["html"]["use_issues_button"]
    assert rendered["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert config["html"].get("use_repository_button") is None  # the input is left alone
    no_section = book.book_config({"title": "x"})
    assert no_section["repository"]["url"] == ""  # never Jupyter Book's default repository


TOC = """\
format: jb-book
root: book/01_tables
chapters:
  - file: book/02_plain
"""

CHAPTER = chapter("Tables", '''\
```{code-cell} ipython3
import pandas as pd
from erase.report.downloads import downloadable

downloadable(pd.DataFrame({"method": ["FT", "NL-FT"], "PSNR": [31.5, 30.25]}), "Table 1")
```
''')


@pytest.fixture(scope="module")
def small_book(tmp_path_factory):
    """A two-page book with the project's own _config.yml: one chapter shows a table with
    ``downloadable``, one page is plain."""
    root = tmp_path_factory.mktemp("takeaway-src")
    (root / "book").mkdir()
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy2(ROOT / "references.bib", root / "references.bib")
    if (ROOT / "book" / "_static").is_dir():
        shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static")
    (root / "_toc.yml").write_text(TOC)
    (root / "book" / "01_tables.md").write_text(CHAPTER)
    (root / "book" / "02_plain.md").write_text("# A plain page\n\nNothing to run.\n")
    out = tmp_path_factory.mktemp("takeaway-out")
    code = book.build_book(root, scale="smoke", results_dir=out / "results", out=out,
                           quiet=True)
    assert code == 0, (out / "_build" / "book.log").read_text()[-3000:]
    return out / "_build" / "html"


@pytest.mark.slow
def test_the_csv_ends_up_next_to_the_html_and_the_link_finds_it(small_book):
    page = small_book / "book" / "01_tables.html"
    text = page.read_text()
    assert "NL-FT" in text  # the table itself
    links = re.findall(r'href="([^"]+\.csv)"', text)
    assert links == ["../_static/downloads/table-1.csv"], links
    csv = (page.parent / links[0]).resolve()
    assert csv == (small_book / "_static" / "downloads" / "table-1.csv").resolve()
    assert pd.read_csv(csv)["PSNR"].tolist() == [31.5, 30.25]
    assert downloads.DOWNLOADS_VARIABLE not in os.environ  # restored after the build


@pytest.mark.slow
def test_no_page_names_a_placeholder_repository_a_hub_or_localhost(small_book):
    for page in small_book.rglob("*.html"):
        text = page.read_text()
        for word in ("localhost", "127.0.0.1", "erase-mri", "executablebooks/jupyter-book",
                     "mybinder", "Launch", "repository-button", "issues-button"):
            assert word not in text, f"{page.relative_to(small_book)} names {word!r}"


# ------------------------------------------------------------------ command line


def all_actions():
    top = parser()
    subparsers = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                yield name, sub, action


def test_every_flag_has_a_help_line():
    missing = [f"{name} {'/'.join(action.option_strings)}" for name, _, action in all_actions()
               if not action.help or action.help == argparse.SUPPRESS]
    assert not missing, f"flags without help: {missing}"


def test_method_help_lists_the_methods():
    from erase.runs.methods import METHODS

    for name in ("unlearn", "evaluate", "export", "reconstruct"):
        sub = dict((n, s) for n, s, _ in all_actions())[name]
        text = " ".join(sub.format_help().split())
        listed = re.search(r"--method METHOD unlearning method, one of: (.*?)(?: --|$)", text)
        assert listed, text
        assert all(m in listed.group(1) for m in METHODS), (name, listed.group(1))


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    commands = {name for name, _, _ in all_actions()}
    assert {"export", "reconstruct", "results", "check-gpu"} <= commands
    for name in commands:
        assert re.search(rf"python -m erase {re.escape(name)}\b", readme), name
    assert "make book" in readme and "make test" in readme
    assert "Metrics.means()" in readme  # the fastMRI evaluate workaround


# ------------------------------------------------------------------ citation


def test_citation_cites_the_project_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert cff["cff-version"] == "1.2.0"
    assert cff["title"] == "erase: Erase to Enhance, reproduced"
    assert cff["authors"] == [{"name": "the erase contributors"}]
    assert cff["license"] == "MIT" and str(cff["version"]) == version
    paper, = cff["references"]
    assert paper["title"] == ("Erase to Enhance: Data-Efficient Machine Unlearning in MRI "
                              "Reconstruction")
    assert [a["family-names"] for a in paper["authors"]] == ["Xue", "Liu", "McDonagh",
                                                             "Tsaftaris"]
    assert paper["year"] == 2024 and "MIDL" in paper["conference"]["name"]
    assert paper["publisher"]["name"] == "PMLR"
    assert {"type": "other", "value": "arXiv:2405.15517"}.items() <= paper["identifiers"][0].items()
    assert "repository-code" not in cff  # no placeholder repository
