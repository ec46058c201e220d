"""Figure 1 and the hallucination table: reconstructions of the brain test set, side by side;
and the sentences chapter 3 writes beside them, generated from the numbers they describe.

Every run stores the hallucination score (``erase.runs.slice_scores``) of each brain test slice
with its metrics; a model's score is compared with the oracle's on the same slice, and the
slice where G's excess is largest is the one Figure 1 shows (only its volume is reconstructed).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from torch.utils.data import Subset

from ..measures.hallucination import error_box, excess_slices, scores_of, worst_slice
from ..paper import ORACLE
from ..runs.evaluate import reconstruct_volumes, slice_names
from . import figures


def hallucination_table(records: dict, reference: str = "oracle") -> pd.DataFrame:
    """Mean and max per-slice score of each model, and its excess over the reference."""
    rows = {}
    for name, record in records.items():
        per_volume = scores_of(record)
        values = np.concatenate([per_volume[f] for f in sorted(per_volume)])
        excess = excess_slices(record, records[reference])
        rows[name] = {"mean score (%)": float(values.mean()), "max score (%)": float(values.max()),
                      "mean excess over oracle (pp)": float(excess.mean()),
                      "slices worse than oracle (%)": float(100 * (excess > 0).mean())}
    return pd.DataFrame.from_dict(rows, orient="index").astype(float).round(2)


def volume_reconstructions(lab, records: dict, fname: str, split: str = "brain_test") -> dict:
    """{name: (target, recon)} of one test volume for each record's model (None: zero-filled)."""
    dataset = lab.dataset(split)
    volume = Subset(dataset, [i for i, n in enumerate(slice_names(dataset)) if n == fname])
    return {name: reconstruct_volumes(None if r is None else lab.load_model(r), volume,
                                      lab.device, baseline=r is None)[fname]
            for name, r in records.items()}


def knee_example(lab, records: dict) -> dict:
    """{title: image}: the middle slice of the first knee test volume, as acquired (target,
    zero-filled) and as each record's model reconstructs it."""
    fname = slice_names(lab.dataset("knee_test"))[0]
    volumes = volume_reconstructions(lab, {"zero-filled": None, **records}, fname, "knee_test")
    middle = volumes["zero-filled"][0].shape[0] // 2
    return {"target": volumes["zero-filled"][0][middle],
            **{name: recon[middle] for name, (_, recon) in volumes.items()}}


def figure_one(lab, records: dict, original="original", unlearned="NL-FT", reference="oracle"):
    """Figure 1 on G's worst slice: the images, then their errors, then a zoom.

    Returns (images figure: target, G-hat, G, G^U; errors figure: |G-hat - target|,
    |G - target|, |G^U - target| on one colour scale with the window where G's fine error
    exceeds the oracle's most boxed; zoom figure: that window, half the image wide; info).
    The slice is picked from the scores stored with the runs; only its volume is
    reconstructed.
    """
    scores = {name: scores_of(records[name]) for name in (original, unlearned, reference)}
    excess = {f: scores[original][f] - scores[reference][f] for f in scores[original]}
    fname, index, value = worst_slice(excess)
    volume = volume_reconstructions(lab, {n: records[n] for n in scores}, fname)
    target = volume[original][0][index]
    g, gu, ref = (volume[n][1][index] for n in (original, unlearned, reference))
    box = error_box(target, g, ref, size=max(8, target.shape[0] // 2))
    errors = [np.abs(x - target) for x in (ref, g, gu)]
    zmax = float(target.max())
    images = figures.image_row([target, ref, g, gu],
                               ["target", ORACLE, "G", f"G^U ({unlearned})"],
                               zmax=zmax, boxes={2: [box]}, height=330)
    error_row = figures.image_row(errors, ["|G-hat - target|", "|G - target|",
                                           "|G^U - target|"],
                                  errors=(0, 1, 2), error_zmax=float(max(e.max() for e in errors)),
                                  boxes={1: [box]}, height=330)
    r0, r1, c0, c1 = box
    crop = lambda im: im[r0:r1, c0:c1]  # noqa: E731
    zoom = figures.image_row([crop(target), crop(ref), crop(g), crop(gu)],
                             ["target (zoom)", "G-hat (zoom)", "G (zoom)", "G^U (zoom)"],
                             zmax=zmax, height=330)
    info = {"file": fname, "slice": index, "excess": value,
            "score_G": float(scores[original][fname][index]),
            "score_oracle": float(scores[reference][fname][index]),
            "score_unlearned": float(scores[unlearned][fname][index]), "box": box}
    return images, error_row, zoom, info


def acquisition_views(split, index: int) -> dict:
    """What one slice looks like along the acquisition, for teaching: the fully sampled coil
    images and k-space, the mask, what is measured, the zero-filled input and the target.

    ``split`` is an ``erase.data.Split`` (``Lab.dataset(...)``); its raw k-space gives the
    fully sampled views, its evaluation sample the measured ones.
    """
    import fastmri

    from ..data.simulate import ifft2c
    from ..runs.models import zero_filled as zero_filled_image

    kspace = split.raw[index][0]  # [coils, rows, cols], complex, fully sampled
    sample = split[index]
    masked = sample.masked_kspace
    batch = sample._replace(masked_kspace=masked.unsqueeze(0), target=sample.target.unsqueeze(0))
    scale = float(sample.max_value) * 1e-3  # log(1 + |k| / scale): k-space spans decades
    columns = sample.mask.reshape(-1).numpy().astype(float)
    return {"target": sample.target.numpy(),
            "zero_filled": zero_filled_image(batch)[0].numpy(),
            "coil_images": np.abs(ifft2c(kspace)),
            "undersampled_coil_images": fastmri.complex_abs(fastmri.ifft2c(masked)).numpy(),
            "kspace_log": np.log1p(np.abs(kspace[0]) / scale),
            "masked_kspace_log": np.log1p(fastmri.complex_abs(masked[0]).numpy() / scale),
            "mask": np.broadcast_to(columns, kspace.shape[-2:]).copy(),
            "sampled": int(columns.sum()), "columns": int(columns.size)}


def zero_filled_psnr(lab, split: str, acceleration: int,
                     center_fraction: float | None = None) -> float:
    """Mean PSNR (per volume, as everywhere) of the zero-filled input of a split, if it had been
    acquired at another acceleration: the split's full k-space under that equispaced mask."""
    from dataclasses import replace

    from ..data.loading import Split
    from ..runs.evaluate import evaluate_dataset

    config = replace(lab.data_config, acceleration=acceleration,
                     center_fraction=center_fraction or lab.data_config.center_fraction)
    data = lab.dataset(split)
    return evaluate_dataset(None, Split(data.raw, config, data.in_memory), baseline=True)["psnr"]


# ------------------------------------------------------------------ chapter 3's sentences


def gap_words(interval) -> str:
    """What the interval of KTA(G) - KTA(G-hat) over seeds says: a knowledge gap or not."""
    mean, lo, hi = interval
    if lo > 0:
        return ("G knows knees that the oracle does not (the whole interval is above 0): that "
                "is the knowledge gap")
    if hi <= 0:
        return ("G is no better than the oracle on knees (the whole interval is at or below 0): "
                "this run has no knowledge gap to unlearn")
    return ("the interval holds 0: with these seeds, this run shows no clear knowledge gap to "
            "unlearn")


def excess_words(interval) -> str:
    """What the interval over seeds of G's mean hallucination excess over the oracle says."""
    mean, lo, hi = interval
    if lo > 0:
        return "G hallucinates more than the oracle (the whole interval is above 0)"
    if hi < 0:
        return ("G's score is below the oracle's (the whole interval is below 0): no excess "
                "hallucination to remove")
    return ("the interval holds 0: with these seeds, G's excess cannot be told apart from "
            "none")


def relative_db(value: float, digits: int = 1) -> str:
    """'1.2 dB above', '1.2 dB below' or 'level with' (what rounds to 0): a difference in words,
    to be followed by what it is compared with, never a negative 'above'."""
    if round(abs(value), digits) == 0:
        return "level with"
    return f"{abs(value):.{digits}f} dB {'above' if value > 0 else 'below'}"


def knee_reading(oracle_vs_zero_filled: float, g_vs_oracle: float) -> str:
    """What the knee PSNRs say about the two models (mean differences over seeds, dB)."""
    if oracle_vs_zero_filled > 0 and g_vs_oracle > 0:
        return ("the oracle removes part of the knee's aliasing with what it learnt from "
                "brains, and misses what it never saw in a brain")
    if oracle_vs_zero_filled <= 0:
        return ("on average the oracle does not improve on the zero-filled knee input: what it "
                "learnt from brains does not transfer to knees in this run")
    return ("the oracle improves on the zero-filled knee input, but G, which saw knees, is no "
            "better than it on average")
