"""Interruption and concurrency, tested with real processes and real SIGKILLs.

One uninterrupted reference run is made by two ``erase train`` processes started at once on the
same results directory (which is also the concurrency test); meanwhile a second results
directory gets the same run killed at several points and resumed. On CPU, with the same seed,
the resumed run must end bit-identical to the reference: weights, optimizer state, history and
metrics.

The kill points are exact, not raced: the engine's test hooks make a run send itself SIGKILL
right after a given optimizer step (ERASE_TEST_STOP_AFTER_STEP) or right after a given epoch's
checkpoint (ERASE_TEST_STOP_AFTER_EPOCH), whatever the speed of the machine.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from erase.config import get_scale
from erase.data.synthetic import synthesize
from erase.runs import engine

pytestmark = pytest.mark.slow  # real processes: about a minute on 2 idle cores

EPOCHS = 4
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TIMEOUT = 240  # seconds any one wait may take before the test gives up


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interrupt-data") / "smoke"
    synthesize(root, get_scale("smoke").data, 0)
    return root


def erase(results: Path, data_root: Path, log: str, *command: str,
          stop: dict | None = None) -> subprocess.Popen:
    """``python -m erase ...`` on its own, stdout and stderr to files in ``results``' parent;
    ``stop``: {"step" or "epoch": N}, where the run kills itself (engine.STOP_AFTER_*)."""
    hooks = {"step": engine.STOP_AFTER_STEP, "epoch": engine.STOP_AFTER_EPOCH}
    env = {**ENV, **{hooks[k]: str(v) for k, v in (stop or {}).items()}}
    with open(results.parent / f"{log}.out", "w") as out, \
            open(results.parent / f"{log}.err", "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "erase", *command, "--scale", "smoke", "--epochs",
             str(EPOCHS), "--data-root", str(data_root), "--results", str(results)],
            stdout=out, stderr=err, env=env, cwd=results.parent)


def train(results: Path, data_root: Path, log: str, *extra: str,
          stop: dict | None = None) -> subprocess.Popen:
    return erase(results, data_root, log, "train", "--model", "original", *extra, stop=stop)


UNLEARN = ("unlearn", "--method", "NL-FT", "--unlearn-epochs", "3")  # Df and 10% of Dr


def steps_per_epoch(data_root: Path) -> int:
    """Steps of one epoch of G (Dr + Df, one stream, in batches) at smoke scale."""
    from erase import data

    smoke = get_scale("smoke")
    counts = data.split_counts(data.make_manifest(data.scan(data_root), smoke.data, 0))
    slices = counts["retain"]["slices"] + counts["forget"]["slices"]
    return -(-slices // smoke.train.batch_size)


def wait_for(condition, proc: subprocess.Popen, what: str, poll: float = 0.01):
    """Poll ``condition`` until it returns something truthy; fail if the process ends first."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before {what}")
        time.sleep(poll)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def checkpoint_of(results: Path, skip: str | None = None) -> Path | None:
    found = [p for p in results.glob("runs/*/checkpoint.ckpt") if p.parent.name != skip]
    return found[0] if found else None


def epoch_of(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def killed_itself(proc: subprocess.Popen, log: Path) -> None:
    """The run reached its stop point and sent itself SIGKILL (not an error, not the end)."""
    proc.wait(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, log.read_text()[-2000:])


def record_of(results: Path, skip: str | None = None) -> dict:
    records = [p for p in results.glob("runs/*/record.json") if p.parent.name != skip]
    assert len(records) == 1, records
    return json.loads(records[0].read_text())


def assert_identical(path: Path, ref_path: Path) -> None:
    """Weights and Adam moments of two checkpoints, bit for bit."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    ref_state = torch.load(ref_path, map_location="cpu", weights_only=True)
    assert state["epoch"] == ref_state["epoch"]
    assert state["model"].keys() == ref_state["model"].keys()
    different = [k for k in state["model"] if not torch.equal(state["model"][k],
                                                              ref_state["model"][k])]
    assert not different, f"weights differ after resume: {different}"
    for k, moments in state["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(value, ref_state["optimizer"]["state"][k][name]), (k, name)


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory):
    """Two processes train the same run into one results directory at the same moment."""
    where = tmp_path_factory.mktemp("reference")
    results = where / "results"
    procs = [train(results, data_root, f"ref{i}", "--json") for i in (0, 1)]
    started = time.monotonic()
    yield {"results": results, "procs": procs, "where": where, "started": started}
    for proc in procs:
        if proc.poll() is None:
            proc.kill()


def finish(reference) -> dict:
    for proc in reference["procs"]:
        proc.wait(timeout=TIMEOUT)
    where = reference["where"]
    reference["out"] = [(where / f"ref{i}.out").read_text() for i in (0, 1)]
    reference["err"] = [(where / f"ref{i}.err").read_text() for i in (0, 1)]
    return reference


def test_sigkill_at_several_points_then_resume_is_bit_identical(reference, data_root,
                                                                tmp_path):
    results = tmp_path / "results"
    kills = []

    # 1. right after the first checkpoint is written
    proc = train(results, data_root, "run1", stop={"epoch": 1})
    killed_itself(proc, tmp_path / "run1.err")
    ckpt = checkpoint_of(results)
    kills.append(("after the first checkpoint", epoch_of(ckpt)))
    assert epoch_of(ckpt) == 1
    assert not (ckpt.parent / "record.json").exists()

    # 2. in the middle of epoch 3: right after a step strictly inside it
    steps = steps_per_epoch(data_root)
    assert steps >= 4, steps
    proc = train(results, data_root, "run2", stop={"step": 2 * steps + steps // 2})
    killed_itself(proc, tmp_path / "run2.err")
    kills.append(("mid-epoch 3", epoch_of(ckpt)))
    assert epoch_of(ckpt) == 2, "the last complete checkpoint must survive the kill intact"
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["steps"] == 2 * steps

    # 3. right after the last checkpoint, before the record is written
    proc = train(results, data_root, "run3", stop={"epoch": EPOCHS})
    killed_itself(proc, tmp_path / "run3.err")
    kills.append(("right after the last checkpoint", epoch_of(ckpt)))
    assert epoch_of(ckpt) == EPOCHS
    assert not (ckpt.parent / "record.json").exists(), "killed too late: record already written"
    assert not list(results.glob("runs/*/.*.tmp")), "a temporary checkpoint was left behind"

    # 4. rerun to completion
    proc = train(results, data_root, "run4")
    assert proc.wait(timeout=TIMEOUT) == 0, (tmp_path / "run4.err").read_text()[-2000:]

    finish(reference)
    assert all(p.returncode == 0 for p in reference["procs"]), reference["err"]
    ref_record, record = record_of(reference["results"]), record_of(results)
    assert record["key"] == ref_record["key"]
    assert_identical(ckpt, checkpoint_of(reference["results"]))
    assert record["metrics"] == ref_record["metrics"]
    assert record["history"] == ref_record["history"]
    assert (record["timing"]["steps"], record["timing"]["samples"]) == \
        (ref_record["timing"]["steps"], ref_record["timing"]["samples"])
    print(f"kill points (name, epoch of the checkpoint left): {kills}; resumed run identical")


def test_two_processes_on_one_results_directory(reference):
    finish(reference)
    codes = [p.returncode for p in reference["procs"]]
    assert codes == [0, 0], reference["err"]
    waited = ["in use" in err for err in reference["err"]]
    assert sorted(waited) == [False, True], reference["err"]
    results = reference["results"]
    assert len(list(results.glob("runs/*/record.json"))) == 1
    assert len(list(results.glob("runs/*"))) == 1
    assert not list(results.glob("runs/*/.*.tmp")), "a temporary checkpoint was left behind"
    lines = [json.loads(out.strip().splitlines()[-1]) for out in reference["out"]]
    assert sorted(line.pop("from_store") for line in lines) == [False, True]
    assert lines[0] == lines[1], "the waiting process must print the trained process' record"
    # the reused record is the stored one, unchanged
    stored = record_of(results)
    assert lines[0]["summary"] == stored["summary"] and lines[0]["key"] == stored["key"]


def test_sigkill_during_unlearning_then_resume_is_bit_identical(reference, data_root, tmp_path):
    """Unlearning resumes too: G's weights and optimizer are loaded, then the run's checkpoint.

    The reference is computed in this process (one torch thread, like the subprocesses) while
    the killed run's rerun works in another, so the two cores share the work.
    """
    from erase.runs.lab import Lab

    finish(reference)
    original = record_of(reference["results"])["key"]
    results = tmp_path / "results"
    shutil.copytree(reference["results"], results)  # the same G, in a store of its own

    proc = erase(results, data_root, "unlearn1", *UNLEARN, stop={"epoch": 1})
    killed_itself(proc, tmp_path / "unlearn1.err")
    ckpt = checkpoint_of(results, skip=original)
    killed_at = epoch_of(ckpt)
    assert killed_at == 1 and not (ckpt.parent / "record.json").exists()
    proc = erase(results, data_root, "unlearn2", *UNLEARN)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        lab = Lab(scale="smoke", data_root=data_root, results_dir=reference["results"],
                  epochs=EPOCHS)
        ref_record = lab.unlearn("NL-FT", epochs=3)
    finally:
        torch.set_num_threads(threads)
    assert proc.wait(timeout=TIMEOUT) == 0, (tmp_path / "unlearn2.err").read_text()[-2000:]

    record = record_of(results, skip=original)
    assert record["key"] == ref_record["key"] and record["name"] == "NL-FT"
    assert_identical(ckpt, checkpoint_of(reference["results"], skip=original))
    assert record["metrics"] == json.loads(json.dumps(ref_record["metrics"]))
    assert record["history"] == json.loads(json.dumps(ref_record["history"]))
    print(f"unlearning killed with checkpoint epoch {killed_at} of 3; resumed run identical")


# ------------------------------------------------------------------ the embedded data set


def synth(out: Path, scale: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "erase", "synth", "--scale", scale, "--out",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, cwd=out.parent)


def listing(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.h5"))}


def test_sigkill_while_generating_data_leaves_no_data_directory(tmp_path):
    out = tmp_path / "data"
    partial = tmp_path / ".data.partial"
    proc = synth(out, "default")
    wait_for(lambda: partial.is_dir() and len(list(partial.rglob("*.h5"))) >= 3, proc,
             "the first volumes")
    kill(proc)
    assert not out.exists(), "a half-written data set must not appear under its final name"
    proc = synth(out, "default")  # rerun: the leftover is cleared and the set completed
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr
    config = get_scale("default").data
    n = config.brain_volumes + config.knee_volumes
    assert stdout.startswith(f"wrote {n} volumes in {out}")
    assert not partial.exists() and len(listing(out)) == n


def test_two_processes_generate_the_same_data_at_once(tmp_path):
    out = tmp_path / "data"
    procs = [synth(out, "smoke") for _ in range(2)]
    outputs = [p.communicate(timeout=TIMEOUT) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    said = sorted(stdout.split()[0] for stdout, _ in outputs)
    assert said == ["reused", "wrote"], outputs  # one writes, the other waits and reuses
    reference = tmp_path / "alone"
    synthesize(reference, get_scale("smoke").data, 0)
    assert listing(out) == listing(reference)
