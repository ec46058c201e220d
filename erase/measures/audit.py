"""Has it forgotten? Membership inference and distribution tests, judged against the oracle.

Every run's record keeps, per test split, each slice's losses
(``record["metrics"][split]["per_slice"][fname] = {"ssim_loss": [...], "nmse": [...]}``,
one value per slice of the volume). An auditor who holds a model M and the forget set asks
whether M's losses on D_f (``ua``: slices G trained on) look like losses on slices it never
saw. The natural non-members are the knee test set D_ft (``kta``: same anatomy, never trained
on); the brain test set D_rt (``bta``) is where a model must keep the oracle's quality.

Conventions (each function says which it follows):

* a score is a per-slice loss, "ssim_loss" (1 - SSIM, the default) or "nmse";
* AUC is oriented so that members have the LOWER loss: AUC > 0.5 means "D_f looks like a
  member" (the loss-threshold attack of Shokri et al. 2017 / Yeom et al. 2018, read as a ROC
  curve by scikit-learn);
* every number is judged against the same seed's oracle G-hat, which never saw D_f, never
  against 0 or 1: an unlearned model should look like G-hat. A model whose losses are far
  worse than the oracle's on D_rt and D_ft has not "forgotten": it is "worse everywhere"
  (``CRITERIA`` and ``categories`` say so), even when an attack can no longer find D_f.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..paper import display_name
from ..runs.methods import UNLEARNING
from .intervals import estimate_text, interval
from .scorecard import FAILS, HOLDS, UNSURE, Criterion, Finding, findings

LOSSES = ("ssim_loss", "nmse")
MEMBERS, NON_MEMBERS, KEPT = "ua", "kta", "bta"  # D_f, D_ft, D_rt in the records
REFERENCE = "oracle"
N_SPLITS = 10  # the challenge kit's cross-validation splits (and at most as many folds)
TEST_SHARE = 0.1  # held out per split (StratifiedShuffleSplit's default, as the kit ran it)

# ------------------------------------------------------------------ per-slice scores


def slice_losses(record: dict, split: str, loss: str = "ssim_loss") -> dict[str, float]:
    """{slice id: loss} of a run on one test split ("ua", "kta", "bta"); a slice id is
    ``"<file name>#<index in the volume>"``."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}: choose one of {', '.join(LOSSES)}")
    try:
        per_slice = record["metrics"][split]["per_slice"]
    except KeyError:
        raise KeyError(f"run {record.get('name', '?')!r} has no per-slice losses on {split!r}: "
                       f"its record predates them; evaluate it again") from None
    return {f"{fname}#{i}": float(v) for fname, values in sorted(per_slice.items())
            for i, v in enumerate(values[loss])}


def scores(record: dict, split: str, loss: str = "ssim_loss") -> np.ndarray:
    """The per-slice losses of a run on a split, in slice-id order."""
    return np.array(list(slice_losses(record, split, loss).values()))


def paired(record: dict, oracle: dict, split: str, loss: str = "ssim_loss"):
    """(model's, oracle's) per-slice losses on the same slices, aligned by slice id; the two
    runs must come from the same split (the same seed)."""
    mine, theirs = slice_losses(record, split, loss), slice_losses(oracle, split, loss)
    if mine.keys() != theirs.keys():
        raise ValueError(f"{record.get('name', '?')} and {oracle.get('name', '?')} were not "
                         f"evaluated on the same {split!r} slices: compare runs of one seed")
    return np.array(list(mine.values())), np.array([theirs[k] for k in mine])


# ------------------------------------------------------------------ membership inference


def _labelled(members, non_members):
    members, non_members = np.asarray(members, float), np.asarray(non_members, float)
    y = np.r_[np.ones(len(members), int), np.zeros(len(non_members), int)]
    return np.r_[members, non_members], y


def membership_auc(members, non_members) -> float:
    """ROC AUC of the loss-threshold attack, members (D_f) against non-members (D_ft).

    The attack's score is minus the loss, so 0.5 is chance and AUC > 0.5 means members have
    lower losses (the model "remembers" them); equal to P(loss of a member < loss of a
    non-member) + half the ties. NaN when either set is empty."""
    from sklearn.metrics import roc_auc_score

    if len(members) == 0 or len(non_members) == 0:
        return float("nan")
    x, y = _labelled(members, non_members)
    return float(roc_auc_score(y, -x))


def _attack(x_train, y_train, x_test) -> np.ndarray:
    """The challenge kit's attack: a logistic regression (scikit-learn, default settings) on
    the per-slice loss, standardised by the training fold's mean and spread first (our losses
    are about a hundred times smaller than cross-entropies, and the default L2 penalty would
    otherwise flatten the attack to its intercept). Predicted membership of ``x_test``.
    (A loop over the splitter rather than ``cross_val_score``: the same fits, six times less
    overhead.)"""
    from sklearn.linear_model import LogisticRegression

    centre, spread = x_train.mean(), x_train.std() or 1.0
    model = LogisticRegression()
    model.fit(((x_train - centre) / spread)[:, None], y_train)
    return model.predict(((x_test - centre) / spread)[:, None])


def attack_accuracy(members, non_members, n_splits: int = N_SPLITS, seed: int = 0) -> float:
    """Accuracy of the NeurIPS 2023 unlearning challenge starting kit's attack (``simple_mia``):
    the larger of the two sets is subsampled (seeded) to the smaller's size so that chance is
    0.5, then a logistic regression on the per-slice loss is scored on
    ``StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=seed)`` (at least one
    slice of each class held out when the sets are tiny). Mean held-out accuracy; NaN with
    fewer than 2 slices in a class."""
    from sklearn.model_selection import StratifiedShuffleSplit

    members, non_members = np.asarray(members, float), np.asarray(non_members, float)
    n = min(len(members), len(non_members))
    if n < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    members, non_members = (rng.permutation(members)[:n], rng.permutation(non_members)[:n])
    x, y = _labelled(members, non_members)
    test = max(2, int(np.ceil(TEST_SHARE * len(y))))
    cv = StratifiedShuffleSplit(n_splits=n_splits, test_size=test, random_state=seed)
    return float(np.mean([np.mean(_attack(x[tr], y[tr], x[te]) == y[te])
                          for tr, te in cv.split(x[:, None], y)]))


def mia_efficacy(members, non_members, n_splits: int = N_SPLITS, seed: int = 0) -> float:
    """The "MIA efficacy" of Jia et al. 2023 and SalUn (Fan et al. 2024): the share of forget
    slices the attack calls non-members (true negatives / |D_f|).

    Their attack is trained where membership is known (retain against test data) with
    "member" meaning a confident, low-loss prediction, and then applied to D_f. Here the only
    knee members are D_f itself, so the attack is the loss-threshold attack whose AUC
    ``membership_auc`` reports, its direction fixed (a slice is a member when its loss is
    below the threshold) and its threshold the one that maximises tpr - fpr (Youden's J, on
    scikit-learn's ``roc_curve``) on D_f against D_ft without the slice being judged:
    out-of-fold predictions of ``StratifiedKFold(min(10, smallest class), shuffle, seeded)``.
    With no threshold better than calling nobody a member, nobody is one.

    Near 0 for a model that memorised D_f; near 1 when D_f now looks worse than unseen knees
    (over-unlearning: an auditor sees the hole). A model that saw neither set scores about a
    half, but noisily (the threshold is fitted to noise): read it against the oracle's.
    NaN with fewer than 2 slices in a class."""
    from sklearn.metrics import roc_curve
    from sklearn.model_selection import StratifiedKFold

    members, non_members = np.asarray(members, float), np.asarray(non_members, float)
    folds = min(n_splits, len(members), len(non_members))
    if folds < 2:
        return float("nan")
    x, y = _labelled(members, non_members)
    predicted = np.empty_like(y)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for tr, te in cv.split(x[:, None], y):
        fpr, tpr, thresholds = roc_curve(y[tr], -x[tr])
        predicted[te] = -x[te] >= thresholds[np.argmax(tpr - fpr)]  # the first: nobody
    return float(np.mean(predicted[y == 1] == 0))


def calibrated_auc(model_members, model_non_members, oracle_members, oracle_non_members) -> float:
    """Difficulty-calibrated attack (Watson et al. 2022; Shafran et al. 2021): each slice's
    score is loss_M(x) - loss_G-hat(x), the oracle's loss standing for how hard the slice is
    for a model that never saw it; then ``membership_auc`` on D_f against D_ft. Easy knees no
    longer look like members. The oracle's own calibrated AUC is 0.5 exactly (every score 0)."""
    return membership_auc(np.asarray(model_members, float) - np.asarray(oracle_members, float),
                          np.asarray(model_non_members, float)
                          - np.asarray(oracle_non_members, float))


# ------------------------------------------------------------------ distribution tests


def ks_test(a, b) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test (scipy, two-sided): (statistic, p-value). Between a
    model's losses on D_f and on D_ft it is the test of Liu and Tsaftaris (MICCAI 2020)."""
    result = stats.ks_2samp(np.asarray(a, float), np.asarray(b, float))
    return float(result.statistic), float(result.pvalue)


def forget_quality(model_forget, oracle_forget) -> float:
    """TOFU's "forget quality" (Maini et al. 2024): the KS test's p-value between the
    unlearned model's and the oracle's per-slice losses on D_f (TOFU compares truth-ratio
    distributions; a reconstruction has no answer to rank, so the loss stands in). High: the
    two are indistinguishable; 1 for the oracle itself."""
    return ks_test(model_forget, oracle_forget)[1]


def loss_ratio(model_losses, oracle_losses) -> float:
    """Mean per-slice loss of the model over the oracle's on the same slices (1: the oracle's
    level; above: worse)."""
    return float(np.mean(model_losses) / np.mean(oracle_losses))


# ------------------------------------------------------------------ one model, every model

MEASURES = {  # key: what it is, in the book's words
    "auc": "AUC (loss threshold)",
    "calibrated_auc": "calibrated AUC",
    "accuracy": "attack accuracy",
    "efficacy": "MIA efficacy",
    "ks": "KS statistic (D_f vs D_ft)",
    "forget_quality": "forget quality",
    "df_ratio": "D_f loss / oracle's",
    "dft_ratio": "D_ft loss / oracle's",
    "drt_ratio": "D_rt loss / oracle's",
}


_AUDITS: dict = {}  # (run key, oracle key, loss, seed) -> measures: one audit per process


def audit_model(record: dict, oracle: dict, loss: str = "ssim_loss", seed: int = 0) -> dict:
    """Every measure of one model against the same seed's oracle (``seed`` seeds the attack's
    splits, not the runs). Runs with store keys are audited once per process, so chapters
    that share a kernel share the audit."""
    memo = (record.get("key"), oracle.get("key"), loss, seed)
    cached = memo[0] is not None and memo[1] is not None
    if cached and memo in _AUDITS:
        return dict(_AUDITS[memo])
    df, oracle_df = paired(record, oracle, MEMBERS, loss)
    dft, oracle_dft = paired(record, oracle, NON_MEMBERS, loss)
    drt, oracle_drt = paired(record, oracle, KEPT, loss)
    ks, ks_p = ks_test(df, dft)
    measures = {"loss": loss, "members": len(df), "non_members": len(dft),
                "auc": membership_auc(df, dft),
                "calibrated_auc": calibrated_auc(df, dft, oracle_df, oracle_dft),
                "accuracy": attack_accuracy(df, dft, seed=seed),
                "efficacy": mia_efficacy(df, dft, seed=seed),
                "ks": ks, "ks_p": ks_p,
                "forget_quality": forget_quality(df, oracle_df),
                "df_ratio": loss_ratio(df, oracle_df),
                "dft_ratio": loss_ratio(dft, oracle_dft),
                "drt_ratio": loss_ratio(drt, oracle_drt)}
    if cached:
        _AUDITS[memo] = dict(measures)
    return measures


def audit_all(records: dict, loss: str = "ssim_loss", reference: str = REFERENCE,
              names=None) -> list[dict]:
    """Tidy rows {"name", "seed", measures...}: every run of ``records`` ({(name, seed):
    record}; only ``names`` if given) that has per-slice losses, against the same seed's
    ``reference`` (the oracle too, against itself: its calibrated AUC is 0.5 and its forget
    quality 1 by construction). Entries that are not runs (no "metrics") and seeds without
    an oracle are skipped."""
    rows = []
    for (name, seed), record in records.items():
        oracle = records.get((reference, seed))
        if oracle is None or "metrics" not in record or (names is not None and name not in names):
            continue
        rows.append({"name": name, "seed": seed, **audit_model(record, oracle, loss)})
    return rows


def summarise(rows: list[dict], measures=tuple(MEASURES)) -> pd.DataFrame:
    """Mean and 95% interval over seeds (``intervals.interval``) of each measure of each model:
    one row per (name, measure) with mean, lo, hi and the seeds it was taken over."""
    out = []
    names = list(dict.fromkeys(r["name"] for r in rows))
    for name in names:
        mine = [r for r in rows if r["name"] == name]
        for measure in measures:
            mean, lo, hi = interval([r[measure] for r in mine])
            out.append({"name": name, "measure": measure, "mean": mean, "lo": lo, "hi": hi,
                        "seeds": len(mine)})
    return pd.DataFrame(out)




def table(summary: pd.DataFrame, measures=None, digits: int = 2) -> pd.DataFrame:
    """Models as rows, measures as columns, each cell "mean [lo, hi]" (one seed: the value)."""
    measures = list(measures or dict.fromkeys(summary["measure"]))

    def cell(r):
        return estimate_text(r["mean"], r["lo"], r["hi"], digits)

    rows = summary[summary["measure"].isin(measures)].assign(cell=lambda f: f.apply(cell, axis=1))
    wide = rows.pivot(index="name", columns="measure", values="cell")
    order = list(dict.fromkeys(summary["name"]))
    wide = wide.loc[order, measures]
    wide.index = [display_name(n) for n in wide.index]
    wide.columns = [MEASURES.get(m, m) for m in measures]
    return wide


# ------------------------------------------------------------------ criteria beyond the paper
# Written before any audit number was seen; each is decided on the 95% interval over seeds
# with the scorecard's code (``scorecard.check``, ``combine``, leave-one-seed-out robustness).

DISTINGUISHABLE = 0.6  # G's calibrated AUC (mean) at which an auditor clearly finds D_f
EXCHANGEABLE = 0.1  # |AUC(G-hat) - 0.5|: D_f and D_ft look alike to a model that saw neither
EQUIVALENCE = 0.05  # |AUC(M) - AUC(G-hat)| and |calibrated AUC(M) - 0.5|: "like the oracle"
WORSE = 1.5  # mean loss over the oracle's on D_rt and on D_ft beyond which M got worse


def _get(name, measure):
    return lambda get: get(name, measure)


def _forgets(method: str, number: str) -> Finding:
    return Finding(
        number, f"{method}: AUC({method}) - AUC(Ĝ) and calibrated AUC({method}) - 0.5 (the "
                f"oracle's) both inside ±{EQUIVALENCE} (whole intervals)",
        ((Criterion(f"AUC({method}) - AUC(Ĝ)",
                    lambda get, m=method: get(m, "auc") - get(REFERENCE, "auc"), EQUIVALENCE,
                    side="within", unit=""),
          Criterion(f"calibrated AUC({method}) - 0.5",
                    lambda get, m=method: get(m, "calibrated_auc") - 0.5, EQUIVALENCE,
                    side="within", unit="")),),
        statement=f"{method} forgets like the oracle: an auditor tells D_f from D_ft no better "
                  f"and no worse than on Ĝ.", on_paper=False,
        paper_note="not measured by the paper")


def _keeps(method: str, number: str) -> Finding:
    return Finding(
        number, f"{method}: mean loss on D_rt and on D_ft below {WORSE}x the oracle's (whole "
                f"intervals); both above: worse everywhere",
        ((Criterion(f"D_rt loss of {method} / Ĝ's", _get(method, "drt_ratio"), WORSE,
                    side="below", unit="x"),
          Criterion(f"D_ft loss of {method} / Ĝ's", _get(method, "dft_ratio"), WORSE,
                    side="below", unit="x")),),
        statement=f"{method} is not worse everywhere: it keeps near the oracle's quality on "
                  f"brains and on unseen knees.", on_paper=False,
        paper_note="the paper's BTA and KTA in PSNR (findings 4 and 5)")


def criteria(methods=UNLEARNING) -> list[tuple[dict, Finding]]:
    """The table as data: (tag, Finding) pairs; a tag names the method and the kind of row
    ("forgets" or "keeps"), or the model a head row is about."""
    table = [
        ({"method": "original", "kind": "distinguishable"}, Finding(
            "B1", f"calibrated AUC(G) on D_f vs D_ft: mean above {DISTINGUISHABLE} and "
                  f"interval above 0.5",
            ((Criterion("calibrated AUC(G), mean", _get("original", "calibrated_auc"),
                        DISTINGUISHABLE, on="mean", unit=""),
              Criterion("calibrated AUC(G)", _get("original", "calibrated_auc"), 0.5,
                        unit="")),),
            statement="G is distinguishable: an auditor can tell that D_f was used.",
            on_paper=False, paper_note="not measured by the paper")),
        ({"method": REFERENCE, "kind": "reference"}, Finding(
            "B2", f"AUC(Ĝ) - 0.5 inside ±{EXCHANGEABLE} (whole interval)",
            ((Criterion("AUC(Ĝ) - 0.5", lambda get: get(REFERENCE, "auc") - 0.5, EXCHANGEABLE,
                        side="within", unit=""),),),
            statement="The reference holds: to the oracle, which saw neither, D_f and D_ft "
                      "look alike.", on_paper=False, paper_note="not measured by the paper")),
    ]
    for i, m in enumerate(methods):
        table += [({"method": m, "kind": "forgets"}, _forgets(m, f"B{3 + 2 * i}")),
                  ({"method": m, "kind": "keeps"}, _keeps(m, f"B{4 + 2 * i}"))]
    return table


CRITERIA: tuple[Finding, ...] = tuple(f for _, f in criteria())


def as_records(rows: list[dict]) -> dict:
    """Audit rows as the scorecard reads runs: {(name, seed): {"summary": measures}}."""
    return {(r["name"], r["seed"]): {"summary": {k: v for k, v in r.items()
                                                  if k not in ("name", "seed", "loss")}}
            for r in rows}


def beyond_paper(rows: list[dict], seeds, methods=UNLEARNING) -> list[dict]:
    """The "beyond the paper" table: scorecard rows (verdict, interval per criterion,
    leave-one-seed-out robustness) decided on the audit rows of ``seeds``, each tagged with
    its "method" and "kind"; ready for ``scorecard.json`` under ``beyond_paper``. Methods
    with no audit rows are left out."""
    present = {r["name"] for r in rows}
    tagged = [(tag, f) for tag, f in criteria([m for m in methods if m in present])]
    decided = findings(as_records(rows), list(seeds), criteria=[f for _, f in tagged])
    return [{**row, **tag} for (tag, _), row in zip(tagged, decided)]


def scorecard_entry(records: dict, seeds, methods=UNLEARNING, loss: str = "ssim_loss") -> dict:
    """What ``scorecard.json`` keeps under ``beyond_paper``: the audit of G-hat, G and
    ``methods`` on ``seeds`` (runs of ``records``, {(name, seed): record}), decided."""
    wanted = set(seeds)
    rows = audit_all({k: r for k, r in records.items() if k[1] in wanted}, loss,
                     names=(REFERENCE, "original", *methods))
    decided = beyond_paper(rows, seeds, methods)
    verdicts = [r["verdict"] for r in decided]
    return {"loss": loss, "seeds": [str(s) for s in seeds], "criteria": decided,
            "counts": {v: verdicts.count(v) for v in (HOLDS, FAILS, UNSURE)},
            "categories": categories(decided)}


# ------------------------------------------------------------------ the plain reading

FORGOT, REMEMBERS, OVER, WORSE_EVERYWHERE, COSTLY, UNDECIDED = (
    "forgot", "still remembers", "over-unlearned", "worse everywhere", "forgot, at a cost",
    "undecided")


def categories(beyond_rows: list[dict]) -> dict[str, str]:
    """{method: what the verdicts say it did}, from its two rows of the table:

    worse everywhere: its losses on D_rt and on D_ft are both above the limit (whole
    intervals), whatever the attacks say; still remembers: an attack finds D_f more than on
    the oracle (an interval entirely above the margin); over-unlearned: D_f now looks less like
    a member than on the oracle (entirely below); forgot: like the oracle on both attacks and
    within the limit on both sets; forgot, at a cost: like the oracle, but worse on one of the
    two sets; undecided: otherwise."""
    rows: dict[str, dict] = {}
    for row in beyond_rows:
        if row.get("kind") in ("forgets", "keeps"):
            rows.setdefault(row["method"], {})[row["kind"]] = row
    out = {}
    for method, kinds in rows.items():
        forgets, keeps = kinds["forgets"], kinds["keeps"]
        level_fails = [c["verdict"] == FAILS for c in keeps["checks"]]
        beyond = [c for c in forgets["checks"] if c["verdict"] == FAILS]
        if all(level_fails):
            out[method] = WORSE_EVERYWHERE
        elif any(c["interval"][1] >= c["threshold"] for c in beyond):
            out[method] = REMEMBERS
        elif beyond:
            out[method] = OVER
        elif forgets["verdict"] == HOLDS and keeps["verdict"] == HOLDS:
            out[method] = FORGOT
        elif forgets["verdict"] == HOLDS and any(level_fails):
            out[method] = COSTLY
        else:
            out[method] = UNDECIDED
    return out


SENTENCES = {
    FORGOT: "{m} forgot: both attacks find D_f no more than on the oracle, and its losses on "
            "brains and unseen knees stay within {w}x the oracle's.",
    COSTLY: "{m} looks like the oracle to both attacks, but its losses on one of D_rt or D_ft "
            "are more than {w}x the oracle's: it forgot at a cost in quality.",
    REMEMBERS: "{m} still remembers: an attack tells D_f from unseen knees better than on the "
               "oracle (whole interval beyond ±{e}).",
    OVER: "{m} over-unlearned: D_f now looks less like a member than it does to the oracle, a "
          "trace of unlearning an auditor can see.",
    WORSE_EVERYWHERE: "{m} did not forget so much as get worse everywhere: its losses on brains "
                      "and on unseen knees are both more than {w}x the oracle's, so whatever "
                      "the attacks say about D_f is no evidence of forgetting.",
    UNDECIDED: "{m}: undecided on these seeds (an interval straddles a threshold).",
}


HEAD_SENTENCES = {
    ("reference", HOLDS): "The oracle, which saw neither set, sees D_f and D_ft alike, as the "
                          "attack's premise needs.",
    ("reference", FAILS): "The oracle tells D_f from D_ft although it saw neither: the two "
                          "sets differ in difficulty, so only comparisons with the oracle "
                          "(and the calibrated attack) are meaningful, not the raw AUC.",
    ("reference", UNSURE): "Whether the oracle sees D_f and D_ft alike is undecided on these "
                           "seeds.",
}

CHANCE = 0.5  # an attack's AUC on a model with no memory of D_f
ABOVE, BELOW, HOLDS_CHANCE, NO_INTERVAL = "above", "below", "holds", "no interval"
_PLACED = {ABOVE: "lies above one half", BELOW: "lies below one half",
           HOLDS_CHANCE: "holds one half in its interval",
           NO_INTERVAL: "rests on one seed (no interval)"}


def against_chance(interval) -> str:
    """Where an AUC's 95% interval over seeds, (mean, lo, hi), lies against chance (one half):
    ``ABOVE`` or ``BELOW`` (the whole interval), ``HOLDS_CHANCE``, or ``NO_INTERVAL`` when it
    has no width (one seed)."""
    _, lo, hi = interval
    if np.isclose(lo, hi):
        return NO_INTERVAL
    return ABOVE if lo > CHANCE else BELOW if hi < CHANCE else HOLDS_CHANCE


def _interval_of(summary: pd.DataFrame | None, name: str, measure: str):
    if summary is None:
        return None
    r = summary[(summary["name"] == name) & (summary["measure"] == measure)]
    return None if not len(r) else tuple(float(r.iloc[0][k]) for k in ("mean", "lo", "hi"))


def distinguishable_words(row: dict, summary: pd.DataFrame | None = None) -> str:
    """The plain reading of G's head row (B1) in one sentence, from where the intervals of G's
    attacks lie against chance, not from the verdict alone: B1 can fail on its mean while an
    interval already excludes one half, and then "no trace of D_f" would be false.

    Args:
        row: the decided B1 row (``beyond_paper``); its calibrated AUC interval is used when
            ``summary`` has none.
        summary: ``summarise``'s frame, for G's loss-threshold AUC and the oracle's (the
            numbers the chapter's table shows, in its form: ``intervals.estimate_text``).
    """
    calibrated = (_interval_of(summary, "original", "calibrated_auc")
                  or tuple(next(c for c in row["checks"]
                                if c["quantity"] == "calibrated AUC(G)")["interval"]))
    attacks = [("G's calibrated AUC", calibrated)]
    plain = _interval_of(summary, "original", "auc")
    if plain is not None:
        attacks.insert(0, ("G's loss-threshold AUC", plain))
    placed = [(label, iv, against_chance(iv)) for label, iv in attacks]
    oracle = _interval_of(summary, REFERENCE, "auc")
    clauses = []
    for label, iv, where in placed:
        clause = f"{label}, {estimate_text(*iv)}, {_PLACED[where]}"
        if iv is plain and where == ABOVE and oracle is not None:
            theirs = estimate_text(*oracle)
            clause += (f", wholly above the oracle's {theirs}" if iv[1] > oracle[2]
                       else f", overlapping the oracle's {theirs} (part of it is the "
                            f"two sets' difference in difficulty)")
        clauses.append(clause)
    quoted = "; ".join(clauses)
    if row["verdict"] == HOLDS:
        return (f"G is distinguishable: with each slice's difficulty taken out (calibrated AUC "
                f"{estimate_text(*calibrated)}), an auditor tells D_f from unseen knees on G, so "
                f"the audit has something to find.")
    if not any(where == ABOVE for _, _, where in placed):
        if row["verdict"] == UNSURE:
            return (f"Whether G itself is distinguishable is undecided on these seeds "
                    f"({quoted}), so the attacks' verdicts on the methods are weak evidence "
                    f"either way.")
        if any(where == NO_INTERVAL for _, _, where in placed):
            return (f"Even G is not distinguishable here by its criterion: {quoted}; with no "
                    f"interval there is no telling whether these population attacks find a "
                    f"trace of D_f, so only the loss levels speak.")
        return (f"Even G is not distinguishable here: {quoted}, so these population attacks "
                f"find no trace of D_f in the model that trained on it, and no method can be "
                f"said to have forgotten by them; only the loss levels speak (the per-example "
                f"test below asks slice by slice).")
    lead = (f"G does not meet the criterion for distinguishable (calibrated AUC above "
            f"{DISTINGUISHABLE:g} on average, its interval above one half)"
            if row["verdict"] == FAILS else
            "Whether G meets the criterion for distinguishable is undecided on these seeds")
    return (f"{lead}, but the attacks are not blind to D_f: {quoted}. With G short of its "
            f"criterion, the attacks' verdicts on the methods are weak evidence either way.")


def plain_reading(beyond_rows: list[dict], summary: pd.DataFrame | None = None) -> list[str]:
    """Sentences chosen from the verdicts: one for G (``distinguishable_words``, from its
    intervals against chance; ``summary`` adds its loss-threshold AUC) and one for the oracle
    (the head rows), then one per method (``categories``)."""
    head = [distinguishable_words(r, summary) if r.get("kind") == "distinguishable" else
            HEAD_SENTENCES[(r["kind"], r["verdict"])] for r in beyond_rows
            if r.get("kind") == "distinguishable"
            or (r.get("kind"), r["verdict"]) in HEAD_SENTENCES]
    return head + [SENTENCES[c].format(m=m, w=WORSE, e=EQUIVALENCE)
                   for m, c in categories(beyond_rows).items()]
