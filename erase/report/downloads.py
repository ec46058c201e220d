"""Numbers to take away: every record of a results store as one tidy table, and any table of
the book as a CSV file beside its HTML with a download link under it.

``tidy_records`` gives one row per run and test volume (what ``erase results --csv`` writes).
``downloadable(frame, name)`` writes ``name.csv`` and returns an object that a notebook
displays as the table followed by a link to that file. During ``erase book`` the files go to
``_build/downloads/`` (the build sets ERASE_BOOK_DOWNLOADS), which the build copies into the
book's ``_static/downloads/``, so that they end up next to the HTML, in
``_build/html/_static/downloads/``.
"""
from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pandas as pd

from ..config import PROTOCOLS, to_dict
from ..io import atomic

# Set by the book's build: where chapters write their CSV files while they execute.
DOWNLOADS_VARIABLE = "ERASE_BOOK_DOWNLOADS"
# Where the build puts them inside the book's static folder, and the link from a chapter's
# page (chapters sit one folder down, in book/).
STATIC_FOLDER = "downloads"
BOOK_HREF = "../_static/" + STATIC_FOLDER
LOCAL_FOLDER = "_downloads"  # outside the build: next to the notebook

SPLIT_OF = {"bta": "brain_test", "kta": "knee_test", "ua": "forget"}
COLUMNS = ("run", "name", "kind", "seed", "protocol", "retain_fraction", "gamma", "lam", "rho",
           "epochs", "manifest", "accuracy", "split", "volume", "psnr", "ssim", "nmse")


def protocol_name(protocol) -> str | None:
    """``code`` or ``text`` when a record's protocol (all switches, or only the training
    ones) is that preset's, else ``custom (switch=value, ...)`` against ``code``."""
    if not isinstance(protocol, dict):
        return None
    for name, preset in PROTOCOLS.items():
        values = to_dict(preset)
        if all(values.get(k) == v for k, v in protocol.items()):
            return name
    code = to_dict(PROTOCOLS["code"])
    changed = ", ".join(f"{k}={v}" for k, v in sorted(protocol.items()) if code.get(k) != v)
    return f"custom ({changed})"


def tidy_records(records) -> pd.DataFrame:
    """One row per run and test volume: the run's key, name, kind, seed, protocol, knobs,
    (lambda and rho as the run used them), then the split, the volume and its PSNR, SSIM and
    NMSE. Knobs beyond the paper's
    (a row's own) get a column each."""
    rows = []
    for record in records:
        config = record.get("config") or {}
        knobs = config.get("knobs") or {}
        base = {"run": record.get("key"), "name": record.get("name"),
                "kind": config.get("kind"), "seed": config.get("seed"),
                "protocol": protocol_name(config.get("protocol")),
                "retain_fraction": knobs.get("retain_fraction"), "gamma": knobs.get("gamma"),
                # the noisy label in both units, as the run used it (a calibrated run's lambda
                # is rho times its G's error on Df)
                "lam": (record.get("noise") or {}).get("lambda", knobs.get("lam")),
                "rho": (record.get("noise") or {}).get("rho", knobs.get("rho")),
                "epochs": knobs.get("epochs", (config.get("train") or {}).get("epochs")),
                "manifest": config.get("manifest")}
        base.update({k: v for k, v in knobs.items() if k not in base})
        for accuracy, summary in (record.get("metrics") or {}).items():
            if not isinstance(summary, dict):  # not a split's metrics
                continue
            for volume, values in sorted((summary.get("per_volume") or {}).items()):
                rows.append({**base, "accuracy": accuracy,
                             "split": SPLIT_OF.get(accuracy, accuracy), "volume": volume,
                             **{m: values.get(m) for m in ("psnr", "ssim", "nmse")}})
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in COLUMNS]
    run_columns = COLUMNS.index("manifest") + 1  # the run's description, then its own knobs
    return frame.reindex(columns=[*COLUMNS[:run_columns], *extra, *COLUMNS[run_columns:]])


def slug(name: str) -> str:
    """A file name from a table's name: 'Table 1 (seeds)' -> 'table-1-seeds'."""
    text = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    if not text:
        raise ValueError(f"a table name needs letters or digits, got {name!r}")
    return text


class Downloadable:
    """A table shown with a link to its CSV file under it."""

    def __init__(self, frame: pd.DataFrame, path: Path, href: str):
        self.frame, self.path, self.href = frame, Path(path), href

    def link_html(self) -> str:
        return (f'<p class="erase-download"><a href="{html.escape(self.href)}" download>'
                f'Download this table as CSV ({html.escape(self.path.name)})</a></p>')

    def _repr_html_(self) -> str:
        table = self.frame._repr_html_() if hasattr(self.frame, "_repr_html_") else \
            self.frame.to_html()
        return f"{table}\n{self.link_html()}"

    def __repr__(self) -> str:
        return f"{self.frame!r}\n(CSV: {self.href})"  # the link, not this machine's path


def downloadable(frame: pd.DataFrame, name: str, directory=None) -> Downloadable:
    """Write ``frame`` as ``<name>.csv`` and return what displays it with a download link.

    The file goes to ``directory``, else to the book build's download folder (when a chapter
    executes in ``erase book``), else to ``_downloads/`` beside the notebook; the link points
    where the file will be next to the page.
    """
    filename = f"{slug(name)}.csv"
    if directory is not None:
        folder, href = Path(directory), f"{Path(directory).name}/{filename}"
    elif os.environ.get(DOWNLOADS_VARIABLE):
        folder, href = Path(os.environ[DOWNLOADS_VARIABLE]), f"{BOOK_HREF}/{filename}"
    else:
        folder, href = Path(LOCAL_FOLDER), f"{LOCAL_FOLDER}/{filename}"
    folder.mkdir(parents=True, exist_ok=True)
    data = frame.data if hasattr(frame, "data") and not isinstance(frame, pd.DataFrame) else frame
    path = folder / filename
    with atomic(path) as tmp:
        data.to_csv(tmp, index=not isinstance(data.index, pd.RangeIndex))
    return Downloadable(frame, path, href)


__all__ = ["DOWNLOADS_VARIABLE", "STATIC_FOLDER", "BOOK_HREF", "tidy_records", "protocol_name",
           "slug", "downloadable", "Downloadable"]
