"""``python -m erase``: the protocol's steps from a shell, same code as the book.

    erase synth    --out DIR --scale default --seed 0
    erase manifest --data-root DIR [--out FILE]
    erase train    --model oracle|original
    erase unlearn  --method NL-FT [--retain-fraction F] [--gamma G] [--ascent A]
                   [--rho R | --lambda L] [--saliency K] [--alpha A] [--dampening D]
                   [--distance ssim|l1] [--max-epochs E]
    erase evaluate [--model oracle|original | --method NAME ... | --checkpoint FILE]
    erase export   --model oracle|original | --method NAME  --out FILE
    erase reconstruct --model oracle|original|zero-filled | --method NAME
                   --split brain_test|knee_test|forget --out DIR
    erase results  --csv FILE [--results DIR]
    erase check-gpu [--bf16]
    erase book     [--scale default] [--results DIR] [--root DIR] [--out DIR]

Every bad input ends with one line ``erase: error: ...`` that says what to fix, exit code 2,
and nothing written. A long run says what it will take (disk, time) on stderr before it
starts. ``check-gpu`` exits 0 with one line saying so when no GPU is visible. Ctrl-C (or
SIGTERM, for ``book``) stops a command with one line on stderr and exit code 130 (143); the
same command run again continues from what the results store holds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .book.build import Interrupted
from .config import SWITCHES, ConfigError, get_protocol, get_scale
from .data import DataError
from .io import write_json
from .runs.store import StoreError, check_writable

SWITCH_FLAGS = {name: " or ".join(values) for name, values in SWITCHES.items() if values}
# The knobs of the methods beyond the paper (methods.ROW_KNOBS): flag, help
OWN_KNOBS = {
    "saliency": ("--saliency", "SalUn: fraction of the weights it updates, those with the largest "
                               "|grad J| summed over Df at G (default 0.5)"),
    "alpha": ("--alpha", "SSD: dampen a weight where I_f > alpha * I_D (default 10); l1-sparse: "
                         "the l1 weight at the first step, falling linearly to 0 (default 5e-4)"),
    "dampening": ("--dampening", "SSD: lambda, theta *= min(lambda * I_D / I_f, 1) (default 1)"),
    "distance": ("--distance", "SCRUB: distance to the teacher G, ssim (1 - SSIM, default) or l1"),
    "max_epochs": ("--max-epochs", "SCRUB: epochs with max-steps on Df (default 2); later "
                                   "epochs read no forget slice"),
}
WRITE_OUT_SPLITS = ("brain_test", "knee_test", "forget")
# Filled in when help is shown (the method table imports torch, which `erase synth` need not).
METHODS_HELP = "{methods}"


class _Help(argparse.HelpFormatter):
    """Help text whose ``{methods}`` is the method table's names, read only when shown."""

    def _get_help_string(self, action):
        text = super()._get_help_string(action) or ""
        if METHODS_HELP in text:
            from .runs.methods import METHODS

            text = text.replace(METHODS_HELP, ", ".join(METHODS))
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)


def _method_flags(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """--method and the paper's knobs."""
    parser.add_argument("--method", required=required, default=None,
                        help=f"unlearning method, one of: {METHODS_HELP}")
    parser.add_argument("--retain-fraction", default=None,
                        help="fraction of Dr in Dr' for the rows that fine-tune on it "
                             "(default 0.1)")
    parser.add_argument("--gamma", default=None,
                        help="weight of the l1 penalty of GA-l1 rows (default: the protocol's)")
    parser.add_argument("--rho", default=None,
                        help="noisy-label strength of NL rows: noise rms over G's RMSE on Df "
                             "(default: the paper's, 1.4)")
    parser.add_argument("--lambda", dest="lam", default=None,
                        help="noisy-label scale of NL rows on the raw target scale instead of "
                             "--rho (the paper's is 1e-5)")
    parser.add_argument("--ascent", default=None,
                        help="weight of -J of GA-l1 rows (default: the protocol's, 2 in the code)")


def _run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that runs a job: the Lab's set-up and the protocol."""
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


def _own_knobs(parser: argparse.ArgumentParser) -> None:
    for name, (flag, text) in OWN_KNOBS.items():
        parser.add_argument(flag, dest=name, default=None, help=text)


def _own(args) -> dict:
    """The methods' own knobs given on the command line (numbers where they parse)."""
    given = {name: getattr(args, name, None) for name in OWN_KNOBS}
    given["max_epochs"] = _integer(given["max_epochs"])
    return {k: v if k in ("distance", "max_epochs") else _number(v)
            for k, v in given.items() if v is not None}


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="erase", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("synth", help="write the embedded synthetic brain + knee data set")
    p.add_argument("--out", required=True, help="an empty or new directory for the files")
    p.add_argument("--scale", default="default", help="smoke, default or paper: the set's size")
    p.add_argument("--seed", default="0", help="data seed: the same seed writes the same files")

    p = sub.add_parser("manifest", help="split a data root into retain / forget / val / tests")
    p.add_argument("--data-root", required=True,
                   help="directory of fastMRI multi-coil files; with brain_multicoil_train/, "
                        "brain_multicoil_val/, knee_multicoil_train/ and knee_multicoil_val/ "
                        "the split follows those folders")
    p.add_argument("--out", default=None,
                   help="where to write the manifest JSON (default DATA_ROOT/erase-manifest.json)")
    p.add_argument("--scale", default="default",
                   help="sets the validation / test sizes (upper targets: they adapt to the data)")
    p.add_argument("--seed", default="0", help="split seed")

    p = sub.add_parser("train", help="train the oracle G-hat (Dr) or the original G (Dr + Df)")
    p.add_argument("--model", default="oracle",
                   help="oracle (G-hat, on Dr; the default) or original (G, on Dr + Df)")
    _run_flags(p)

    p = sub.add_parser("unlearn", help="unlearn Df from G with one method")
    _method_flags(p, required=True)
    p.add_argument("--unlearn-epochs", default=None,
                   help="unlearning epochs (default: the protocol's 5)")
    _own_knobs(p)
    _run_flags(p)

    p = sub.add_parser("evaluate", help="BTA / KTA / UA of a trained or unlearned model")
    p.add_argument("--model", default=None,
                   help="oracle, original (the default) or zero-filled")
    _method_flags(p)
    p.add_argument("--checkpoint", default=None,
                   help="a file written by `erase export`: evaluate it on the current split")
    _own_knobs(p)
    _run_flags(p)

    p = sub.add_parser("export", help="write a trained or unlearned model as a plain state "
                                      "dict for fastmri.models.VarNet, with FILE.json")
    p.add_argument("--model", default=None, help="oracle or original")
    _method_flags(p)
    _own_knobs(p)
    p.add_argument("--out", required=True,
                   help="the weights file to write (its description goes to FILE.json)")
    _run_flags(p)

    p = sub.add_parser("reconstruct", help="write one split's reconstructions in fastMRI's "
                                           "prediction format and score them with fastMRI")
    p.add_argument("--model", default=None, help="oracle, original or zero-filled")
    _method_flags(p)
    _own_knobs(p)
    p.add_argument("--split", default="brain_test",
                   help="brain_test (default), knee_test or forget")
    p.add_argument("--out", required=True, help="directory for one .h5 file per volume")
    _run_flags(p)

    p = sub.add_parser("results", help="write every record of a results store as one tidy CSV")
    p.add_argument("--csv", required=True,
                   help="the CSV file: one row per run and test volume")
    p.add_argument("--results", default=None, help="results directory (default _output)")

    p = sub.add_parser("check-gpu", help="one epoch of training and one of unlearning of the "
                                         "paper's model shape on the GPU: steps/s, peak memory")
    p.add_argument("--bf16", action="store_true", help="under bf16 autocast (bf16-mixed)")

    p = sub.add_parser("book", help="execute every chapter with papermill and build the book")
    p.add_argument("--scale", default="default", help="smoke, default or paper")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--results", default=None,
                   help="results directory (default: ROOT/_output)")
    p.add_argument("--root", default=None,
                   help="the project whose book to build, the folder with _toc.yml (default: "
                        "the current directory if it holds one, else this package's repository)")
    p.add_argument("--out", default=None, help="where _build goes (default: ROOT)")
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
    from .runs.methods import get_method, row_knobs, validate_knobs

    if args.command == "train":
        check_choice("model", args.model, MODELS)
    elif args.command == "evaluate" and not args.method and args.model is not None:
        check_choice("model", args.model, (*MODELS, "zero-filled"))
    elif args.command in ("export", "reconstruct"):
        _check_write_out(args)
    if args.command == "unlearn" and args.unlearn_epochs is not None:
        check_int("unlearn epochs (--unlearn-epochs)", _integer(args.unlearn_epochs), minimum=1)
    if args.command == "unlearn" or (args.command in ("evaluate", "export", "reconstruct")
                                     and args.method):
        validate_knobs(args.method, DEFAULT_KNOBS["retain_fraction"]
                       if args.retain_fraction is None else _number(args.retain_fraction),
                       _number(args.gamma), _number(args.lam), _number(args.rho),
                       _number(args.ascent))
        row_knobs(get_method(args.method), _own(args))
    if args.command in ("train", "unlearn", "evaluate", "export", "reconstruct"):
        get_protocol(args.protocol, **_switches(args))


def _check_write_out(args) -> None:
    """export / reconstruct: one model, named once; an output that can be written."""
    from .config import check_choice
    from .runs.lab import MODELS

    models = MODELS if args.command == "export" else (*MODELS, "zero-filled")
    if (args.model is None) == (args.method is None):
        raise ConfigError(f"{args.command} needs one of --model ({' or '.join(models)}) or "
                          "--method NAME")
    if args.model is not None:
        check_choice("model", args.model, models)
    if args.command == "reconstruct":
        check_choice("split", args.split, WRITE_OUT_SPLITS)
        check_writable(Path(args.out), "--out directory", "choose a writable --out directory")
    else:
        check_writable(Path(args.out).parent, "--out file", "choose a writable --out FILE")


def _switches(args) -> dict:
    return {name: getattr(args, name) for name in SWITCH_FLAGS if getattr(args, name, None)}


def _lab(args):
    from .runs.lab import Lab

    return Lab(scale=args.scale, device=args.device, data_root=args.data_root,
               seed=_integer(args.seed), results_dir=args.results, manifest=args.manifest,
               epochs=_integer(args.epochs), arch=args.arch, progress=not args.json,
               protocol=args.protocol, switches=_switches(args))


def _with_audit(lab, record: dict) -> dict:
    """The record with its forgetting audit (membership inference and distribution tests)
    against the same seed's oracle, which is trained first if the store lacks it."""
    from .measures.audit import audit_model

    return {**record, "audit": audit_model(record, lab.train("oracle"))}


def _metrics_line(summary: dict) -> str:
    """'BTA 31.20 dB / 0.912   KTA ...   UA ...': a run's accuracies, PSNR and SSIM."""
    return "   ".join(f"{a} {summary[a.lower() + '_psnr']:.2f} dB / "
                       f"{summary[a.lower() + '_ssim']:.3f}" for a in ("BTA", "KTA", "UA"))


def _print_record(record: dict, as_json: bool) -> None:
    if as_json:
        slim = {k: v for k, v in record.items() if k not in ("metrics",)}
        print(json.dumps(slim, sort_keys=True))
        return
    print(f"{record['name']}: {_metrics_line(record['summary'])}"
          + (f"   rho {record['noise']['rho']:.3g} (lambda {record['noise']['lambda']:.3g})"
             if "noise" in record else "")
          + (f"   ({record['timing']['train_seconds']:.1f} s training"
             f"{', from the store' if record.get('from_store') else ''})"
             if "timing" in record else ""))


def _synth(args) -> int:
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


def _manifest(args) -> int:
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
    write_json(out, manifest)
    _print_manifest(manifest, Path(args.data_root))
    print(f"manifest written to {out}")
    return 0


def _check_gpu(args) -> int:
    from .runs.gpu_check import check

    check(device="cuda", bf16=args.bf16)
    return 0


def _book(args) -> int:
    from .book import BookError, build_book, find_root
    from .book.build import book_root

    get_scale(args.scale)
    from .runs.engine import check_device

    check_device(args.device, "--device cpu")
    try:
        root = find_root() if args.root is None else book_root(Path(args.root))
    except BookError as err:
        raise ConfigError(str(err)) from None
    if args.results is not None:
        check_writable(Path(args.results))
    if args.out is not None:
        check_writable(Path(args.out), "--out directory", "choose a writable --out directory")
    return build_book(root, scale=args.scale, device=args.device, results_dir=args.results,
                      out=args.out)


def _open_lab(args):
    """The Lab a run command works in, once its flags are checked (nothing written before),
    with a warning first when the profile is too big for a CPU."""
    from .runs.plan import cpu_warning

    _check_run(args)
    warning = cpu_warning(args.scale, args.device)
    if warning:
        print(warning, file=sys.stderr)
    return _lab(args)


def _print_for_rank_zero(record: dict, as_json: bool) -> None:
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one rank prints
        _print_record(record, as_json)


def _train_or_unlearn(args) -> int:
    """train and unlearn: the record of the job the flags name, run now if not stored."""
    lab = _open_lab(args)
    _print_for_rank_zero(_record_of(lab, args, notice=False), args.json)
    return 0


def _evaluate(args) -> int:
    """BTA / KTA / UA of a stored model (trained now if missing, said on stderr), with its
    forgetting audit; of an exported file (--checkpoint); or of the zero-filled input."""
    lab = _open_lab(args)
    if args.checkpoint:
        return _evaluate_checkpoint(lab, args)
    zero_filled = args.model == "zero-filled"
    if zero_filled and not args.method:
        record = lab.zero_filled()
    else:
        job = _job(lab, args)
        if not zero_filled:
            _announce(lab, job, notice=True)
        record = lab.run(job)
        if not zero_filled:
            record = _with_audit(lab, record)
    _print_for_rank_zero(record, args.json)
    return 0


def _print_manifest(manifest: dict, data_root: Path) -> None:
    """The split's counts, the rule that made it, and what it left out."""
    from . import data

    for name, c in data.split_counts(manifest).items():
        print(f"{name:11s} {c['volumes']:5d} volumes {c['slices']:7d} slices")
    rule = manifest.get("rule", "random")
    print(f"rule: {rule}: {data.RULES[rule]}")
    found = data.release_folders_found(data_root) if data_root.is_dir() else []
    if rule == "random" and found:
        print(f"note: {', '.join(found)} found, but the release rule needs all four of "
              f"{', '.join(data.RELEASE_FOLDERS)}")
    left = manifest["left_out"]
    print(f"left out: {left['other_contrasts']} volumes of other brain contrasts, "
          f"{left['unused_knee']} spare knee volumes"
          + (f", {left['unused_test']} spare test volumes, "
             f"{left['outside_release_folders']} files outside the release folders (not read)"
             if rule == "release" else ""))


def _job(lab, args):
    """The job a train / unlearn / evaluate / export / reconstruct command names."""
    if args.command == "train":
        return lab.job(args.model)
    if args.method:
        epochs = _integer(getattr(args, "unlearn_epochs", None))
        return lab.job(args.method, _number(args.retain_fraction), _number(args.gamma),
                       _number(args.lam), epochs, rho=_number(args.rho),
                       ascent=_number(args.ascent), **_own(args))
    return lab.job(args.model or "original")


def _announce(lab, job, notice: bool) -> None:
    """Before a job that is not stored: on stderr, that it will run now (``notice``) and, for
    a long one, what it will take."""
    from .runs.plan import LONG_SECONDS, plan

    if lab.stored(job) is not None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return
    if notice:
        print(f"erase: no stored run of {job.kind} {job.name} (scale {lab.profile.name}, seed "
              f"{lab.seed}) in {lab.results}; running it now", file=sys.stderr)
    estimate = plan(lab, job)
    if estimate.seconds >= LONG_SECONDS or lab.profile.name == "paper":
        print(estimate.line(), file=sys.stderr)


def _record_of(lab, args, notice: bool = True) -> dict:
    """The record of the job the flags name, run now if the store lacks it (after saying so
    when ``notice``, and what it will take when it is long)."""
    job = _job(lab, args)
    _announce(lab, job, notice)
    return lab.run(job)


def _write_out(args) -> int:
    """export: the weights and FILE.json; reconstruct: the files, scored by fastMRI."""
    lab = _open_lab(args)
    from .runs import export
    from .runs.evaluate import ACCURACY

    if args.command == "export":
        record = _record_of(lab, args)
        info = export.export_model(lab, record, Path(args.out))
        if args.json:
            print(json.dumps(info, sort_keys=True))
            return 0
        s = info["metrics"] or {}
        print(f"wrote {args.out} ({info['parameters']:,} parameters) and "
              f"{export.sidecar(Path(args.out))}: {record['name']}, run {record['key']}, "
              f"commit {info['git_commit'] or 'unknown'}")
        print(f"load it with: fastmri.models.VarNet(**{info['varnet']})"
              f".load_state_dict(torch.load({str(args.out)!r}, weights_only=True))")
        if s:
            print(f"its metrics: {_metrics_line(s)}")
        return 0
    accuracy = {split: name for name, split in ACCURACY.items()}[args.split]
    if args.model == "zero-filled":
        model, record = None, lab.zero_filled()
    else:
        record = _record_of(lab, args)
        model = lab.load_model(record)
    out = Path(args.out)
    files = export.write_reconstructions(model, lab.dataset(args.split), out, lab.device,
                                         baseline=model is None)
    targets = _targets(lab, args.split)
    scores = export.fastmri_scores(targets, out)
    ours = record["metrics"][accuracy]
    if args.json:
        print(json.dumps({"files": [str(f) for f in files], "targets": str(targets),
                          "fastmri": scores, "erase": {m: ours[m] for m in
                                                       ("psnr", "ssim", "nmse")}},
                         sort_keys=True))
        return 0
    print(f"wrote {len(files)} reconstructions of {args.split} by {record['name']} to {out}")
    print(f"fastMRI's evaluation (fastmri.evaluate.evaluate, mean +/- 2 std over "
          f"{len(files)} volumes) against {targets}:")
    print(export.scores_table(scores))
    print(f"erase's {accuracy.upper()} for the same model: PSNR {ours['psnr']:.6g}, SSIM "
          f"{ours['ssim']:.6g}, NMSE {ours['nmse']:.6g}")
    return 0


def _targets(lab, split: str) -> Path:
    from . import data

    return data.split_folder(lab.manifest, split, lab.data_root, lab.results / "work")


def _evaluate_checkpoint(lab, args) -> int:
    from .runs.export import evaluate_exported

    record = evaluate_exported(lab, Path(args.checkpoint))
    info = record.get("export") or {}
    if info.get("data", {}).get("manifest") not in (None, lab.manifest_key):
        print(f"erase: note: {args.checkpoint} was exported from a run on split "
              f"{info['data']['manifest']}; this is split {lab.manifest_key}", file=sys.stderr)
    _print_record(record, args.json)
    return 0


def _results(args) -> int:
    """Every record of the store as one tidy CSV."""
    from .report.downloads import tidy_records
    from .runs.lab import default_results
    from .runs.store import Store

    root = Path(args.results) if args.results is not None else default_results()
    if not (root / "runs").is_dir():
        raise ConfigError(f"{root} holds no results store (no {root / 'runs'}); pass the "
                          "--results directory that `erase train` or the book wrote")
    check_writable(Path(args.csv).parent, "--csv file", "choose a writable --csv FILE")
    records = Store(root).records()
    frame = tidy_records(records)
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.csv, index=False)
    print(f"wrote {len(frame)} rows ({len(records)} runs, one row per run and test volume) "
          f"to {args.csv}")
    return 0


# One function per command (train and unlearn differ only in the job their flags name).
COMMANDS = {"synth": _synth, "manifest": _manifest, "train": _train_or_unlearn,
            "unlearn": _train_or_unlearn,
            "evaluate": _evaluate, "export": _write_out, "reconstruct": _write_out,
            "results": _results, "check-gpu": _check_gpu, "book": _book}


def run(args) -> int:
    """Run the command ``args`` names; its exit code."""
    return COMMANDS[args.command](args)


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
    except Interrupted as stop:  # the book, stopped by SIGINT or SIGTERM: all of it ended
        print("erase: interrupted; rerun the same command to continue from the stored runs",
              file=sys.stderr, flush=True)
        return stop.exit_code
    except KeyboardInterrupt:
        print("erase: interrupted; rerun the same command to continue from the last "
              "checkpoint", file=sys.stderr)
        return 130
