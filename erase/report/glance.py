"""Results at a glance: every finding's verdict in plain words, with the reason, for the first
page a reader sees. Generated from the scorecard, never typed."""
from __future__ import annotations

import pandas as pd

from ..measures import diagnosis, regime
from ..measures.headline import Headline, band_verdicts
from ..paper import FINDINGS

SHORT = {  # the findings in a few words, for a narrow table
    1: "G knows knees the oracle does not (knowledge gap)",
    2: "mixing anatomies costs brain quality and hallucinates",
    3: "fine-tuning keeps the brain but does not unlearn",
    4: "GA-l1 or NL alone collapses the model",
    5: "NL-FT gets close to the oracle; GA-l1-FT loses more brain",
    6: "unlearning costs a small fraction of retraining",
    7: "more retain data is not always better",
    8: "unlearning removes hallucinations (the title's claim)",
}


def table(h: Headline) -> pd.DataFrame:
    """One row per finding: the claim, the verdict here, how robust it is, and why."""
    rows = []
    band = band_verdicts(h)
    for r in h.findings:
        rows.append({"finding": r["finding"], "the paper says": SHORT.get(r["finding"],
                                                                          FINDINGS[r["finding"]]),
                     "here": diagnosis.verdict_words(r["verdict"])
                     + band_text(band.get(r["finding"])),
                     "robust to dropping a seed": "yes" if not r["flipped_by"] else
                     "no (" + ", ".join(f"seed {s}" for s in r["flipped_by"]) + ")",
                     "because": diagnosis.cause(r, h.noise)})
    return pd.DataFrame(rows).set_index("finding")


def band_text(verdicts: dict | None) -> str:
    """A finding's verdicts at the ends of rho's band, to follow its verdict ("" for a finding
    whose runs carry no noisy label)."""
    if verdicts is None:
        return ""
    if not verdicts["depends"]:
        return " (the same across the band of the paper's rho)"
    return (f" (depends on the reading of lambda: {diagnosis.verdict_words(verdicts['low'])} at "
            f"the band's low end, {diagnosis.verdict_words(verdicts['high'])} at its high end)")


def bottom_line(h: Headline) -> str:
    """The counts and the plain sentences, as one paragraph of Markdown."""
    verdicts = [r["verdict"] for r in h.findings]
    counts = {v: verdicts.count(v) for v in set(verdicts)}
    head = (f"Of the paper's {len(verdicts)} findings, {counts.get('holds', 0)} hold on this "
            f"build's {len(h.seeds)} seeds, {counts.get('does not hold', 0)} do not and "
            f"{counts.get('inconclusive', 0)} are undecided.")
    rg = regime.summary(h.regime)
    regime_text = ("The run is in the paper's regime (chapter 3's criteria all pass)."
                   if rg["all_pass"] else "Not every regime criterion of chapter 3 passes ("
                   + "; ".join(rg["failed"]) + "): read the verdicts with that in mind.")
    return " ".join([head, *diagnosis.plain_sentences(h.findings, h.noise), regime_text])
