"""``python -m erase``: the protocol's steps from a shell, same code as the book.

    erase synth    --out DIR --scale default --seed 0
    erase manifest --data-root DIR [--out FILE]
    erase train    --model oracle|original
    erase unlearn  --method NL-FT [--retain-fraction F] [--gamma G] [--lambda L]
    erase evaluate [--model oracle|original | --method NAME ...]
    erase book     [--scale default]

Every bad input ends with one line ``erase: error: ...`` that says what to fix, exit code 2,
and nothing written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .config import SWITCHES, ConfigError, get_protocol, get_scale
from .data import DataError
from .runs.store import StoreError, check_writable


SWITCH_FLAGS = {name: " or ".join(values) for name, values in SWITCHES.items() if values}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", default="default", help="smoke, default or paper")
    parser.add_argument("--data-root", default=None,
                        help="directory of fastMRI multi-coil files (default: embedded synthetic)")
    parser.add_argument("--manifest", default=None, help="a saved manifest to reuse its split")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seed", default="0", help="split, initialisation and Dr' seed")
    parser.add_argument("--results", default=None, help="results directory (default _output)")
    parser.add_argument("--epochs", default=None, help="training epochs (default: the scale's)")
    parser.add_argument("--arch", default=None, help="varnet (default) or unet")
    parser.add_argument("--json", action="store_true", help="print the record as one JSON line")
    parser.add_argument("--protocol", default="code",
                        help="code (default: as the paper's public code ran it) or text (as the "
                             "paper writes it); the switches below replace single details")
    for switch, choices in SWITCH_FLAGS.items():
        parser.add_argument(f"--{switch.replace('_', '-')}", dest=switch, default=None,
                            help=f"protocol switch: {choices}")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="erase", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write the embedded synthetic brain + knee data set")
    p.add_argument("--out", required=True)
    p.add_argument("--scale", default="default")
    p.add_argument("--seed", default="0")

    p = sub.add_parser("manifest", help="split a data root into retain / forget / val / tests")
    p.add_argument("--data-root", required=True)
    p.add_argument("--out", default=None, help="where to write the manifest JSON")
    p.add_argument("--scale", default="default", help="sets the validation / test sizes")
    p.add_argument("--seed", default="0")

    p = sub.add_parser("train", help="train the oracle G-hat (Dr) or the original G (Dr + Df)")
    p.add_argument("--model", default="oracle")
    _common(p)

    p = sub.add_parser("unlearn", help="unlearn Df from G with one method")
    p.add_argument("--method", required=True)
    p.add_argument("--retain-fraction", default=None)
    p.add_argument("--gamma", default=None)
    p.add_argument("--lambda", dest="lam", default=None)
    p.add_argument("--unlearn-epochs", default=None,
                   help="unlearning epochs (default: the protocol's 5)")
    _common(p)

    p = sub.add_parser("evaluate", help="BTA / KTA / UA of a trained or unlearned model")
    p.add_argument("--model", default=None, help="oracle, original or zero-filled")
    p.add_argument("--method", default=None)
    p.add_argument("--retain-fraction", default=None)
    p.add_argument("--gamma", default=None)
    p.add_argument("--lambda", dest="lam", default=None)
    _common(p)

    p = sub.add_parser("book", help="execute every chapter with papermill and build the book")
    p.add_argument("--scale", default="default")
    p.add_argument("--device", default="cpu")
    p.add_argument("--results", default=None)
    return top


def _number(text):
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text  # validation downstream says what is wrong with it


def _integer(text):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _check_run(args) -> None:
    """Refuse a bad model, method or knob before the Lab writes anything (data, manifest)."""
    from .config import check_choice, check_int
    from .runs.lab import DEFAULT_KNOBS, MODELS
    from .runs.methods import validate_knobs

    if args.command == "train":
        check_choice("model", args.model, MODELS)
    elif args.command == "evaluate" and not args.method and args.model is not None:
        check_choice("model", args.model, (*MODELS, "zero-filled"))
    if args.command == "unlearn" and args.unlearn_epochs is not None:
        check_int("unlearn epochs (--unlearn-epochs)", _integer(args.unlearn_epochs), minimum=1)
    if args.command == "unlearn" or (args.command == "evaluate" and args.method):
        given = {"retain_fraction": _number(args.retain_fraction), "gamma": _number(args.gamma),
                 "lam": _number(args.lam)}
        knobs = {**DEFAULT_KNOBS, **{k: v for k, v in given.items() if v is not None}}
        validate_knobs(args.method, knobs["retain_fraction"], knobs["gamma"], knobs["lam"])
    if args.command in ("train", "unlearn", "evaluate"):
        get_protocol(args.protocol, **_switches(args))


def _switches(args) -> dict:
    return {name: getattr(args, name) for name in SWITCH_FLAGS if getattr(args, name, None)}


def _lab(args):
    from .runs.lab import Lab

    return Lab(scale=args.scale, device=args.device, data_root=args.data_root,
               seed=_integer(args.seed), results_dir=args.results, manifest=args.manifest,
               epochs=_integer(args.epochs), arch=args.arch, progress=not args.json,
               protocol=args.protocol, switches=_switches(args))


def _print_record(record: dict, as_json: bool) -> None:
    if as_json:
        slim = {k: v for k, v in record.items() if k not in ("metrics",)}
        print(json.dumps(slim, sort_keys=True))
        return
    s = record["summary"]
    print(f"{record['name']}: BTA {s['bta_psnr']:.2f} dB / {s['bta_ssim']:.3f}   "
          f"KTA {s['kta_psnr']:.2f} dB / {s['kta_ssim']:.3f}   "
          f"UA {s['ua_psnr']:.2f} dB / {s['ua_ssim']:.3f}"
          + (f"   ({record['timing']['train_seconds']:.1f} s training"
             f"{', from the store' if record.get('from_store') else ''})" if "timing" in record else ""))


def run(args) -> int:
    if args.command == "synth":
        from .config import check_int
        from .data.synthetic import synthesize

        seed = check_int("seed", _integer(args.seed))
        config = get_scale(args.scale).data
        check_writable(Path(args.out), "--out directory", "choose a writable --out directory")
        info = synthesize(Path(args.out), config, seed)
        params = info["stamp"]["params"]
        print(f"{'reused' if info['reused'] else 'wrote'} {len(info['files'])} volumes in "
              f"{args.out}: {params['brain_volumes']} brain (AXT2), {params['knee_volumes']} knee "
              f"(CORPD_FBK), {params['slices_per_volume']} slices of {params['image_size']}^2, "
              f"{params['coils']} coils ({info['seconds']} s to generate)")
        return 0
    if args.command == "manifest":
        from . import data

        from .config import check_int
        seed = check_int("seed", _integer(args.seed))
        config = get_scale(args.scale).data
        out = Path(args.out) if args.out else Path(args.data_root) / "erase-manifest.json"
        if args.out or Path(args.data_root).is_dir():  # before a long scan; else scan says why
            check_writable(out.parent, "manifest directory", "choose a writable --out FILE")
        volumes = data.scan(Path(args.data_root))
        manifest = data.make_manifest(volumes, config, seed, Path(args.data_root))
        manifest["data_root"] = str(Path(args.data_root).resolve())
        data.write_json_atomic(out, manifest)
        for name, c in data.split_counts(manifest).items():
            print(f"{name:11s} {c['volumes']:5d} volumes {c['slices']:7d} slices")
        print(f"left out: {manifest['left_out']['other_contrasts']} volumes of other brain "
              f"contrasts, {manifest['left_out']['unused_knee']} spare knee volumes")
        print(f"manifest written to {out}")
        return 0
    if args.command == "book":
        from .book import build

        get_scale(args.scale)
        if args.device == "cuda":
            import torch
            if not torch.cuda.is_available():
                raise ConfigError("device 'cuda' was asked for but no GPU is visible; "
                                  "use --device cpu")
        if args.results is not None:
            check_writable(Path(args.results))
        return build(scale=args.scale, device=args.device, results_dir=args.results)
    _check_run(args)
    lab = _lab(args)
    if args.command == "train":
        record = lab.train(args.model)
    elif args.command == "unlearn":
        record = lab.unlearn(args.method, _number(args.retain_fraction), _number(args.gamma),
                             _number(args.lam), _integer(args.unlearn_epochs))
    else:  # evaluate
        if args.method:
            record = lab.unlearn(args.method, _number(args.retain_fraction),
                                 _number(args.gamma), _number(args.lam))
        elif args.model == "zero-filled":
            record = lab.zero_filled()
        else:
            record = lab.train(args.model or "original")
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one rank prints
        _print_record(record, args.json)
    return 0


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except (ConfigError, DataError, StoreError) as err:  # each carries its own advice
        print(f"erase: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the disk said no: say what and where, without a traceback
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"erase: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("erase: interrupted; rerun the same command to continue from the last "
              "checkpoint", file=sys.stderr)
        return 130
