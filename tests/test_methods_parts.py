"""The parts of the rows beyond the paper, checked on small inputs against references made here.

SCRUB's distance and step, SalUn's gradient sum and mask, SSD's importance, l1-sparse's weight
and the noisy label: each computed again slice by slice (or by scikit-image / numpy) and
compared. Fast, no Lab and no trained model: these are also the tests ``make mutants`` runs.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from erase.config import PROTOCOLS, ConfigError, replace
from erase.runs.methods import (
    METHODS,
    ReconstructionLoss,
    fisher_importance,
    gradient_sum,
    l1_norm,
    l1_weight_at,
    noisy_target,
    saliency_mask,
    step_terms,
    trainable,
)
from erase.runs.models import build_model, reconstruct

CODE = PROTOCOLS["code"]
PAIRED = replace(CODE, steps="paired")


def model_of(smoke, seed):
    torch.manual_seed(seed)
    return build_model(smoke.model)


def batch(split, *indices):
    return default_collate([split[i] for i in indices])


def each(b):
    """The slices of a batch, one batch each."""
    keys = ("masked_kspace", "mask", "target", "max_value", "num_low_frequencies")
    return [b._replace(**{k: getattr(b, k)[i:i + 1] for k in keys}) for i in range(len(b.target))]


# ------------------------------------------------------------------ SCRUB's distance and step


def test_distance_is_one_minus_ssim_or_relative_l1_per_slice():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    ref = (rng.random((3, 32, 32)) * np.array([1.0, 2.0, 4.0])[:, None, None]).astype(np.float32)
    out = (ref + rng.normal(0, 0.3, ref.shape)).astype(np.float32)
    peak = ref.max(axis=(1, 2))
    o, r, m = torch.from_numpy(out), torch.from_numpy(ref), torch.from_numpy(peak)
    loss_fn = ReconstructionLoss()
    ssim = loss_fn.distance(o, r, m)  # the default: 1 - SSIM
    assert ssim.shape == (3,)
    for i in range(3):
        expected = 1 - structural_similarity(ref[i], out[i], win_size=7, data_range=float(peak[i]),
                                             K1=0.01, K2=0.03, gaussian_weights=False,
                                             use_sample_covariance=True)
        assert float(ssim[i]) == pytest.approx(expected, rel=1e-4)
    l1 = loss_fn.distance(o, r, m, "l1")
    np.testing.assert_allclose(l1.numpy(), np.abs(out - ref).mean(axis=(1, 2)) / peak, rtol=1e-5)
    with pytest.raises(ConfigError) as err:
        loss_fn.distance(o, r, m, "l2")
    assert str(err.value) == "unknown distance 'l2': choose one of ssim, l1"


@pytest.mark.parametrize("protocol", [CODE, PAIRED], ids=["alternating", "paired"])
@pytest.mark.parametrize("distance", ["ssim", "l1"])
def test_scrub_step_terms_against_the_teacher(protocol, distance, smoke, samples):
    """Forget slices carry -d(student, teacher), retain slices J + d(student, teacher); the
    alternating step averages over every slice, the paired one averages each stream."""
    student, teacher = model_of(smoke, 0), model_of(smoke, 1)
    f, r = batch(samples["forget"], 0, 1), batch(samples["retain"], 0, 1, 2)
    loss_fn, row = ReconstructionLoss(), METHODS["SCRUB"]

    def d(b):
        with torch.no_grad():
            s, t = reconstruct(student, b), reconstruct(teacher, b)
            return float(loss_fn.distance(s, t, b.max_value.to(s), distance)[0])

    def J(b):
        with torch.no_grad():
            s = reconstruct(student, b)
            return float(loss_fn(s, b.target, b.max_value.to(s)))

    forget = [-d(b) for b in each(f)]
    retain = [J(b) + d(b) for b in each(r)]
    terms = step_terms(row, student, loss_fn, f, r, protocol=protocol, teacher=teacher,
                       distance=distance)
    assert set(terms) == {"forget", "retain"}
    n = len(forget) + len(retain)
    if protocol.steps == "paired":
        expected = {"forget": np.mean(forget), "retain": np.mean(retain)}
    else:
        expected = {"forget": sum(forget) / n, "retain": sum(retain) / n}
    for k, v in expected.items():
        assert float(terms[k].detach()) == pytest.approx(v, rel=1e-4, abs=1e-7), k
    with pytest.raises(ValueError, match="method SCRUB needs its teacher for a step"):
        step_terms(row, student, loss_fn, f, r, protocol=protocol)


@pytest.mark.parametrize("protocol", [CODE, PAIRED], ids=["alternating", "paired"])
def test_l1_sparse_carries_alpha_t_times_the_l1_norm_once_per_step(protocol, smoke, samples):
    model = model_of(smoke, 0)
    r = batch(samples["retain"], 0, 1)
    terms = step_terms(METHODS["l1-sparse"], model, ReconstructionLoss(), None, r,
                       protocol=protocol, alpha=3e-4)
    l1 = float(sum(p.detach().abs().sum() for p in model.parameters()))
    assert float(terms["penalty"].detach()) == pytest.approx(3e-4 * l1, rel=1e-5)
    assert float(l1_norm(model).detach()) == pytest.approx(l1, rel=1e-6)


def test_l1_sparse_weight_falls_linearly_to_zero_and_stays_there():
    assert l1_weight_at(2.0, 0, 4) == 2.0 and l1_weight_at(2.0, 1, 4) == 1.5
    assert l1_weight_at(2.0, 4, 4) == 0.0 and l1_weight_at(2.0, 9, 4) == 0.0  # never negative
    assert l1_weight_at(2.0, 0, 1) == 2.0  # a run of one step
    assert l1_weight_at(2.0, 0, 0) == 0.0 and l1_weight_at(2.0, 3, -1) == 0.0  # no steps: none


# ------------------------------------------------------------------ the noisy label


def test_the_noisy_label_is_half_normal_by_default_in_the_targets_precision():
    target = torch.rand(2, 8, 8, dtype=torch.float64)
    label = noisy_target(target, 0.5, torch.Generator().manual_seed(3))
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(3),
                        dtype=torch.float64)
    assert label.dtype == torch.float64
    assert torch.equal(label, target + 0.5 * noise.abs())


# ------------------------------------------------------------------ SalUn's saliency


def test_the_gradient_sum_is_the_sum_of_every_slices_gradient(smoke, samples):
    """Over two batches (two slices and one), with a weight the network does not use (its
    gradient is none: a zero sum)."""
    model = model_of(smoke, 0)
    model.register_parameter("unused", torch.nn.Parameter(torch.ones(3)))
    loss_fn = ReconstructionLoss()
    batches = [batch(samples["forget"], 0, 1), batch(samples["forget"], 2)]
    total, n = gradient_sum(model, loss_fn, batches)
    assert n == 3
    params = trainable(model)
    expected = [torch.zeros_like(p) for p in params]
    for b in batches:
        for one in each(b):
            out = reconstruct(model, one)
            loss = loss_fn(out, one.target, one.max_value.to(out))
            for e, g in zip(expected, torch.autograd.grad(loss, params, allow_unused=True)):
                if g is not None:
                    e += g
    scale = max(float(e.abs().max()) for e in expected)
    for t, e in zip(total, expected):  # float32 sums in another order: close, not equal
        torch.testing.assert_close(t, e, rtol=1e-3, atol=1e-4 * scale)
    unused = next(i for i, p in enumerate(params) if p is model.unused)
    assert torch.equal(total[unused], torch.zeros(3)) and any(t.abs().sum() > 0 for t in total)


def test_the_saliency_mask_takes_the_largest_magnitudes_and_breaks_ties_by_position():
    gradients = [torch.tensor([0.0, -3.0, 0.0, 0.0]), torch.tensor([[2.0], [0.0]]),
                 torch.zeros(3)]
    mask = saliency_mask(gradients, 0.45)  # round(0.45 * 9) = 4 weights
    assert [m.tolist() for m in mask] == [[True, True, True, False], [[True], [False]],
                                          [False, False, False]]
    assert all(m.dtype == torch.bool and m.shape == g.shape for m, g in zip(mask, gradients))
    ties = saliency_mask([torch.zeros(64)], 0.25)[0]
    assert ties.tolist() == [True] * 16 + [False] * 48  # the first 16, whatever the sort


# ------------------------------------------------------------------ SSD's importance


def test_fisher_importance_is_the_mean_squared_gradient_over_slices(smoke, samples):
    model = model_of(smoke, 0)
    loss_fn = ReconstructionLoss()
    slices = each(batch(samples["retain"], 0, 1, 2))
    importance, n = fisher_importance(model, loss_fn, slices)
    assert n == 3
    params = trainable(model)
    expected = [torch.zeros_like(p) for p in params]
    for one in slices:
        out = reconstruct(model, one)
        for e, g in zip(expected, torch.autograd.grad(loss_fn(out, one.target,
                                                              one.max_value.to(out)), params)):
            e += g.square() / 3
    scale = max(float(e.abs().max()) for e in expected)
    for i, e in zip(importance, expected):
        torch.testing.assert_close(i, e, rtol=1e-3, atol=1e-4 * scale)
    assert fisher_importance(model, loss_fn, [])[1] == 0  # nothing read: zeros, not a division


# ------------------------------------------------------------------ one forward pass for both


def test_forget_and_retain_share_a_forward_pass_only_when_they_can(smoke, samples):
    """Batches of the same shape and calibration share one pass (close to two passes: float32
    sums in another order); batches that differ (here the number of centre lines the coil maps
    are estimated from, as real files of different protocols would) get one pass each, exactly
    the model's own reconstructions."""
    from erase.runs.methods import _reconstruct_both

    model = model_of(smoke, 0)
    forget, retain = batch(samples["forget"], 0, 1), batch(samples["retain"], 0, 1, 2)
    with torch.no_grad():
        alone = reconstruct(model, forget), reconstruct(model, retain)
        shared = _reconstruct_both(model, forget, retain)
        for got, want in zip(shared, alone):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6 * float(want.abs().max()))
        fewer = retain._replace(num_low_frequencies=retain.num_low_frequencies - 2)
        assert int(fewer.num_low_frequencies.reshape(-1)[0]) >= 1
        apart = _reconstruct_both(model, forget, fewer)
        assert torch.equal(apart[0], alone[0])
        assert torch.equal(apart[1], reconstruct(model, fewer))
        assert not torch.equal(apart[1], alone[1])  # the centre lines matter: a real difference
