"""Run the benchmarks, print every figure and ratio, and log them in RESULTS.md.

    .venv/bin/python benchmarks/run.py                        # all (what `make bench` runs)
    .venv/bin/python benchmarks/run.py --only step,data       # some of: step,compile,data,
                                                              #   unlearn,book,gpu
    .venv/bin/python benchmarks/run.py --device cuda --scale paper   # the GPU section
    .venv/bin/python benchmarks/run.py --only book            # make book from a clean clone

Benchmarks print figures; nothing here asserts a timing. Each run appends a dated block to
benchmarks/RESULTS.md (the command, the machine, the numbers; --no-record to skip) and writes
the raw numbers as JSON next to its results store (default _output/bench, gitignored).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import DEFAULT_RESULTS, REPO, Stopwatch, loadavg, machine, quiet  # noqa: E402

SECTIONS = ("step", "compile", "data", "unlearn", "book", "gpu")
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections of {','.join(SECTIONS)} (default: all)")
    p.add_argument("--scale", default=None,
                   help="scale profile (default: 'default' on cpu, 'paper' for the GPU section)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--results", default=str(DEFAULT_RESULTS),
                   help="results store of the benchmarks (default _output/bench)")
    p.add_argument("--rounds", type=int, default=3, help="step: interleaved rounds")
    p.add_argument("--steps", type=int, default=40, help="step: timed steps per round")
    p.add_argument("--warmup", type=int, default=5, help="step: untimed steps per round")
    p.add_argument("--compile", default="regularizers+unetfix",
                   help="compile: torch.compile modes to try on CPU, comma-separated, or none: "
                        "regularizers+unetfix (the U-Nets, with the compile-friendly forward), "
                        "regularizers, full (each takes minutes on 2 cores, cold and warm cache)")
    p.add_argument("--sequential", action="store_true",
                   help="unlearn: train in this process instead of through "
                        "erase.runs.lab.run_many (2 processes x 1 thread, as the book does)")
    p.add_argument("--data-root", default=None, help="unlearn: real fastMRI data root")
    p.add_argument("--book-source", default=None, help="book: repository to clone (default: this)")
    p.add_argument("--pip-cache", default=None,
                   help="book: shared pip cache (default ~/.cache/pip)")
    p.add_argument("--keep-clone", action="store_true", help="book: keep the temporary clone")
    p.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {unknown}: choose from {', '.join(SECTIONS)}")
    if args.scale is None:
        args.scale = "paper" if args.device == "cuda" else "default"
    return args


def section(name: str, args) -> tuple[dict, str]:
    """Run one benchmark; its raw numbers and its printed report."""
    import torch
    threads = torch.get_num_threads()
    try:
        if name == "step":
            if args.device == "cuda":
                import bench_gpu
                out = bench_gpu.run(args.scale, "cuda")
                return out, bench_gpu.report(out)
            import bench_step
            out = bench_step.run(args.scale, args.results, "cpu", args.rounds, args.warmup,
                                 args.steps)
            return out, bench_step.report(out)
        if name == "compile":
            import bench_step
            modes = tuple(m for m in args.compile.split(",") if m and m != "none")
            if args.device == "cuda":
                return {"skipped": "on a GPU, compile is a row of the step section"}, \
                    "compile on a GPU is a row of the step section"
            out = bench_step.run_compile(args.scale, args.results, modes)
            return out, bench_step.report_compile(out)
        if name == "data":
            import bench_data
            out = bench_data.run(args.scale, args.results)
            return out, bench_data.report(out)
        if name == "unlearn":
            import bench_unlearn
            if args.scale == "paper" and args.data_root is None:
                out = {"skipped": "the paper profile's synthetic set would be ~1500 volumes x "
                                  "16 coils at 320 x 320 (>100 GB); pass --data-root"}
                return out, out["skipped"]
            out = bench_unlearn.run(args.scale, args.results, not args.sequential,
                                    device=args.device, data_root=args.data_root)
            return out, bench_unlearn.report(out)
        if name == "book":
            import bench_book
            out = bench_book.run(args.scale, args.results, args.book_source, args.pip_cache,
                                 keep=args.keep_clone, device=args.device)
            return out, bench_book.report(out)
        if name == "gpu":
            import bench_gpu
            if not torch.cuda.is_available():
                out = {"skipped": "no GPU visible to torch (torch.cuda.is_available() is "
                                  "False); on a GPU run --device cuda --scale paper"}
                return out, f"GPU section skipped: {out['skipped']}"
            if args.device == "cuda" and "step" in args.sections:
                out = {"skipped": "already run as the step section (--device cuda)"}
                return out, out["skipped"]
            out = bench_gpu.run(args.scale if args.device == "cuda" else "paper", "cuda")
            return out, bench_gpu.report(out)
    finally:
        torch.set_num_threads(threads)
    raise ValueError(name)


def record(args, info: dict, blocks: list[tuple[str, float, str]], argv: list[str]) -> None:
    command = " ".join([".venv/bin/python", "benchmarks/run.py", *map(shlex.quote, argv)])
    text = [f"\n## {time.strftime('%Y-%m-%d %H:%M')} `{command}`\n",
            f"- machine: {info['cpu']}, {info['cores']} cores available "
            f"({info['logical_cpus']} logical CPUs), GPU: {info['gpu'] or 'none'}",
            f"- software: python {info['python']}, torch {info['torch']}, fastmri "
            f"{info.get('fastmri', '?')}, pytorch-lightning {info.get('pytorch_lightning', '?')}",
            f"- scale {args.scale}, device {args.device}; load average at start "
            f"{info['loadavg_start']:.1f}, at end {loadavg():.1f} (other work on the machine "
            f"slows every figure; ratios come from interleaved runs)", ""]
    for name, seconds, report in blocks:
        text += [f"### {name} ({seconds:.0f} s)", "", report, ""]
    with open(RESULTS_MD, "a") as f:
        f.write("\n".join(text))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    quiet()
    os.chdir(REPO)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, GPU {info['gpu'] or 'none'}, "
          f"torch {info['torch']}, load avg {info['loadavg_start']:.1f}", flush=True)
    blocks, raw = [], {"machine": info, "args": vars(args)}
    for name in args.sections:
        print(f"\n=== {name} ===", flush=True)
        with Stopwatch() as sw:
            out, report = section(name, args)
        print(report, flush=True)
        print(f"({name}: {sw.seconds:.0f} s)", flush=True)
        blocks.append((name, sw.seconds, report))
        raw[name] = {"seconds": sw.seconds, **out}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(args.results) / f"bench-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, indent=1, default=str))
    print(f"\nraw numbers: {path}")
    if not args.no_record:
        record(args, info, blocks, argv)
        print(f"appended to {RESULTS_MD.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
