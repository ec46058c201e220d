"""Benchmark 4: wall time of the README's main command (``make book``) from a clean clone.

Clones the repository's committed HEAD into a temporary directory, then times, in that clone:

1. ``make .venv/.installed``: the virtual environment, with a shared pip cache (so this is
   the install a newcomer with warm caches sees, not a download benchmark);
2. ``make book SCALE=<scale>``: the first build, with an empty results store (synthetic data,
   every training run, every chapter executed, the book rendered);
3. ``make book`` again: the rebuild with the store warm.

Targets (on the 2-core machine at ``default`` scale): clean build <= 10 min,
warm rebuild <= 1 min. The logs of each step are kept under ``<results>/book-logs``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench_common import DEFAULT_RESULTS, REPO, loadavg, table


def timed(command: list[str], cwd: Path, env: dict, log: Path, timeout: float) -> dict:
    """Run ``command``; its seconds, exit code and the tail of its output (all kept in ``log``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as out:
        try:
            proc = subprocess.run(command, cwd=cwd, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    seconds = time.perf_counter() - start
    tail = log.read_text(errors="replace").strip().splitlines()[-6:]
    return {"command": " ".join(command), "seconds": seconds, "rc": rc, "log": str(log),
            "tail": tail, "loadavg_end": loadavg()}


OVERHEAD_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import erase.runs.lab
import erase.studies.study
t2 = time.perf_counter()
sys.path.insert(0, {bench!r})
from bench_common import bench_lab, quiet
quiet()
lab = bench_lab({scale!r}, {results!r})
t3 = time.perf_counter()
from erase.data import SPLITS
for split in SPLITS:
    lab.dataset(split)
t4 = time.perf_counter()
from erase.runs.methods import UNLEARNING
records = [lab.store.get(lab.unlearn_config_of(m)) for m in UNLEARNING]
t5 = time.perf_counter()
print("RESULT " + json.dumps({{"import_torch_s": t1 - t0, "import_erase_s": t2 - t1,
                              "lab_init_s": t3 - t2, "load_all_splits_s": t4 - t3,
                              "store_reads_s": t5 - t4,
                              "stored_records": sum(r is not None for r in records)}}))
"""


def overheads(scale="default", results=None, repeats=2) -> dict:
    """What every new Python process of the book pays before it trains anything: importing
    torch and erase, building a Lab (data check, scan, manifest, fingerprints) and loading its
    splits. run_many pays it per job (each job builds its own Lab) and per pool (imports)."""
    import json
    import sys
    runs = []
    for _ in range(repeats):
        code = OVERHEAD_CHILD.format(bench=str(Path(__file__).parent), scale=scale,
                                     results=str(results or DEFAULT_RESULTS))
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=REPO, timeout=900)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if not lines:
            return {"error": (proc.stderr or proc.stdout).strip()[-400:]}
        runs.append({**json.loads(lines[-1][7:]), "process_s": time.perf_counter() - start,
                     "loadavg": loadavg()})
    return {key: min(r[key] for r in runs) for key in runs[0]}


CHAPTER_LINE = re.compile(r"^\[(\d+)/(\d+)\] (\S+) \.\.\.\s+([\d.]+) s")


def chapter_times(log: str) -> dict:
    """{chapter: seconds} from the ``[i/n] book/NN_name ... X s`` lines erase's build prints."""
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return {}
    return {m.group(3): float(m.group(4)) for m in map(CHAPTER_LINE.match, text.splitlines()) if m}


def run(scale="default", results=None, source=None, pip_cache=None, timeout=3600,
        keep=False, device="cpu") -> dict:
    source = str(source or REPO)
    logs = Path(results or DEFAULT_RESULTS) / "book-logs" / time.strftime("%Y%m%d-%H%M%S")
    pip_cache = str(pip_cache or os.environ.get("PIP_CACHE_DIR")
                    or Path.home() / ".cache" / "pip")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASE_RESULTS", "VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MFLAGS")}
    env["PIP_CACHE_DIR"] = pip_cache
    tmp = Path(tempfile.mkdtemp(prefix="erase-book-bench-"))
    out = {"scale": scale, "source": source, "pip_cache": pip_cache, "clone": str(tmp / "erase"),
           "loadavg_start": loadavg(), "steps": {}, "overheads": overheads(scale, results)}
    try:
        clone = tmp / "erase"
        head = subprocess.run(["git", "-C", source, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True)
        out["commit"] = head.stdout.strip()
        out["steps"]["clone"] = timed(["git", "clone", "--quiet", source, str(clone)], tmp, env,
                                      logs / "clone.log", timeout)
        if out["steps"]["clone"]["rc"] != 0:
            return out
        make = ["make", f"SCALE={scale}", f"DEVICE={device}"]
        out["steps"]["venv"] = timed(make + [".venv/.installed"], clone, env,
                                     logs / "venv.log", timeout)
        if out["steps"]["venv"]["rc"] != 0:
            return out
        out["steps"]["book_cold"] = timed(make + ["book"], clone, env, logs / "book-cold.log",
                                          timeout)
        if out["steps"]["book_cold"]["rc"] != 0:
            return out
        out["steps"]["book_warm"] = timed(make + ["book"], clone, env, logs / "book-warm.log",
                                          timeout)
        out["chapters"] = {"cold": chapter_times(logs / "book-cold.log"),
                           "warm": chapter_times(logs / "book-warm.log")}
    finally:
        if keep:
            out["kept"] = str(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def report(out: dict) -> str:
    lines = [f"clone of {out['source']} at {out.get('commit', '?')}, scale {out['scale']}, "
             f"pip cache {out['pip_cache']}, load avg at start {out['loadavg_start']:.1f}"]
    labels = {"clone": "git clone", "venv": "make .venv/.installed (venv, shared pip cache)",
              "book_cold": "make book, empty store (clean clone)",
              "book_warm": "make book again, store warm"}
    for key, label in labels.items():
        step = out["steps"].get(key)
        if step is None:
            lines.append(f"- {label}: not run")
            continue
        status = "ok" if step["rc"] == 0 else f"FAILED (exit {step['rc']})"
        lines.append(f"- {label}: {step['seconds']:.1f} s, {status}")
        if step["rc"] != 0:
            lines += [f"    {line}" for line in step["tail"]]
            lines.append(f"    full log: {step['log']}")
    chapters = out.get("chapters", {})
    if chapters.get("cold"):
        rows = [[name, f"{chapters['cold'][name]:.1f}",
                 f"{chapters.get('warm', {}).get(name, float('nan')):.1f}"]
                for name in chapters["cold"]]
        lines += ["", table(rows, ["chapter", "empty store s", "warm store s"]), ""]
    o = out.get("overheads", {})
    if "error" in o:
        lines.append(f"- per-process overheads: failed: {o['error']}")
    elif o:
        lines.append(f"- per-process overheads (best of 2 fresh processes): import torch "
                     f"{o['import_torch_s']:.1f} s, import erase {o['import_erase_s']:.1f} s, "
                     f"Lab() {o['lab_init_s']:.1f} s, load its 5 splits "
                     f"{o['load_all_splits_s']:.1f} s, {len(o) and o['stored_records']} store "
                     f"reads {o['store_reads_s']:.2f} s; whole process {o['process_s']:.1f} s")
    steps = out["steps"]
    if all(steps.get(k, {}).get("rc") == 0 for k in ("venv", "book_cold", "book_warm")):
        clean = steps["venv"]["seconds"] + steps["book_cold"]["seconds"]
        lines.append(f"- clean clone to built book: {clean:.0f} s ({clean / 60:.1f} min; "
                     f"book alone {steps['book_cold']['seconds'] / 60:.1f} min, target <= 10 min); "
                     f"warm rebuild {steps['book_warm']['seconds']:.0f} s (target <= 60 s)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
