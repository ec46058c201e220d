"""Metrics as the paper reports them: per volume with ``fastmri.evaluate``, then mean and std.

BTA is accuracy on the brain test set (retain distribution), KTA on the knee test set (forget
distribution), UA on the forget set itself. Accuracy is PSNR and SSIM per volume, the way
fastMRI's evaluation script computes them (data range = the volume's maximum).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from fastmri import evaluate as fm_eval
from torch.utils.data import Subset, default_collate

from .models import reconstruct, zero_filled
from .slice_scores import slice_scores

METRICS = ("psnr", "ssim", "nmse")
# Test sets of the protocol and the paper's names for accuracy on them.
ACCURACY = {"bta": "brain_test", "kta": "knee_test", "ua": "forget"}


def volume_metrics(target: np.ndarray, recon: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and NMSE of one volume [slices, H, W], exactly as fastmri.evaluate does."""
    maxval = float(target.max())
    values = {"psnr": fm_eval.psnr(target, recon, maxval),
              "ssim": fm_eval.ssim(target, recon, maxval),  # an array of one element
              "nmse": fm_eval.nmse(target, recon)}
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in values.items()}


def summarise(per_volume: dict[str, dict[str, float]]) -> dict:
    """Mean and (population) std over volumes, and the per-volume values themselves."""
    summary = {"volumes": len(per_volume), "per_volume": per_volume}
    for metric in METRICS:
        values = np.array([v[metric] for v in per_volume.values()])
        summary[metric] = float(values.mean())
        summary[f"{metric}_std"] = float(values.std())
    return summary


def slice_names(dataset) -> list[str]:
    """The file name of every slice, without loading k-space where the data set can tell."""
    if isinstance(dataset, Subset):
        parent = slice_names(dataset.dataset)
        return [parent[i] for i in dataset.indices]
    if hasattr(dataset, "fname"):  # erase.data.Split: from the raw tuples or fastMRI's index
        return [dataset.fname(i) for i in range(len(dataset))]
    return [dataset[i].fname for i in range(len(dataset))]


def _same_shape(a, b) -> bool:
    """Two samples can share a batch: same k-space and target shape, same centre lines."""
    return (a.masked_kspace.shape == b.masked_kspace.shape and a.target.shape == b.target.shape
            and int(a.num_low_frequencies) == int(b.num_low_frequencies))


def shape_batches(dataset, max_slices: int = 16):
    """The samples in order, in batches of at most ``max_slices`` consecutive slices of one
    shape (of any volumes: each slice keeps its own mask). On a CPU a batch of 16 small slices
    costs a fraction per slice of one slice at a time. Yields (indices, samples)."""
    indices, samples = [], []
    for i in range(len(dataset)):
        sample = dataset[i]
        if samples and (len(samples) == max_slices or not _same_shape(samples[0], sample)):
            yield indices, samples
            indices, samples = [], []
        indices.append(i)
        samples.append(sample)
    if samples:
        yield indices, samples


@torch.inference_mode()
def reconstruct_volumes(model, dataset, device="cpu", baseline: bool = False,
                        max_slices: int = 16):
    """Targets and reconstructions stacked per volume: {fname: (target, recon)}.

    With ``baseline`` the reconstruction is the zero-filled image (no model).
    """
    slices = defaultdict(list)
    if model is not None:
        model.eval()
    for indices, samples in shape_batches(dataset, max_slices):
        batch = default_collate(samples)
        batch = batch._replace(**{k: getattr(batch, k).to(device) for k in
                                  ("masked_kspace", "mask", "target", "max_value")})
        recon = zero_filled(batch) if baseline else reconstruct(model, batch)
        for j in range(len(indices)):
            slices[batch.fname[j]].append((int(batch.slice_num[j]),
                                           batch.target[j].float().cpu().numpy(),
                                           recon[j].float().cpu().numpy()))
    volumes = {}
    for fname, items in slices.items():
        items.sort(key=lambda item: item[0])
        volumes[fname] = (np.stack([t for _, t, _ in items]), np.stack([r for _, _, r in items]))
    return volumes


def slice_losses(target: np.ndarray, recon: np.ndarray, max_value: float) -> dict[str, list]:
    """Per slice of a volume: the SSIM loss (1 - SSIM with the volume maximum as data range,
    as fastMRI's evaluation computes SSIM) and the NMSE. The forgetting audit
    (``measures.audit``) compares these between slices a model saw and slices it did not."""
    from skimage.metrics import structural_similarity

    ssim_loss = [1.0 - structural_similarity(t, r, data_range=max_value)
                 for t, r in zip(target, recon)]
    nmse = [float(np.linalg.norm(t - r) ** 2 / np.linalg.norm(t) ** 2)
            for t, r in zip(target, recon)]
    return {"ssim_loss": [float(x) for x in ssim_loss], "nmse": nmse}


def evaluate_dataset(model, dataset, device="cpu", baseline: bool = False) -> dict:
    """Per-volume metrics and their summary for one split, and per slice the hallucination
    score (``erase.runs.slice_scores``) and the losses of ``slice_losses``, kept so that
    tables, figures and the forgetting audit never reconstruct again."""
    volumes = reconstruct_volumes(model, dataset, device, baseline)
    summary = summarise({f: volume_metrics(t, r) for f, (t, r) in volumes.items()})
    summary["hallucination"] = {f: [float(x) for x in slice_scores(t, r)]
                                for f, (t, r) in volumes.items()}
    summary["per_slice"] = {f: slice_losses(t, r, float(t.max())) for f, (t, r) in volumes.items()}
    return summary


def evaluate_model(model, datasets: dict, device="cpu", which=ACCURACY) -> dict:
    """BTA / KTA / UA (or any named splits) of one model."""
    return {name: evaluate_dataset(model, datasets[split], device) for name, split in which.items()}


def summary_of(metrics: dict) -> dict[str, float]:
    """A record's ``summary``: just the means and stds of its metrics, for tables and progress
    lines."""
    return {f"{name}_{m}{s}": round(v[f"{m}{s}"], 4) for name, v in metrics.items()
            for m in ("psnr", "ssim") for s in ("", "_std")}
