"""What a run of the loop reads, returns and shows: checked in seconds on a few slices.

Every epoch trains the steps of its own plan, in order, with the forget and the retain stream
under masks of their own; a process of a torchrun job trains its share and counts the whole
job's steps and slices; the history has one entry per epoch (its mean loss, rate and
metrics); the seconds of training add up over epochs and across a resume; the progress bar
names the row and the epoch and is cleared when the epoch ends. With ``test_loop.py`` these
are among the tests ``make mutants`` runs against the engine.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import Killed, fresh_model, kill_raises, record_calls

from erase.config import PROTOCOLS, replace
from erase.runs import engine
from erase.runs.engine import Loop, epoch_plan, make_fabric, mask_seed, run_loop
from erase.runs.methods import METHODS

CODE = PROTOCOLS["code"]  # random training masks: every batch has a mask seed
RETAIN = [3, 5, 7, 11]
RESULT_KEYS = {"history", "train_seconds", "steps", "samples", "prepare_seconds", "parts"}


def nl_ft(smoke, samples, g_path, checkpoint, epochs=2, progress=False, **fields) -> Loop:
    """NL-FT from G, batches of two: three forget and four retain slices, four steps an epoch."""
    return Loop(method=METHODS["NL-FT"], forget=samples["forget"],
                retain=samples["retain"].select(RETAIN), epochs=epochs,
                train=replace(smoke.train, batch_size=2), seed=0, checkpoint=checkpoint,
                protocol=CODE, lam=1e-4, start_from=g_path, progress=progress, **fields)


def batches_of(calls) -> list:
    """Every recorded ``batch_of(dataset, indices, fabric, mask_seed)`` as (stream, slice
    indices, mask seed), in order."""
    return [(args[0], list(args[1]), args[3]) for args, _, _ in calls]


def steps_read(calls, loop) -> list:
    """The (forget, retain) indices of each step: the loop reads a forget then a retain batch."""
    seen = batches_of(calls)
    assert all(d is loop.forget for d, _, _ in seen[0::2])
    assert all(d is loop.retain for d, _, _ in seen[1::2])
    return [(f[1], r[1]) for f, r in zip(seen[0::2], seen[1::2])]


# ------------------------------------------------------------------ what every epoch reads


def test_every_epoch_trains_its_own_plan_in_order(small_g, smoke, samples, tmp_path,
                                                  monkeypatch):
    g_path, _ = small_g
    calls = record_calls(monkeypatch, engine, "batch_of")
    loop = nl_ft(smoke, samples, g_path, tmp_path / "u.ckpt")
    run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))
    plans = [epoch_plan(loop, 0), epoch_plan(loop, 1)]
    assert plans[0] != plans[1], "both epochs drew the same order"
    assert steps_read(calls, loop) == plans[0] + plans[1]


def test_the_forget_and_retain_streams_draw_masks_of_their_own_each_epoch(
        small_g, smoke, samples, tmp_path, monkeypatch):
    g_path, _ = small_g
    calls = record_calls(monkeypatch, engine, "batch_of")
    loop = nl_ft(smoke, samples, g_path, tmp_path / "u.ckpt")
    run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))
    per_step = len(epoch_plan(loop, 0))
    seen = batches_of(calls)
    for k, (dataset, _, seed) in enumerate(seen):
        stream = "forget" if dataset is loop.forget else "retain"
        assert seed == mask_seed(0, k // (2 * per_step), stream)
    seeds = {seed for _, _, seed in seen}
    assert len(seeds) == 4  # two streams, two epochs: no two share their masks
    # the text's fixed masks: no seed at all
    calls.clear()
    run_loop(replace(loop, protocol=PROTOCOLS["text"], checkpoint=tmp_path / "t.ckpt"),
             fresh_model(smoke, seed=7), make_fabric("cpu"))
    assert calls and all(seed is None for _, _, seed in batches_of(calls))


class SecondOfTwo:
    """A one-process Fabric that answers as process 1 of a 2-process torchrun job: the other
    process (never run) is taken to read as many slices; only process 0 writes and evaluates."""

    global_rank, world_size, is_global_zero = 1, 2, False

    def __init__(self, fabric):
        self._fabric = fabric

    def __getattr__(self, name):
        return getattr(self._fabric, name)

    def all_reduce(self, tensor, group=None, reduce_op="mean"):  # Fabric's default: mean
        assert reduce_op in ("sum", "mean"), reduce_op
        return tensor * 2 if reduce_op == "sum" else tensor

    def barrier(self):
        pass


def test_a_process_of_a_torchrun_job_trains_its_share_and_counts_the_jobs(
        small_g, smoke, samples, tmp_path, monkeypatch, capsys):
    g_path, _ = small_g
    calls = record_calls(monkeypatch, engine, "batch_of")
    evaluated = []
    loop = nl_ft(smoke, samples, g_path, tmp_path / "u.ckpt", evaluate=evaluated.append,
                 progress=True)
    result = run_loop(loop, fresh_model(smoke, seed=7), SecondOfTwo(make_fabric("cpu")))
    share = [epoch_plan(loop, e, rank=1, world=2) for e in range(2)]
    assert share[0] != epoch_plan(loop, 0, rank=0, world=2)
    assert steps_read(calls, loop) == share[0] + share[1]
    assert result["steps"] == 2 * (len(share[0]) + len(share[1]))  # the job's steps
    read = sum(len(f) + len(r) for plan in share for f, r in plan)
    assert result["samples"] == 2 * read  # summed over both processes
    assert evaluated == [] and all("metrics" not in h for h in result["history"])
    assert capsys.readouterr().err == ""  # only process 0 shows progress


# ------------------------------------------------------------------ what a run returns


def test_the_history_has_each_epochs_mean_loss_rate_and_metrics(small_g, smoke, samples,
                                                                tmp_path, monkeypatch):
    g_path, g_state = small_g
    steps = record_calls(monkeypatch, engine, "step_terms")
    calls = []
    loop = nl_ft(smoke, samples, g_path, tmp_path / "u.ckpt",
                 evaluate=lambda model: calls.append(1) or {"calls": len(calls)})
    result = run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))
    losses = [float(sum(terms.values()).detach()) for _, _, terms in steps]
    assert set(result) == RESULT_KEYS
    n = len(epoch_plan(loop, 0))
    assert result["steps"] == len(losses) == 2 * n
    assert result["samples"] == 2 * (len(samples["forget"]) + len(RETAIN))
    assert result["prepare_seconds"] == 0.0 and result["train_seconds"] > 0
    # unlearning goes on at G's rate, and with G's (impatient) scheduler state, which drops it
    lr = g_state["optimizer"]["param_groups"][0]["lr"]
    assert [set(h) for h in result["history"]] == [{"epoch", "loss", "lr", "metrics"}] * 2
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    assert [h["metrics"] for h in result["history"]] == [{"calls": 1}, {"calls": 2}]
    assert [h["lr"] for h in result["history"]] == pytest.approx([lr, lr / 10], rel=1e-12)
    assert [h["loss"] for h in result["history"]] == pytest.approx(
        [np.mean(losses[:n]), np.mean(losses[n:])], rel=1e-12)


class Clock:
    """``time`` for the engine: every reading one second after the last."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


@pytest.mark.parametrize("method,prepare", [("NL-FT", 0.0), ("SalUn", 1.0)])
def test_training_seconds_add_up_over_epochs_and_across_a_resume(method, prepare, small_g, smoke,
                                                                 samples, tmp_path, monkeypatch):
    """On a clock where each epoch (and a prepare) lasts one second: 3 epochs are 3 seconds
    plus the prepare's, whether the run went straight through or was killed after epoch 1."""
    g_path, _ = small_g
    monkeypatch.setattr(engine, "time", Clock())
    kill_raises(monkeypatch)

    def run(checkpoint):
        loop = replace(nl_ft(smoke, samples, g_path, checkpoint, epochs=3),
                       method=METHODS[method], knobs=dict(METHODS[method].knobs))
        return run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))

    straight = run(tmp_path / "a.ckpt")
    monkeypatch.setenv(engine.STOP_AFTER_EPOCH, "1")
    with pytest.raises(Killed):
        run(tmp_path / "b.ckpt")
    monkeypatch.setenv(engine.STOP_AFTER_EPOCH, "")
    resumed = run(tmp_path / "b.ckpt")
    for result in (straight, resumed):
        assert result["train_seconds"] == 3.0 + prepare
        assert result["prepare_seconds"] == prepare
    assert resumed["samples"] == straight["samples"] and resumed["steps"] == straight["steps"]


# ------------------------------------------------------------------ what a run shows


def test_the_progress_bar_names_row_and_epoch_and_is_cleared(small_g, smoke, samples, tmp_path,
                                                             capsys, monkeypatch):
    g_path, _ = small_g
    monkeypatch.setattr(engine, "on_terminal", lambda: True)
    loop = nl_ft(smoke, samples, g_path, tmp_path / "u.ckpt", progress=True)
    run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))
    err = capsys.readouterr().err
    for epoch in (1, 2):
        assert f"NL-FT epoch {epoch}/2: " in err
    assert re.search(r"loss=\d\.\d{4}\]", err) and "NL-FT epoch 3/2" not in err
    steps = len(engine.epoch_plan(loop, 0)) + len(engine.epoch_plan(loop, 1))
    totals = set(re.findall(r"\| *\d+/(\d+) \[", err))
    assert totals == {str(steps)}, f"one bar counts every step of the run: {totals}"
    assert err.endswith("\r") and err.rstrip("\r").rsplit("\r", 1)[-1].strip() == "", (
        "the last bar was left on the screen")
    run_loop(replace(loop, progress=False, checkpoint=tmp_path / "quiet.ckpt"),
             fresh_model(smoke, seed=7), make_fabric("cpu"))
    assert capsys.readouterr().err == ""


def test_a_run_logs_one_plain_line_per_epoch_when_not_on_a_terminal(small_g, smoke, samples,
                                                                    tmp_path, capsys):
    g_path, _ = small_g
    loop = nl_ft(smoke, samples, g_path, tmp_path / "u.ckpt", progress=True)
    run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "\r" not in "".join(lines)
    assert re.fullmatch(r"NL-FT epoch 1/2: loss \d\.\d{4}, \d+ s elapsed, about \d+ s left",
                        lines[0]), lines[0]
    assert re.fullmatch(r"NL-FT epoch 2/2: loss \d\.\d{4}, \d+ s elapsed", lines[1]), lines[1]


def test_the_loss_weighs_its_l1_part_as_the_training_config_says(smoke, samples, tmp_path,
                                                                 monkeypatch):
    """J = SSIM loss + w L1 with the config's w: the same first step under w = 1e-5 and w = 1
    has losses that differ by (1 - 1e-5) times the step's L1 (about 1e-4 on fastMRI's raw
    scale, hundreds of float32 steps at a loss near 0.5)."""
    steps = record_calls(monkeypatch, engine, "step_terms")
    for w in (1e-5, 1.0):
        loop = Loop(method=METHODS["Retrain"], forget=None,
                    retain=samples["retain"].select(range(2)), epochs=1,
                    train=replace(smoke.train, l1_weight=w), seed=0,
                    checkpoint=tmp_path / f"{w}.ckpt", protocol=CODE, progress=False)
        run_loop(loop, fresh_model(smoke), make_fabric("cpu"))
    first = {}
    for args, _, terms in steps:  # args[2]: the step's loss function J
        first.setdefault(args[2].l1_weight, float(sum(terms.values()).detach()))
    assert set(first) == {1e-5, 1.0}
    assert first[1.0] - first[1e-5] > 1e-5
