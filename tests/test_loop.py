"""The loop does what the protocol says, checked where a wrong loop would differ.

Unlearning starts from exactly G's weights and Adam state; every step runs at the rate the
schedule gives (a run where the plateau scheduler drops it); the gradient is clipped to the
protocol's norm before the step; the test hooks stop a run at an exact step or epoch. Each
test also runs its own negative control where that is cheap (the loop with the part removed
must fail the same check), so none of them can pass by checking nothing. Small and fast: these
are the tests ``make mutants`` runs against the engine.
"""
from __future__ import annotations

import copy
import math
import os
import signal

import pytest
import torch
from helpers import (
    Killed,
    differs,
    fresh_model,
    impatient,
    kill_raises,
    record_calls,
    same,
    save_with_code,
)

from erase.config import PROTOCOLS, replace
from erase.runs import engine
from erase.runs.engine import Loop, make_fabric, optimizer_step, run_loop
from erase.runs.methods import METHODS, ReconstructionLoss
from erase.runs.models import reconstruct
from erase.runs.store import StoreError

CODE = PROTOCOLS["code"]  # the plateau scheduler, random training masks, alternating steps
RETAIN = [3, 5, 7, 11]  # Dr' of the unlearning runs below


def unlearning(smoke, samples, g_path, checkpoint, epochs=1, train=None, method="NL-FT"):
    return Loop(method=METHODS[method], forget=samples["forget"],
                retain=samples["retain"].select(RETAIN), epochs=epochs,
                train=train or smoke.train, seed=0, checkpoint=checkpoint, protocol=CODE,
                lam=1e-4, start_from=g_path, progress=False)


def at_start(monkeypatch) -> dict:
    """What the loop holds when it hands model and optimizer to the row's ``prepare``: right
    after loading the start and setting up Fabric, before any step."""
    seen = {}
    real = engine.prepare

    def spy(loop, model, optimizer, loss_fn, fabric):
        net = getattr(model, "module", model)
        seen["model"] = {k: v.detach().clone() for k, v in net.state_dict().items()}
        seen["optimizer"] = copy.deepcopy(optimizer.state_dict())
        return real(loop, model, optimizer, loss_fn, fabric)

    monkeypatch.setattr(engine, "prepare", spy)
    return seen


# ------------------------------------------------------------------ the start is G, exactly


@pytest.mark.parametrize("method", ["NL-FT", "FT", "GA-l1"])
def test_unlearning_starts_from_gs_weights_and_adam_state(method, small_g, smoke, samples,
                                                          tmp_path, monkeypatch):
    g_path, g_state = small_g
    seen = at_start(monkeypatch)
    run_loop(unlearning(smoke, samples, g_path, tmp_path / "u.ckpt", method=method),
             fresh_model(smoke, seed=7), make_fabric("cpu"))
    same(seen["model"], g_state["model"], "model")
    # every moment of every weight, the step counts, and the rate G ended at
    same(seen["optimizer"], g_state["optimizer"], "optimizer")


def test_without_loading_g_the_start_check_fails(small_g, smoke, samples, tmp_path,
                                                 monkeypatch):
    """The negative control: a loop that skips ``load_start`` starts from a fresh model and a
    fresh Adam, and the comparison above tells."""
    g_path, g_state = small_g
    seen = at_start(monkeypatch)
    monkeypatch.setattr(engine, "load_start", lambda *args: None)
    run_loop(unlearning(smoke, samples, g_path, tmp_path / "u.ckpt"), fresh_model(smoke, seed=7),
             make_fabric("cpu"))
    assert differs(seen["model"], g_state["model"])
    assert differs(seen["optimizer"], g_state["optimizer"])
    assert seen["optimizer"]["state"] == {}


def test_a_start_checkpoint_with_pickled_code_is_refused_not_run(small_g, smoke, samples,
                                                                 tmp_path):
    """G is read as tensors and plain values only (weights_only): a checkpoint that would run
    code when unpickled is an error naming it, and its code never runs."""
    _, g_state = small_g
    marker = tmp_path / "pwned"
    path = tmp_path / "g" / "checkpoint.ckpt"
    path.parent.mkdir()
    save_with_code(path, g_state, marker)
    with pytest.raises(StoreError) as err:
        run_loop(unlearning(smoke, samples, path, tmp_path / "u.ckpt"), fresh_model(smoke),
                 make_fabric("cpu"))
    assert str(err.value) == (
        f"checkpoint {path} holds objects other than tensors and plain values; refusing to "
        "unpickle it (checkpoints load with weights_only=True); delete "
        f"{path.parent} to retrain the original model it came from")
    assert not marker.exists(), "the checkpoint's code ran"
    assert not (tmp_path / "u.ckpt").exists()


@pytest.mark.parametrize("g_protocol,unlearning_protocol", [("code", "text"), ("text", "code")])
def test_unlearning_under_another_schedule_than_gs_starts_from_gs_weights(
        g_protocol, unlearning_protocol, smoke, samples, tmp_path, monkeypatch):
    """A G trained under the plateau schedule and unlearned under the constant one keeps no
    scheduler; a G trained at a constant rate (no scheduler state) and unlearned under the
    plateau gets a fresh one; both start from G's weights and Adam state."""
    g_path = tmp_path / "g.ckpt"
    run_loop(Loop(method=METHODS["Retrain"], forget=None,
                  retain=samples["retain"].select(range(4)), epochs=1, train=smoke.train,
                  seed=0, checkpoint=g_path, protocol=PROTOCOLS[g_protocol], progress=False),
             fresh_model(smoke), make_fabric("cpu"))
    g_state = torch.load(g_path, weights_only=True)
    assert ("scheduler" in g_state) == (g_protocol == "code")
    seen = at_start(monkeypatch)
    loop = replace(unlearning(smoke, samples, g_path, tmp_path / "u.ckpt"),
                   protocol=PROTOCOLS[unlearning_protocol])
    result = run_loop(loop, fresh_model(smoke, seed=7), make_fabric("cpu"))
    same(seen["model"], g_state["model"], "model")
    same(seen["optimizer"], g_state["optimizer"], "optimizer")
    u_state = torch.load(tmp_path / "u.ckpt", weights_only=True)
    assert ("scheduler" in u_state) == (unlearning_protocol == "code")
    assert result["history"][0]["lr"] == g_state["optimizer"]["param_groups"][0]["lr"]


def test_the_first_step_of_unlearning_is_adams_step_from_gs_state(small_g, smoke, samples,
                                                                  tmp_path):
    """One step of FT on Dr' from G equals, bit for bit, one Adam step taken by hand from G's
    weights and moments on the same batch (clipped as the loop clips)."""
    g_path, g_state = small_g
    train = replace(smoke.train, batch_size=len(RETAIN))  # one step: the whole of Dr'
    loop = Loop(method=METHODS["FT"], forget=None, retain=samples["retain"].select(RETAIN),
                epochs=1, train=train, seed=0, checkpoint=tmp_path / "u.ckpt",
                protocol=replace(CODE, training_masks="fixed"), start_from=g_path,
                progress=False)
    model = fresh_model(smoke, seed=7)
    result = run_loop(loop, model, make_fabric("cpu"))
    assert result["steps"] == 1

    by_hand = engine.on_device(fresh_model(smoke, seed=3), "cpu")  # the loop's layout
    by_hand.load_state_dict(g_state["model"])
    optimizer = engine.make_optimizer(by_hand, train)
    # a copy: Adam would otherwise step the shared G's own moment tensors in place
    optimizer.load_state_dict(copy.deepcopy(g_state["optimizer"]))
    retain = samples["retain"].select(RETAIN)
    batch = torch.utils.data.default_collate([retain[i] for i in range(len(RETAIN))])
    loss_fn = ReconstructionLoss(train.loss, train.l1_weight)
    by_hand.train()
    out = reconstruct(by_hand, batch)
    loss = loss_fn(out, batch.target, batch.max_value.to(out))
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(by_hand.parameters(), train.grad_clip)
    optimizer.step()
    for k, v in by_hand.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=1e-5, atol=1e-7, msg=k)
    g_model = g_state["model"]
    assert any(not torch.equal(model.state_dict()[k], g_model[k]) for k in g_model)


# ------------------------------------------------------------------ the rate of every step


def recording_optimizer(monkeypatch) -> list:
    """Every optimizer step of the loop, as (rate, total gradient norm) at that moment."""
    steps = []
    real = engine.make_optimizer

    def make(model, train):
        optimizer = real(model, train)
        step = optimizer.step

        def recorded(*args, **kwargs):
            grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                     if p.grad is not None]
            norm = float(torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g) for g in grads])))
            steps.append((optimizer.param_groups[0]["lr"], norm))
            return step(*args, **kwargs)

        optimizer.step = recorded
        return optimizer

    monkeypatch.setattr(engine, "make_optimizer", make)
    return steps


def test_every_step_runs_at_the_rate_the_schedule_gives(smoke, samples, tmp_path, monkeypatch):
    """An impatient plateau scheduler drops the rate after epochs 2 and 3: the history says so
    and every step of epochs 3 and 4 ran at the dropped rate."""
    impatient(monkeypatch)
    steps = recording_optimizer(monkeypatch)
    train = replace(smoke.train, batch_size=2)
    loop = Loop(method=METHODS["Retrain"], forget=None, retain=samples["retain"].select(range(4)),
                epochs=4, train=train, seed=0, checkpoint=tmp_path / "g.ckpt", protocol=CODE,
                progress=False)
    result = run_loop(loop, fresh_model(smoke), make_fabric("cpu"))
    lr = train.lr
    expected = [lr, lr, lr / 10, lr / 100]
    assert [h["lr"] for h in result["history"]] == pytest.approx(expected)
    per_epoch = 2  # four slices in batches of two
    assert [rate for rate, _ in steps] == pytest.approx(
        [rate for rate in expected for _ in range(per_epoch)])
    state = torch.load(tmp_path / "g.ckpt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(lr / 1000)


def test_unlearning_steps_run_at_gs_rate_and_on_down_the_schedule(small_g, smoke, samples,
                                                                 tmp_path, monkeypatch):
    """Unlearning continues G's schedule: its steps run at G's last rate (not train.lr), and
    a drop after its first epoch applies to the steps of the second."""
    g_path, g_state = small_g
    g_lr = g_state["optimizer"]["param_groups"][0]["lr"]
    impatient(monkeypatch)
    steps = recording_optimizer(monkeypatch)
    result = run_loop(unlearning(smoke, samples, g_path, tmp_path / "u.ckpt", epochs=2),
                      fresh_model(smoke, seed=7), make_fabric("cpu"))
    assert [h["lr"] for h in result["history"]] == pytest.approx([g_lr, g_lr / 10])
    per_epoch = result["steps"] // 2
    assert per_epoch >= 1
    assert [rate for rate, _ in steps] == pytest.approx([g_lr] * per_epoch +
                                                        [g_lr / 10] * per_epoch)


# ------------------------------------------------------------------ clipping


@pytest.fixture
def one_batch(samples):
    retain = samples["retain"].select([0, 1])
    return torch.utils.data.default_collate([retain[0], retain[1]])


def raw_gradient(model, batch, scale):
    """The unclipped gradient of ``scale`` J at the model, flattened, computed on a copy."""
    twin = copy.deepcopy(model)
    out = reconstruct(twin, batch)
    loss = scale * ReconstructionLoss()(out, batch.target, batch.max_value.to(out))
    grads = torch.autograd.grad(loss, list(twin.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


@pytest.mark.parametrize("length", [1e4, 0.5])
def test_a_step_moves_the_weights_by_the_clipped_gradient(length, smoke, one_batch):
    """Plain SGD at rate 1 makes the step visible: the weights move by minus the gradient,
    scaled to norm grad_clip when it is longer (``length`` times grad_clip), untouched when it
    is shorter."""
    grad_clip = 0.5
    model = fresh_model(smoke)
    scale = length * grad_clip / float(raw_gradient(model, one_batch, 1.0).norm())
    raw = raw_gradient(model, one_batch, scale)
    assert float(raw.norm()) == pytest.approx(length * grad_clip, rel=1e-3)
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    out = reconstruct(model, one_batch)
    loss = scale * ReconstructionLoss()(out, one_batch.target, one_batch.max_value.to(out))
    optimizer_step(make_fabric("cpu"), model, optimizer, loss, grad_clip)
    moved = torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - before
    expected = -raw * min(1.0, grad_clip / float(raw.norm()))
    torch.testing.assert_close(moved, expected, rtol=1e-3, atol=1e-6)
    assert float(moved.norm()) == pytest.approx(min(length, 1.0) * grad_clip, rel=1e-3)


def test_the_loop_clips_every_step_to_the_protocols_norm(small_g, smoke, samples, tmp_path,
                                                         monkeypatch):
    """Through the loop (GA-l1-FT: the ascent term is unbounded): with a tiny grad_clip, the
    gradient each Adam step sees is at most that norm, and was longer before clipping."""
    g_path, _ = small_g
    grad_clip = 1e-4
    steps = recording_optimizer(monkeypatch)
    train = replace(smoke.train, grad_clip=grad_clip)
    result = run_loop(unlearning(smoke, samples, g_path, tmp_path / "u.ckpt", train=train,
                                 method="GA-l1-FT"),
                      fresh_model(smoke, seed=7), make_fabric("cpu"))
    assert len(steps) == result["steps"] >= 1
    for _, norm in steps:
        assert norm <= grad_clip * (1 + 1e-4), norm
        assert norm == pytest.approx(grad_clip, rel=1e-3)  # clipped: the raw norm is far larger


# ------------------------------------------------------------------ the test hooks


@pytest.fixture
def no_kill(monkeypatch):
    """``os.kill`` of the stop hooks raises instead (the process lives on); counts steps."""
    return kill_raises(monkeypatch), record_calls(monkeypatch, engine, "optimizer_step")


def stop_run(smoke, samples, path):
    train = replace(smoke.train, batch_size=2)  # two steps an epoch
    loop = Loop(method=METHODS["Retrain"], forget=None, retain=samples["retain"].select(range(4)),
                epochs=3, train=train, seed=0, checkpoint=path, protocol=CODE, progress=False)
    return run_loop(loop, fresh_model(smoke), make_fabric("cpu"))


def test_stop_after_step_kills_right_after_that_step(smoke, samples, tmp_path, no_kill,
                                                     monkeypatch):
    calls, steps = no_kill
    monkeypatch.setenv(engine.STOP_AFTER_STEP, "3")  # the first step of epoch 2
    with pytest.raises(Killed):
        stop_run(smoke, samples, tmp_path / "run.ckpt")
    assert calls == [(os.getpid(), signal.SIGKILL)] and len(steps) == 3
    state = torch.load(tmp_path / "run.ckpt", weights_only=True)
    assert (state["epoch"], state["steps"]) == (1, 2)  # the last checkpoint: epoch 1's


def test_stop_after_epoch_kills_right_after_its_checkpoint(smoke, samples, tmp_path, no_kill,
                                                           monkeypatch):
    calls, steps = no_kill
    monkeypatch.setenv(engine.STOP_AFTER_EPOCH, "2")
    with pytest.raises(Killed):
        stop_run(smoke, samples, tmp_path / "run.ckpt")
    assert [sig for _, sig in calls] == [signal.SIGKILL] and len(steps) == 4
    state = torch.load(tmp_path / "run.ckpt", weights_only=True)
    assert (state["epoch"], state["steps"]) == (2, 4)
    # unset (or empty), nothing stops: the run resumes from epoch 2 and ends
    monkeypatch.setenv(engine.STOP_AFTER_EPOCH, "")
    result = stop_run(smoke, samples, tmp_path / "run.ckpt")
    assert len(steps) == 6 and result["steps"] == 6 and len(result["history"]) == 3
    assert all(math.isfinite(h["loss"]) for h in result["history"])
    assert len(calls) == 1
