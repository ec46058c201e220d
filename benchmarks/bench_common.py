"""Shared helpers of the benchmarks: the machine, timers, the benchmark Lab and its data.

Every benchmark reads the scale profile at run time (``erase.config.SCALES[scale]``), so the
numbers follow the profile whatever it is tuned to today, and prints what it measured.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_RESULTS = REPO / "_output" / "bench"


def quiet() -> None:
    """Silence the warnings Lightning and fastMRI print on every run (they are not findings)."""
    warnings.filterwarnings("ignore")
    import logging
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning_fabric",
                 "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def loadavg() -> float:
    """The 1-minute load average: other work on the machine makes every timing slower."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What the numbers were measured on."""
    import torch
    info = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
            "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "gpu": None, "loadavg_start": loadavg(),
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                                "MKL_NUM_THREADS", "GOMP_SPINCOUNT")
                    if k in os.environ}}
    try:
        import fastmri
        import pytorch_lightning
        info["fastmri"] = getattr(fastmri, "__version__", "?")
        info["pytorch_lightning"] = pytorch_lightning.__version__
    except Exception:  # noqa: BLE001 - a missing optional package is reported, not fatal
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


def time_steps(step, first: int, count: int, sync=None, budget_s: float | None = None,
               minimum: int = 3) -> list[float]:
    """Seconds of each of ``count`` calls ``step(i)``, i = first, first + 1, ...

    With ``budget_s``, stops early once that many seconds are spent (after ``minimum`` calls):
    on a loaded machine a step can be 50x slower than usual, and a benchmark must still end.
    """
    times, spent = [], 0.0
    for i in range(first, first + count):
        start = time.perf_counter()
        step(i)
        if sync is not None:
            sync()
        times.append(time.perf_counter() - start)
        spent += times[-1]
        if budget_s is not None and spent > budget_s and len(times) >= minimum:
            break
    return times


def bench_lab(scale: str = "default", results=None, device: str = "cpu", **kwargs):
    """The protocol Lab the benchmarks share; its store lives under ``_output/bench``."""
    from erase.runs.lab import Lab
    return Lab(scale=scale, device=device,
               results_dir=str(results) if results is not None else str(DEFAULT_RESULTS),
               **kwargs)


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(rows: list[list], header: list[str]) -> str:
    """A Markdown table (RESULTS.md and the terminal read the same text)."""
    cells = [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)
