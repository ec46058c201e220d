"""Engine: resume is bit-identical, checkpoints are atomic, metrics are fastMRI's, DDP works."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import helpers
import numpy as np
import pytest
import torch
from helpers import Killed, fresh_model, same, shared_unless_mutating

from erase.config import PROTOCOLS, ConfigError, replace
from erase.runs import engine
from erase.runs.engine import Loop, epoch_steps, load_start, make_fabric, run_loop, save_atomic
from erase.runs.evaluate import METRICS, summarise, volume_metrics
from erase.runs.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


# ------------------------------------------------------------------ resume


def weight_sum(model) -> dict:
    return {"weights": float(sum(p.detach().double().sum() for p in model.parameters()))}


CODE = PROTOCOLS["code"]  # random training masks, the plateau scheduler, alternating steps


class MaskLog:
    """A split that logs every training mask it draws: (slice, seed, mask columns)."""

    def __init__(self, inner):
        self.inner, self.draws = inner, []

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        return self.inner[i]

    def masked(self, i, seed):
        sample = self.inner.masked(i, seed)
        self.draws.append((int(i), tuple(seed), tuple(sample.mask.reshape(-1).tolist())))
        return sample


@pytest.fixture(scope=shared_unless_mutating)
def g_checkpoint(smoke, samples, tmp_path_factory):
    """A small 'original model' G: one epoch on a few retain slices, weights + optimizer +
    scheduler."""
    path = tmp_path_factory.mktemp("g") / "g.ckpt"
    loop = Loop(method=METHODS["Retrain"], forget=None, retain=samples["retain"].select(range(4)),
                epochs=1, train=smoke.train, seed=0, checkpoint=path, protocol=CODE,
                progress=False)
    run_loop(loop, fresh_model(smoke), make_fabric("cpu"))
    return path


RETAIN = [3, 5, 7, 11]  # Dr' of the unlearning loop below


def unlearn_loop(smoke, samples, g_checkpoint, checkpoint, evaluate, forget=None):
    """NL-FT from G for 2 epochs: both streams, noisy labels, random masks, a starting
    checkpoint."""
    assert CODE.training_masks == "random"
    return Loop(method=METHODS["NL-FT"], forget=forget or samples["forget"],
                retain=samples["retain"].select(RETAIN), epochs=2, train=smoke.train,
                seed=0, checkpoint=checkpoint, protocol=CODE, lam=1e-4, start_from=g_checkpoint,
                evaluate=evaluate, progress=False)


@pytest.fixture(scope=shared_unless_mutating)
def straight_and_resumed(smoke, samples, g_checkpoint, tmp_path_factory):
    work = tmp_path_factory.mktemp("resume")
    fabric = make_fabric("cpu")
    straight_model = fresh_model(smoke)
    logs = {"straight": MaskLog(samples["forget"]), "killed": MaskLog(samples["forget"]),
            "resumed": MaskLog(samples["forget"])}
    straight = run_loop(unlearn_loop(smoke, samples, g_checkpoint, work / "a.ckpt", weight_sum,
                                     logs["straight"]), straight_model, fabric)

    calls = []

    def dies_in_epoch_2(model):  # killed after epoch 2's steps, before its checkpoint
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return weight_sum(model)

    with pytest.raises(Killed):
        run_loop(unlearn_loop(smoke, samples, g_checkpoint, work / "b.ckpt", dies_in_epoch_2,
                              logs["killed"]), fresh_model(smoke), fabric)
    halfway = torch.load(work / "b.ckpt", weights_only=True)
    resumed_model = fresh_model(smoke, seed=99)  # a new process: different init, then loaded
    resumed = run_loop(unlearn_loop(smoke, samples, g_checkpoint, work / "b.ckpt", weight_sum,
                                    logs["resumed"]), resumed_model, fabric)
    return {"work": work, "straight": straight, "resumed": resumed, "halfway": halfway,
            "models": (straight_model, resumed_model), "masks": logs}


def test_interrupted_run_was_checkpointed_after_epoch_1(straight_and_resumed):
    halfway = straight_and_resumed["halfway"]
    assert halfway["epoch"] == 1 and len(halfway["history"]) == 1


def test_resumed_run_ends_bit_identical_to_an_uninterrupted_one(straight_and_resumed, smoke,
                                                               samples):
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
    same(ca["scheduler"], cb["scheduler"], "scheduler")
    assert (ca["epoch"], ca["steps"], ca["samples"]) == (cb["epoch"], cb["steps"], cb["samples"])
    same(ca["history"], cb["history"], "history")  # losses, rates and metrics of both epochs
    ra, rb = straight_and_resumed["straight"], straight_and_resumed["resumed"]
    assert ra["history"] == rb["history"]
    slices = len(samples["forget"]) + len(RETAIN)  # alternating: every slice once an epoch
    steps = -(-slices // smoke.train.batch_size)
    assert (ra["steps"], ra["samples"]) == (rb["steps"], rb["samples"]) == (2 * steps, 2 * slices)


def test_a_resumed_run_draws_the_masks_an_uninterrupted_one_draws(straight_and_resumed,
                                                                  samples):
    """Random training masks come from (seed, epoch, stream, slice): the resumed epoch 2 draws
    exactly what the uninterrupted run drew in its epoch 2, and the masks do change."""
    logs = straight_and_resumed["masks"]
    n = len(samples["forget"])
    straight, killed, resumed = (logs[k].draws for k in ("straight", "killed", "resumed"))
    assert len(straight) == 2 * n and len(killed) == 2 * n and len(resumed) == n
    assert resumed == straight[n:]  # epoch 2 only, the same seeds and masks
    assert killed == straight  # the killed run drew the same, up to where it died
    assert {seed[1] for _, seed, _ in straight} == {0, 1}  # the epoch is part of the seed
    masks = {mask for _, _, mask in straight}
    assert len(masks) > 1, "every drawn training mask was the same"
    for i, seed, mask in straight:  # a mask is a function of its seed alone
        assert tuple(samples["forget"].masked(i, seed).mask.reshape(-1).tolist()) == mask


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
    assert {"model", "optimizer", "scheduler", "epoch", "history", "train_seconds", "steps",
            "samples"} <= set(state)
    assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
    assert all(math.isfinite(h["loss"]) for h in state["history"])
    assert all(h["lr"] > 0 for h in state["history"])


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
    with pytest.raises(ConfigError, match=r"^unknown device 'tpu': choose one of cpu, cuda$"):
        make_fabric("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"^device 'cuda' was asked for but no GPU is "
                                              r"visible; use device='cpu'$"):
            make_fabric("cuda")


def test_make_fabric_runs_on_the_cpu_in_full_precision_by_default():
    fabric = make_fabric()
    assert fabric.device.type == "cpu" and fabric.world_size == 1
    assert type(fabric.strategy).__name__ == "SingleDeviceStrategy"
    assert make_fabric("cpu", precision="bf16-mixed")._precision.precision == "bf16-mixed"


class FabricCall:
    """Stands in for Lightning's Fabric: keeps what it was asked for, and whether launched."""

    def __init__(self, **kwargs):
        self.kwargs, self.launched = kwargs, False

    def launch(self):
        self.launched = True


@pytest.mark.parametrize("world", [None, "1", "2", "4"])
def test_under_torchrun_make_fabric_asks_for_ddp_over_every_process(world, monkeypatch):
    """torchrun sets WORLD_SIZE: then one device per process, DDP, and the process joins the
    group (launch); without it (or with one process) a single device and no group."""
    import lightning_fabric

    monkeypatch.setattr(lightning_fabric, "Fabric", FabricCall)
    if world is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world)
    fabric = make_fabric("cpu", precision="16-mixed")
    n = int(world or 1)
    assert fabric.kwargs == {"accelerator": "cpu", "devices": n,
                             "strategy": "ddp" if n > 1 else "auto", "precision": "16-mixed"}
    assert fabric.launched == (n > 1)


def test_an_unknown_schedule_is_refused_with_the_choices():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ConfigError, match=r"^unknown lr schedule 'cosine': choose 'plateau' or "
                                          r"'constant'$"):
        engine.make_scheduler(optimizer, replace(CODE, lr_schedule="cosine"))


# ------------------------------------------------------------------ the learning rate


def short_training(smoke, samples, path, protocol, epochs=3):
    """G-like training on four retain slices; returns (loop result, checkpoint state)."""
    loop = Loop(method=METHODS["Retrain"], forget=None, retain=samples["retain"].select(range(4)),
                epochs=epochs, train=smoke.train, seed=0, checkpoint=path, protocol=protocol,
                progress=False)
    result = run_loop(loop, fresh_model(smoke), make_fabric("cpu"))
    return result, torch.load(path, weights_only=True)


@pytest.fixture
def impatient(monkeypatch):
    """The plateau scheduler made to drop at every epoch after the first."""
    helpers.impatient(monkeypatch)


def test_the_plateau_scheduler_is_stepped_with_the_epochs_mean_loss(smoke, samples, tmp_path,
                                                                    monkeypatch):
    stepped = []
    real = engine.make_scheduler

    class Recording(torch.optim.lr_scheduler.ReduceLROnPlateau):
        def step(self, metrics):
            stepped.append(metrics)
            return super().step(metrics)

    def recording(optimizer, protocol):
        scheduler = real(optimizer, protocol)
        scheduler.__class__ = Recording  # its state (and checkpoint) stay the real one's
        return scheduler

    monkeypatch.setattr(engine, "make_scheduler", recording)
    result, state = short_training(smoke, samples, tmp_path / "g.ckpt", CODE)
    losses = [h["loss"] for h in result["history"]]
    assert stepped == losses  # once per epoch, with that epoch's mean training loss
    assert state["scheduler"]["best"] == min(losses)
    assert state["scheduler"]["last_epoch"] == 3
    assert (state["scheduler"]["factor"], state["scheduler"]["patience"]) == (0.1, 10)


def test_the_plateau_scheduler_lowers_the_rate_and_history_records_it(smoke, samples, tmp_path,
                                                                      impatient):
    result, state = short_training(smoke, samples, tmp_path / "g.ckpt", CODE)
    lr = smoke.train.lr
    # an entry's rate is the one its epoch ran at; the drop after epoch 3 shows in the state
    assert [h["lr"] for h in result["history"]] == pytest.approx([lr, lr, lr / 10])
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == pytest.approx([lr / 100])
    assert state["scheduler"]["_last_lr"] == pytest.approx([lr / 100])


def test_a_constant_schedule_never_changes_the_rate(smoke, samples, tmp_path, impatient):
    constant = replace(CODE, lr_schedule="constant")
    result, state = short_training(smoke, samples, tmp_path / "g.ckpt", constant)
    lr = smoke.train.lr
    assert [h["lr"] for h in result["history"]] == [lr, lr, lr]
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [lr]
    assert "scheduler" not in state
    assert engine.make_scheduler(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0),
                                 constant) is None
    with pytest.raises(ConfigError, match="unknown lr schedule 'cosine'"):
        engine.make_scheduler(None, replace(CODE, lr_schedule="cosine"))


def test_unlearning_resumes_gs_scheduler_and_rate(smoke, samples, tmp_path, monkeypatch):
    """From G's checkpoint: weights, Adam state, the scheduler's state and so G's last rate."""
    with monkeypatch.context() as patch:  # a G whose rate dropped twice
        helpers.impatient(patch)
        _, g_state = short_training(smoke, samples, tmp_path / "g.ckpt", CODE)
    g_lr = g_state["optimizer"]["param_groups"][0]["lr"]
    assert g_lr == pytest.approx(smoke.train.lr / 100)

    model = fresh_model(smoke, seed=7)
    optimizer = engine.make_optimizer(model, smoke.train)
    scheduler = engine.make_scheduler(optimizer, CODE)
    assert scheduler.state_dict() != g_state["scheduler"]  # a fresh one differs from G's
    load_start(tmp_path / "g.ckpt", model, optimizer, scheduler)
    same(scheduler.state_dict(), g_state["scheduler"], "scheduler")
    same(model.state_dict(), g_state["model"], "model")
    assert optimizer.param_groups[0]["lr"] == g_lr

    loop = Loop(method=METHODS["NL-FT"], forget=samples["forget"],
                retain=samples["retain"].select(RETAIN), epochs=2, train=smoke.train, seed=0,
                checkpoint=tmp_path / "u.ckpt", protocol=CODE, lam=1e-4,
                start_from=tmp_path / "g.ckpt", progress=False)
    result = run_loop(loop, fresh_model(smoke), make_fabric("cpu"))
    # unlearning runs at G's last rate (not train.lr), and G's patience carries on
    assert [h["lr"] for h in result["history"]] == pytest.approx([g_lr, g_lr / 10])
    u_state = torch.load(tmp_path / "u.ckpt", weights_only=True)
    assert u_state["scheduler"]["last_epoch"] == g_state["scheduler"]["last_epoch"] + 2


def test_the_lab_unlearns_from_gs_scheduler_state(lab, trained, monkeypatch):
    """Through the Lab: the unlearning loop loads G's scheduler state and starts at its rate."""
    loaded = []
    real = engine.load_start

    def spy(path, model, optimizer, scheduler):
        real(path, model, optimizer, scheduler)
        loaded.append((path, scheduler.state_dict(), optimizer.param_groups[0]["lr"]))

    monkeypatch.setattr(engine, "load_start", spy)
    record = lab.unlearn("FT", retain_fraction=0.15)
    assert record["from_store"] is False
    g_path = lab.store.run_dir(trained["original"]["key"]) / "checkpoint.ckpt"
    g_state = torch.load(g_path, weights_only=True)
    [(path, scheduler_state, lr)] = loaded
    assert path == g_path
    same(scheduler_state, g_state["scheduler"], "scheduler")
    g_lr = g_state["optimizer"]["param_groups"][0]["lr"]
    assert lr == g_lr == g_state["scheduler"]["_last_lr"][0]  # G's rate after its last epoch
    assert record["history"][0]["lr"] == g_lr
    state = torch.load(lab.store.run_dir(record["key"]) / "checkpoint.ckpt", weights_only=True)
    assert state["scheduler"]["last_epoch"] == g_state["scheduler"]["last_epoch"] + \
        lab.protocol.unlearn_epochs


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
        assert got["ssim"] == pytest.approx(
            float(np.asarray(fm.ssim(target, recon, maxval)).item()), rel=1e-12)
        assert got["nmse"] == pytest.approx(float(fm.nmse(target, recon)), rel=1e-12)
        assert set(got) == set(METRICS)
        # more noise, worse numbers: the metrics are not constant
        worse = volume_metrics(target,
                               (target + rng.normal(0, 2e-4, target.shape)).astype(np.float32))
        assert (worse["psnr"] < got["psnr"] and worse["ssim"] < got["ssim"]
                and worse["nmse"] > got["nmse"])


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
        assert all(math.isfinite(v)
                   for v in metrics[name]["per_volume"][next(iter(names))].values())
        # per slice: the SSIM loss and NMSE of every slice of every volume
        per_slice = metrics[name]["per_slice"]
        assert set(per_slice) == names
        for fname, losses in per_slice.items():
            assert set(losses) == {"ssim_loss", "nmse"}
            assert (len(losses["ssim_loss"]) == len(losses["nmse"])
                    == lab.data_config.slices_per_volume)
            assert all(0.0 <= v <= 2.0 for v in losses["ssim_loss"])
            assert all(v >= 0.0 and math.isfinite(v) for v in losses["nmse"])
            if lab.data_config.slices_per_volume == 1:  # one slice: the volume's own NMSE
                assert losses["nmse"][0] == pytest.approx(
                    metrics[name]["per_volume"][fname]["nmse"], rel=1e-4)


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
    # two processes average their gradients: not the single-process computation, not its key
    assert record["key"] != trained["oracle"]["key"]
    assert record["config"]["processes"] == 2 and "processes" not in trained["oracle"]["config"]
    # each rank takes half of every epoch's steps (equal counts, or DDP would hang: an odd
    # plan is padded with its first step), so together they push through the whole epoch
    n, batch = len(lab.dataset("retain")), lab.train_config.batch_size
    plans = [epoch_steps(0, n, lab.seed, e, batch) for e in range(lab.train_config.epochs)]
    padded = [(plan + plan)[:2 * -(-len(plan) // 2)] for plan in plans]
    assert record["timing"]["steps"] == sum(len(plan) for plan in padded)
    assert record["timing"]["samples"] == sum(len(r) for plan in padded for _, r in plan)
    assert trained["oracle"]["timing"]["steps"] == sum(len(plan) for plan in plans)
    assert 0 <= record["timing"]["samples"] - trained["oracle"]["timing"]["samples"] <= \
        lab.train_config.epochs * batch
    assert all(math.isfinite(v) for v in record["summary"].values())
    assert all(math.isfinite(h["loss"]) for h in record["history"])
    stored = json.loads((results / "runs" / record["key"] / "record.json").read_text())
    assert stored["timing"]["steps"] == record["timing"]["steps"]
    assert (results / "runs" / record["key"] / "checkpoint.ckpt").exists()


def test_on_a_cpu_convolution_weights_are_channels_last_and_their_values_kept(smoke, lab,
                                                                              trained):
    """The loop, the replay and a loaded model put the network on the CPU with channels-last
    convolution weights (``engine.on_device``): oneDNN's faster layout there; the values
    are the same, and a checkpoint still loads into a plain fastMRI VarNet."""
    model = fresh_model(smoke, seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moved = engine.on_device(model, "cpu")
    convolutions = [p for p in moved.parameters() if p.dim() == 4]
    assert convolutions and all(p.is_contiguous(memory_format=torch.channels_last)
                                for p in convolutions)
    same(before, moved.state_dict())
    loaded = lab.load_model(trained["original"])
    assert all(p.is_contiguous(memory_format=torch.channels_last)
               for p in loaded.parameters() if p.dim() == 4)
    plain = fresh_model(smoke, seed=6)
    plain.load_state_dict(loaded.state_dict())
    same(plain.state_dict(), loaded.state_dict())
