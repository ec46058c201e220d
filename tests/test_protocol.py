"""The protocol's switches: where the paper's public code and its text differ.

``PROTOCOLS["code"]`` (the default) is what the public code ran, ``PROTOCOLS["text"]`` what the
paper writes. Each switch is checked for what it does (the noise of a noisy label, the order and
terms of a step, the GA-l1 gradient, the training masks) and for where it enters the results
store (unlearning switches never retrain G; training switches do).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from erase import cli
from erase import data as data_lib
from erase.config import (
    PROTOCOLS,
    SWITCHES,
    ConfigError,
    Protocol,
    config_hash,
    get_protocol,
    to_dict,
)
from erase.runs import engine
from erase.runs.engine import Loop, epoch_steps, make_fabric, run_loop
from erase.runs.lab import TRAINING_SWITCHES, Lab
from erase.runs.methods import METHODS, ReconstructionLoss, noisy_target, step_loss
from erase.runs.models import build_model, reconstruct

ROOT = Path(__file__).resolve().parents[1]
CODE, TEXT = PROTOCOLS["code"], PROTOCOLS["text"]
UNLEARNING_SWITCHES = ("noisy_label", "steps", "ga_l1", "unlearn_epochs")


# ------------------------------------------------------------------ the presets


def test_the_presets_are_the_code_and_the_text():
    assert asdict(CODE) == {"noisy_label": "half_normal", "steps": "alternating",
                            "ga_l1": "code", "unlearn_epochs": 5, "training_masks": "random",
                            "lr_schedule": "plateau"}
    assert asdict(TEXT) == {"noisy_label": "gaussian", "steps": "paired", "ga_l1": "text",
                            "unlearn_epochs": 5, "training_masks": "fixed",
                            "lr_schedule": "constant"}
    assert Protocol() == CODE  # the code is the default
    assert set(SWITCHES) == set(asdict(CODE))
    assert set(TRAINING_SWITCHES) | set(UNLEARNING_SWITCHES) == set(SWITCHES)
    assert not set(TRAINING_SWITCHES) & set(UNLEARNING_SWITCHES)


def test_get_protocol_replaces_single_switches_and_names_what_is_wrong():
    assert get_protocol("code") == CODE and get_protocol("text") == TEXT
    assert get_protocol("text", steps="alternating") == replace(TEXT, steps="alternating")
    assert get_protocol("code", unlearn_epochs=7, noisy_label=None) == \
        replace(CODE, unlearn_epochs=7)
    assert get_protocol(TEXT, ga_l1="code") == replace(TEXT, ga_l1="code")
    with pytest.raises(ConfigError, match="unknown protocol 'paper': choose one of code, text"):
        get_protocol("paper")
    with pytest.raises(ConfigError, match="unknown protocol switch 'optimizer'"):
        get_protocol("code", optimizer="sgd")
    with pytest.raises(ConfigError, match="unknown steps 'sideways': choose one of "
                                          "alternating, paired"):
        get_protocol("code", steps="sideways")
    for bad in (0, 2.5, "7", True):  # the command line converts its text first
        with pytest.raises(ConfigError, match="unlearn_epochs must be"):
            get_protocol("code", unlearn_epochs=bad)


# ------------------------------------------------------------------ 1: the noisy label


LAM = 1e-5  # the paper's lambda, on the raw target scale


def draws(form: str, n: int = 1_000_000) -> np.ndarray:
    zero = torch.zeros(n // 1000, 1000)
    return (noisy_target(zero, LAM, torch.Generator().manual_seed(5), form) - zero).double().numpy()


def test_half_normal_noise_is_non_negative_with_mean_about_0_8_lambda():
    noise = draws("half_normal")
    assert noise.min() >= 0.0
    assert noise.mean() == pytest.approx(math.sqrt(2 / math.pi) * LAM, rel=0.01)  # 0.798 lambda
    assert noise.std() == pytest.approx(math.sqrt(1 - 2 / math.pi) * LAM, rel=0.01)


def test_gaussian_noise_has_mean_zero_and_std_lambda():
    noise = draws("gaussian")
    assert abs(noise.mean()) < 0.005 * LAM  # five standard errors of the mean
    assert noise.std() == pytest.approx(LAM, rel=0.01)
    assert (noise < 0).mean() == pytest.approx(0.5, abs=0.005)


def test_a_half_normal_label_never_lies_below_the_target(samples):
    sample = samples["forget"][0]
    label = noisy_target(sample.target, LAM, torch.Generator().manual_seed(0), "half_normal")
    assert (label >= sample.target).all() and (label > sample.target).any()
    label = noisy_target(sample.target, LAM, torch.Generator().manual_seed(0), "gaussian")
    assert (label < sample.target).any() and (label > sample.target).any()


def test_nl_uses_the_protocols_noise(smoke, samples):
    """NL's forget term under each preset is J against that preset's noisy label."""
    b = default_collate([samples["forget"][0]])
    loss_fn = ReconstructionLoss("l1")
    torch.manual_seed(0)
    model = build_model(smoke.model)
    lam = 0.3 * float(b.max_value)  # large enough for the two labels to differ visibly
    with torch.no_grad():
        out = reconstruct(model, b)
    for protocol in (CODE, TEXT):
        _, terms = step_loss(METHODS["NL"], model, loss_fn, forget=b, lam=lam, protocol=protocol,
                             generator=torch.Generator().manual_seed(3))
        label = noisy_target(b.target, lam, torch.Generator().manual_seed(3), protocol.noisy_label)
        assert terms["forget"] == pytest.approx(
            float(loss_fn(out, label, b.max_value.to(out))), rel=1e-5)


# ------------------------------------------------------------------ 2: the steps


@pytest.mark.parametrize("n_forget,n_retain", [(3, 4), (7, 70), (5, 2)])
def test_alternating_at_batch_size_one_is_one_slice_one_term_per_step(n_forget, n_retain):
    plan = epoch_steps(n_forget, n_retain, seed=0, epoch=0, batch_size=1, steps="alternating")
    assert len(plan) == n_forget + n_retain
    assert all(len(f) + len(r) == 1 for f, r in plan)  # forget or retain, never both
    assert sorted(i for f, _ in plan for i in f) == list(range(n_forget))  # each slice once
    assert sorted(i for _, r in plan for i in r) == list(range(n_retain))


def test_alternating_is_one_shuffled_stream_of_both():
    """Forget slices land anywhere in the epoch, at different places each epoch."""
    places = [tuple(k for k, (f, _) in enumerate(epoch_steps(5, 50, seed=0, epoch=e)) if f)
              for e in range(8)]
    assert len(set(places)) == 8
    assert max(p[-1] for p in places) > 40 and min(p[0] for p in places) < 10


@pytest.mark.parametrize("batch_size", [2, 4, 16])
@pytest.mark.parametrize("n_forget,n_retain", [(3, 4), (7, 70), (5, 0)])
def test_alternating_at_batch_size_b_visits_each_slice_once(batch_size, n_forget, n_retain):
    plan = epoch_steps(n_forget, n_retain, seed=1, epoch=2, batch_size=batch_size)
    assert len(plan) == math.ceil((n_forget + n_retain) / batch_size)
    assert all(len(f) + len(r) == batch_size for f, r in plan[:-1])
    assert 1 <= len(plan[-1][0]) + len(plan[-1][1]) <= batch_size
    assert sorted(i for f, _ in plan for i in f) == list(range(n_forget))
    assert sorted(i for _, r in plan for i in r) == list(range(n_retain))


@pytest.mark.parametrize("n_forget,n_retain", [(3, 7), (8, 3), (4, 4)])
def test_paired_gives_max_pairs_cycling_the_shorter_stream(n_forget, n_retain):
    plan = epoch_steps(n_forget, n_retain, seed=0, epoch=0, batch_size=1, steps="paired")
    longer, shorter = max(n_forget, n_retain), min(n_forget, n_retain)
    assert len(plan) == longer
    assert all(len(f) == len(r) == 1 for f, r in plan)  # one forget and one retain per step
    forget, retain = [f[0] for f, _ in plan], [r[0] for _, r in plan]
    short = forget if n_forget == shorter else retain
    long = retain if n_forget == shorter else forget
    assert sorted(long) == list(range(longer))  # the longer stream: each slice once
    assert sorted(short[:shorter]) == list(range(shorter))
    assert short == [short[k % shorter] for k in range(longer)]  # the shorter cycles, one order


def test_a_loop_under_alternating_steps_hands_each_step_one_stream(smoke, samples, tmp_path,
                                                                   monkeypatch):
    """At batch size 1 every step of the loop is a forget slice or a retain slice."""
    seen = []
    real = engine.step_terms

    def spy(method, model, loss_fn, forget=None, retain=None, **knobs):
        seen.append((0 if forget is None else len(forget.target),
                     0 if retain is None else len(retain.target)))
        return real(method, model, loss_fn, forget, retain, **knobs)

    monkeypatch.setattr(engine, "step_terms", spy)
    retain = samples["retain"].select(range(4))
    for protocol in (CODE, replace(CODE, steps="paired")):
        seen.clear()
        loop = Loop(method=METHODS["NL-FT"], forget=samples["forget"], retain=retain, epochs=1,
                    train=replace(smoke.train, batch_size=1), seed=0,
                    checkpoint=tmp_path / f"{protocol.steps}.ckpt", protocol=protocol, lam=1e-4,
                    progress=False)
        result = run_loop(loop, build_model(smoke.model), make_fabric("cpu"))
        n_f, n_r = len(samples["forget"]), len(retain)
        if protocol.steps == "alternating":
            assert sorted(seen) == sorted([(1, 0)] * n_f + [(0, 1)] * n_r)
            assert result["steps"] == n_f + n_r
        else:
            assert seen == [(1, 1)] * max(n_f, n_r)
            assert result["steps"] == max(n_f, n_r)


# ------------------------------------------------------------------ 3: the GA-l1 step


def gradients(loss, model) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters())))


@pytest.fixture
def one_forget(smoke, samples):
    torch.manual_seed(0)
    return build_model(smoke.model), default_collate([samples["forget"][1]])


def grad_J(model, b) -> list[torch.Tensor]:
    loss_fn = ReconstructionLoss()
    out = reconstruct(model, b)
    return gradients(loss_fn(out, b.target, b.max_value.to(out)), model)


def test_the_codes_ga_l1_gradient_is_minus_two_grad_j_plus_sign_theta(one_forget):
    """varnet_module.py: ``loss *= -1; loss += loss + l1_regularization(net)``."""
    model, b = one_forget
    loss, terms = step_loss(METHODS["GA-l1"], model, ReconstructionLoss(), forget=b,
                            protocol=CODE)  # gamma None: the code's unweighted l1
    assert set(terms) == {"forget", "penalty"}
    got, j = gradients(loss, model), grad_J(model, b)
    scale = max(float(g.abs().max()) for g in j)
    assert scale > 1e-4  # J's gradient is not negligible next to sign(theta)
    for g, gj, p in zip(got, j, model.parameters()):
        sign = torch.sign(p.detach())
        torch.testing.assert_close(g, -2 * gj + sign, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(g - sign, -2 * gj, rtol=1e-3, atol=1e-6 * scale + 1e-7)


def test_the_texts_ga_l1_gradient_is_minus_grad_j_plus_gamma_sign_theta(one_forget):
    model, b = one_forget
    j = grad_J(model, b)
    for gamma in (None, 3e-4):
        loss, _ = step_loss(METHODS["GA-l1"], model, ReconstructionLoss(), forget=b,
                            protocol=TEXT, gamma=gamma)
        weight = 1e-5 if gamma is None else gamma  # the text's gamma by default
        for g, gj, p in zip(gradients(loss, model), j, model.parameters()):
            torch.testing.assert_close(g, -gj + weight * torch.sign(p.detach()), rtol=1e-4,
                                       atol=1e-8)


# ------------------------------------------------------------------ 5: the training masks


def columns(sample) -> tuple:
    return tuple(torch.nonzero(sample.mask.reshape(-1)).reshape(-1).tolist())


def test_random_training_masks_change_between_epochs_and_slices(samples):
    split = samples["retain"]
    by_epoch = {columns(split.masked(0, (0, epoch, 1, 0))) for epoch in range(10)}
    assert len(by_epoch) > 1, "slice 0 got the same training mask in every epoch"
    by_slice = {columns(split.masked(i, (0, 0, 1, i))) for i in range(10)}
    assert len(by_slice) > 1, "every slice of epoch 0 got the same training mask"
    # drawn from the seed alone: the same seed, the same mask, whatever was drawn in between
    assert columns(split.masked(3, (0, 4, 1, 3))) == columns(split.masked(3, (0, 4, 1, 3)))
    first = split.masked(3, (0, 4, 1, 3))
    split.masked(5, (9, 9, 9, 9))
    assert torch.equal(first.mask, split.masked(3, (0, 4, 1, 3)).mask)
    # a drawn mask is still fastMRI's equispaced mask with the centre, only its offset varies
    config, cols = split.config, split[0].mask.numel()
    low = round(cols * config.center_fraction)
    centre = set(range((cols - low + 1) // 2, (cols - low + 1) // 2 + low))
    for drawn in by_epoch | by_slice:
        assert centre <= set(drawn)
        assert any(set(drawn) - centre == set(range(o, cols, config.acceleration)) - centre
                   for o in range(config.acceleration)), drawn


def test_evaluation_masks_never_change_and_are_fastmris_file_name_seeded_ones(samples, smoke):
    split = samples["forget"]
    before = [split[i].mask.clone() for i in range(len(split))]
    for epoch in range(5):  # training draws in between do not touch evaluation samples
        for i in range(len(split)):
            split.masked(i, (0, epoch, 0, i))
    for i in range(len(split)):
        sample = split[i]
        assert torch.equal(sample.mask, before[i])
        assert torch.equal(sample.mask, split[i].mask)
        expected, _ = data_lib.mask_func(smoke.data)(tuple(sample.masked_kspace.shape),
                                                     seed=tuple(map(ord, split.fname(i))))
        assert torch.equal(sample.mask, expected.to(torch.bool))


class MaskRecorder:
    """A split that records the mask of every slice the loop reads, by epoch."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        sample = self.inner[i]
        self.seen.append(("fixed", int(i), columns(sample)))
        return sample

    def masked(self, i, seed):
        sample = self.inner.masked(i, seed)
        self.seen.append((seed[1], int(i), columns(sample)))
        return sample


@pytest.mark.parametrize("masks", ["random", "fixed"])
def test_the_loop_trains_under_the_protocols_masks(masks, smoke, samples, tmp_path):
    retain = MaskRecorder(samples["retain"].select(range(6)))
    protocol = replace(CODE, training_masks=masks)
    loop = Loop(method=METHODS["Retrain"], forget=None, retain=retain, epochs=4, train=smoke.train,
                seed=0, checkpoint=tmp_path / "c.ckpt", protocol=protocol, progress=False)
    run_loop(loop, build_model(smoke.model), make_fabric("cpu"))
    evaluation = {i: columns(samples["retain"].select(range(6))[i]) for i in range(6)}
    if masks == "fixed":  # one mask per volume, as at evaluation
        assert {how for how, _, _ in retain.seen} == {"fixed"}
        assert all(mask == evaluation[i] for _, i, mask in retain.seen)
    else:  # a new draw at every load: epoch by epoch, slice by slice
        assert {how for how, _, _ in retain.seen} == {0, 1, 2, 3}
        per_slice = {i: {mask for _, j, mask in retain.seen if j == i} for i in range(6)}
        assert any(len(m) > 1 for m in per_slice.values())
        per_epoch = {e: {mask for how, _, mask in retain.seen if how == e} for e in range(4)}
        assert any(len(m) > 1 for m in per_epoch.values())
    assert len(retain.seen) == 4 * 6


# ------------------------------------------------------------------ the results store


def train_key(lab: Lab, which: str = "original") -> str:
    return config_hash(lab.config(lab.job(which)))


def unlearn_key(lab: Lab, method: str = "NL-FT") -> str:
    return config_hash(lab.config(lab.job(method)))


@pytest.fixture(scope="module")
def labs(lab):
    """Labs on the shared data and store, one per protocol variant (no training here)."""
    made = {}

    def make(protocol="code", **switches):
        key = (protocol, tuple(sorted(switches.items())))
        if key not in made:
            made[key] = Lab(scale="smoke", data_root=lab.data_root, results_dir=lab.results,
                            protocol=protocol, switches=switches)
        return made[key]

    return make


def test_text_and_code_protocols_give_different_unlearning_keys(labs):
    code, text = labs("code"), labs("text")
    assert code.protocol == CODE and text.protocol == TEXT
    for method in ("FT", "NL-FT", "GA-l1-FT", "NL"):
        assert unlearn_key(code, method) != unlearn_key(text, method), method
    # every switch but the unlearning length, which the run's own "epochs" knob holds
    without_length = lambda p: {k: v for k, v in to_dict(p).items() if k != "unlearn_epochs"}  # noqa: E731
    assert code.config(code.job("NL-FT"))["protocol"] == without_length(CODE)
    assert text.config(text.job("NL-FT"))["protocol"] == without_length(TEXT)
    assert code.config(code.job("NL-FT"))["knobs"]["epochs"] == CODE.unlearn_epochs
    # the text trains its own G and G-hat (fixed masks, constant rate)
    assert train_key(code) != train_key(text) and train_key(code, "oracle") != \
        train_key(text, "oracle")


def test_one_unlearning_length_is_one_key_however_it_is_asked_for(labs):
    """--unlearn-epochs 3 and the protocol switch unlearn_epochs=3 are the same computation."""
    code, switched = labs("code"), labs("code", unlearn_epochs=3)
    assert unlearn_key(switched, "NL-FT") == config_hash(code.config(code.job("NL-FT", epochs=3)))
    assert unlearn_key(switched, "NL-FT") != unlearn_key(code, "NL-FT")


@pytest.mark.parametrize("switch", UNLEARNING_SWITCHES)
def test_an_unlearning_switch_does_not_retrain_g(switch, labs):
    code = labs("code")
    value = 3 if switch == "unlearn_epochs" else getattr(TEXT, switch)
    assert value != getattr(CODE, switch)
    flipped = labs("code", **{switch: value})
    assert getattr(flipped.protocol, switch) == value
    assert train_key(flipped) == train_key(code)  # G is shared
    assert train_key(flipped, "oracle") == train_key(code, "oracle")
    assert flipped.config(flipped.job("NL-FT"))["start"] == train_key(code)
    methods = {"ga_l1": "GA-l1-FT"}.get(switch, "NL-FT")
    assert unlearn_key(flipped, methods) != unlearn_key(code, methods)  # the run is not


@pytest.mark.parametrize("switch", TRAINING_SWITCHES)
def test_a_training_switch_retrains_g_and_g_hat(switch, labs):
    code = labs("code")
    flipped = labs("code", **{switch: getattr(TEXT, switch)})
    assert train_key(flipped) != train_key(code)
    assert train_key(flipped, "oracle") != train_key(code, "oracle")
    assert flipped.config(flipped.job("original"))["protocol"] == \
        {k: getattr(flipped.protocol, k) for k in TRAINING_SWITCHES}
    assert flipped.config(flipped.job("FT"))["start"] == train_key(flipped) != train_key(code)
    assert unlearn_key(flipped, "FT") != unlearn_key(code, "FT")


def test_the_unlearning_length_is_the_protocols(labs):
    assert labs("code").job("NL-FT").knobs["epochs"] == 5
    short = labs("code", unlearn_epochs=2)
    assert short.job("NL-FT").knobs["epochs"] == 2
    assert short.loop(short.job("NL-FT")).epochs == 2
    assert short.job("NL-FT", epochs=4).knobs["epochs"] == 4  # an explicit length wins


def test_run_many_rebuilds_a_lab_with_its_protocol(labs):
    """Worker processes rebuild a Lab from its settings: the protocol must travel with it."""
    text = labs("text", steps="alternating")
    settings = text.settings()
    again = Lab(**settings)
    assert again.protocol == text.protocol == replace(TEXT, steps="alternating")
    assert unlearn_key(again) == unlearn_key(text)


# ------------------------------------------------------------------ the command line


def erase(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "erase", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_the_command_line_runs_either_protocol_under_its_own_key(results_dir, trained):
    records = {}
    for protocol in ("text", "code"):
        proc = erase("unlearn", "--method", "NL-FT", "--protocol", protocol, "--scale", "smoke",
                     "--results", results_dir, "--json")
        assert proc.returncode == 0, proc.stderr[-3000:]
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stdout[-2000:]
        records[protocol] = json.loads(lines[0])
    text, code = records["text"], records["code"]
    assert text["key"] != code["key"]
    for name, record in records.items():
        assert record["key"] == config_hash(record["config"])
        # every switch but the length, which the run's "epochs" knob holds
        assert record["config"]["protocol"] == {k: v for k, v in to_dict(PROTOCOLS[name]).items()
                                                if k != "unlearn_epochs"}
        assert record["config"]["knobs"]["epochs"] == PROTOCOLS[name].unlearn_epochs
        assert record["config"]["method"]["name"] == "NL-FT"
        assert all(math.isfinite(v) for v in record["summary"].values())
        assert len(record["history"]) == PROTOCOLS[name].unlearn_epochs
    assert code["config"]["start"] == trained["original"]["key"]  # the shared G
    assert text["config"]["start"] != code["config"]["start"]  # the text's own G


def test_switch_flags_replace_single_switches_of_a_preset(smoke_data, tmp_path):
    args = cli.parser().parse_args([
        "unlearn", "--method", "NL-FT", "--scale", "smoke", "--data-root", str(smoke_data),
        "--results", str(tmp_path / "results"), "--protocol", "text", "--steps", "alternating",
        "--noisy-label", "half_normal", "--training-masks", "random", "--lr-schedule", "plateau",
        "--ga-l1", "code"])
    cli._check_run(args)
    assert cli._lab(args).protocol == CODE  # every difference flipped back: the code


def test_a_bad_switch_value_is_one_error_line_and_exit_2(tmp_path):
    results = tmp_path / "results"
    proc = erase("unlearn", "--method", "NL-FT", "--protocol", "text", "--steps", "sideways",
                 "--scale", "smoke", "--results", results)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("erase: error: unknown steps 'sideways': choose one of "
                                   "alternating, paired"), proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert not results.exists()


# ------------------------------------------------------------------ which flips the ablation reruns


@pytest.mark.parametrize("switch", ["noisy_label", "ga_l1"])
def test_a_flip_that_cannot_act_on_a_row_leaves_its_step_unchanged(switch, smoke, samples):
    """The Paper and code chapter reruns a method with a switch flipped only where the switch
    can act on its row (``fidelity.acts_on``): where it cannot, one step's loss under the flip
    is the code protocol's to the bit, and where it can, it differs."""
    from erase.studies import fidelity

    torch.manual_seed(0)
    model = build_model(smoke.model)
    forget = default_collate([samples["forget"][i] for i in (0, 1)])
    retain = default_collate([samples["retain"][i] for i in (0, 1)])
    flipped = replace(CODE, **{switch: getattr(TEXT, switch)})
    for name in ("GA-l1", "NL", "GA-l1-FT", "NL-FT"):
        row = METHODS[name]
        losses = []
        for protocol in (CODE, flipped):
            generator = torch.Generator().manual_seed(5)
            loss, _ = step_loss(row, model, ReconstructionLoss(), forget=forget,
                                retain=retain if row.retain != "none" else None,
                                protocol=protocol, lam=1e-3, generator=generator)
            losses.append(float(loss.detach()))
        assert (losses[0] != losses[1]) == fidelity.acts_on(switch, name), (name, losses)
    assert not fidelity.acts_on("noisy_label", "GA-l1-FT")


@pytest.mark.parametrize("n_forget, n_retain", [(7, 0), (0, 9)])
def test_steps_cannot_act_on_a_row_with_one_stream(n_forget, n_retain):
    """With only forget (NL, GA-l1) or only retain slices (FT), the text's paired steps and the
    code's alternating ones plan the same epoch, so the ablation does not rerun those rows."""
    from erase.studies import fidelity

    for epoch in range(3):
        assert (epoch_steps(n_forget, n_retain, 4, epoch, 3, steps="paired")
                == epoch_steps(n_forget, n_retain, 4, epoch, 3, steps="alternating"))
    assert not fidelity.acts_on("steps", "NL") and not fidelity.acts_on("steps", "FT")
    assert fidelity.acts_on("steps", "NL-FT") and fidelity.acts_on("steps", "GA-l1-FT")
    assert epoch_steps(7, 9, 4, 0, 3, steps="paired") != epoch_steps(7, 9, 4, 0, 3)
