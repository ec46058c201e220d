"""The loop runs each row's parts, checked on a small G in seconds (no Lab, no trained model).

SalUn moves only its salient weights; SSD trains nothing and its dampened G is the run's
checkpoint; SCRUB's teacher is G, frozen, and stays G while the student moves; l1-sparse's
weight falls step by step over the whole run, also across a resume; every step gets the
loop's knobs. What a run reports (slices read, seconds) counts the row's preparation. With
``test_loop.py`` these are the tests ``make mutants`` runs against the engine.
"""
from __future__ import annotations

import re

import pytest
import torch
from helpers import Killed, differs, fresh_model, kill_raises, record_calls, same, save_with_code

from erase.config import PROTOCOLS, ConfigError, replace
from erase.runs import engine
from erase.runs.engine import (
    Loop,
    epoch_plan,
    load_teacher,
    make_fabric,
    prepare,
    prepare_reads,
    run_loop,
    save_atomic,
)
from erase.runs.methods import METHODS
from erase.runs.store import StoreError

CODE = PROTOCOLS["code"]
RETAIN = [3, 5, 7, 11]  # Dr' of the runs below


def row_loop(name, smoke, samples, g_path, checkpoint, epochs=1, batch_size=None,
             forget_epochs=None, **knobs) -> Loop:
    """A run of row ``name`` from G on three forget and four retain slices, with the row's
    default knobs updated by ``knobs``."""
    row = METHODS[name]
    train = replace(smoke.train, batch_size=batch_size or smoke.train.batch_size)
    return Loop(method=row, forget=samples["forget"], retain=samples["retain"].select(RETAIN),
                epochs=epochs, train=train, seed=0, checkpoint=checkpoint, protocol=CODE,
                lam=1e-4, start_from=g_path, progress=False, knobs={**dict(row.knobs), **knobs},
                teacher_from=g_path if row.teacher == "G" else None, forget_epochs=forget_epochs)


def knobs_of(calls) -> list:
    """The keyword arguments of every recorded ``step_terms``, in order."""
    return [kwargs for _, kwargs, _ in calls]


def trainable_names(model) -> list:
    return [name for name, p in model.named_parameters() if p.requires_grad]


# ------------------------------------------------------------------ SalUn: a weight mask


def test_salun_moves_only_its_salient_weights(small_g, smoke, samples, tmp_path):
    g_path, g_state = small_g
    model = fresh_model(smoke, seed=7)
    result = run_loop(row_loop("SalUn", smoke, samples, g_path, tmp_path / "u.ckpt",
                               saliency=0.5), model, make_fabric("cpu"))
    mask, now = result["parts"].mask, model.state_dict()
    names = trainable_names(model)
    assert len(mask) == len(names)
    moved = 0
    for name, m in zip(names, mask):
        g = g_state["model"][name]
        assert torch.equal(now[name][~m], g[~m]), f"{name} moved outside the mask"
        moved += int((now[name][m] != g[m]).sum())
    assert moved > 0, "no salient weight moved"
    share = sum(int(m.sum()) for m in mask) / sum(m.numel() for m in mask)
    assert share == pytest.approx(0.5, abs=0.01)


def test_salun_counts_its_saliency_pass_in_slices_read_and_seconds(small_g, smoke, samples,
                                                                  tmp_path):
    """Its prepare reads Df once (one gradient over every forget slice) before the epoch,
    which reads every slice once; a resumed run reports the same from its checkpoint."""
    g_path, _ = small_g
    loop = row_loop("SalUn", smoke, samples, g_path, tmp_path / "u.ckpt")
    n_forget, n_retain = len(samples["forget"]), len(RETAIN)
    assert prepare_reads(loop.method, n_forget, n_retain) == n_forget
    result = run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))
    assert result["parts"].samples == n_forget
    assert result["samples"] == n_forget + (n_forget + n_retain)
    assert 0 < result["prepare_seconds"] < result["train_seconds"]
    again = run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))  # finished: loaded
    assert (again["samples"], again["steps"]) == (result["samples"], result["steps"])
    assert again["prepare_seconds"] == result["prepare_seconds"]
    assert again["train_seconds"] == result["train_seconds"]


def test_rows_without_a_prepare_read_nothing_before_the_epochs():
    for name in ("FT", "NL-FT", "GA-l1", "SCRUB", "l1-sparse"):
        assert prepare_reads(METHODS[name], 3, 4) == 0, name
    assert prepare_reads(METHODS["SSD"], 3, 4) == 7  # I_f on Df, I_D on Dr' and Df


# ------------------------------------------------------------------ SSD: no training


def test_ssd_trains_nothing_and_its_checkpoint_is_the_dampened_g(small_g, smoke, samples,
                                                                tmp_path):
    g_path, g_state = small_g
    checkpoint = tmp_path / "u.ckpt"
    model = fresh_model(smoke, seed=7)
    # alpha 1.5: with 3 forget and 4 retain slices, I_f / I_D is at most 7/3 (alpha 10 selects
    # nothing here, see RESULTS.md)
    loop = row_loop("SSD", smoke, samples, g_path, checkpoint, epochs=0, alpha=1.5)
    result = run_loop(loop, model, make_fabric("cpu"))
    assert result["history"] == [] and result["steps"] == 0
    assert result["samples"] == prepare_reads(loop.method, 3, 4) == 7
    assert result["prepare_seconds"] > 0
    selected, now = result["parts"].selected, model.state_dict()
    assert any(bool(s.any()) for s in selected), "SSD dampened no weight"
    for name, s in zip(trainable_names(model), selected):
        g = g_state["model"][name]
        assert torch.equal(now[name][~s], g[~s]), f"{name} changed outside the selection"
        assert bool((now[name][s].abs() <= g[s].abs()).all()), f"{name} grew"
    assert differs(now, g_state["model"])
    state = torch.load(checkpoint, weights_only=True)  # the run's result is written
    same(state["model"], now, "model")
    assert (state["epoch"], state["steps"], state["prepare_samples"]) == (0, 0, 7)


def test_a_row_that_trains_nothing_records_no_loss_for_an_epoch(small_g, smoke, samples,
                                                                tmp_path):
    """Given epochs anyway, SSD's epochs have no steps: no mean loss, no scheduler step."""
    g_path, _ = small_g
    loop = row_loop("SSD", smoke, samples, g_path, tmp_path / "u.ckpt", epochs=2, alpha=1.5)
    result = run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))
    assert [(h["epoch"], h["loss"]) for h in result["history"]] == [(1, None), (2, None)]
    assert result["steps"] == 0 and result["samples"] == 7


def test_ssds_importances_are_taken_one_slice_at_a_time(small_g, smoke, samples, tmp_path,
                                                       monkeypatch):
    """The Fisher diagonal is the mean of per-slice squared gradients: a batch of two would
    square the gradient of their mean instead."""
    g_path, _ = small_g
    sizes = []
    real = engine.fisher_importance

    def spy(model, loss_fn, batches):
        def counted():
            for batch in batches:
                sizes.append(len(batch.target))
                yield batch
        return real(model, loss_fn, counted())

    monkeypatch.setattr(engine, "fisher_importance", spy)
    run_loop(row_loop("SSD", smoke, samples, g_path, tmp_path / "u.ckpt", epochs=0),
             fresh_model(smoke, seed=7), make_fabric("cpu"))
    assert sizes == [1] * (len(samples["forget"]) + len(RETAIN))


def test_an_unknown_prepare_is_refused_by_name(small_g, smoke, samples, tmp_path):
    g_path, _ = small_g
    loop = row_loop("SalUn", smoke, samples, g_path, tmp_path / "u.ckpt")
    loop = replace(loop, method=replace(loop.method, prepare="pruning"))
    model = fresh_model(smoke)
    with pytest.raises(ConfigError, match=r"^unknown prepare 'pruning' of method SalUn$"):
        prepare(loop, model, engine.make_optimizer(model, smoke.train), None, make_fabric("cpu"))


# ------------------------------------------------------------------ SCRUB: a teacher


def test_scrubs_teacher_is_g_frozen_and_stays_g_while_the_student_moves(
        small_g, smoke, samples, tmp_path, monkeypatch):
    g_path, g_state = small_g
    g_bytes = g_path.read_bytes()
    calls = record_calls(monkeypatch, engine, "step_terms")
    model = fresh_model(smoke, seed=7)
    loop = row_loop("SCRUB", smoke, samples, g_path, tmp_path / "u.ckpt", epochs=2,
                    forget_epochs=1, distance="l1")
    result = run_loop(loop, model, make_fabric("cpu"))
    teacher = result["parts"].teacher
    same(teacher.state_dict(), g_state["model"], "teacher")  # after the student's steps
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    assert differs(model.state_dict(), g_state["model"])
    assert g_path.read_bytes() == g_bytes
    seen = knobs_of(calls)
    assert seen and all(k["teacher"] is teacher and k["distance"] == "l1" for k in seen)
    # SCRUB's max-steps (forget slices) only in its first ``forget_epochs`` epochs
    assert [bool(f) for f, _ in epoch_plan(loop, 0)].count(True) > 0
    assert all(not f for f, _ in epoch_plan(loop, 1))
    assert epoch_plan(loop, 0, world=2) == epoch_plan(loop, 0, rank=0, world=2)


def test_a_damaged_or_unsafe_teacher_checkpoint_is_refused(smoke, tmp_path):
    model = fresh_model(smoke)
    path = tmp_path / "g" / "checkpoint.ckpt"
    path.parent.mkdir()
    torch.save({"model": model.state_dict()}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(StoreError) as err:
        load_teacher(path, model)
    assert re.fullmatch(rf"checkpoint {re.escape(str(path))} is damaged or truncated \(.+\); "
                        rf"delete {re.escape(str(path.parent))} to retrain the model it came "
                        "from", str(err.value)), str(err.value)

    marker = tmp_path / "pwned"
    save_with_code(path, {"model": model.state_dict()}, marker)
    with pytest.raises(StoreError, match="refusing to unpickle it"):
        load_teacher(path, model)
    assert not marker.exists(), "the checkpoint's code ran"


# ------------------------------------------------------------------ l1-sparse: a schedule


def test_l1_sparse_weight_falls_linearly_over_the_whole_run_across_a_resume(
        small_g, smoke, samples, tmp_path, monkeypatch):
    """alpha_t = alpha (1 - t / T) over the run's T steps, counted over all epochs: a run
    killed after epoch 1 and resumed carries on from step t where it stopped."""
    g_path, _ = small_g
    alpha, checkpoint = 5e-4, tmp_path / "u.ckpt"
    calls = record_calls(monkeypatch, engine, "step_terms")
    kill_raises(monkeypatch)

    def run():
        loop = row_loop("l1-sparse", smoke, samples, g_path, checkpoint, epochs=3,
                        batch_size=2, alpha=alpha)
        return run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))

    monkeypatch.setenv(engine.STOP_AFTER_EPOCH, "1")
    with pytest.raises(Killed):
        run()
    monkeypatch.setenv(engine.STOP_AFTER_EPOCH, "")
    result = run()
    total = result["steps"]
    assert total == 3 * 2  # four retain slices in batches of two, three epochs
    assert [k["alpha"] for k in knobs_of(calls)] == pytest.approx(
        [alpha * (1 - t / total) for t in range(total)], rel=1e-12)


# ------------------------------------------------------------------ every step's knobs


def test_every_step_gets_the_loops_protocol_and_knobs(small_g, smoke, samples, tmp_path,
                                                     monkeypatch):
    g_path, _ = small_g
    calls = record_calls(monkeypatch, engine, "step_terms")
    loop = replace(row_loop("GA-l1-FT", smoke, samples, g_path, tmp_path / "u.ckpt"),
                   gamma=0.25, lam=3e-4)
    result = run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))
    assert len(calls) == result["steps"] >= 1
    for knobs in knobs_of(calls):
        assert knobs["protocol"] == CODE and (knobs["gamma"], knobs["lam"]) == (0.25, 3e-4)
        assert isinstance(knobs["generator"], torch.Generator)
        assert "teacher" not in knobs and "alpha" not in knobs


def test_in_order_reads_every_slice_once_in_order(samples):
    split = samples["retain"].select(range(5))
    batches = list(engine._in_order(split, 2, make_fabric("cpu")))
    assert [len(b.target) for b in batches] == [2, 2, 1]
    flat = [(b, i) for b in batches for i in range(len(b.target))]
    for k, (b, i) in enumerate(flat):
        assert torch.equal(b.target[i], split[k].target), k
        assert torch.equal(b.mask[i], split[k].mask), k  # the fixed (evaluation) mask


def test_save_atomic_writes_the_state_in_one_rename(tmp_path):
    path = tmp_path / "run.ckpt"
    save_atomic(make_fabric("cpu"), path, {"epoch": 3, "w": torch.ones(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]
    same(torch.load(path, weights_only=True), {"epoch": 3, "w": torch.ones(2)})
