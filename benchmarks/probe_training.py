"""Probe the quality / time trade-off of the default scale: train one model of a variant.

    .venv/bin/python benchmarks/probe_training.py --which oracle --epochs 40
    .venv/bin/python benchmarks/probe_training.py --which oracle --acceleration 4 --coils 8
    .venv/bin/python benchmarks/probe_training.py --which original --slices 6 --brain-volumes 200
    .venv/bin/python benchmarks/probe_training.py --which original --unlearn FT,NL-FT

Each variant is the `default` profile with the given fields replaced; it prints the
zero-filled level, the final BTA / KTA / UA, the brain and knee validation curves and the
time per step, so a change of data or model size is judged by numbers before it becomes a
default. Results go to their own store (default _output/probe), keyed like every run.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

from erase import config as erase_config
from erase.measures import regime
from erase.runs.lab import Lab


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--which", default="oracle", choices=("oracle", "original"))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--batch", type=int, default=None, help="batch size")
    p.add_argument("--coils", type=int, default=None)
    p.add_argument("--brain-volumes", type=int, default=None)
    p.add_argument("--knee-volumes", type=int, default=None)
    p.add_argument("--slices", type=int, default=None, help="slices per volume")
    p.add_argument("--acceleration", type=int, default=None)
    p.add_argument("--center-fraction", type=float, default=None)
    p.add_argument("--mask", default=None, help="equispaced or equispaced_fraction")
    p.add_argument("--training-masks", default=None, help="random or fixed")
    p.add_argument("--size", type=int, default=None, help="image matrix (square)")
    p.add_argument("--noise", type=float, default=None)
    p.add_argument("--cascades", type=int, default=None)
    p.add_argument("--chans", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unlearn", default="",
                   help="methods to run from G afterwards, comma-separated")
    p.add_argument("--results", default="_output/probe")
    return p.parse_args(argv)


def variant(args) -> erase_config.Scale:
    """The default profile with the fields the command line names replaced."""
    base = erase_config.SCALES["default"]
    pick = lambda **kw: {k: v for k, v in kw.items() if v is not None}  # noqa: E731
    data = replace(base.data, **pick(coils=args.coils, image_size=args.size, noise_level=args.noise,
                                     brain_volumes=args.brain_volumes,
                                     knee_volumes=args.knee_volumes,
                                     slices_per_volume=args.slices, acceleration=args.acceleration,
                                     center_fraction=args.center_fraction, mask=args.mask))
    model = replace(base.model, **pick(cascades=args.cascades, chans=args.chans))
    train = replace(base.train, **pick(epochs=args.epochs, lr=args.lr, batch_size=args.batch))
    return replace(base, name="probe", data=data, model=model, train=train)


def main(argv=None) -> None:
    args = parse(argv)
    erase_config.SCALES["probe"] = variant(args)  # this process only
    switches = {"training_masks": args.training_masks} if args.training_masks else None
    lab = Lab(scale="probe", seed=args.seed, results_dir=args.results, switches=switches)
    psnr = lambda summary: {k: round(v, 2) for k, v in summary.items() if k.endswith("psnr")}  # noqa: E731
    print(json.dumps({k: v for k, v in vars(args).items() if v not in (None, "")}))
    print("zero-filled", psnr(lab.zero_filled()["summary"]))
    record = lab.train(args.which)
    print(args.which, psnr(record["summary"]))
    for anatomy in ("brain", "knee"):
        print(f"  {anatomy} validation PSNR per epoch:",
              [round(h["metrics"][f"{anatomy}_psnr"], 2) for h in record["history"]])
    timing = record["timing"]
    slope = regime.final_slope(record["history"])
    print(f"  brain validation gain over the last fifth: {slope:+.3f} dB/epoch")
    print(f"  {1000 * timing['train_seconds'] / timing['samples']:.2f} ms/slice, "
          f"{timing['wall_seconds']:.0f} s wall")
    for method in filter(None, args.unlearn.split(",")):
        run = lab.unlearn(method)
        print(method, psnr(run["summary"]), f"train {run['timing']['train_seconds']:.1f} s")


if __name__ == "__main__":
    main()
