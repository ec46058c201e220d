"""What runs cost, read from the results store: the wall time a record took, the records made
with a Lab's set-up, and the runs a rerun would still have to compute.

The teaching guide (``erase.report.teaching`` words it) times a lab's reruns with these.
"""
from __future__ import annotations

import numpy as np

from ..config import to_dict
from ..runs import engine


def wall_seconds(record: dict) -> float:
    """The seconds a run took as it recorded them (wall time, else training time; NaN when it
    recorded none)."""
    timing = record.get("timing") or {}
    return float(timing.get("wall_seconds", timing.get("train_seconds", np.nan)))


def same_setup(lab, config: dict) -> bool:
    """A run of ``lab``'s scale: same network, training settings and engine (a Figure 4 replay
    keeps the configuration of the run it replays under "of")."""
    config = config.get("of", config)
    return (config.get("model") == to_dict(lab.model_config)
            and config.get("train") == to_dict(lab.train_config)
            and config.get("engine") == engine.ENGINE_VERSION)


def timed_runs(lab) -> list[dict]:
    """The records of ``lab``'s store that were timed with ``lab``'s set-up."""
    return [r for r in lab.store.records()
            if r.get("timing") and same_setup(lab, r.get("config", {}))]


def seconds_by_kind(runs: list[dict], kinds) -> dict:
    """{kind: [wall seconds of each run of that kind]} for the kinds asked for ("train",
    "unlearn", "trace")."""
    return {kind: [wall_seconds(r) for r in runs if r["config"]["kind"] == kind]
            for kind in kinds}


def typical_seconds(by_kind: dict) -> dict:
    """{kind: median seconds of its runs (NaN when none ran)}."""
    return {kind: float(np.median(v)) if v else np.nan for kind, v in by_kind.items()}


def missing(pairs) -> list:
    """The (lab, job) pairs whose run is not in the store yet: what a rerun computes."""
    return [(lab, job) for lab, job in pairs if lab.stored(job) is None]


def rerun_seconds(pairs, typical: dict, workers: int) -> float:
    """Wall time of the runs ``pairs``, each at its kind's typical time (a training run at
    "train", any other at "unlearn"), spread over ``workers`` processes; NaN when a kind was
    never timed. ``pairs`` must not be empty."""
    cost = sum(typical["train" if job.kind == "train" else "unlearn"] for _, job in pairs)
    return cost / min(workers, len(pairs))
