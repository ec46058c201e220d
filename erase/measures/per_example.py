"""Has it forgotten, slice by slice? A per-example membership test in the manner of LiRA.

The population tests of ``audit`` ask whether D_f as a whole looks like unseen knees. Hayes et
al. (SaTML 2025) show that such tests overestimate forgetting: vulnerability differs from slice
to slice, and a few slices that still look like members vanish in an average. The test here
decides per slice, against models that trained on it and models that did not.

The protocol gives those reference models for free. Each seed draws its own forget set from the
same knee volumes and its own retain set from the same brains, so for a slice x and a model M of
seed s, the models of the *other* seeds are:

* "in" references: the G's whose forget set held x (for a brain slice: the G's and G-hats whose
  retain set held it);
* "out" references: every G-hat for a knee (no oracle ever sees a knee), and the G's whose
  forget set missed x (for a brain: the models whose retain set missed it).

Leaving out seed s keeps M's own G and oracle out of its references, for G, for G-hat and for
every method alike. M's score for x is the log-likelihood ratio of its log-loss under a normal
fitted to the "in" references' log-losses on x against one fitted to the "out" ones: per-slice
means, one variance per side pooled over slices (LiRA's fixed-variance variant, for few
shadows), and, where x has no reference on one side, that side's mean shifted from the other
by the median shift over slices that have both. Positive: x looks like a member of M.

The attack is scored, seeds pooled, on slices whose membership in M's G is known: D_f of seed s
(members) against the knees G_s never trained on (non-members); on brains, retain against
held-out brains. G-hat is the control: it never saw D_f, so its attack must sit at chance.

What this is not: U-LiRA (Hayes et al.) draws its "out" references from models that were
themselves *unlearned* on many random forget sets; ours are trained models (G-hats and G's that
never saw x), a handful per slice. It tests "does M look like a model that never trained on x",
not "does M look like other unlearned models"; with five seeds a knee slice has up to four
"in" references and four to eight "out" ones, and the intervals say how thin that is.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

REFERENCES = ("original", "oracle")  # the trained models that stand as references
CONTROL = "oracle"  # G-hat: it never saw D_f, its attack must sit at chance
PARTS = {"knee": "forget", "brain": "retain"}  # pool -> the split whose slices are members
FPRS = (0.01, 0.05)  # false-positive rates at which the attack's true-positive rate is read
MIN_DOF = 10  # pooled within-slice degrees of freedom below which a side's spread is across slices
HARDEST = 0.1  # the share of each seed's D_f most exposed under its G: the hardest slices
MIN_ERRORS = 5  # errors of each kind a threshold needs before its epsilon is counted
N_BOOT = 200  # bootstrap resamples (seeds, then slices within each) for every interval
CHANCE_MARGIN = 0.05  # |AUC - 0.5| within which an attack is "at chance" (audit's EQUIVALENCE)


def slice_ids(entries: list[dict]) -> list[str]:
    """Slice ids ``"<file name>#<index>"`` of manifest entries (``audit.slice_losses``'s form)."""
    return [f"{entry['path'].rsplit('/', 1)[-1]}#{i}" for entry in entries
            for i in range(entry["slices"])]


def memberships(manifests: dict) -> dict:
    """{seed: {"knee": ids of its forget set, "brain": ids of its retain set}} from each seed's
    split manifest: which pool slices that seed's G trained on."""
    return {seed: {part: frozenset(slice_ids(m["splits"][split])) for part, split in PARTS.items()}
            for seed, m in manifests.items()}


def trained_on(name: str, seed, part: str, members: dict) -> frozenset:
    """The pool slices a reference model trained on: G on its forget and retain sets, G-hat on
    its retain set only."""
    if part == "knee" and name == CONTROL:
        return frozenset()
    return members[seed][part]


def references(pools: dict, members: dict, part: str, seed, loss: str = "ssim_loss"):
    """Per slice, the log-losses of the reference models of every seed but ``seed``, split by
    whether they trained on it: ({id: [in values]}, {id: [out values]})."""
    ins: dict[str, list] = {}
    outs: dict[str, list] = {}
    for (name, s), pool in pools.items():
        if name not in REFERENCES or s == seed:
            continue
        seen = trained_on(name, s, part, members)
        for x, value in pool[part][loss].items():
            (ins if x in seen else outs).setdefault(x, []).append(np.log(value))
    return ins, outs


def _spread(groups: dict) -> float:
    """One standard deviation for a side: pooled within slices when enough slices have repeats,
    else across every value of that side."""
    repeats = [np.asarray(v) for v in groups.values() if len(v) > 1]
    dof = sum(len(v) - 1 for v in repeats)
    if dof >= MIN_DOF:
        return float(np.sqrt(sum(((v - v.mean()) ** 2).sum() for v in repeats) / dof))
    values = np.concatenate([np.asarray(v) for v in groups.values()]) if groups else np.empty(0)
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def fit(ins: dict, outs: dict) -> tuple:
    """The two normals of every slice from its reference log-losses: (per-slice "in" means,
    per-slice "out" means, the median in-minus-out shift over slices that have both, the "in"
    spread, the "out" spread)."""
    mu_in = {x: sum(v) / len(v) for x, v in ins.items()}
    mu_out = {x: sum(v) / len(v) for x, v in outs.items()}
    both = [mu_in[x] - mu_out[x] for x in mu_in.keys() & mu_out.keys()]
    if both:
        shift = float(np.median(both))
    else:  # no slice has both sides (one other seed): the difference of the sides' means
        shift = (float(np.mean(list(mu_in.values())) - np.mean(list(mu_out.values())))
                 if mu_in and mu_out else float("nan"))
    return mu_in, mu_out, shift, _spread(ins), _spread(outs)


def lira_scores(target: dict, ins: dict, outs: dict, fitted: tuple | None = None) -> dict:
    """{slice id: log N(t; in) - log N(t; out)} for every slice of ``target`` ({id: loss}),
    t its log-loss; a slice with references on one side only takes the other side's mean
    moved by the median shift.

    Args:
        target: the tested model's per-slice losses.
        ins, outs: the reference log-losses of models that did / did not train on each slice
            (``references``).
        fitted: ``fit(ins, outs)`` when already made (the same references serve every model
            of a seed).
    """
    mu_in, mu_out, shift, sd_in, sd_out = fitted or fit(ins, outs)
    ids = list(target)
    t = np.log([target[x] for x in ids])
    m_in = np.array([mu_in.get(x, mu_out.get(x, np.nan) + shift) for x in ids])
    m_out = np.array([mu_out.get(x, mu_in.get(x, np.nan) - shift) for x in ids])
    ratio = stats.norm.logpdf(t, m_in, sd_in) - stats.norm.logpdf(t, m_out, sd_out)
    return dict(zip(ids, ratio.tolist()))


_FITS: dict = {}  # (id of the pools, pool, seed, loss) -> fit: one fit per seed, every model


def scores_of(pools: dict, members: dict, name: str, seed, part: str,
              loss: str = "ssim_loss") -> dict:
    """{slice id: score} of model ``name`` of ``seed`` on one pool (``"knee"`` or
    ``"brain"``), against the references of the other seeds."""
    memo = (id(pools), part, seed, loss)
    kept = _FITS.get(memo)
    if kept is None or kept[0] is not pools:  # the entry holds its pools: an id is not reused
        if len(_FITS) > 64:
            _FITS.clear()
        kept = _FITS[memo] = (pools, fit(*references(pools, members, part, seed, loss)))
    return lira_scores(pools[(name, seed)][part][loss], {}, {}, kept[1])


def by_membership(scores: dict, seen: frozenset) -> tuple[np.ndarray, np.ndarray]:
    """(scores of the slices in ``seen``, scores of the others), in slice-id order; a slice
    whose score is undefined (too few references to fit a side) is left out."""
    ids = [x for x in sorted(scores) if np.isfinite(scores[x])]
    return (np.array([scores[x] for x in ids if x in seen]),
            np.array([scores[x] for x in ids if x not in seen]))


def pooled(pools: dict, members: dict, name: str, seeds, part: str = "knee",
           loss: str = "ssim_loss") -> tuple[np.ndarray, np.ndarray]:
    """(member, non-member) scores of a model over ``seeds``, pooled: members are the slices
    each seed's G trained on (the attack's ROC, the chapter's figure)."""
    parts = [by_membership(scores_of(pools, members, name, s, part, loss), members[s][part])
             for s in seeds if (name, s) in pools]
    return tuple(np.concatenate(v) for v in zip(*parts))


# ------------------------------------------------------------------ the attack's numbers


def roc_numbers(members, non_members) -> dict:
    """AUC and the true-positive rate at each of ``FPRS`` (the largest TPR whose FPR does not
    exceed it, as LiRA reads its curve) of the attack "a higher score is a member"."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.r_[np.ones(len(members)), np.zeros(len(non_members))],
                            np.r_[members, non_members])
    return {"auc": auc(members, non_members),
            **{tpr_key(f): float(tpr[fpr <= f].max()) for f in FPRS}}


def tpr_key(fpr: float) -> str:
    """``"tpr_at_1pct"`` for 0.01: the key of a true-positive rate in the results."""
    return f"tpr_at_{100 * fpr:g}pct"


def epsilon(members, non_members, min_errors: int = MIN_ERRORS) -> float:
    """The unlearning challenge's epsilon read from one attack over pooled slices: the largest
    max(log((1 - FPR) / FNR), log((1 - FNR) / FPR)) over thresholds with at least
    ``min_errors`` false positives and false negatives (delta 0). NaN when no threshold has
    that many errors of both kinds. The challenge estimates each example's error rates over
    hundreds of models; five seeds cannot, so this is one epsilon for the pooled slices."""
    members, non_members = np.sort(members), np.sort(non_members)
    best = float("nan")
    for threshold in np.unique(np.r_[members, non_members]):
        false_neg = np.searchsorted(members, threshold, side="left")  # members called out
        false_pos = len(non_members) - np.searchsorted(non_members, threshold, side="left")
        if false_neg < min_errors or false_pos < min_errors:
            continue
        fnr, fpr = false_neg / len(members), false_pos / len(non_members)
        with np.errstate(divide="ignore"):  # 1 - FPR = 0: log 0, never the largest
            value = max(np.log((1 - fpr) / fnr), np.log((1 - fnr) / fpr))
        best = value if np.isnan(best) else max(best, value)
    return float(best)


def auc(members, non_members) -> float:
    """P(score of a member > score of a non-member) + half the ties (Mann-Whitney, counted on
    the sorted non-members: scikit-learn's ``roc_auc_score``, fast enough to bootstrap)."""
    members, non_members = np.asarray(members, float), np.sort(np.asarray(non_members, float))
    if len(members) == 0 or len(non_members) == 0:
        return float("nan")
    below = np.searchsorted(non_members, members, side="left")
    ties = np.searchsorted(non_members, members, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(members) * len(non_members)))


def member_share(members, non_members=None) -> float:
    """The share of ``members`` whose score says "member" (above 0: the likelihood ratio
    favours a model that trained on the slice)."""
    return float(np.mean(np.asarray(members) > 0)) if len(members) else float("nan")


STATISTICS = {"auc": auc, "member_share": member_share}


def bootstrap(by_seed: list, statistics=STATISTICS, seed: int = 0) -> dict:
    """{name: [value on the pooled slices, 2.5 and 97.5 percentiles]} of each statistic over
    ``N_BOOT`` resamples: seeds with replacement, then slices within each drawn seed (members
    and non-members apart), the same draws for every statistic.

    Args:
        by_seed: [(member scores, non-member scores)] per seed.
        statistics: {name: function(members, non_members)}.
    """
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in statistics}
    for _ in range(N_BOOT):
        picks = [by_seed[i] for i in rng.integers(len(by_seed), size=len(by_seed))]
        sample = [np.concatenate([v[rng.integers(len(v), size=len(v))] for v in side])
                  for side in zip(*picks)]
        for name, statistic in statistics.items():
            draws[name].append(statistic(*sample))
    whole = [np.concatenate(side) for side in zip(*by_seed)]
    return {name: [statistics[name](*whole), *map(float, np.nanpercentile(draws[name],
                                                                         [2.5, 97.5]))]
            for name in statistics}


def part_audit(by_seed: list, hardest: list | None = None) -> dict:
    """The numbers of one model on one pool, seeds pooled. ``by_seed``: [(member scores,
    non-member scores)] per seed; ``hardest``: per seed, the member scores of the slices
    hardest under G (knees only)."""
    members = np.concatenate([m for m, _ in by_seed])
    non_members = np.concatenate([n for _, n in by_seed])
    intervals = bootstrap(by_seed)
    out = {"members": int(len(members)), "non_members": int(len(non_members)),
           **roc_numbers(members, non_members), "auc_interval": intervals["auc"][1:],
           "member_share": intervals["member_share"], "epsilon": epsilon(members, non_members)}
    if hardest is not None:
        out["hardest_member_share"] = bootstrap([(h, h) for h in hardest],
                                                {"share": member_share})["share"]
    return out


def hardest_ids(pools: dict, members: dict, seed, loss: str = "ssim_loss") -> list[str]:
    """The ``HARDEST`` share of a seed's D_f slices with the highest scores under its G."""
    scores = scores_of(pools, members, "original", seed, "knee", loss)
    forget = sorted(members[seed]["knee"], key=lambda x: -scores[x])
    return forget[:max(1, int(round(HARDEST * len(forget))))]


def audit_model(pools: dict, members: dict, name: str, seeds, loss: str = "ssim_loss") -> dict:
    """Forget (knee) and retain (brain) numbers of one model over ``seeds``."""
    seeds = [s for s in seeds if (name, s) in pools]
    knee, hardest, brain = [], [], []
    for s in seeds:
        scores = scores_of(pools, members, name, s, "knee", loss)
        knee.append(by_membership(scores, members[s]["knee"]))
        hardest.append(np.array([scores[x] for x in hardest_ids(pools, members, s, loss)]))
        brain.append(by_membership(scores_of(pools, members, name, s, "brain", loss),
                                   members[s]["brain"]))
    return {"seeds": [str(s) for s in seeds], "forget": part_audit(knee, hardest),
            "retain": part_audit(brain)}


# ------------------------------------------------------------------ what it says

FINDS, AT_CHANCE, BELOW, UNDECIDED = "finds D_f", "at chance", "below chance", "undecided"


def reading(forget: dict) -> str:
    """What the per-example attack says of a model's D_f, from its AUC's interval: "finds D_f"
    above 0.5 + ``CHANCE_MARGIN``, "at chance" inside 0.5 ± it, "below chance" below it
    (D_f now looks less like a member than unseen knees), else "undecided"."""
    lo, hi = forget["auc_interval"]
    if lo > 0.5 + CHANCE_MARGIN:
        return FINDS
    if hi < 0.5 - CHANCE_MARGIN:
        return BELOW
    if 0.5 - CHANCE_MARGIN <= lo and hi <= 0.5 + CHANCE_MARGIN:
        return AT_CHANCE
    return UNDECIDED


def control_at_chance(control: dict) -> bool:
    """The test's premise: on the control, which never saw D_f, the attack's AUC interval
    holds one half (it finds nothing). A premise, not an equivalence: "at chance" above asks
    more, an interval inside 0.5 +- ``CHANCE_MARGIN``."""
    lo, hi = control["forget"]["auc_interval"]
    return bool(lo <= 0.5 <= hi)


# what each population category of ``audit.categories`` expects the per-example attack to say
EXPECTED = {"forgot": AT_CHANCE, "forgot, at a cost": AT_CHANCE, "still remembers": FINDS,
            "over-unlearned": BELOW}


def agreement(per_example: str, population: str | None) -> str:
    """Whether the per-example reading agrees with the population tests' category:
    "agrees", "disagrees", or "no comparison" (an undecided side, or a category, such as
    "worse everywhere", that expects nothing of the attack)."""
    expected = EXPECTED.get(population)
    if expected is None or per_example == UNDECIDED:
        return "no comparison"
    return "agrees" if expected == per_example else "disagrees"


def scorecard_entry(pools: dict, members: dict, names, seeds, population: dict | None = None,
                    loss: str = "ssim_loss") -> dict:
    """What ``scorecard.json`` keeps under ``beyond_paper.per_example_audit``: per model (the
    control, G, then ``names``), the forget and retain numbers, the reading and, for methods,
    its agreement with ``population`` ({method: ``audit.categories`` value})."""
    population = population or {}
    if len(list(seeds)) < 2:
        return {"loss": loss, "seeds": [str(s) for s in seeds], "control": CONTROL,
                "control_at_chance": False, "fprs": list(FPRS), "hardest_share": HARDEST,
                "models": {}, "not_run": "the per-example test takes its reference models "
                                        "from the other seeds: it needs at least 2 seeds"}
    models = {}
    for name in dict.fromkeys((CONTROL, "original", *names)):
        if not any((name, s) in pools for s in seeds):
            continue
        result = audit_model(pools, members, name, seeds, loss)
        result["reading"] = reading(result["forget"])
        if name in population:
            result["population"] = population[name]
            result["agreement"] = agreement(result["reading"], population[name])
        models[name] = result
    return {"loss": loss, "seeds": [str(s) for s in seeds], "control": CONTROL,
            "control_at_chance": CONTROL in models and control_at_chance(models[CONTROL]),
            "fprs": list(FPRS),
            "hardest_share": HARDEST, "models": models}


# ------------------------------------------------------------------ for the chapter


def _cell(values, digits: int = 2) -> str:
    mean, lo, hi = values
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def table(entry: dict):
    """One row per model: the forget attack (AUC with its interval, TPR at each FPR, share of
    forget slices still "member", the same among the hardest), its epsilon, the retain attack,
    the reading and, for methods, the population tests' category and the agreement."""
    import pandas as pd

    from ..paper import display_name

    rows = []
    for name, m in entry["models"].items():
        forget, retain = m["forget"], m["retain"]
        rows.append({
            "model": display_name(name),
            "AUC": _cell([forget["auc"], *forget["auc_interval"]]),
            "TPR at " + " / ".join(f"{100 * f:g}" for f in entry["fprs"]) + "% FPR":
                " / ".join(f"{forget[tpr_key(f)]:.3f}" for f in entry["fprs"]),
            "still member": _cell(forget["member_share"]),
            "hardest still member": _cell(forget["hardest_member_share"]),
            "epsilon": "" if np.isnan(forget["epsilon"]) else f"{forget['epsilon']:.2f}",
            "retain AUC": _cell([retain["auc"], *retain["auc_interval"]]),
            "per-example reading": m["reading"],
            "population tests": m.get("population", ""),
            "agreement": m.get("agreement", ""),
        })
    return pd.DataFrame(rows).set_index("model")


def _verb(reading: str) -> str:
    """A reading as what the attack does: "finds D_f", "is at chance", "is undecided"."""
    return reading if reading == FINDS else f"is {reading}"


def sentences(entry: dict) -> list[str]:
    """A plain reading chosen from the numbers: the control, G, then each method's reading
    against the population tests' and its hardest slices."""
    from ..paper import display_name

    models = entry["models"]
    out = []
    control = models.get(CONTROL)
    if control is not None:
        auc_text = _cell([control["forget"]["auc"], *control["forget"]["auc_interval"]])
        out.append(f"The control, G-hat, which never saw D_f: AUC {auc_text}, "
                   + ("its interval holds one half, as the test needs." if
                      entry["control_at_chance"] else
                      "its interval leaves out one half: the test's premise does not hold on "
                      "these seeds, and its readings of the methods are weak evidence."))
    g = models.get("original")
    if g is not None:
        out.append(f"G: the attack {_verb(g['reading'])} (AUC "
                   f"{_cell([g['forget']['auc'], *g['forget']['auc_interval']])}, TPR "
                   f"{g['forget'][tpr_key(FPRS[0])]:.3f} at {100 * FPRS[0]:g}% FPR); "
                   f"{g['forget']['member_share'][0]:.0%} of its forget slices score as "
                   f"members, against {control['forget']['member_share'][0]:.0%} on the control."
                   if control is not None else f"G: the attack {_verb(g['reading'])}.")
    for name, m in models.items():
        if name in (CONTROL, "original"):
            continue
        forget = m["forget"]
        hardest = forget["hardest_member_share"][0]
        g_hardest = g["forget"]["hardest_member_share"][0] if g is not None else float("nan")
        verb = {"agrees": "agreeing with", "disagrees": "against",
                "no comparison": "not comparable with"}[m.get("agreement", "no comparison")]
        out.append(f"{display_name(name)}: {m['reading']} (AUC {forget['auc']:.2f} "
                   f"[{forget['auc_interval'][0]:.2f}, {forget['auc_interval'][1]:.2f}]), "
                   f"{verb} the population tests ({m.get('population', 'no category')}); of "
                   f"the slices hardest under G, {hardest:.0%} still score as members "
                   f"({g_hardest:.0%} under G).")
    return out
