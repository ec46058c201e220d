"""Figure 1 and the hallucination table: reconstructions of the brain test set, side by side.

Every run stores the hallucination score (``erase.runs.slice_scores``) of each brain test slice
with its metrics; a model's score is compared with the oracle's on the same slice, and the
slice where G's excess is largest is the one Figure 1 shows (only its volume is reconstructed).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from torch.utils.data import Subset

from . import figures
from ..runs.evaluate import reconstruct_volumes, slice_names
from ..measures.hallucination import error_box, worst_slice


def scores_of(record: dict) -> dict[str, np.ndarray]:
    """{fname: per-slice hallucination scores} on the brain test set, from a run's record."""
    return {f: np.asarray(v) for f, v in record["metrics"]["bta"]["hallucination"].items()}


def hallucination_table(records: dict, reference: str = "oracle") -> pd.DataFrame:
    """Mean and max per-slice score of each model, and its excess over the reference."""
    scores = {name: scores_of(r) for name, r in records.items()}
    ref = scores[reference]
    rows = {}
    for name, per_volume in scores.items():
        values = np.concatenate([per_volume[f] for f in sorted(per_volume)])
        excess = np.concatenate([per_volume[f] - ref[f] for f in sorted(per_volume)])
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
    """Target, G, |G error|, G^U, |G^U error| on G's worst slice, with the region boxed.

    The slice is picked from the scores stored with the runs; only its volume is
    reconstructed. Returns (full figure, zoom figure, info) where info names the slice.
    """
    scores = {name: scores_of(records[name]) for name in (original, unlearned, reference)}
    excess = {f: scores[original][f] - scores[reference][f] for f in scores[original]}
    fname, index, value = worst_slice(excess)
    volume = volume_reconstructions(lab, {n: records[n] for n in scores}, fname)
    target = volume[original][0][index]
    g, gu, ref = (volume[n][1][index] for n in (original, unlearned, reference))
    box = error_box(target, g, ref, size=max(8, target.shape[0] // 5))
    err_g, err_u = np.abs(g - target), np.abs(gu - target)
    zmax = float(target.max())
    titles = ["target", "G", "|G - target|", f"G^U ({unlearned})", f"|G^U - target|"]
    full = figures.image_row([target, g, err_g, gu, err_u], titles, zmax=zmax,
                             errors=(2, 4), error_zmax=float(max(err_g.max(), err_u.max())),
                             boxes={1: [box], 2: [box], 3: [box], 4: [box]}, height=320)
    r0, r1, c0, c1 = box
    crop = lambda im: im[r0:r1, c0:c1]  # noqa: E731
    zoom = figures.image_row([crop(target), crop(ref), crop(g), crop(gu)],
                             ["target (zoom)", "G-hat (zoom)", "G (zoom)", f"G^U (zoom)"],
                             zmax=zmax, height=280)
    info = {"file": fname, "slice": index, "excess": value,
            "score_G": float(scores[original][fname][index]),
            "score_oracle": float(scores[reference][fname][index]),
            "score_unlearned": float(scores[unlearned][fname][index]), "box": box}
    return full, zoom, info


def acquisition_views(sample) -> dict:
    """What one slice looks like along the acquisition: coil images, k-space, mask, inputs.

    ``sample`` is a VarNetSample (from ``Lab.dataset(...)[i]``).
    """
    import fastmri
    import torch

    from ..runs.models import zero_filled as zero_filled_image

    masked = sample.masked_kspace
    coils = fastmri.complex_abs(fastmri.ifft2c(masked)).numpy()
    batch = sample._replace(masked_kspace=masked.unsqueeze(0), target=sample.target.unsqueeze(0))
    zf = zero_filled_image(batch)[0].numpy()
    kspace_log = np.log1p(fastmri.complex_abs(masked[0]).numpy() / (float(sample.max_value) * 1e-3))
    mask = sample.mask.reshape(-1).numpy().astype(float)
    return {"target": sample.target.numpy(), "zero_filled": zf, "kspace_log": kspace_log,
            "mask_columns": mask, "coil_images": coils,
            "sampled": int(mask.sum()), "columns": int(mask.size)}
