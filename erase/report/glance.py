"""Results at a glance: every finding's verdict in plain words, with the reason, for the first
page a reader sees; and the one line above them that says what build they are about. Generated
from the scorecard and the Lab, never typed."""
from __future__ import annotations

import re

import pandas as pd

from ..measures import diagnosis, regime
from ..paper import FINDINGS
from ..studies.headline import Headline, band_verdicts
from .formats import chapter_link, link_chapters

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
ARCHITECTURES = {"varnet": "E2E-VarNet", "unet": "U-Net"}


def build_line(lab, seeds) -> str:
    """What this build is, in one line of Markdown, read from the Lab and its profile: the
    data, image size, coils, acceleration, network, epochs and seeds, and a link to chapter 3,
    which checks that it poses the paper's question."""
    d, m = lab.data_config, lab.model_config
    if lab.settings()["data_root"] is None:  # the embedded synthetic set
        data = (f"synthetic phantoms (the book's embedded data), {d.image_size} × "
                f"{d.image_size} pixels, {d.coils} coils")
    else:
        data = "real fastMRI multi-coil data, at the files' own size and coils"
    network = ARCHITECTURES.get(m.arch, m.arch)
    if m.arch == "varnet":
        network += f" with {m.cascades} cascade{'s' if m.cascades != 1 else ''}"
    seeds = list(seeds)
    return (f"**This build** (scale `{lab.profile.name}`): {data}, {d.acceleration}x "
            f"acceleration (centre fraction {d.center_fraction:g}), {network}, trained for "
            f"{lab.train_config.epochs} epochs, {len(seeds)} seed{'s' if len(seeds) != 1 else ''} "
            f"({', '.join(str(s) for s in seeds)}). {chapter_link(3, 'Chapter 3')} checks that "
            "this run is in the paper's regime.")


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


def table_markdown(h: Headline) -> str:
    """``table`` as a Markdown table, so that a chapter named in a reason is a link."""
    frame = table(h).reset_index()
    cells = [[link_chapters(escape(str(v))) for v in row] for row in frame.itertuples(index=False)]
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join(":--" if c == "finding" else "---" for c in frame.columns) + "|"
    return "\n".join([head, rule] + ["| " + " | ".join(row) + " |" for row in cells])


def escape(text: str) -> str:
    """Text for a Markdown table cell: the characters Markdown would read as markup escaped."""
    return re.sub(r"([\\|*_\[\]`<$])", r"\\\1", text)


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
    ch3 = chapter_link(3)
    failed = "; ".join(escape(f) for f in rg["failed"])
    regime_text = (f"The run is in the paper's regime ({ch3}'s criteria all pass)."
                   if rg["all_pass"] else f"Not every regime criterion of {ch3} passes "
                   f"({failed}): read the verdicts with that in mind.")
    sentences = [escape(s) for s in diagnosis.plain_sentences(h.findings, h.noise)]
    return " ".join([head, *sentences, regime_text])
