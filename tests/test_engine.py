"""Engine: resume is bit-identical, checkpoints are atomic, metrics are fastMRI's, DDP works."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from erase.config import ConfigError
from erase.runs.engine import Loop, make_fabric, run_loop, save_atomic
from erase.runs.evaluate import METRICS, summarise, volume_metrics
from erase.runs.methods import METHODS
from erase.runs.models import build_model

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


# ------------------------------------------------------------------ resume


def fresh_model(smoke, seed=0):
    torch.manual_seed(seed)
    return build_model(smoke.model)


def same(a, b, where="state") -> None:
    """Nested checkpoint contents equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def weight_sum(model) -> dict:
    return {"weights": float(sum(p.detach().double().sum() for p in model.parameters()))}


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def g_checkpoint(smoke, samples, tmp_path_factory):
    """A small 'original model' G: one epoch on a few retain slices, weights + optimizer."""
    path = tmp_path_factory.mktemp("g") / "g.ckpt"
    loop = Loop(method=METHODS["Retrain"], forget=None, retain=Subset(samples["retain"], range(4)),
                epochs=1, train=smoke.train, seed=0, checkpoint=path, progress=False)
    run_loop(loop, fresh_model(smoke), make_fabric("cpu"))
    return path


def unlearn_loop(smoke, samples, g_checkpoint, checkpoint, evaluate):
    """NL-FT from G for 2 epochs: both streams, noisy labels, a starting checkpoint."""
    return Loop(method=METHODS["NL-FT"], forget=samples["forget"],
                retain=Subset(samples["retain"], [3, 5, 7, 11]), epochs=2, train=smoke.train,
                seed=0, checkpoint=checkpoint, lam=0.3, start_from=g_checkpoint,
                evaluate=evaluate, progress=False)


@pytest.fixture(scope="module")
def straight_and_resumed(smoke, samples, g_checkpoint, tmp_path_factory):
    work = tmp_path_factory.mktemp("resume")
    fabric = make_fabric("cpu")
    straight_model = fresh_model(smoke)
    straight = run_loop(unlearn_loop(smoke, samples, g_checkpoint, work / "a.ckpt", weight_sum),
                        straight_model, fabric)

    calls = []

    def dies_in_epoch_2(model):  # killed after epoch 2's steps, before its checkpoint
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return weight_sum(model)

    with pytest.raises(Killed):
        run_loop(unlearn_loop(smoke, samples, g_checkpoint, work / "b.ckpt", dies_in_epoch_2),
                 fresh_model(smoke), fabric)
    halfway = torch.load(work / "b.ckpt", weights_only=True)
    resumed_model = fresh_model(smoke, seed=99)  # a new process: different init, then loaded
    resumed = run_loop(unlearn_loop(smoke, samples, g_checkpoint, work / "b.ckpt", weight_sum),
                       resumed_model, fabric)
    return {"work": work, "straight": straight, "resumed": resumed, "halfway": halfway,
            "models": (straight_model, resumed_model)}


def test_interrupted_run_was_checkpointed_after_epoch_1(straight_and_resumed):
    halfway = straight_and_resumed["halfway"]
    assert halfway["epoch"] == 1 and len(halfway["history"]) == 1


def test_resumed_run_ends_bit_identical_to_an_uninterrupted_one(straight_and_resumed):
    a_model, b_model = straight_and_resumed["models"]
    a, b = a_model.state_dict(), b_model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    work = straight_and_resumed["work"]
    ca = torch.load(work / "a.ckpt", weights_only=True)
    cb = torch.load(work / "b.ckpt", weights_only=True)
    same(ca["model"], cb["model"], "model")
    same(ca["optimizer"], cb["optimizer"], "optimizer")
    assert (ca["epoch"], ca["steps"], ca["samples"]) == (cb["epoch"], cb["steps"], cb["samples"])
    same(ca["history"], cb["history"], "history")  # losses and metrics of both epochs
    ra, rb = straight_and_resumed["straight"], straight_and_resumed["resumed"]
    assert ra["history"] == rb["history"]
    assert (ra["steps"], ra["samples"]) == (rb["steps"], rb["samples"]) == (2 * 4, 2 * 8)


def test_unlearning_moved_the_weights_away_from_g(straight_and_resumed, g_checkpoint):
    g = torch.load(g_checkpoint, weights_only=True)["model"]
    model = straight_and_resumed["models"][0].state_dict()
    assert any(not torch.equal(g[k], model[k]) for k in g)


def test_a_finished_run_is_not_run_again(straight_and_resumed, smoke, samples, g_checkpoint):
    """Resuming a complete checkpoint trains nothing and returns the same history."""
    model = fresh_model(smoke, seed=5)
    again = run_loop(unlearn_loop(smoke, samples, g_checkpoint,
                                  straight_and_resumed["work"] / "a.ckpt", weight_sum),
                     model, make_fabric("cpu"))
    assert again["history"] == straight_and_resumed["straight"]["history"]
    for k, v in straight_and_resumed["models"][0].state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_checkpoint_is_complete_and_leaves_no_temporary_file(straight_and_resumed):
    work = straight_and_resumed["work"]
    assert not [p.name for p in work.iterdir() if "tmp" in p.name]
    state = torch.load(work / "a.ckpt", weights_only=True)  # plain tensors and numbers only
    assert {"model", "optimizer", "epoch", "history", "train_seconds", "steps",
            "samples"} <= set(state)
    assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
    assert all(math.isfinite(h["loss"]) for h in state["history"])


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "run.ckpt"
    path.write_bytes(b"previous complete checkpoint")

    class DiesWhileWriting:
        is_global_zero = True

        def save(self, target, state):
            Path(target).write_bytes(b"half a chec")
            raise Killed

        def barrier(self):
            pass

    with pytest.raises(Killed):
        save_atomic(DiesWhileWriting(), path, {"epoch": 3})
    assert path.read_bytes() == b"previous complete checkpoint"
    save_atomic(make_fabric("cpu"), path, {"epoch": 4, "w": torch.ones(2)})
    assert torch.load(path, weights_only=True)["epoch"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]


def test_make_fabric_refuses_unknown_devices():
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        make_fabric("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no GPU is visible"):
            make_fabric("cuda")


# ------------------------------------------------------------------ metrics


def test_volume_metrics_are_fastmris():
    from fastmri import evaluate as fm

    rng = np.random.default_rng(0)
    for _ in range(3):
        target = rng.random((4, 32, 32)).astype(np.float32) * 5e-4
        recon = (target + rng.normal(0, 5e-5, target.shape)).astype(np.float32)
        got = volume_metrics(target, recon)
        maxval = target.max()
        assert got["psnr"] == pytest.approx(float(fm.psnr(target, recon, maxval)), rel=1e-12)
        assert got["ssim"] == pytest.approx(float(np.asarray(fm.ssim(target, recon, maxval)).item()),
                                            rel=1e-12)
        assert got["nmse"] == pytest.approx(float(fm.nmse(target, recon)), rel=1e-12)
        assert set(got) == set(METRICS)
        # more noise, worse numbers: the metrics are not constant
        worse = volume_metrics(target, (target + rng.normal(0, 2e-4, target.shape)).astype(np.float32))
        assert worse["psnr"] < got["psnr"] and worse["ssim"] < got["ssim"] and worse["nmse"] > got["nmse"]


def test_summarise_gives_mean_and_population_std():
    per_volume = {"a": {"psnr": 30.0, "ssim": 0.9, "nmse": 0.01},
                  "b": {"psnr": 34.0, "ssim": 0.8, "nmse": 0.03},
                  "c": {"psnr": 32.0, "ssim": 0.7, "nmse": 0.02}}
    s = summarise(per_volume)
    assert s["volumes"] == 3 and s["per_volume"] == per_volume
    assert s["psnr"] == pytest.approx(32.0) and s["psnr_std"] == pytest.approx(math.sqrt(8 / 3))
    assert s["ssim"] == pytest.approx(0.8) and s["ssim_std"] == pytest.approx(math.sqrt(0.02 / 3))
    assert s["nmse"] == pytest.approx(0.02) and s["nmse_std"] == pytest.approx(math.sqrt(2e-4 / 3))


def test_record_metrics_are_per_volume_over_the_test_sets(lab, trained):
    metrics = trained["oracle"]["metrics"]
    for name, split in (("bta", "brain_test"), ("kta", "knee_test"), ("ua", "forget")):
        names = {Path(v["path"]).name for v in lab.manifest["splits"][split]}
        assert set(metrics[name]["per_volume"]) == names
        assert metrics[name]["psnr"] == pytest.approx(
            np.mean([v["psnr"] for v in metrics[name]["per_volume"].values()]))
        assert all(math.isfinite(v) for v in metrics[name]["per_volume"][next(iter(names))].values())


# ------------------------------------------------------------------ DDP under torchrun


@pytest.mark.slow
def test_torchrun_two_processes_trains_like_one(lab, trained, tmp_path):
    """``torchrun --nproc_per_node=2 -m erase train``: exits 0, finite metrics, same step count."""
    results = tmp_path / "ddp"
    log, out_file = tmp_path / "torchrun.err", tmp_path / "torchrun.out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as err, open(out_file, "w") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "erase",
             "train", "--model", "oracle", "--scale", "smoke", "--results", str(results), "--json"],
            cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
        deadline, deadlock = time.monotonic() + 240, False
        while proc.poll() is None and time.monotonic() < deadline:
            # nobody else uses this fresh store: a rank waiting for its lock waits for its peer
            if "in use by another process; waiting" in log.read_text():
                deadlock = True
                break
            time.sleep(0.5)
        if proc.poll() is None:
            proc.terminate()  # torchrun passes SIGTERM on to its workers (own sessions)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    out = out_file.read_text()
    assert not deadlock, ("deadlock: one rank waits for the store lock held by the other rank "
                          "(see lab.Lab._run / Store.lock)")
    assert proc.returncode == 0, log.read_text()[-3000:]
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"--json must print one JSON line (rank 0's), got: {out[:500]}"
    record = lines[0]
    assert set(record) >= {"key", "config", "summary", "timing"}
    assert record["key"] == trained["oracle"]["key"]  # same config as the single-process run
    assert record["timing"]["steps"] == trained["oracle"]["timing"]["steps"]
    assert record["timing"]["samples"] == trained["oracle"]["timing"]["samples"]
    assert all(math.isfinite(v) for v in record["summary"].values())
    assert all(math.isfinite(h["loss"]) for h in record["history"])
    stored = json.loads((results / "runs" / record["key"] / "record.json").read_text())
    assert stored["timing"]["steps"] == record["timing"]["steps"]
    assert (results / "runs" / record["key"] / "checkpoint.ckpt").exists()
