"""Paper and code: which of the details where the public code differs from the text carry the
paper's result? From the ``code`` protocol, flip one switch at a time to the text's value and
rerun the forgetting methods on the same seeds (an ablation the paper does not report).

A flip that cannot change anything is not run but said: the unlearning length is the same in
text and code, and when the plateau scheduler never lowered the rate in any run, "plateau"
and "constant" are the same computation.
"""
from __future__ import annotations

from dataclasses import fields

from .. import paper
from ..config import PROTOCOLS, Protocol
from ..measures.intervals import interval
from ..measures.regime import rate_drops
from ..runs.lab import TRAINING_SWITCHES, Lab, run_many
from ..runs.methods import get_method
from .study import labs_for

ABLATED_METHODS = ("NL-FT", "GA-l1-FT", "NL")
# One more reading of the paper, beside the switches: its lambda = 1e-5 taken on our raw
# scale, where the default takes it as rho (noise rms over G's error on Df, ``paper.
# noise_strength``). Run for the methods with a noisy label, on the same seeds.
RAW = "raw_lambda"


# The details of the protocol where the paper's text and its public code could differ, each a
# switch of ``config.Protocol``; in all but one (``agreeing``) they do (``flips``).
DIFFERENCES = {  # switch: (the paper's text, the public code)
    "noisy_label": ("y + lambda N(0, I), lambda = 1e-5",
                    "the raw target plus abs(randn * lambda), lambda = 1e-5, redrawn at every "
                    "load (fastmri_transform.py); SSIM data range the clean maximum"),
    "steps": ("Algorithms 1-2: forget and retain losses summed in one step",
              "one shuffled stream of Df and Dr' (0.1_brain_knee_mixed.pkl); every slice its "
              "own step, forget slices (file1*) with the NL or GA term, retain slices plain J"),
    "ga_l1": ("-J + gamma |theta|_1, gamma not given",
              "loss *= -1; loss += loss + l1_regularization(net): -2 J + |theta|_1, on forget "
              "steps only (varnet_module.py)"),
    "unlearn_epochs": ("extra 5 epochs", "resumes the epoch-49 checkpoint, 5 more epochs"),
    "training_masks": ("equispaced 8x / 0.04", "EquiSpacedMaskFunc with a random offset at "
                       "every load in training (use_seed=False)"),
    "lr_schedule": ("Adam, learning rate 1e-3", "ReduceLROnPlateau(factor 0.1, patience 10) on "
                    "the training loss; unlearning resumes the scheduler's state"),
}


def differences(protocol: Protocol | None = None) -> list[dict]:
    """The details of DIFFERENCES, with the value of each switch in ``code``, ``text`` and
    ours."""
    ours = protocol or PROTOCOLS["code"]
    return [{"switch": name, "paper text": text, "public code": code,
             "code preset": getattr(PROTOCOLS["code"], name),
             "text preset": getattr(PROTOCOLS["text"], name), "this build": getattr(ours, name)}
            for name, (text, code) in DIFFERENCES.items()]


def flips() -> list[tuple[str, object]]:
    """(switch, the text's value) for every switch where text and code differ."""
    code, text = PROTOCOLS["code"], PROTOCOLS["text"]
    return [(f.name, getattr(text, f.name)) for f in fields(Protocol)
            if getattr(text, f.name) != getattr(code, f.name)]


def agreeing() -> list[str]:
    """The switches of DIFFERENCES on which the paper's text and its code agree (the code
    and text presets are equal): nothing to flip."""
    differ = {name for name, _ in flips()}
    return [name for name in DIFFERENCES if name not in differ]


def acts_on(switch: str, method: str) -> bool:
    """Can flipping ``switch`` change what ``method`` computes? The noisy label acts only on
    rows whose forget term is the noisy label, the GA-l1 loss only on rows with its penalty,
    and how steps combine forget and retain slices only on rows that have both (with one
    stream, ``engine.epoch_steps`` plans the same steps either way); every other switch acts
    on every row. A flip that cannot act is not rerun: its run would repeat the code
    protocol's under another key."""
    row = get_method(method)
    if switch == "noisy_label":
        return row.forget == "noisy_label"
    if switch == "ga_l1":
        return row.penalty == "l1"
    if switch == "steps":
        return row.forget != "none" and row.retain != "none"
    return True


def scheduler_acted(records: dict) -> bool:
    """Did the plateau scheduler lower the rate in any of these runs?"""
    return any(rate_drops(r["history"]) for r in records.values())


def run(lab: Lab, seeds, methods=ABLATED_METHODS, workers: int = 2, training_seeds=None,
        **knobs) -> dict:
    """{"runs": {(switch, method, seed): record} for each flip and ("code", method, seed),
    "skipped": {switch: why}} for flips that cannot change anything here, "unaffected":
    {switch: [methods it cannot act on (``acts_on``), not rerun]}}.

    A flip of a switch that acts on training retrains G for every seed it runs on; it runs on
    ``training_seeds`` (default: all ``seeds``), the others on ``seeds``."""
    labs = labs_for(lab, seeds)
    jobs = code_jobs(labs, methods, **knobs)
    code_records = dict(zip([k for k, _, _ in jobs],
                            run_many([(l, j) for _, l, j in jobs], workers)))
    models = {}
    for l in labs:
        models.update({(n, l.seed): l.run(l.job(n)) for n in ("oracle", "original")})
    flipped, skipped = flipped_jobs(labs, methods, training_seeds,
                                    scheduler_acted({**models, **code_records}), **knobs)
    records = dict(zip([k for k, _, _ in flipped],
                       run_many([(l, j) for _, l, j in flipped], workers)))
    unaffected = {s: [m for m in methods if not acts_on(s, m)] for s, _ in flips()
                  if s not in skipped}
    raw = raw_jobs(labs, methods)
    records.update(zip([k for k, _, _ in raw], run_many([(l, j) for _, l, j in raw], workers)))
    return {"runs": {**code_records, **records}, "skipped": skipped,
            "unaffected": {s: ms for s, ms in unaffected.items() if ms}}


def code_jobs(labs: list[Lab], methods=ABLATED_METHODS, **knobs) -> list:
    """(("code", method, seed), lab, job): the methods under the code protocol."""
    return [(("code", m, l.seed), l, l.job(m, **knobs)) for l in labs for m in methods]


def raw_jobs(labs: list[Lab], methods=ABLATED_METHODS) -> list:
    """((RAW, method, seed), lab, job): the noisy-label methods at the paper's lambda on the
    raw scale, test metrics at the end only."""
    lam = paper.PROTOCOL["lambda_raw"]
    return [((RAW, m, l.seed), l, l.job(m, lam=lam, curve=False)) for l in labs for m in methods
            if get_method(m).forget == "noisy_label"]


def flipped_jobs(labs: list[Lab], methods=ABLATED_METHODS, training_seeds=None,
                 acted: bool = True, **knobs) -> tuple[list, dict]:
    """((switch, method, seed), lab, job) of every flip that can act here, and {switch: why}
    for the flips that are not run. ``acted``: whether the plateau scheduler lowered the rate
    in any run (before the runs it is not known: the book's plan takes it that it did)."""
    training_seeds = set([l.seed for l in labs] if training_seeds is None else training_seeds)
    skipped, flipped = {}, []
    for switch, value in flips():
        if switch == "lr_schedule" and not acted:
            skipped[switch] = ("the plateau scheduler never lowered the rate in any run here "
                               "(training or unlearning), so its schedule and a constant rate are "
                               "the same computation")
            continue
        if switch in TRAINING_SWITCHES and not training_seeds & {l.seed for l in labs}:
            skipped[switch] = ("it retrains G on every seed it runs on, and this build gave it "
                               "no seeds (they are passed as training_seeds)")
            continue
        for l in labs:
            if switch in TRAINING_SWITCHES and l.seed not in training_seeds:
                continue
            # the seed's split as it is stored: not made again from a scan of every file
            other = Lab(**{**l.settings(), "protocol": l.protocol, "switches": {switch: value},
                           "manifest": l.manifest_file})
            # test metrics at the end only: the chapter reads each flip's final numbers
            flipped += [((switch, m, l.seed), other, other.job(m, curve=False, **knobs))
                        for m in methods if acts_on(switch, m)]
    return flipped, skipped


def table(results: dict, methods=ABLATED_METHODS) -> list[dict]:
    """Per flip and method: BTA, KTA, UA (mean over seeds) and their change from the code
    protocol, paired by seed, with 95% intervals."""
    rows, runs = [], results["runs"]
    switches = (["code"] + [s for s, _ in flips() if s not in results["skipped"]]
                + [RAW] * any(k == RAW for k, _, _ in runs))
    for switch in switches:
        for m in methods:
            seeds = sorted(s for (k, mm, s) in runs if k == switch and mm == m)
            if not seeds:
                continue
            row = {"switch": switch, "method": m, "seeds": len(seeds)}
            for acc in ("bta", "kta", "ua"):
                col = f"{acc}_psnr"
                values = [runs[(switch, m, s)]["summary"][col] for s in seeds]
                row[acc.upper()] = interval(values)
                if switch != "code":
                    row[f"{acc.upper()} change"] = interval(
                        [runs[(switch, m, s)]["summary"][col] -
                         runs[("code", m, s)]["summary"][col] for s in seeds])
            rows.append(row)
    return rows


CARRIES_DB = 0.5  # a flip "carries the result" beyond this change of BTA or KTA (whole interval)


def carries(rows: list[dict], threshold: float = CARRIES_DB) -> dict:
    """Which flips change a method's KTA or BTA by more than ``threshold`` dB, with the whole
    95% interval beyond it: {switch: [(method, metric, mean change)]}."""
    out: dict = {}
    for r in rows:
        if r["switch"] == "code":
            continue
        for metric in ("BTA change", "KTA change"):
            mean, lo, hi = r[metric]
            if lo > threshold or hi < -threshold:
                out.setdefault(r["switch"], []).append((r["method"], metric.split()[0], mean))
    return out


def plain_words(rows: list[dict], results: dict, threshold: float = CARRIES_DB) -> list[str]:
    """The ablation in plain words, one Markdown list item per switch (display them as
    Markdown: each starts with "* " and names its switch in bold): which flips carry the
    result (``carries``), which do not, which were not run and why, which rows a flip cannot
    act on, and the details where text and code agree."""
    carried, skipped = carries(rows, threshold), results["skipped"]
    lines = []
    for switch, effects in carried.items():
        said = ", ".join(f"{m}'s {metric} by {change:+.2f} dB" for m, metric, change in effects)
        change = ("reading lambda on the raw scale instead of as the paper's rho" if switch == RAW
                  else "flipping it to the text's version")
        lines.append(f"* **{switch}** carries part of the result: {change} changes {said} "
                     f"(whole 95% interval beyond {threshold:g} dB).")
    if RAW not in carried and any(r["switch"] == RAW for r in rows):
        lines.append(f"* **{RAW}** does not: reading lambda on the raw scale moves no "
                     f"method's BTA or KTA by more than {threshold:g} dB with its whole "
                     "interval.")
    quiet = [s for s, _ in flips() if s not in carried and s not in skipped]
    if quiet:
        lines.append("* " + ", ".join(f"**{s}**" for s in quiet)
                     + (" does" if len(quiet) == 1 else " do")
                     + f" not: no method's BTA or KTA moves by more than {threshold:g} dB "
                     "with its whole interval.")
    for switch, why in skipped.items():
        lines.append(f"* **{switch}** was not run: {why}.")
    for switch, unaffected in results["unaffected"].items():
        lines.append(f"* **{switch}** cannot act on {', '.join(unaffected)} (their rows do not "
                     "use it), so they were not rerun with it flipped.")
    for switch in agreeing():
        text, code = DIFFERENCES[switch]
        lines.append(f"* **{switch}**: text and code agree (the text: {text}; the code: "
                     f"{code}), so there is nothing to flip.")
    return lines
