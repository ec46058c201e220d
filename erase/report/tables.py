"""The paper's tables rebuilt from this run's records, each beside the paper's own numbers; and
the library's code as the chapters list it, in lines that fit the page."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import paper
from ..measures.intervals import pooled_volumes

ACCURACIES = (("bta", "BTA (brain test)"), ("kta", "KTA (knee test)"), ("ua", "UA (forget set)"))


def pm(mean: float, std: float, metric: str) -> str:
    """'39.07 ± 2.03' for PSNR, '0.964 ± 0.018' for SSIM."""
    if mean is None or np.isnan(mean):
        return "–"
    digits = 2 if metric == "psnr" else 3
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table1(records: dict, names, accuracies=ACCURACIES, metrics=("psnr", "ssim")) -> pd.DataFrame:
    """Table 1: mean ± std over test volumes (pooled over seeds), ours and the paper's."""
    rows = {}
    for name in names:
        row = {}
        for acc, label in accuracies:
            for metric in metrics:
                values = pooled_volumes(records, name, acc, metric)
                row[(label, metric.upper(), "this run")] = pm(values.mean(), values.std(), metric) \
                    if len(values) else "–"
                try:
                    row[(label, metric.upper(), "paper")] = pm(
                        paper.value(1, name, f"{acc}_{metric}"),
                        paper.value(1, name, f"{acc}_{metric}_std"), metric)
                except KeyError:
                    row[(label, metric.upper(), "paper")] = "–"
        rows[paper.display_name(name)] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def table2(records: dict, methods, train_epochs: int) -> pd.DataFrame:
    """Table 2: BTA and KTA after every unlearning epoch, ours beside the paper's.

    Ours: mean over seeds of each seed's mean over test volumes (so the last epoch equals
    Table 1's pooled mean), with the spread over seeds; the paper's: its one run, mean ± std
    over test volumes."""
    rows = []
    for method in methods:
        histories = [r["history"] for (name, _), r in sorted(records.items()) if name == method]
        for k in range(len(histories[0])):
            epoch = histories[0][k]["epoch"]
            row = {"method": method, "epoch (ours)": f"{train_epochs}+{epoch}",
                   "seeds": len(histories)}
            for label, key in (("BTA PSNR", "bta_psnr"), ("KTA PSNR", "kta_psnr"),
                               ("BTA SSIM", "bta_ssim"), ("KTA SSIM", "kta_ssim")):
                values = np.array([h[k]["metrics"][key] for h in histories])
                row[label] = pm(values.mean(), values.std(), key.split("_")[1])
            row["paper epoch"] = 50 + epoch
            row.update(paper_psnr(2, method, epoch=50 + epoch))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["method", "epoch (ours)"])


def paper_psnr(number: int, method: str, **where) -> dict:
    """The paper's BTA and KTA PSNR (mean ± std) of one row of its Table 2 or 3, or dashes."""
    out = {}
    for col, key in (("paper BTA PSNR", "bta_psnr"), ("paper KTA PSNR", "kta_psnr")):
        try:
            out[col] = pm(paper.value(number, method, key, **where),
                          paper.value(number, method, f"{key}_std", **where), "psnr")
        except KeyError:
            out[col] = "–"
    return out


def table3(records: dict) -> pd.DataFrame:
    """Table 3: BTA and KTA against retain fraction per method, ours beside the paper's.

    ``records``: {(method, fraction, seed): record}; ours are means over seeds (± std over
    seeds), with the mean unlearning time."""
    rows = []
    keys = sorted({(f, m) for (m, f, _) in records})
    for fraction, method in keys:
        runs = [r for (m, f, _), r in records.items() if m == method and f == fraction]
        row = {"retain %": round(100 * fraction, 1), "method": method, "seeds": len(runs)}
        for label, key in (("BTA PSNR", "bta_psnr"), ("KTA PSNR", "kta_psnr"),
                           ("BTA SSIM", "bta_ssim")):
            values = np.array([r["summary"][key] for r in runs])
            row[label] = pm(values.mean(), values.std(), key.split("_")[1])
        row["time (s)"] = round(float(np.mean([r["timing"]["train_seconds"] for r in runs])), 2)
        row.update(paper_psnr(3, method, retain_fraction=fraction))
        rows.append(row)
    return pd.DataFrame(rows).set_index(["retain %", "method"])


def cross_anatomy(records: dict) -> pd.DataFrame:
    """Each model on the brain and knee tests (PSNR over the volumes of all seeds), with the
    paper's; ``records`` may hold ("zero-filled", seed) entries, the input each model starts
    from."""
    rows = {}
    for name in ("oracle", "original", "zero-filled"):
        if not any(n == name for n, _ in records):
            continue
        row = {}
        for acc, label in ACCURACIES[:2]:
            values = pooled_volumes(records, name, acc, "psnr")
            row[(label, "this run")] = pm(values.mean(), values.std(), "psnr")
            row[(label, "paper")] = "–" if name == "zero-filled" else pm(
                paper.value(1, name, f"{acc}_psnr"), paper.value(1, name, f"{acc}_psnr_std"),
                "psnr")
        rows[paper.display_name(name)] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


# ------------------------------------------------------------------ code shown on the page

PAGE_WIDTH = 76  # characters of a code line a page shows unclipped in a 1300-px window (78)


def _split_code(line: str, width: int) -> list[str]:
    """A code line longer than ``width`` broken after commas, each continuation aligned just
    inside the bracket still open at the break, or at the line's own indentation when the
    bracket opened on an earlier line (a parameter list): the same Python, broken as one would
    by hand. A line with no comma to break at stays whole."""
    out = []
    while len(line) > width:
        cut = line.rfind(", ", 0, width)
        if cut < 0 or not line[:cut].strip():
            break
        head, rest = line[:cut + 1], line[cut + 2:]
        opened = []
        for i, ch in enumerate(head):
            if ch in "([{":
                opened.append(i)
            elif ch in ")]}" and opened:
                opened.pop()
        indent = opened[-1] + 1 if opened else len(head) - len(head.lstrip())
        out.append(head)
        line = " " * indent + rest
    return out + [line]


def source_listing(function, width: int = PAGE_WIDTH) -> str:
    """The source of ``function`` as a Markdown code block whose lines fit ``width``: code
    lines broken after commas (``_split_code``), docstring paragraphs with a long line
    re-filled at their own indentation. The code is the library's, unchanged but for where its
    lines break."""
    import inspect
    import textwrap

    lines, paragraph, in_doc = [], [], False

    def flush():
        if any(len(p) > width for p in paragraph):
            pad = " " * (len(paragraph[0]) - len(paragraph[0].lstrip()))
            lines.extend(textwrap.wrap(" ".join(p.strip() for p in paragraph), width,
                                       initial_indent=pad, subsequent_indent=pad,
                                       break_long_words=False, break_on_hyphens=False))
        else:
            lines.extend(paragraph)
        paragraph.clear()

    for line in inspect.getsource(function).splitlines():
        quotes = line.count('"""') % 2 == 1
        inside = in_doc and not quotes and line.strip()  # a docstring's text line
        if inside:
            paragraph.append(line)
        else:
            flush()
            lines.extend(_split_code(line, width) if not in_doc else [line])
        in_doc ^= quotes
    flush()
    return "```python\n" + "\n".join(lines) + "\n```"
