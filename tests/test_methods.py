"""Methods as data: each term of a step does what it claims, each row gets the data it names."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields, replace

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from erase.runs import lab as lab_lib
from erase.config import ConfigError, config_hash, unlearning_epochs
from erase.data import retain_subset
from erase.runs.engine import Loop, epoch_pairs, make_fabric, run_loop
from erase.runs.methods import (FORGET_TERMS, METHODS, METHODS_VERSION, RETAIN_DATA, UNLEARNING,
                           Method, ReconstructionLoss, get_method, l1_norm, noisy_target,
                           step_loss, validate_knobs)
from erase.runs.models import build_model, reconstruct


def batch(dataset, i=0):
    return default_collate([dataset[i]])


def J(model, b, loss_fn, target=None):
    with torch.no_grad():
        out = reconstruct(model, b)
        return float(loss_fn(out, b.target if target is None else target, b.max_value.to(out)))


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
        assert m.penalty in ("none", "l1"), name
        assert m.retain in RETAIN_DATA, name
        assert m.forget != "none" or m.retain != "none" or m.penalty != "none", f"{name} does nothing"
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
    assert {n: (m.start, m.forget, m.penalty, m.retain) for n, m in METHODS.items()} == expected


def version_of(methods: dict) -> str:
    return hashlib.sha256(json.dumps([asdict(m) for m in methods.values()],
                                     sort_keys=True).encode()).hexdigest()[:12]


def test_methods_version_tracks_every_field_of_every_row():
    assert version_of(METHODS) == METHODS_VERSION
    seen = {METHODS_VERSION}
    for name in METHODS:
        for f in fields(Method):
            if f.name == "name":
                continue
            copy = dict(METHODS)
            copy[name] = replace(METHODS[name], **{f.name: getattr(METHODS[name], f.name) + "x"})
            version = version_of(copy)
            assert version not in seen, (name, f.name)
            seen.add(version)


def test_unknown_method_and_bad_knobs_are_refused():
    with pytest.raises(ConfigError, match="unknown method 'SCRUB'.*NL-FT"):
        get_method("SCRUB")
    for args, word in [(("FT", 0, 0, 0), "retain fraction"), (("FT", 1.5, 0, 0), "retain fraction"),
                       (("FT", 0.1, -1, 0), "gamma"), (("NL", 0.1, 0, float("nan")), "lambda"),
                       (("NL", 0.1, 0, 0.5, 0), "epochs")]:
        with pytest.raises(ConfigError, match=word):
            validate_knobs(*args)
    assert validate_knobs("NL-FT", "0.2", 0, 1) == (0.2, 0.0, 1.0, None)


# ------------------------------------------------------------------ the terms


def test_gradient_ascent_step_raises_the_forget_loss(model, samples):
    b = batch(samples["forget"])
    loss_fn = ReconstructionLoss()
    before = J(model, b, loss_fn)
    loss, terms = step_loss(METHODS["GA-l1"], model, loss_fn, forget=b, gamma=0.0)
    assert terms["forget"] == pytest.approx(-before, rel=1e-6)
    assert terms["penalty"] == 0.0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert J(model, b, loss_fn) > before + 1e-4


def test_gradient_ascent_gradient_is_minus_the_loss_gradient(smoke, samples):
    b = batch(samples["forget"])
    loss_fn = ReconstructionLoss()
    grads = []
    for ascent in (True, False):
        torch.manual_seed(0)
        net = build_model(smoke.model)
        if ascent:
            loss, _ = step_loss(METHODS["GA-l1"], net, loss_fn, forget=b, gamma=0.0)
        else:
            out = reconstruct(net, b)
            loss = loss_fn(out, b.target, b.max_value.to(out))
        loss.backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for ga, j in zip(*grads):
        torch.testing.assert_close(ga, -j)


def test_noisy_label_step_moves_the_output_toward_the_noisy_label(model, samples):
    b = batch(samples["forget"])
    lam, seed = 0.5, 1234
    max_value = b.max_value.float()
    label = noisy_target(b.target, max_value, lam, torch.Generator().manual_seed(seed))
    # the label is y + lam * max(y) * N(0, I), reproducibly from the generator
    assert torch.equal(label, noisy_target(b.target, max_value, lam,
                                           torch.Generator().manual_seed(seed)))
    assert not torch.equal(label, noisy_target(b.target, max_value, lam,
                                               torch.Generator().manual_seed(seed + 1)))
    noise_std = float((label - b.target).std())
    assert noise_std == pytest.approx(lam * float(max_value), rel=0.1)

    loss_fn = ReconstructionLoss("l1")  # the paper's written J: distance is then plain L1
    distance = lambda: J(model, b, loss_fn, target=label)  # noqa: E731
    before = distance()
    loss, terms = step_loss(METHODS["NL"], model, loss_fn, forget=b, lam=lam,
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
    loss, _ = step_loss(METHODS["NL"], model, loss_fn, forget=b, lam=0.0,
                        generator=torch.Generator().manual_seed(0))
    assert float(loss.detach()) == pytest.approx(J(model, b, loss_fn), rel=1e-6)


def test_l1_penalty_is_gamma_times_the_sum_of_absolute_weights(model):
    gamma = 3e-4
    expected = gamma * float(torch.cat([p.detach().abs().flatten() for p in model.parameters()]).sum())
    loss, terms = step_loss(METHODS["GA-l1"], model, ReconstructionLoss(), forget=None, gamma=gamma)
    assert set(terms) == {"penalty"}
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    loss.backward()
    for p in model.parameters():
        torch.testing.assert_close(p.grad, gamma * torch.sign(p.detach()))
    # frozen weights are not part of theta
    first = next(model.parameters())
    first.requires_grad_(False)
    assert float(l1_norm(model).detach()) == pytest.approx(expected / gamma - float(first.abs().sum()), rel=1e-5)


def test_a_step_is_the_sum_of_its_terms(model, samples):
    f, r = batch(samples["forget"]), batch(samples["retain"])
    loss_fn, gamma, lam = ReconstructionLoss(), 1e-5, 0.3
    loss, terms = step_loss(METHODS["GA-l1-FT"], model, loss_fn, f, r, gamma=gamma)
    assert set(terms) == {"forget", "penalty", "retain"}
    assert terms["forget"] == pytest.approx(-J(model, f, loss_fn), rel=1e-6)
    assert terms["retain"] == pytest.approx(J(model, r, loss_fn), rel=1e-6)
    assert terms["penalty"] == pytest.approx(gamma * float(l1_norm(model).detach()), rel=1e-6)
    assert float(loss.detach()) == pytest.approx(sum(terms.values()), abs=1e-6)  # float32 sum
    loss, terms = step_loss(METHODS["NL-FT"], model, loss_fn, f, r, lam=lam,
                            generator=torch.Generator().manual_seed(0))
    label = noisy_target(f.target, f.max_value.float(), lam, torch.Generator().manual_seed(0))
    assert set(terms) == {"forget", "retain"}
    assert terms["forget"] == pytest.approx(J(model, f, loss_fn, target=label), rel=1e-6)
    assert float(loss.detach()) == pytest.approx(terms["forget"] + terms["retain"], abs=1e-6)
    # a row without a forget term ignores forget samples it is handed
    loss, terms = step_loss(METHODS["FT"], model, loss_fn, f, r)
    assert set(terms) == {"retain"}


def test_reconstruction_loss_is_ssim_plus_small_l1_or_l1():
    from fastmri.losses import SSIMLoss

    torch.manual_seed(0)
    out, target = torch.rand(1, 32, 32), torch.rand(1, 32, 32)
    max_value = target.max().reshape(1)
    l1 = torch.nn.functional.l1_loss(out, target)
    assert float(ReconstructionLoss("l1")(out, target, max_value)) == pytest.approx(float(l1))
    ssim = SSIMLoss()(out.unsqueeze(1), target.unsqueeze(1), data_range=max_value)
    assert float(ReconstructionLoss("ssim+l1", 1e-5)(out, target, max_value)) == \
        pytest.approx(float(ssim + 1e-5 * l1))
    with pytest.raises(ConfigError, match="unknown loss"):
        ReconstructionLoss("mse")


# ------------------------------------------------------------------ pairing (Algorithms 1-2)


@pytest.mark.parametrize("n_forget,n_retain", [(2, 18), (7, 3), (5, 5), (0, 6), (4, 0)])
def test_epoch_pairs_follow_algorithms_1_and_2(n_forget, n_retain):
    pairs = epoch_pairs(n_forget, n_retain, seed=3, epoch=1)
    steps = max(n_forget, n_retain)
    assert len(pairs) == steps
    for k, n in ((0, n_forget), (1, n_retain)):
        column = [p[k] for p in pairs]
        if n == 0:
            assert column == [None] * steps
            continue
        counts = np.bincount(column, minlength=n)
        assert len(counts) == n
        assert counts.min() >= steps // n and counts.max() <= -(-steps // n)  # cycles evenly
        if n == steps:  # the longer stream is a permutation: each sample once
            assert sorted(column) == list(range(n))
        # cycling repeats the same order, as a shorter stream restarting would
        assert column[n:] == column[:steps - n] if steps > n else True


def test_epoch_pairs_are_deterministic_by_seed_and_epoch():
    a = epoch_pairs(5, 40, seed=0, epoch=0)
    assert a == epoch_pairs(5, 40, seed=0, epoch=0)
    assert a != epoch_pairs(5, 40, seed=0, epoch=1)
    assert a != epoch_pairs(5, 40, seed=1, epoch=0)


def test_epoch_pairs_split_across_ranks_without_overlap():
    full = epoch_pairs(3, 11, seed=0, epoch=2)
    shares = [epoch_pairs(3, 11, seed=0, epoch=2, rank=r, world=2) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 5  # equal steps per rank, or DDP would hang
    assert shares[0] + shares[1] == full[:10]


@pytest.mark.parametrize("shared,n_retain", [(10, 13), (1, 4), (6, 6)])
def test_shared_order_keeps_the_oracles_order_and_inserts_the_rest(shared, n_retain):
    """G's epoch: Dr in exactly the oracle's order, each Df slice once at a random place."""
    oracle = [r for _, r in epoch_pairs(0, shared, seed=3, epoch=1)]
    mixed = [r for _, r in epoch_pairs(0, n_retain, seed=3, epoch=1, shared=shared)]
    assert sorted(mixed) == list(range(n_retain))
    assert [r for r in mixed if r < shared] == oracle
    assert mixed == [r for _, r in epoch_pairs(0, n_retain, seed=3, epoch=1, shared=shared)]


def test_shared_order_places_the_extra_samples_anew_each_epoch():
    places = {tuple(i for i, (_, r) in enumerate(epoch_pairs(0, 40, seed=0, epoch=e, shared=36))
                    if r >= 36) for e in range(6)}
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
    n = len(lab.dataset("retain"))
    assert oracle.shared_order is None and original.shared_order == n
    assert len(original.retain) == n + len(lab.dataset("forget"))
    assert all(torch.equal(a, b) for a, b in zip(w_oracle, w_original))
    assert lab.train_config_of("original")["order"] != lab.train_config_of("oracle").get("order")


# ------------------------------------------------------------------ which data a row reads


class Watched(torch.utils.data.Dataset):
    """A data set that records every read, and whether the loop was running at the time."""

    def __init__(self, inner):
        self.inner, self.reads, self.armed = inner, [], False

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.reads.append((self.armed, int(i)))
        return self.inner[i]

    def loop_reads(self):
        return [i for armed, i in self.reads if armed]


@pytest.mark.parametrize("name", list(METHODS))
def test_loop_reads_forget_data_only_for_a_forget_term(name, smoke, samples, tmp_path):
    row = METHODS[name]
    forget = Watched(samples["forget"])
    retain = Watched(torch.utils.data.Subset(samples["retain"], [0, 1, 2]))
    forget.armed = retain.armed = True
    torch.manual_seed(0)
    loop = Loop(method=row, forget=forget, retain=None if row.retain == "none" else retain,
                epochs=1, train=smoke.train, seed=0, checkpoint=tmp_path / "c.ckpt",
                gamma=1e-6, lam=0.5, progress=False)
    result = run_loop(loop, build_model(smoke.model), make_fabric("cpu"))
    if row.forget == "none":
        assert forget.reads == []
    else:
        assert sorted(set(forget.loop_reads())) == list(range(len(forget)))
    if row.retain == "none":
        assert retain.reads == []
    else:
        assert sorted(set(retain.loop_reads())) == [0, 1, 2]
    n_f = len(forget) if row.forget != "none" else 0
    n_r = 3 if row.retain != "none" else 0
    assert result["steps"] == max(n_f, n_r)
    assert result["samples"] == (max(n_f, n_r) if n_f else 0) + (max(n_f, n_r) if n_r else 0)


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
    n_retain = len(lab.dataset("retain"))
    g_checkpoint = lab.store.run_dir(trained["original"]["key"]) / "checkpoint.ckpt"
    for name in UNLEARNING:
        row = METHODS[name]
        with pytest.raises(Captured):
            lab.unlearn(name, retain_fraction=0.3, gamma=2e-6, lam=0.25)
        loop = seen[-1]
        assert loop.method == row
        assert loop.train.lr == lab.train_config.unlearn_lr and loop.train.lr_step is None
        assert loop.start_from == g_checkpoint and g_checkpoint.exists()
        assert loop.forget is lab.dataset("forget")
        assert loop.epochs == unlearning_epochs(lab.train_config.epochs)
        if row.retain == "none":
            assert loop.retain is None
        elif row.retain == "all":
            assert loop.retain is lab.dataset("retain")
        else:
            assert loop.retain.dataset is lab.dataset("retain")
            assert list(loop.retain.indices) == retain_subset(n_retain, 0.3, lab.seed)
            assert len(loop.retain) == round(0.3 * n_retain)
        assert loop.gamma == (2e-6 if row.penalty == "l1" else 0.0)
        assert loop.lam == (0.25 if row.forget == "noisy_label" else 0.0)
    # Retrain is the oracle: from scratch, on all of Dr, nothing of Df
    monkeypatch.setattr(lab.store, "get", lambda config: None)
    with pytest.raises(Captured):
        lab.unlearn("Retrain")
    loop = seen[-1]
    assert loop.method == METHODS["Retrain"] and loop.start_from is None and loop.forget is None
    assert loop.retain is lab.dataset("retain")
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
    subset = set(retain_subset(len(retain), 0.2, lab.seed))
    assert set(retain.loop_reads()) == subset
    assert record["timing"]["steps"] == len(subset) * record["config"]["knobs"]["epochs"]


# ------------------------------------------------------------------ Retrain does not depend on G


def test_retrain_ignores_the_original_model(lab, trained, tmp_path):
    """G-hat trained in a store that never saw G equals G-hat trained after G."""
    config = lab.train_config_of("oracle")
    assert "start" not in config and "original" not in json.dumps(config)
    fresh = lab_lib.Lab(scale="smoke", results_dir=tmp_path / "fresh")
    torch.manual_seed(987654321)  # whatever else ran in this process before must not matter
    torch.rand(10)
    alone = fresh.train("oracle")
    assert alone["from_store"] is False
    assert not fresh.store.run_dir(config_hash(fresh.train_config_of("original"))).exists()
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
