"""Measures behind the tables and figures: batched evaluation, the hallucination score,
the stored Figure-4 replay and the learning-rate schedule."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from erase.measures import geometry
from erase.report import panels
from erase.config import TrainConfig
from erase.runs.engine import drop_epoch, learning_rate
from erase.runs.evaluate import reconstruct_volumes, volume_batches
from erase.runs.slice_scores import anatomy_support, slice_scores


def _head(size=32):
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    image = ((x / 0.7) ** 2 + (y / 0.8) ** 2 < 1).astype(np.float32)
    return np.stack([image, image * 0.9])


def test_hallucination_score_is_zero_for_a_perfect_reconstruction():
    target = _head()
    assert np.allclose(slice_scores(target, target.copy()), 0.0)


def test_hallucination_score_counts_texture_inside_the_anatomy_only():
    target = _head()
    rng = np.random.default_rng(0)
    texture = 0.05 * rng.standard_normal(target.shape).astype(np.float32)
    inside = anatomy_support(target)
    painted_in = slice_scores(target, target + texture * inside)
    painted_out = slice_scores(target, target + texture * ~inside)
    assert (painted_in > 1.0).all()
    assert (painted_out < 0.05 * painted_in).all()  # only the filter's blur crosses the edge
    stronger = slice_scores(target, target + 2 * texture * inside)
    assert (stronger > 3.5 * painted_in).all()  # energy: twice the texture, four times the score


def test_volume_batches_keep_volumes_apart_and_respect_the_size(lab):
    dataset = lab.dataset("brain_test")
    names = [dataset[i].fname for i in range(len(dataset))]
    batches = volume_batches(dataset, max_slices=1)
    assert batches == [[i] for i in range(len(dataset))]
    batches = volume_batches(dataset, max_slices=8)
    assert sorted(i for b in batches for i in b) == list(range(len(dataset)))
    assert all(len({names[i] for i in b}) == 1 for b in batches)
    assert len(batches) == len(set(names))


def test_batched_reconstruction_matches_one_slice_at_a_time(lab, trained):
    model = lab.load_model(trained["original"])
    dataset = lab.dataset("brain_test")
    one = reconstruct_volumes(model, dataset, max_slices=1)
    many = reconstruct_volumes(model, dataset, max_slices=8)
    assert one.keys() == many.keys()
    for name in one:
        np.testing.assert_array_equal(one[name][0], many[name][0])
        np.testing.assert_allclose(one[name][1], many[name][1], rtol=1e-4, atol=1e-6 * one[name][0].max())


def test_records_carry_per_slice_hallucination_scores(lab, trained):
    slices = {v["path"].split("/")[-1]: None for v in lab.manifest["splits"]["brain_test"]}
    for record in trained.values():
        scores = record["metrics"]["bta"]["hallucination"]
        assert set(scores) == set(slices)
        assert all(len(v) == lab.data_config.slices_per_volume and min(v) >= 0 for v in scores.values())
    table = panels.hallucination_table(trained)
    assert table.loc["oracle", "mean excess over oracle (pp)"] == 0.0
    assert table.loc["oracle", "slices worse than oracle (%)"] == 0.0


def test_figure_one_picks_the_slice_of_largest_excess(lab, trained):
    records = {"oracle": trained["oracle"], "original": trained["original"], "NL-FT": trained["original"]}
    _, _, info = panels.figure_one(lab, records)
    excess = {f: np.asarray(s) - np.asarray(trained["oracle"]["metrics"]["bta"]["hallucination"][f])
              for f, s in trained["original"]["metrics"]["bta"]["hallucination"].items()}
    assert info["excess"] == pytest.approx(max(e.max() for e in excess.values()))
    assert excess[info["file"]][info["slice"]] == pytest.approx(info["excess"])


def test_figure_four_replay_is_stored_and_read_back(lab, trained, monkeypatch):
    rows = geometry.trace(lab, "NL-FT", steps=2)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(-1.0 <= r["cosine"] <= 1.0 for r in rows)
    assert rows[0]["toward_oracle"] != 0.0

    def must_not_replay(*args, **kwargs):
        raise AssertionError("the replay ran again although its record is stored")

    monkeypatch.setattr(geometry, "_replay", must_not_replay)
    assert geometry.trace(lab, "NL-FT", steps=2) == rows


def test_learning_rate_drops_once_after_the_step_fraction():
    train = TrainConfig(epochs=10, lr=1e-3, lr_step=0.8, lr_gamma=0.1)
    rates = [learning_rate(train, e) for e in range(10)]
    assert rates[:8] == [1e-3] * 8 and rates[8:] == pytest.approx([1e-4, 1e-4])
    assert drop_epoch(train) == 8 and drop_epoch(TrainConfig(epochs=10, lr_step=None)) == 10
    assert {learning_rate(TrainConfig(lr_step=None), e) for e in range(10)} == {1e-3}


def test_unlearning_runs_at_the_constant_rate(lab, trained):
    record = lab.unlearn("FT")
    state = torch.load(lab.store.run_dir(record["key"]) / "checkpoint.ckpt", weights_only=True)
    assert {g["lr"] for g in state["optimizer"]["param_groups"]} == {lab.train_config.unlearn_lr}
    g_state = torch.load(lab.store.run_dir(trained["original"]["key"]) / "checkpoint.ckpt",
                         weights_only=True)
    expected = learning_rate(lab.train_config, lab.train_config.epochs - 1)
    assert [g["lr"] for g in g_state["optimizer"]["param_groups"]] == pytest.approx([expected])


def test_unlearning_runs_at_its_own_rate_whatever_rate_trained_g():
    from erase.config import get_scale
    from erase.runs.engine import unlearning_schedule

    schedule = unlearning_schedule(TrainConfig(lr=2e-3, unlearn_lr=1e-3, lr_step=0.8, epochs=10))
    assert schedule.lr_step is None
    assert {learning_rate(schedule, e) for e in range(10)} == {1e-3}
    assert get_scale("default").train.unlearn_lr == 1e-3  # the paper's, though training doubles it
    assert get_scale("paper").train.lr == get_scale("paper").train.unlearn_lr == 1e-3


def test_run_many_computes_missing_runs_in_one_kept_pool(lab, trained):
    from erase.runs import lab as lab_lib

    first = lab_lib.run_many([(lab, ("unlearn", {"method": "GA-l1", "gamma": 2e-5})),
                                  (lab, ("unlearn", {"method": "NL", "lam": 0.03}))], workers=2)
    pool = lab_lib._POOL[2]
    second = lab_lib.run_many([(lab, ("unlearn", {"method": "NL", "lam": 0.04})),
                                   (lab, ("unlearn", {"method": "NL", "lam": 0.05}))], workers=2)
    assert lab_lib._POOL[2] is pool  # the workers (and their loaded data) were kept
    records = first + second
    assert [r["config"]["method"]["name"] for r in records] == ["GA-l1", "NL", "NL", "NL"]
    assert [r["config"]["knobs"]["lam"] for r in records[1:]] == [0.03, 0.04, 0.05]
    assert all(r["from_store"] for r in records)  # computed by the workers, read back here
    assert records[1]["metrics"] != records[2]["metrics"]
    lab_lib.shutdown_pool()
    assert not lab_lib._POOL


def test_slice_names_come_from_the_index_without_loading(lab):
    from torch.utils.data import Subset

    from erase.runs.evaluate import slice_names

    dataset = lab.dataset("brain_test")
    names = [dataset[i].fname for i in range(len(dataset))]
    assert slice_names(dataset) == names
    assert slice_names(Subset(dataset, [3, 0, 2])) == [names[3], names[0], names[2]]

    class Index:  # fastMRI's SliceDataset answers from raw_samples; loading must not happen
        raw_samples = [type("Raw", (), {"fname": f"/data/{n}"})() for n in names]

        def __len__(self):
            return len(names)

        def __getitem__(self, i):
            raise AssertionError("a slice was loaded to read its name")

    assert slice_names(Subset(Index(), [1, 2])) == names[1:3]


def test_expected_samples_match_what_the_loop_pushes_through(lab, trained):
    from erase.runs.lab import expected_samples

    for which in ("oracle", "original"):
        assert expected_samples(lab, ("train", {"which": which})) == trained[which]["timing"]["samples"]
    for method, knobs in (("NL-FT", {}), ("Full FT", {}), ("GA-l1", {}), ("FT", {"retain_fraction": 0.5})):
        record = lab.unlearn(method, **knobs)
        assert expected_samples(lab, ("unlearn", {"method": method, **knobs})) == \
            record["timing"]["samples"], method


def test_run_many_hands_out_the_longest_jobs_first(lab, trained, monkeypatch):
    from concurrent.futures import Future

    from erase.runs import lab as lab_lib

    submitted = []

    class Recorder:  # a pool that only records the order; the read-back computes the runs
        def submit(self, fn, settings, job):
            submitted.append(job[1]["retain_fraction"])
            done = Future()
            done.set_result(None)
            return done

    monkeypatch.setattr(lab_lib, "worker_pool", lambda workers: Recorder())
    fractions = (0.15, 0.9, 0.45)
    records = lab_lib.run_many([(lab, ("unlearn", {"method": "FT", "retain_fraction": f}))
                                    for f in fractions], workers=2)
    assert submitted == [0.9, 0.45, 0.15]
    assert [r["config"]["knobs"]["retain_fraction"] for r in records] == list(fractions)
