"""The paper's tables rebuilt from this run's records, each beside the paper's own numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import paper
from ..measures.study import pooled_volumes

ACCURACIES = (("bta", "BTA (brain test)"), ("kta", "KTA (knee test)"), ("ua", "UA (forget set)"))
DISPLAY = {"oracle": "Oracle (G-hat)", "original": "G", "zero-filled": "zero-filled input"}


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
        rows[DISPLAY.get(name, name)] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def table2(records: dict, methods, train_epochs: int) -> pd.DataFrame:
    """Table 2: BTA and KTA after every unlearning epoch (seed 0), ours beside the paper's."""
    rows = []
    for method in methods:
        record = records[(method, 0)] if (method, 0) in records else records[method]
        for entry in record["history"]:
            m, k = entry["metrics"], entry["epoch"]
            paper_epoch = 50 + k
            row = {"method": method, "epoch (ours)": f"{train_epochs}+{k}",
                   "BTA PSNR": pm(m["bta_psnr"], m["bta_psnr_std"], "psnr"),
                   "KTA PSNR": pm(m["kta_psnr"], m["kta_psnr_std"], "psnr"),
                   "BTA SSIM": pm(m["bta_ssim"], m["bta_ssim_std"], "ssim"),
                   "KTA SSIM": pm(m["kta_ssim"], m["kta_ssim_std"], "ssim")}
            try:
                row["paper epoch"] = paper_epoch
                row["paper BTA PSNR"] = pm(paper.value(2, method, "bta_psnr", epoch=paper_epoch),
                                           paper.value(2, method, "bta_psnr_std", epoch=paper_epoch), "psnr")
                row["paper KTA PSNR"] = pm(paper.value(2, method, "kta_psnr", epoch=paper_epoch),
                                           paper.value(2, method, "kta_psnr_std", epoch=paper_epoch), "psnr")
            except KeyError:
                row["paper BTA PSNR"] = row["paper KTA PSNR"] = "–"
            rows.append(row)
    return pd.DataFrame(rows).set_index(["method", "epoch (ours)"])


def table3(records: dict) -> pd.DataFrame:
    """Table 3: BTA and KTA against retain fraction per method, ours beside the paper's."""
    rows = []
    for (method, fraction), r in sorted(records.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        s = r["summary"]
        row = {"retain %": round(100 * fraction, 1), "method": method,
               "BTA PSNR": pm(s["bta_psnr"], s["bta_psnr_std"], "psnr"),
               "KTA PSNR": pm(s["kta_psnr"], s["kta_psnr_std"], "psnr"),
               "BTA SSIM": pm(s["bta_ssim"], s["bta_ssim_std"], "ssim"),
               "time (s)": round(r["timing"]["train_seconds"], 2)}
        for col, key in (("paper BTA PSNR", "bta_psnr"), ("paper KTA PSNR", "kta_psnr")):
            try:
                row[col] = pm(paper.value(3, method, key, retain_fraction=fraction),
                              paper.value(3, method, f"{key}_std", retain_fraction=fraction), "psnr")
            except KeyError:
                row[col] = "–"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["retain %", "method"])


def cross_anatomy(records: dict) -> pd.DataFrame:
    """Each model on the brain and knee tests (PSNR over the volumes of all seeds), with the
    paper's; ``records`` may hold ("zero-filled", seed) entries, the input each model starts from."""
    rows = {}
    for name in ("oracle", "original", "zero-filled"):
        if not any(n == name for n, _ in records):
            continue
        row = {}
        for acc, label in ACCURACIES[:2]:
            values = pooled_volumes(records, name, acc, "psnr")
            row[(label, "this run")] = pm(values.mean(), values.std(), "psnr")
            row[(label, "paper")] = "–" if name == "zero-filled" else pm(
                paper.value(1, name, f"{acc}_psnr"), paper.value(1, name, f"{acc}_psnr_std"), "psnr")
        rows[DISPLAY[name]] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame
