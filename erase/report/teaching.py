"""The teaching guide's numbers in words: durations, what the runs in the store cost and on
which machines, the chapters' times in this build, and what each rerun of a lab will take
(``erase.studies.costs`` reads them from the store)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

# (The runs' modules are imported where they are used: the book's build reads TIMINGS_VARIABLE
# from here, in a process that never needs torch.)

# The chapters' timings so far: ``erase book`` writes them after each chapter to the file this
# environment variable names while the book executes (its kernels inherit it).
TIMINGS_VARIABLE = "ERASE_BOOK_TIMINGS"
# The kinds of run the guide times, as it names them.
KINDS = {"train": "training G-hat or G", "unlearn": "one unlearning run",
         "trace": "one Figure 4 replay"}


def duration(seconds: float) -> str:
    """1.5 s below ten seconds, else 45 s, 12 min, 3.4 h (erase.runs.plan.duration)."""
    from ..runs.plan import duration as _duration

    return f"{seconds:.1f} s" if seconds < 10 else _duration(seconds)


def compute_table(by_kind: dict, typical: dict) -> pd.DataFrame:
    """Per kind of run that ran: how many, the median and the total seconds."""
    columns = ["kind of run", "runs", "median per run (s)", "total (s)"]
    return pd.DataFrame(
        [{"kind of run": label, "runs": len(by_kind[kind]),
          "median per run (s)": round(typical[kind], 1),
          "total (s)": round(float(np.sum(by_kind[kind])), 1)}
         for kind, label in KINDS.items() if by_kind[kind]],
        columns=columns).set_index("kind of run")


def machines(runs: list[dict]) -> str:
    """The machines the runs recorded ("x86_64, 2 CPUs; ..."), or "no machine recorded"."""
    found = set()
    for r in runs:
        env = r.get("environment")
        if env:
            found.add(f"{env.get('processor') or '?'}, {env.get('cpus') or '?'} CPUs"
                      + (f", {env.get('gpu')}" if env.get("gpu") else ""))
    return "; ".join(sorted(found)) or "no machine recorded"


def rerun_cost(pairs, typical: dict, workers: int) -> str:
    """What the missing runs ``pairs`` of a rerun take, in words."""
    from ..studies import costs

    if not pairs:
        return "no new run: every run it needs is in the store"
    seconds = costs.rerun_seconds(pairs, typical, workers)
    if np.isnan(seconds):
        return f"{len(pairs)} new run(s), time not measured at this scale"
    return f"{len(pairs)} new run(s), about {duration(seconds)} of training"


def chapter_times(path=None) -> pd.DataFrame | None:
    """The chapters' seconds in this build so far (from ``path``, default: the file
    ``erase book`` names in ERASE_BOOK_TIMINGS), or None outside ``erase book``."""
    path = path if path is not None else os.environ.get(TIMINGS_VARIABLE)
    so_far = json.loads(Path(path).read_text()) if path and Path(path).is_file() else None
    if not (so_far and so_far.get("chapters")):
        return None
    return pd.DataFrame([{"chapter": Path(doc).name, "seconds": round(t["seconds"], 1)}
                         for doc, t in so_far["chapters"].items()]).set_index("chapter")
