"""Methods as data: each term of a step does what it claims, each row gets the data it names."""
from __future__ import annotations

import json
from dataclasses import fields, replace

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from erase.config import PROTOCOLS, ConfigError, config_hash
from erase.data import retain_subset
from erase.runs import lab as lab_lib
from erase.runs import methods
from erase.runs.engine import Loop, epoch_plan, epoch_steps, make_fabric, run_loop
from erase.runs.methods import (
    BEYOND,
    FORGET_TERMS,
    METHODS,
    METHODS_VERSION,
    PAPER_ROWS,
    PENALTIES,
    RETAIN_DATA,
    UNLEARNING,
    Method,
    ReconstructionLoss,
    ascent_weights,
    get_method,
    l1_norm,
    noisy_target,
    step_loss,
    step_terms,
    validate_knobs,
)
from erase.runs.models import build_model, reconstruct

CODE, TEXT = PROTOCOLS["code"], PROTOCOLS["text"]
PAIRED, ALTERNATING = replace(CODE, steps="paired"), CODE


def batch(dataset, *indices):
    """Slices ``indices`` (default: the first) of a split as one batch (evaluation masks)."""
    return default_collate([dataset[i] for i in (indices or (0,))])


def J(model, b, loss_fn, target=None):
    """The mean reconstruction loss of a batch, without a graph."""
    with torch.no_grad():
        out = reconstruct(model, b)
        return float(loss_fn(out, b.target if target is None else target, b.max_value.to(out)))


def J_each(model, b, loss_fn, target=None) -> list[float]:
    """J of every slice of a batch, each reconstructed on its own."""
    target = b.target if target is None else target
    out = []
    for i in range(len(b.target)):
        one = b._replace(**{k: getattr(b, k)[i:i + 1] for k in
                            ("masked_kspace", "mask", "target", "max_value",
                             "num_low_frequencies")})
        out.append(J(model, one, loss_fn, target[i:i + 1]))
    return out


@pytest.fixture
def model(smoke):
    torch.manual_seed(0)
    return build_model(smoke.model)


# ------------------------------------------------------------------ the table


def test_every_row_is_valid():
    for name, m in METHODS.items():
        assert m.name == name
        assert m.start in ("G", "scratch"), name
        assert m.forget in FORGET_TERMS, name
        assert m.penalty in PENALTIES, name
        assert m.retain in RETAIN_DATA, name
        assert (m.forget != "none" or m.retain != "none"
                or m.penalty != "none"), f"{name} does nothing"
        assert m.summary.strip(), name
    assert set(UNLEARNING) <= set(METHODS) and len(set(UNLEARNING)) == 6
    assert [m.name for m in METHODS.values() if m.start == "scratch"] == ["Retrain"]


def test_rows_are_the_papers_methods():
    """The design table: (start, forget term, penalty, retain data) of each method."""
    expected = {
        "Retrain": ("scratch", "none", "none", "all"),
        "FT": ("G", "none", "none", "subset"),
        "Full FT": ("G", "none", "none", "all"),
        "GA-l1": ("G", "ascent", "l1", "none"),
        "NL": ("G", "noisy_label", "none", "none"),
        "GA-l1-FT": ("G", "ascent", "l1", "subset"),
        "NL-FT": ("G", "noisy_label", "none", "subset"),
    }
    assert {n: (m.start, m.forget, m.penalty, m.retain) for n, m in METHODS.items()
            if n not in BEYOND} == expected  # the rows beyond the paper: tests/test_beyond.py


def changed_value(value):
    """Another value of a row's field, of its type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return value + "x"
    return value + (("knob", 1.0),)  # knobs


def test_the_table_version_changes_with_every_field_of_every_paper_row(monkeypatch):
    """methods.table_version on a table with one field of one paper row changed (the Lab's
    METHODS, patched) gives a version never seen before; the paper rows' version does not
    move when a row beyond the paper changes, the whole table's does."""
    assert methods.table_version(PAPER_ROWS) == METHODS_VERSION
    seen = {METHODS_VERSION}
    for name in PAPER_ROWS:
        row = METHODS[name]
        for f in fields(Method):
            with monkeypatch.context() as patch:
                patch.setitem(METHODS, name, replace(row, **{f.name: changed_value(
                    getattr(row, f.name))}))
                version = methods.table_version(PAPER_ROWS)
            assert version not in seen, (name, f.name)
            seen.add(version)
    with monkeypatch.context() as patch:
        patch.setitem(METHODS, "SalUn", replace(METHODS["SalUn"], knobs=(("saliency", 0.3),)))
        assert methods.table_version(PAPER_ROWS) == METHODS_VERSION
        assert methods.table_version(METHODS) != methods.TABLE_VERSION
    assert methods.table_version(METHODS) == methods.TABLE_VERSION
    assert methods.version_of("NL-FT") == METHODS_VERSION
    assert methods.version_of("SalUn") == methods.TABLE_VERSION != METHODS_VERSION


def test_unknown_method_and_bad_knobs_are_refused():
    with pytest.raises(ConfigError, match="unknown method 'SISA'.*NL-FT"):
        get_method("SISA")
    for args, word in [(("FT", 0, 0, 0), "retain fraction"), (("FT", 1.5, 0, 0), "retain fraction"),
                       (("FT", 0.1, -1, 0), "gamma"), (("GA-l1", 0.1, "big", 0), "gamma"),
                       (("NL", 0.1, 0, float("nan")), "lambda"), (("NL", 0.1, 0, -1e-5), "lambda"),
                       (("SISA", 0.1, 0, 0), "unknown method")]:
        with pytest.raises(ConfigError, match=word):
            validate_knobs(*args)
    assert validate_knobs("NL-FT", "0.2", 0, 1) == (0.2, 0.0, 1.0, None, None)
    assert validate_knobs("GA-l1-FT", 0.1, None, None, "2.5", "0.5") == (0.1, None, None, 2.5, 0.5)
    # gamma None: the protocol's own (see ascent_weights)
    assert validate_knobs("GA-l1", 0.1, None, 1e-5) == (0.1, None, 1e-5, None, None)


def test_ascent_weights_follow_the_ga_l1_switch():
    """code: -2 J + 1 |theta|_1 (varnet_module.py); text: -J + gamma |theta|_1, gamma 1e-5."""
    assert ascent_weights(CODE, None) == (2.0, 1.0)
    assert ascent_weights(CODE, 3e-4) == (2.0, 3e-4)  # an explicit gamma replaces the 1
    assert ascent_weights(TEXT, None) == (1.0, 1e-5)
    assert ascent_weights(TEXT, 3e-4) == (1.0, 3e-4)
    assert ascent_weights(replace(CODE, ga_l1="text"), None) == (1.0, 1e-5)


# ------------------------------------------------------------------ the terms


@pytest.mark.parametrize("protocol", [CODE, TEXT], ids=["code", "text"])
def test_gradient_ascent_step_raises_the_forget_loss(protocol, model, samples):
    b = batch(samples["forget"])
    loss_fn = ReconstructionLoss()
    before = J(model, b, loss_fn)
    ascent, _ = ascent_weights(protocol, None)
    loss, terms = step_loss(METHODS["GA-l1"], model, loss_fn, forget=b, gamma=0.0,
                            protocol=protocol)
    assert terms["forget"] == pytest.approx(-ascent * before, rel=1e-6)
    assert terms["penalty"] == 0.0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert J(model, b, loss_fn) > before + 1e-4


@pytest.mark.parametrize("protocol", [CODE, TEXT], ids=["code", "text"])
def test_gradient_ascent_gradient_is_minus_the_loss_gradient(protocol, smoke, samples):
    """Without the penalty: -2 grad J (the code doubles the negated loss) or -grad J (text)."""
    b = batch(samples["forget"])
    loss_fn = ReconstructionLoss()
    ascent, _ = ascent_weights(protocol, None)
    grads = []
    for ascending in (True, False):
        torch.manual_seed(0)
        net = build_model(smoke.model)
        if ascending:
            loss, _ = step_loss(METHODS["GA-l1"], net, loss_fn, forget=b, gamma=0.0,
                                protocol=protocol)
        else:
            out = reconstruct(net, b)
            loss = loss_fn(out, b.target, b.max_value.to(out))
        loss.backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for ga, j in zip(*grads):
        torch.testing.assert_close(ga, -ascent * j)


@pytest.mark.parametrize("form", ["half_normal", "gaussian"])
def test_noisy_label_is_the_target_plus_lambda_times_drawn_noise(form, samples):
    """lambda is absolute (raw target scale): the noise does not grow with the image."""
    b = batch(samples["forget"])
    lam, seed = 1e-5, 1234
    label = noisy_target(b.target, lam, torch.Generator().manual_seed(seed), form)
    noise = torch.randn(b.target.shape, generator=torch.Generator().manual_seed(seed))
    expected = noise.abs() if form == "half_normal" else noise
    assert torch.equal(label, b.target + lam * expected)
    # reproducibly from the generator, different for another seed
    assert torch.equal(label, noisy_target(b.target, lam, torch.Generator().manual_seed(seed),
                                           form))
    assert not torch.equal(label, noisy_target(b.target, lam,
                                               torch.Generator().manual_seed(seed + 1), form))
    # absolute: twice the image, the same noise (not scaled by the image's maximum)
    doubled = noisy_target(2 * b.target, lam, torch.Generator().manual_seed(seed), form)
    assert torch.equal(doubled, 2 * b.target + lam * expected)
    with pytest.raises(ConfigError, match="unknown noisy label 'uniform'"):
        noisy_target(b.target, lam, torch.Generator(), "uniform")


@pytest.mark.parametrize("protocol", [CODE, TEXT], ids=["code", "text"])
def test_noisy_label_step_moves_the_output_toward_the_noisy_label(protocol, model, samples):
    b = batch(samples["forget"])
    lam, seed = 0.5 * float(b.max_value), 1234  # a label far from the target, to see it move
    label = noisy_target(b.target, lam, torch.Generator().manual_seed(seed), protocol.noisy_label)
    loss_fn = ReconstructionLoss("l1")  # the paper's written J: distance is then plain L1
    distance = lambda: J(model, b, loss_fn, target=label)  # noqa: E731
    before = distance()
    loss, terms = step_loss(METHODS["NL"], model, loss_fn, forget=b, lam=lam, protocol=protocol,
                            generator=torch.Generator().manual_seed(seed))
    assert terms["forget"] == pytest.approx(before, rel=1e-6)  # its label is the one above
    assert set(terms) == {"forget"}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert distance() < before


def test_noisy_label_at_lambda_zero_is_plain_fine_tuning_on_the_forget_sample(model, samples):
    b = batch(samples["forget"])
    loss_fn = ReconstructionLoss()
    for protocol in (CODE, TEXT):
        loss, _ = step_loss(METHODS["NL"], model, loss_fn, forget=b, lam=0.0, protocol=protocol,
                            generator=torch.Generator().manual_seed(0))
        assert float(loss.detach()) == pytest.approx(J(model, b, loss_fn), rel=1e-6)


@pytest.mark.parametrize("protocol", [ALTERNATING, PAIRED], ids=["alternating", "paired"])
def test_l1_penalty_is_gamma_times_the_sum_of_absolute_weights(protocol, model, samples):
    gamma = 3e-4
    b = batch(samples["forget"])
    expected = gamma * float(
        torch.cat([p.detach().abs().flatten() for p in model.parameters()]).sum())
    _, terms = step_loss(METHODS["GA-l1"], model, ReconstructionLoss(), forget=b, gamma=gamma,
                         protocol=protocol)
    assert set(terms) == {"forget", "penalty"}
    assert terms["penalty"] == pytest.approx(expected, rel=1e-5)  # one forget slice: share 1
    penalty = gamma * l1_norm(model)
    penalty.backward()
    for p in model.parameters():
        torch.testing.assert_close(p.grad, gamma * torch.sign(p.detach()))
    # frozen weights are not part of theta
    first = next(model.parameters())
    first.requires_grad_(False)
    assert float(l1_norm(model).detach()) == pytest.approx(
        expected / gamma - float(first.abs().sum()), rel=1e-5)


def test_a_step_without_any_sample_is_refused(model, samples):
    with pytest.raises(ValueError, match="no term"):
        step_terms(METHODS["GA-l1"], model, ReconstructionLoss(), gamma=1e-5)
    with pytest.raises(ValueError, match="no term"):  # FT ignores forget samples: nothing left
        step_terms(METHODS["FT"], model, ReconstructionLoss(), forget=batch(samples["forget"]))


def test_a_paired_step_is_the_sum_of_its_mean_terms(model, samples):
    """The text's Algorithms 1 and 2: mean forget term + penalty once + mean retain term."""
    f, r = batch(samples["forget"], 0, 1), batch(samples["retain"], 0, 1)
    loss_fn, gamma, lam = ReconstructionLoss(), 1e-5, 1e-4
    for protocol in (PAIRED, TEXT):
        ascent, _ = ascent_weights(protocol, gamma)
        loss, terms = step_loss(METHODS["GA-l1-FT"], model, loss_fn, f, r, gamma=gamma,
                                protocol=protocol)
        assert set(terms) == {"forget", "penalty", "retain"}
        assert terms["forget"] == pytest.approx(-ascent * np.mean(J_each(model, f, loss_fn)),
                                                rel=1e-5)
        assert terms["retain"] == pytest.approx(np.mean(J_each(model, r, loss_fn)), rel=1e-5)
        assert terms["penalty"] == pytest.approx(gamma * float(l1_norm(model).detach()), rel=1e-6)
        l1 = float(sum(p.detach().abs().sum() for p in model.parameters()))
        assert float(loss.detach()) == pytest.approx(  # -a mean J(Df) + gamma |theta| + mean J(Dr')
            -ascent * np.mean(J_each(model, f, loss_fn)) + gamma * l1
            + np.mean(J_each(model, r, loss_fn)), rel=1e-5)
        loss, terms = step_loss(METHODS["NL-FT"], model, loss_fn, f, r, lam=lam, protocol=protocol,
                                generator=torch.Generator().manual_seed(0))
        label = noisy_target(f.target, lam, torch.Generator().manual_seed(0), protocol.noisy_label)
        assert set(terms) == {"forget", "retain"}
        assert terms["forget"] == pytest.approx(np.mean(J_each(model, f, loss_fn, label)), rel=1e-5)
        assert float(loss.detach()) == pytest.approx(
            np.mean(J_each(model, f, loss_fn, label)) + np.mean(J_each(model, r, loss_fn)),
            rel=1e-5)
    # a row without a forget term ignores forget samples it is handed
    _, terms = step_loss(METHODS["FT"], model, loss_fn, f, r, protocol=PAIRED)
    assert set(terms) == {"retain"}


def test_an_alternating_step_gives_every_slice_its_own_term(model, samples):
    """The code: one batch of both streams, each slice its term, the loss their mean; forget
    slices also carry the penalty, weighted by their share of the batch."""
    f, r = batch(samples["forget"], 0, 1), batch(samples["retain"], 0, 1, 2)
    loss_fn, gamma, lam, n = ReconstructionLoss(), 1e-5, 1e-4, 5
    ascent, _ = ascent_weights(ALTERNATING, gamma)
    loss, terms = step_loss(METHODS["GA-l1-FT"], model, loss_fn, f, r, gamma=gamma,
                            protocol=ALTERNATING)
    assert set(terms) == {"forget", "penalty", "retain"}
    assert terms["forget"] == pytest.approx(-ascent * sum(J_each(model, f, loss_fn)) / n, rel=1e-5)
    assert terms["retain"] == pytest.approx(sum(J_each(model, r, loss_fn)) / n, rel=1e-5)
    assert terms["penalty"] == pytest.approx(2 / n * gamma * float(l1_norm(model).detach()),
                                             rel=1e-6)
    l1 = float(sum(p.detach().abs().sum() for p in model.parameters()))
    assert float(loss.detach()) == pytest.approx(  # every slice its own term, then the mean
        (-ascent * sum(J_each(model, f, loss_fn)) + sum(J_each(model, r, loss_fn))
         + 2 * gamma * l1) / n, rel=1e-5)
    loss, terms = step_loss(METHODS["NL-FT"], model, loss_fn, f, r, lam=lam, protocol=ALTERNATING,
                            generator=torch.Generator().manual_seed(0))
    label = noisy_target(f.target, lam, torch.Generator().manual_seed(0), "half_normal")
    assert terms["forget"] == pytest.approx(sum(J_each(model, f, loss_fn, label)) / n, rel=1e-5)
    # a batch of retain slices only is plain fine-tuning: the mean of J
    _, terms = step_loss(METHODS["NL-FT"], model, loss_fn, None, r, lam=lam, protocol=ALTERNATING,
                         generator=torch.Generator().manual_seed(0))
    assert set(terms) == {"retain"}
    assert terms["retain"] == pytest.approx(np.mean(J_each(model, r, loss_fn)), rel=1e-5)
    _, terms = step_loss(METHODS["FT"], model, loss_fn, f, r, protocol=ALTERNATING)
    assert set(terms) == {"retain"}
    assert terms["retain"] == pytest.approx(np.mean(J_each(model, r, loss_fn)), rel=1e-5)


def test_reconstruction_loss_is_one_minus_ssim_plus_small_l1_or_l1():
    """J against independent references: scikit-image's SSIM with fastMRI's settings (7 x 7
    uniform window, sample covariance, K1 0.01, K2 0.03, the target's maximum as data range)
    and numpy's mean absolute error; J is 0 for a perfect reconstruction."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    target = rng.random((1, 32, 32)).astype(np.float32)
    out = (target + rng.normal(0, 0.2, target.shape)).astype(np.float32)
    max_value = torch.tensor([float(target.max())])
    ssim = structural_similarity(target[0], out[0], win_size=7, data_range=float(target.max()),
                                 K1=0.01, K2=0.03, gaussian_weights=False,
                                 use_sample_covariance=True)
    l1 = float(np.abs(out - target).mean())
    o, t = torch.from_numpy(out), torch.from_numpy(target)
    assert float(ReconstructionLoss("l1")(o, t, max_value)) == pytest.approx(l1, rel=1e-5)
    assert float(ReconstructionLoss("ssim+l1", 1e-5)(o, t, max_value)) == \
        pytest.approx(1 - ssim + 1e-5 * l1, rel=1e-4)
    assert float(ReconstructionLoss("ssim+l1", 0.5)(o, t, max_value)) == \
        pytest.approx(1 - ssim + 0.5 * l1, rel=1e-4)
    for kind in ("ssim+l1", "l1"):
        assert float(ReconstructionLoss(kind)(t, t, max_value)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError, match="unknown loss"):
        ReconstructionLoss("mse")


def test_js_ssim_part_is_fastmris_ssim_loss_in_value_and_gradient():
    """J's SSIM part takes its window means by average pooling, fastMRI's SSIMLoss by
    convolutions: the same function (its constants read from fastMRI's module), so the values
    and the gradients a step follows agree to float rounding, per slice, at each data range."""
    from fastmri.losses import SSIMLoss

    torch.manual_seed(3)
    target = torch.rand(4, 32, 32) * torch.tensor([1e-4, 5e-4, 1.0, 3.0])[:, None, None]
    peak = target.amax(dim=(1, 2))
    noise = torch.randn(4, 32, 32) * 0.2 * peak[:, None, None]
    ours_in = (target + noise).requires_grad_(True)
    theirs_in = (target + noise).requires_grad_(True)
    ours = ReconstructionLoss().ssim_loss(ours_in, target, peak)
    theirs = SSIMLoss()(theirs_in.unsqueeze(1), target.unsqueeze(1), data_range=peak,
                        reduced=False).mean(dim=(1, 2, 3))
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    ours.sum().backward()
    theirs.sum().backward()
    scale = theirs_in.grad.abs().max()
    assert float((ours_in.grad - theirs_in.grad).abs().max() / scale) < 1e-4
    assert not torch.equal(ours_in.grad, torch.zeros_like(ours_in.grad))


@pytest.mark.parametrize("kind", ["ssim+l1", "l1"])
def test_per_sample_losses_are_each_slices_own_and_average_to_the_loss(kind):
    torch.manual_seed(1)
    out, target = (torch.rand(3, 32, 32),
                   torch.rand(3, 32, 32) * torch.tensor([1., 2., 4.])[:, None, None])
    max_value = target.amax(dim=(1, 2))
    loss_fn = ReconstructionLoss(kind)
    each = loss_fn.per_sample(out, target, max_value)
    assert each.shape == (3,)
    for i in range(3):  # each slice with its own data range
        assert float(each[i]) == pytest.approx(
            float(loss_fn(out[i:i + 1], target[i:i + 1], max_value[i:i + 1])), rel=1e-5)
    assert float(loss_fn(out, target, max_value)) == pytest.approx(float(each.mean()), rel=1e-6)


# ------------------------------------------------------------------ the order of an epoch


def flat(plan, k):
    """The forget (k=0) or retain (k=1) indices of an epoch's plan, in order."""
    return [i for step in plan for i in step[k]]


@pytest.mark.parametrize("n_forget,n_retain", [(2, 18), (7, 3), (5, 5), (1, 4)])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_paired_steps_follow_algorithms_1_and_2(n_forget, n_retain, batch_size):
    """A forget and a retain sample per step; the epoch is the longer stream, the shorter
    cycles in one order."""
    plan = epoch_steps(n_forget, n_retain, seed=3, epoch=1, batch_size=batch_size, steps="paired")
    length = max(n_forget, n_retain)
    assert len(plan) == -(-length // batch_size)
    assert all(len(f) == len(r) and 1 <= len(f) <= batch_size for f, r in plan)
    for k, n in ((0, n_forget), (1, n_retain)):
        column = flat(plan, k)
        assert len(column) == length
        counts = np.bincount(column, minlength=n)
        assert len(counts) == n
        assert counts.min() >= length // n and counts.max() <= -(-length // n)  # cycles evenly
        if n == length:  # the longer stream is a permutation: each sample once
            assert sorted(column) == list(range(n))
        # cycling repeats the same order, as a shorter stream restarting would
        assert column[n:] == column[:length - n]


@pytest.mark.parametrize("steps", ["alternating", "paired"])
@pytest.mark.parametrize("n_forget,n_retain", [(0, 6), (4, 0)])
def test_a_single_stream_visits_each_slice_once(steps, n_forget, n_retain):
    for batch_size in (1, 4):
        plan = epoch_steps(n_forget, n_retain, seed=3, epoch=1, batch_size=batch_size, steps=steps)
        assert len(plan) == -(-(n_forget + n_retain) // batch_size)
        assert sorted(flat(plan, 0)) == list(range(n_forget))
        assert sorted(flat(plan, 1)) == list(range(n_retain))


@pytest.mark.parametrize("steps", ["alternating", "paired"])
def test_epoch_steps_are_deterministic_by_seed_and_epoch(steps):
    a = epoch_steps(5, 40, seed=0, epoch=0, batch_size=4, steps=steps)
    assert a == epoch_steps(5, 40, seed=0, epoch=0, batch_size=4, steps=steps)
    assert a != epoch_steps(5, 40, seed=0, epoch=1, batch_size=4, steps=steps)
    assert a != epoch_steps(5, 40, seed=1, epoch=0, batch_size=4, steps=steps)


def test_the_order_of_an_epoch_is_pinned():
    """Every stored run depends on these orders (numpy's Generator draws them): a change in
    the code or in numpy's streams that moves them must be seen here and bump ENGINE_VERSION
    (numpy does not promise its streams stay the same across versions)."""
    assert epoch_steps(3, 6, seed=5, epoch=2, batch_size=2, oracle_order_of=4) == [
        ([], [0, 1]), ([], [3, 5]), ([0], [4]), ([1, 2], []), ([], [2])]
    assert epoch_steps(4, 0, seed=5, epoch=2) == [([0], []), ([1], []), ([3], []), ([2], [])]
    assert epoch_steps(3, 5, seed=5, epoch=2, batch_size=2, steps="paired",
                       oracle_order_of=3) == [([0, 1], [0, 1]), ([2, 0], [4, 3]), ([1], [2])]
    # one process's share; rank 0 unless told
    assert epoch_steps(3, 6, seed=5, epoch=2, batch_size=2, world=2) == epoch_steps(
        3, 6, seed=5, epoch=2, batch_size=2, rank=0, world=2)


def test_bad_steps_and_batch_sizes_are_refused():
    with pytest.raises(ConfigError, match="unknown steps 'sideways'"):
        epoch_steps(3, 5, 0, 0, steps="sideways")
    with pytest.raises(ConfigError, match="batch size must be at least 1"):
        epoch_steps(3, 5, 0, 0, batch_size=0)


@pytest.mark.parametrize("steps,expected", [("alternating", 7), ("paired", 6)])
def test_epoch_steps_split_across_ranks_cover_every_step(steps, expected):
    full = epoch_steps(3, 11, seed=0, epoch=2, steps=steps)
    shares = [epoch_steps(3, 11, seed=0, epoch=2, steps=steps, rank=r, world=2) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == expected  # equal steps per rank, or DDP hangs
    # every step of the epoch is taken, the plan padded with its first steps to fill the ranks
    assert shares[0] + shares[1] == (full + full)[:2 * expected]
    assert len(full) <= 2 * expected < len(full) + 2


@pytest.mark.parametrize("shared,n_retain", [(10, 13), (1, 4), (6, 6)])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_oracle_order_is_kept_and_the_rest_inserted(shared, n_retain, batch_size):
    """G's epoch: Dr in exactly the oracle's order, each Df slice once at a random place."""
    oracle = flat(epoch_steps(0, shared, seed=3, epoch=1, batch_size=batch_size), 1)
    plan = epoch_steps(0, n_retain, seed=3, epoch=1, batch_size=batch_size, oracle_order_of=shared)
    mixed = flat(plan, 1)
    assert len(plan) == -(-n_retain // batch_size)
    assert sorted(mixed) == list(range(n_retain))
    assert [r for r in mixed if r < shared] == oracle
    assert plan == epoch_steps(0, n_retain, seed=3, epoch=1, batch_size=batch_size,
                               oracle_order_of=shared)


def test_oracle_order_places_the_extra_samples_anew_each_epoch():
    places = {tuple(i for i, r in enumerate(flat(epoch_steps(0, 40, seed=0, epoch=e,
                                                             oracle_order_of=36), 1)) if r >= 36)
              for e in range(6)}
    assert len(places) == 6


def test_lab_trains_g_in_the_oracles_retain_order(lab, monkeypatch):
    """Common random numbers: G and G-hat share initialisation and the order of Dr."""
    seen = []

    def spy(loop, model, fabric):
        seen.append((loop, [p.detach().clone() for p in model.parameters()]))
        raise Captured

    monkeypatch.setattr(lab_lib, "run_loop", spy)
    monkeypatch.setattr(lab.store, "get", lambda c: None)
    for which in ("oracle", "original"):
        with pytest.raises(Captured):
            lab.train(which)
    (oracle, w_oracle), (original, w_original) = seen
    retain, forget = lab.dataset("retain"), lab.dataset("forget")
    n = len(retain)
    assert oracle.oracle_order_of is None and original.oracle_order_of == n
    assert oracle.retain is retain and oracle.forget is None and original.forget is None
    assert len(original.retain) == n + len(forget)
    assert [original.retain.fname(i) for i in range(len(original.retain))] == \
        [retain.fname(i) for i in range(n)] + [forget.fname(i) for i in range(len(forget))]
    assert oracle.epochs == original.epochs == lab.train_config.epochs
    assert oracle.train is original.train is lab.train_config
    assert oracle.protocol == original.protocol == lab.protocol
    assert oracle.start_from is None and original.start_from is None
    assert all(torch.equal(a, b) for a, b in zip(w_oracle, w_original))
    assert lab.config(lab.job("original"))["order"] != lab.config(lab.job("oracle")).get("order")
    for epoch in range(3):  # every epoch of G reads Dr in the order the oracle reads it
        g_order = [i for i in flat(epoch_plan(original, epoch), 1) if i < n]
        assert g_order == flat(epoch_plan(oracle, epoch), 1), epoch


# ------------------------------------------------------------------ which data a row reads


class Watched:
    """A split that records every read (whether the loop was running, the index in the
    watched split, and how: ``fixed`` evaluation mask or ``drawn`` training mask). ``select``
    gives a view whose reads are recorded here, in this split's indices."""

    def __init__(self, inner, parent=None, indices=None):
        self.inner, self.reads, self.armed = inner, [], False
        self.parent, self.indices = parent, indices

    def __len__(self):
        return len(self.inner)

    def _record(self, i, how):
        if self.parent is not None:
            self.parent._record(self.indices[i], how)
        else:
            self.reads.append((self.armed, int(i), how))

    def __getitem__(self, i):
        self._record(i, "fixed")
        return self.inner[i]

    def masked(self, i, seed):
        self._record(i, "drawn")
        return self.inner.masked(i, seed)

    def fname(self, i):
        return self.inner.fname(i)

    def select(self, indices):
        indices = [int(i) for i in indices]
        return Watched(self.inner.select(indices), parent=self, indices=indices)

    def loop_reads(self, how=None):
        return [i for armed, i, h in self.reads if armed and how in (None, h)]


@pytest.mark.parametrize("protocol", [CODE, TEXT], ids=["code", "text"])
@pytest.mark.parametrize("name", [n for n in METHODS if n not in BEYOND])  # BEYOND: test_beyond
def test_loop_reads_forget_data_only_for_a_forget_term(name, protocol, smoke, samples, tmp_path):
    row = METHODS[name]
    forget = Watched(samples["forget"])
    retain = Watched(samples["retain"].select([0, 1, 2]))
    forget.armed = retain.armed = True
    torch.manual_seed(0)
    loop = Loop(method=row, forget=forget, retain=None if row.retain == "none" else retain,
                epochs=1, train=smoke.train, seed=0, checkpoint=tmp_path / "c.ckpt",
                protocol=protocol, gamma=1e-6, lam=1e-4, progress=False)
    result = run_loop(loop, build_model(smoke.model), make_fabric("cpu"))
    # training masks: drawn afresh under "random" (the code), the evaluation mask under "fixed"
    how = "drawn" if protocol.training_masks == "random" else "fixed"
    if row.forget == "none":
        assert forget.reads == []
    else:
        assert sorted(set(forget.loop_reads())) == list(range(len(forget)))
        assert forget.loop_reads() == forget.loop_reads(how)
    if row.retain == "none":
        assert retain.reads == []
    else:
        assert sorted(set(retain.loop_reads())) == [0, 1, 2]
        assert retain.loop_reads() == retain.loop_reads(how)
    n_f = len(forget) if row.forget != "none" else 0
    n_r = 3 if row.retain != "none" else 0
    b = smoke.train.batch_size
    if protocol.steps == "paired" and n_f and n_r:  # the longer stream, both in every step
        steps, samples_ = -(-max(n_f, n_r) // b), 2 * max(n_f, n_r)
    else:  # one stream: every slice once
        steps, samples_ = -(-(n_f + n_r) // b), n_f + n_r
    assert (result["steps"], result["samples"]) == (steps, samples_)
    assert len(forget.loop_reads()) + len(retain.loop_reads()) == samples_


class Captured(Exception):
    pass


def test_lab_hands_each_row_the_data_it_names(lab, trained, monkeypatch):
    """Intercept the loop: what the Lab passes in for each method, without training."""
    seen = []

    def spy(loop, model, fabric):
        seen.append(loop)
        raise Captured

    monkeypatch.setattr(lab_lib, "run_loop", spy)
    stored = lab.store.get  # G comes from the store; unlearning runs must not
    monkeypatch.setattr(lab.store, "get", lambda c: None if c["kind"] == "unlearn" else stored(c))
    full = lab.dataset("retain")
    n_retain = len(full)
    g_checkpoint = lab.store.run_dir(trained["original"]["key"]) / "checkpoint.ckpt"
    for name in UNLEARNING:
        row = METHODS[name]
        with pytest.raises(Captured):
            lab.unlearn(name, retain_fraction=0.3, gamma=2e-6, lam=0.25)
        loop = seen[-1]
        assert loop.method == row
        # unlearning continues G's training: same settings, G's optimizer and scheduler state
        assert loop.train is lab.train_config and loop.protocol == lab.protocol
        assert loop.start_from == g_checkpoint and g_checkpoint.exists()
        assert loop.forget is lab.dataset("forget")
        assert loop.epochs == lab.protocol.unlearn_epochs == 5
        assert loop.oracle_order_of is None
        if row.retain == "none":
            assert loop.retain is None
        elif row.retain == "all":
            assert loop.retain is full
        else:
            subset = retain_subset(n_retain, 0.3, lab.seed)
            assert len(loop.retain) == len(subset) == round(0.3 * n_retain)
            assert [loop.retain.fname(i) for i in range(len(loop.retain))] == \
                [full.fname(i) for i in subset]
            assert all(loop.retain.raw[k] is full.raw[i] for k, i in enumerate(subset))
        assert loop.gamma == (2e-6 if row.penalty == "l1" else None)
        assert loop.lam == (0.25 if row.forget == "noisy_label" else 0.0)
        # Lab.loop is the one place that decides it
        planned = lab.loop(lab.job(name, retain_fraction=0.3, gamma=2e-6, lam=0.25))
        assert (planned.method, planned.forget, planned.epochs, planned.start_from,
                planned.gamma, planned.lam) == (loop.method, loop.forget, loop.epochs,
                                                loop.start_from, loop.gamma, loop.lam)
    # Retrain is the oracle: from scratch, on all of Dr, nothing of Df
    monkeypatch.setattr(lab.store, "get", lambda config: None)
    with pytest.raises(Captured):
        lab.unlearn("Retrain")
    loop = seen[-1]
    assert loop.method == METHODS["Retrain"] and loop.start_from is None and loop.forget is None
    assert loop.retain is full
    assert loop.epochs == lab.train_config.epochs


def test_ft_reads_no_forget_sample_during_its_loop(trained, results_dir, monkeypatch):
    """A real FT run through the Lab: the loop reads only Dr' (evaluation may read Df for UA)."""
    lab = lab_lib.Lab(scale="smoke", results_dir=results_dir)
    forget, retain = Watched(lab.dataset("forget")), Watched(lab.dataset("retain"))
    lab._datasets.update(forget=forget, retain=retain)
    real = lab_lib.run_loop

    def armed(loop, model, fabric):
        forget.armed = retain.armed = True
        try:
            return real(loop, model, fabric)
        finally:
            forget.armed = retain.armed = False

    monkeypatch.setattr(lab_lib, "run_loop", armed)
    record = lab.unlearn("FT", retain_fraction=0.2)
    assert record["from_store"] is False
    assert forget.loop_reads() == []
    subset = retain_subset(len(retain), 0.2, lab.seed)
    epochs = record["config"]["knobs"]["epochs"]
    assert epochs == lab.protocol.unlearn_epochs
    # every slice of Dr' once per epoch, each with a freshly drawn mask (random masks)
    assert sorted(retain.loop_reads("drawn")) == sorted(subset * epochs)
    assert retain.loop_reads("fixed") == []
    b = lab.train_config.batch_size
    assert record["timing"]["steps"] == epochs * -(-len(subset) // b)
    assert record["timing"]["samples"] == epochs * len(subset)


# ------------------------------------------------------------------ Retrain does not depend on G


def test_retrain_ignores_the_original_model(lab, trained, tmp_path):
    """G-hat trained in a store that never saw G equals G-hat trained after G."""
    config = lab.config(lab.job("oracle"))
    assert "start" not in config and "original" not in json.dumps(config)
    fresh = lab_lib.Lab(scale="smoke", results_dir=tmp_path / "fresh")
    torch.manual_seed(987654321)  # whatever else ran in this process before must not matter
    torch.rand(10)
    alone = fresh.train("oracle")
    assert alone["from_store"] is False
    assert not fresh.store.run_dir(config_hash(fresh.config(fresh.job("original")))).exists()
    after_g = trained["oracle"]
    assert alone["key"] == after_g["key"] == config_hash(config)
    a = torch.load(fresh.store.run_dir(alone["key"]) / "checkpoint.ckpt", weights_only=True)
    b = torch.load(lab.store.run_dir(after_g["key"]) / "checkpoint.ckpt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert alone["metrics"] == after_g["metrics"]
    assert [h["loss"] for h in alone["history"]] == [h["loss"] for h in after_g["history"]]
    assert lab.unlearn("Retrain")["key"] == after_g["key"]
