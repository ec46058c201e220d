"""Small formats the chapters share: an estimate with its interval (``measures.intervals``'
``estimate_text`` and ``interval_text``, under the names the chapters use), the sets' names in HTML,
a list of the methods in one category."""
from __future__ import annotations

import re

from ..measures.intervals import estimate_text, interval_text  # noqa: F401  (the chapters' names)


def summary_estimate(summary, name: str, measure: str, digits: int = 2) -> str:
    """``estimate_text`` of one model's measure in a summary frame (one row per name and
    measure, with its mean, lo and hi: ``measures.audit.summarise``)."""
    r = summary[(summary["name"] == name) & (summary["measure"] == measure)].iloc[0]
    return estimate_text(r["mean"], r["lo"], r["hi"], digits)


def sets_html(text: str) -> str:
    """The sets' names D_f, D_ft and D_rt typeset in HTML (a code cell's Markdown output
    renders no math)."""
    return re.sub(r"\bD_(ft|rt|f)\b", lambda m: f"<i>D</i><sub>{m.group(1)}</sub>", text)


def listed(categories: dict, category: str) -> str:
    """The names whose category is ``category``, comma-separated, or "none"."""
    found = [name for name, c in categories.items() if c == category]
    return ", ".join(found) if found else "none"


# The chapters by number, as _toc.yml orders them (tests/test_book.py checks the two agree).
CHAPTER_FILES = {1: "01_introduction", 2: "02_data_and_protocol", 3: "03_knowledge_gap",
                 4: "04_unlearning", 5: "05_forgetting_audit", 6: "06_data_efficiency",
                 7: "07_paper_and_code", 8: "08_scorecard", 9: "09_reproducibility"}


def chapter_link(number: int, text: str | None = None) -> str:
    """A MyST link to chapter ``number`` ("chapter 4", or ``text``) for Markdown a code cell
    displays: the book renders Markdown outputs as MyST (``nb_render_markdown_format``), so
    the role becomes a link there as in the prose."""
    if number not in CHAPTER_FILES:
        raise ValueError(f"there is no chapter {number}: chapters are {min(CHAPTER_FILES)} to "
                         f"{max(CHAPTER_FILES)}")
    return f"{{doc}}`{text or f'chapter {number}'} <{CHAPTER_FILES[number]}>`"


def link_chapters(text: str) -> str:
    """Every "chapter N" of a plain sentence (from ``erase.measures``) made a link to it."""
    return re.sub(r"\b([Cc]hapter) (\d+)\b",
                  lambda m: chapter_link(int(m.group(2)), f"{m.group(1)} {m.group(2)}"), text)
