"""Trade-off frontiers: how much of the knowledge gap a method removes, and at what brain cost,
as its strength knob turns; and the methods compared where they forget equally.

A method's knob (NL's rho, GA's ascent weight, SalUn's saliency...) trades forgetting against
the brain. Comparing methods each at one knob value, chosen however, compares two choices. The
fair comparison is at matched forgetting: each method's brain cost where its frontier crosses
the same share of the gap (1: down to the oracle's knee accuracy; 0.5: half-way), found per
seed by linear interpolation between the two runs around the crossing.

``share`` is (KTA(G) - KTA(M)) / (KTA(G) - KTA(G-hat)) (``scorecard.gap_removed``);
``cost`` is BTA(G-hat) - BTA(M) in dB (positive: brain lost against the oracle).
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import paper
from .intervals import interval

TARGETS = (1.0, 0.5)  # shares of the gap at which methods are compared


@dataclass(frozen=True)
class Knob:
    """How a method's strength is searched: the job keyword ``name``, the ``start`` values run
    on every seed, the runs per seed in all (``points``), which way forgets more (``stronger``
    "up" or "down"), and the values allowed: a ``grid`` (discrete knobs), else any value
    within ``bounds`` (searched in log scale, ``factor`` per step outward)."""

    name: str
    start: tuple
    points: int
    stronger: str = "up"
    bounds: tuple = (0.0, float("inf"))
    grid: tuple = ()
    factor: float = 4.0


def point(record: dict, g: dict, oracle: dict) -> dict:
    """The share of the gap a run removed and its brain cost, from its record and its seed's G
    and G-hat."""
    gap = g["summary"]["kta_psnr"] - oracle["summary"]["kta_psnr"]
    if gap == 0:
        raise ValueError("the knowledge gap KTA(G) - KTA(G-hat) is exactly 0: no share of it "
                         "can be removed")
    return {"share_removed": (g["summary"]["kta_psnr"] - record["summary"]["kta_psnr"]) / gap,
            "bta_cost": oracle["summary"]["bta_psnr"] - record["summary"]["bta_psnr"]}


def _ordered(knob: Knob, values) -> list:
    """Values from the weakest to the strongest."""
    return sorted(values, reverse=knob.stronger == "down")


def _between(knob: Knob, a, b):
    """A value between a and b: the grid's middle one (None if they are adjacent), else their
    geometric mean."""
    if knob.grid:
        lo, hi = sorted((a, b))
        inside = [g for g in knob.grid if lo < g < hi]
        return inside[len(inside) // 2] if inside else None
    return _round((a * b) ** 0.5)


def _round(value: float) -> float:
    """Three significant figures: a knob value a reader can retype, the same on every run."""
    return float(f"{value:.3g}")


def _beyond(knob: Knob, value, stronger: bool):
    """The next value past ``value`` (stronger or weaker), or None outside the allowed values."""
    up = stronger == (knob.stronger == "up")
    if knob.grid:
        past = [g for g in knob.grid if (g > value if up else g < value)]
        return (min(past) if up else max(past)) if past else None
    lo, hi = knob.bounds
    if value >= hi if up else value <= lo:
        return None
    nxt = value * knob.factor if up else value / knob.factor
    return _round(min(max(nxt, lo), hi))


def next_value(knob: Knob, shares: dict, target: float = 1.0):
    """The next knob value to run for one seed, given ``{value: share removed}`` so far: past
    the strongest value while none reaches ``target``, below the weakest while all overshoot
    it, else between the two values around the first crossing. None when the budget
    (``knob.points``) is spent or the search cannot go further."""
    if len(shares) >= knob.points:
        return None
    order = _ordered(knob, shares)
    for weak, strong in zip(order, order[1:]):
        if (shares[weak] - target) * (shares[strong] - target) <= 0:
            value = _between(knob, weak, strong)
            return None if value is None or value in shares else value
    if all(s < target for s in shares.values()):
        return _beyond(knob, order[-1], stronger=True)
    return _beyond(knob, order[0], stronger=False)


def crossing(points: list[dict], target: float) -> dict:
    """Where one seed's frontier (points with ``knob``, ``share_removed``, ``bta_cost``, from
    weakest to strongest) first crosses ``target``: ``{"cost": dB, "knob": value}``, or
    ``{"cost": None, "reason": ...}`` saying where it stops."""
    for a, b in zip(points, points[1:]):
        sa, sb = a["share_removed"], b["share_removed"]
        if (sa - target) * (sb - target) <= 0 and sa != sb:
            w = (target - sa) / (sb - sa)
            return {"cost": a["bta_cost"] + w * (b["bta_cost"] - a["bta_cost"]),
                    "knob": a["knob"] + w * (b["knob"] - a["knob"])}
        if sa == sb == target:
            return {"cost": a["bta_cost"], "knob": a["knob"]}
    if len(points) == 1 and points[0]["share_removed"] == target:
        return {"cost": points[0]["bta_cost"], "knob": points[0]["knob"]}
    shares = [p["share_removed"] for p in points]
    if max(shares) < target:
        return {"cost": None, "reason": f"stops at share {max(shares):.2f}"}
    return {"cost": None, "reason": f"starts above it (share {min(shares):.2f} at its weakest)"}


def frontier(records: dict, models: dict, knob: Knob) -> list[dict]:
    """One seed's frontier: ``records`` {knob value: record}, ``models`` {"original": G's
    record, "oracle": G-hat's}; points from the weakest value to the strongest."""
    out = []
    for value in _ordered(knob, records):
        r = records[value]
        p = {"knob": value, **point(r, models["original"], models["oracle"])}
        if "noise" in r:
            p["rho"], p["lambda"] = r["noise"]["rho"], r["noise"]["lambda"]
        out.append(p)
    return out


def matched(frontiers: dict, target: float) -> dict:
    """Across seeds, a method's brain cost where its frontier crosses ``target``.

    Args:
        frontiers: {seed: points} of one method (``frontier``).
        target: the share of the gap removed.

    Returns ``{"cost": [mean, lo, hi], "seeds": n, "per_seed": {seed: cost}}`` over the seeds
    that reach it, with ``"missing": {seed: reason}`` for the others; ``cost`` is None when no
    seed reaches it."""
    per_seed, missing = {}, {}
    for seed, points in frontiers.items():
        c = crossing(points, target)
        if c["cost"] is None:
            missing[str(seed)] = c["reason"]
        else:
            per_seed[str(seed)] = c["cost"]
    return {"cost": list(interval(list(per_seed.values()))) if per_seed else None,
            "seeds": len(per_seed), "per_seed": per_seed, "missing": missing}


def paired_cost_difference(a: dict, b: dict, target: float = 1.0) -> dict:
    """Method a's cost at ``target`` minus method b's, paired by seed (the seeds where both
    reach it): ``{"difference": [mean, lo, hi] or None, "seeds": n}``."""
    ca = {str(s): crossing(p, target)["cost"] for s, p in a.items()}
    cb = {str(s): crossing(p, target)["cost"] for s, p in b.items()}
    diffs = [ca[s] - cb[s] for s in ca if s in cb and ca[s] is not None and cb[s] is not None]
    return {"difference": list(interval(diffs)) if diffs else None, "seeds": len(diffs)}


def paper_points() -> dict:
    """The paper's NL-FT and GA-l1-FT in the same units, from its Table 1."""
    g, o = (paper.value(1, n, "kta_psnr") for n in ("original", "oracle"))
    out = {}
    for m in ("NL-FT", "GA-l1-FT"):
        out[m] = {"share_removed": (g - paper.value(1, m, "kta_psnr")) / (g - o),
                  "bta_cost": paper.value(1, "oracle", "bta_psnr") - paper.value(1, m, "bta_psnr")}
    return out


def ranking(table: dict, target: float = 1.0) -> list[str]:
    """Methods that reach ``target`` on some seed, from the lowest mean cost; then the rest."""
    reach = [m for m, t in table.items() if t[target]["cost"] is not None]
    return (sorted(reach, key=lambda m: table[m][target]["cost"][0])
            + [m for m in table if m not in reach])


def separable(table: dict, first: str, second: str, target: float = 1.0) -> bool:
    """Do two methods' cost intervals at ``target`` not overlap?"""
    a, b = table[first][target]["cost"], table[second][target]["cost"]
    return a is not None and b is not None and (a[2] < b[1] or b[2] < a[1])
