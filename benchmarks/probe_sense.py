"""How much could coils alone recover? CG-SENSE on the test sets of a variant of the default data.

    .venv/bin/python benchmarks/probe_sense.py                      # the default data
    .venv/bin/python benchmarks/probe_sense.py --coils 8 --acceleration 4

A brain-trained network transfers to knees on real data largely through the physics it shares
with them: many coils resolve equispaced aliasing whatever the anatomy. This probe asks how far
the physics could go on our data: least-squares SENSE (conjugate gradients, 50 iterations) with
the true coil maps (taken from the fully sampled k-space) and with maps estimated from the
centre lines only (the calibration a network has), against the zero-filled input, in PSNR on
the brain and knee test sets (every 4th slice). It explains why the default scale accelerates
3x rather than the paper's 8x (benchmarks/RESULTS.md, "regime probes").
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
from fastmri import evaluate as fm_eval

from erase import config as erase_config
from erase.data.loading import mask_func
from erase.data.simulate import fft2c, ifft2c
from erase.runs.lab import Lab


def cg_sense(maps: np.ndarray, mask: np.ndarray, kspace: np.ndarray, iterations: int = 50,
             ridge: float = 1e-4) -> np.ndarray:
    """argmin_x |M F S x - y|^2 + ridge |x|^2 by conjugate gradients."""
    forward = lambda x: fft2c(maps * x[None]) * mask  # noqa: E731
    adjoint = lambda k: (np.conj(maps) * ifft2c(k * mask)).sum(0)  # noqa: E731
    b = adjoint(kspace)
    x, r = np.zeros_like(b), b.copy()
    p, rs = r.copy(), np.vdot(r, r)
    for _ in range(iterations):
        ap = adjoint(forward(p)) + ridge * p
        alpha = rs / np.vdot(p, ap)
        x, r = x + alpha * p, r - alpha * ap
        rs_new = np.vdot(r, r)
        p, rs = r + rs_new / rs * p, rs_new
    return x


def normalised_maps(coil_images: np.ndarray) -> np.ndarray:
    return coil_images / (np.sqrt((np.abs(coil_images) ** 2).sum(0)) + 1e-12)


def probe(lab: Lab, split: str, every: int = 4) -> dict:
    data, masks = lab.dataset(split), mask_func(lab.data_config)
    scores = []
    for i in range(0, len(data), every):
        kspace, _, target, _, fname, _ = data.raw[i]
        mask, low = masks((1, kspace.shape[-1], 1), seed=tuple(map(ord, fname)))
        m = np.broadcast_to(mask.numpy().reshape(1, -1).astype(bool), kspace.shape[-2:])
        measured = kspace * m
        centre = np.zeros_like(kspace)
        start = (kspace.shape[-1] - int(low) + 1) // 2
        centre[..., start:start + int(low)] = kspace[..., start:start + int(low)]
        zero_filled = np.sqrt((np.abs(ifft2c(measured)) ** 2).sum(0))
        peak = float(target.max())
        scores.append([fm_eval.psnr(target, zero_filled, peak)] + [
            fm_eval.psnr(target, np.abs(cg_sense(maps, m, measured)), peak)
            for maps in (normalised_maps(ifft2c(kspace)), normalised_maps(ifft2c(centre)))])
    zf, true_maps, centre_maps = np.mean(scores, axis=0)
    return {"zero-filled": round(zf, 2), "SENSE, true maps": round(true_maps, 2),
            "SENSE, maps from the centre lines": round(centre_maps, 2)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--coils", type=int, default=None)
    p.add_argument("--acceleration", type=int, default=None)
    p.add_argument("--center-fraction", type=float, default=None)
    p.add_argument("--results", default="_output/probe")
    args = p.parse_args(argv)
    base = erase_config.SCALES["default"]
    given = {k: v for k, v in (("coils", args.coils), ("acceleration", args.acceleration),
                               ("center_fraction", args.center_fraction)) if v is not None}
    erase_config.SCALES["probe"] = replace(base, name="probe", data=replace(base.data, **given))
    lab = Lab(scale="probe", results_dir=args.results)
    print(json.dumps({"data": given or "default"}))
    for split in ("brain_test", "knee_test"):
        print(split, probe(lab, split))


if __name__ == "__main__":
    main()
