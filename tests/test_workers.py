"""The worker processes of ``run_many`` stop quietly and promptly.

A terminal's Ctrl-C, a Jupyter interrupt and a kernel's shutdown send SIGINT to the whole
process group. Idle workers must not print KeyboardInterrupt tracebacks (a finished papermill
run then read like a crash), and a job that is running must still stop within seconds.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

SCRIPT = """
import signal, sys, time
# Ctrl-C raises KeyboardInterrupt here, as in a terminal or a Jupyter kernel, even where the
# test's own parent ignores SIGINT (a shell's background job does, and Python then keeps it so)
signal.signal(signal.SIGINT, signal.default_int_handler)
from erase.runs.lab import in_workers
in_workers(time.sleep, [(0.5,), (0.5,)], 2)  # both workers spawned (on demand), then idle
print("ready", flush=True)
try:
    in_workers(time.sleep, [(float(sys.argv[1]),)] * 2, 2)
    time.sleep(60)  # the pool idles
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def interrupted(seconds_asleep: float):
    """Run SCRIPT in a session of its own, SIGINT its process group once the pool is idle
    (or busy, by ``seconds_asleep``), return (stdout, stderr, seconds to exit)."""
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(seconds_asleep)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(2.0)  # the second call's jobs are in the workers (or it has finished)
    os.killpg(proc.pid, signal.SIGINT)
    started = time.perf_counter()
    out, err = proc.communicate(timeout=60)
    return out, err, time.perf_counter() - started


def test_idle_workers_end_without_a_traceback():
    out, err, _ = interrupted(0.01)
    assert "interrupted" in out
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_busy_workers_stop_within_seconds_when_interrupted():
    out, err, seconds = interrupted(120)
    assert "interrupted" in out
    assert seconds < 15, f"the interrupted jobs kept running {seconds:.0f} s"
    assert "SpawnProcess" not in err, err
