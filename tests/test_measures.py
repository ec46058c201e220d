"""Measures behind the tables and figures: batched evaluation, the hallucination score,
the stored Figure-4 replay, running many jobs, and the studies over seeds and knobs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from erase.report import panels
from erase.runs import engine
from erase.runs import lab as lab_lib
from erase.runs.engine import epoch_steps
from erase.runs.evaluate import reconstruct_volumes, shape_batches
from erase.runs.lab import Job, Lab
from erase.runs.slice_scores import anatomy_support, slice_scores
from erase.studies import replay, study


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


def test_shape_batches_cover_every_slice_in_order_and_respect_the_size(lab):
    dataset = lab.dataset("brain_test").join(lab.dataset("knee_test"))
    batches = [indices for indices, _ in shape_batches(dataset, max_slices=1)]
    assert batches == [[i] for i in range(len(dataset))]
    batches = list(shape_batches(dataset, max_slices=2))
    assert [i for indices, _ in batches for i in indices] == list(range(len(dataset)))
    assert all(1 <= len(indices) <= 2 for indices, _ in batches)
    assert all(s.fname == dataset.fname(i) for indices, samples in batches
               for i, s in zip(indices, samples))


def test_shape_batches_never_mix_shapes():
    class Sample:
        def __init__(self, size, low):
            self.masked_kspace = np.zeros((2, size, size, 2))
            self.target, self.num_low_frequencies = np.zeros((size, size)), low

    data = [Sample(32, 3), Sample(32, 3), Sample(48, 3), Sample(48, 4), Sample(48, 4)]
    assert [i for i, _ in shape_batches(data, max_slices=16)] == [[0, 1], [2], [3, 4]]


def test_batched_reconstruction_matches_one_slice_at_a_time(lab, trained):
    model = lab.load_model(trained["original"])
    dataset = lab.dataset("brain_test")
    one = reconstruct_volumes(model, dataset, max_slices=1)
    many = reconstruct_volumes(model, dataset, max_slices=8)
    assert one.keys() == many.keys()
    for name in one:
        np.testing.assert_array_equal(one[name][0], many[name][0])
        np.testing.assert_allclose(one[name][1], many[name][1], rtol=1e-4,
                                   atol=1e-6 * one[name][0].max())


def test_records_carry_per_slice_hallucination_scores(lab, trained):
    slices = {v["path"].split("/")[-1]: None for v in lab.manifest["splits"]["brain_test"]}
    for record in trained.values():
        scores = record["metrics"]["bta"]["hallucination"]
        assert set(scores) == set(slices)
        assert all(len(v) == lab.data_config.slices_per_volume and min(v) >= 0
                   for v in scores.values())
    table = panels.hallucination_table(trained)
    assert table.loc["oracle", "mean excess over oracle (pp)"] == 0.0
    assert table.loc["oracle", "slices worse than oracle (%)"] == 0.0


def test_figure_one_picks_the_slice_of_largest_excess(lab, trained):
    records = {"oracle": trained["oracle"], "original": trained["original"],
               "NL-FT": trained["original"]}
    images, errors, zoom, info = panels.figure_one(lab, records)
    assert [len(f.data) for f in (images, errors, zoom)] == [4, 3, 4]  # oracle in the first row
    excess = {f: np.asarray(s) - np.asarray(trained["oracle"]["metrics"]["bta"]["hallucination"][f])
              for f, s in trained["original"]["metrics"]["bta"]["hallucination"].items()}
    assert info["excess"] == pytest.approx(max(e.max() for e in excess.values()))
    assert excess[info["file"]][info["slice"]] == pytest.approx(info["excess"])


class _StopAfter(engine.Watch):
    def __init__(self, steps: int):
        self.steps = steps

    def after(self, step, model):
        return step >= self.steps


@pytest.mark.parametrize("method", ["NL-FT", "GA-l1-FT"])
def test_figure_four_replay_takes_the_runs_own_steps(lab, trained, method, tmp_path):
    """The replay and the run take the same steps: after the replayed steps (the first epoch's,
    at most 3) the replayed model's weights are those of the run itself (its Lab.loop, its
    checkpoint kept) stopped there."""
    job = lab.job(method)
    steps = min(3, len(engine.epoch_plan(lab.loop(job), 0)))
    rows, replayed = replay.replay(lab, job, steps=3)
    assert [r["step"] for r in rows] == list(range(1, steps + 1)) and steps >= 2
    model = lab.new_model()
    engine.run_loop(lab.loop(job, tmp_path / "run.ckpt"), model, lab.fabric, _StopAfter(steps))
    g = lab.load_model(trained["original"]).state_dict()
    for name, weight in model.state_dict().items():
        assert torch.equal(replayed.state_dict()[name], weight), name
    assert any(not torch.equal(g[n], w) for n, w in model.state_dict().items())  # it moved


def test_figure_four_replay_is_stored_and_read_back(lab, trained, monkeypatch):
    rows = replay.trace(lab, "NL-FT", steps=2)
    assert [r["step"] for r in rows] == [1, 2]
    # a cosine between the forget and retain gradients where a step has both terms
    planned = lab.loop(lab.job("NL-FT"))
    plan = epoch_steps(len(planned.forget), len(planned.retain), lab.seed, 0,
                       lab.train_config.batch_size, lab.protocol.steps)
    for row, (f, r) in zip(rows, plan):
        assert ("cosine" in row) == bool(f and r), (row, f, r)
        assert -1.0 <= row.get("cosine", 0.0) <= 1.0
    assert rows[0]["toward_oracle"] != 0.0

    def must_not_replay(*args, **kwargs):
        raise AssertionError("the replay ran again although its record is stored")

    monkeypatch.setattr(replay, "replay", must_not_replay)
    assert replay.trace(lab, "NL-FT", steps=2) == rows


def test_paired_steps_give_a_cosine_at_every_step(lab, trained):
    """Under the text's paired steps every step has both terms; G is the same G (steps is an
    unlearning switch)."""
    paired = Lab(scale="smoke", results_dir=lab.results, switches={"steps": "paired"})
    assert paired.config(paired.job("original")) == lab.config(lab.job("original"))
    rows = replay.trace(paired, "GA-l1-FT", steps=None)
    longer = max(len(paired.dataset("forget")), len(paired.loop(paired.job("GA-l1-FT")).retain))
    assert [r["step"] for r in rows] == list(
        range(1, -(-longer // paired.train_config.batch_size) + 1))
    assert all(-1.0 <= r["cosine"] <= 1.0 for r in rows)


def test_the_replay_is_the_loop(lab, trained):
    """Replaying all of the first epoch lands where the real run's first epoch ended."""
    rows = replay.trace(lab, "NL-FT", steps=None)
    record = lab.unlearn("NL-FT", epochs=1)
    weights = {}
    for name, key in (("G", trained["original"]["key"]), ("oracle", trained["oracle"]["key"]),
                      ("run", record["key"])):
        model = lab.new_model()
        state = torch.load(lab.store.run_dir(key) / "checkpoint.ckpt", weights_only=True)
        model.load_state_dict(state["model"])
        weights[name] = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    axis = weights["oracle"] - weights["G"]
    delta = weights["run"] - weights["G"]
    along = float(delta @ axis / (axis @ axis))
    assert rows[-1]["toward_oracle"] == pytest.approx(along, rel=1e-4, abs=1e-7)
    assert rows[-1]["off_axis"] == pytest.approx(
        float((delta - along * axis).norm() / axis.norm()), rel=1e-4, abs=1e-7)
    assert len(rows) == record["timing"]["steps"]


def test_run_many_computes_missing_runs_in_one_kept_pool(lab, trained):
    first = lab_lib.run_many([(lab, lab.job("GA-l1", gamma=2e-5)),
                              (lab, lab.job("NL", lam=3e-5))], workers=2)
    pool = lab_lib._POOL[2]
    second = lab_lib.run_many([(lab, lab.job("NL", lam=4e-5)),
                               (lab, lab.job("NL", lam=5e-5))], workers=2)
    assert lab_lib._POOL[2] is pool  # the workers (and their loaded data) were kept
    records = first + second
    assert [r["config"]["method"]["name"] for r in records] == ["GA-l1", "NL", "NL", "NL"]
    assert [r["config"]["knobs"]["lam"] for r in records[1:]] == [3e-5, 4e-5, 5e-5]
    assert records[0]["config"]["knobs"]["gamma"] == 2e-5
    assert all(r["from_store"] for r in records)  # computed by the workers, read back here
    assert records[1]["metrics"] != records[2]["metrics"]
    lab_lib.shutdown_pool()
    assert not lab_lib._POOL


def test_slice_names_come_from_the_index_without_loading(lab):
    from erase.data import Split
    from erase.data.loading import _Lazy
    from erase.runs.evaluate import slice_names

    dataset = lab.dataset("brain_test")
    names = [dataset[i].fname for i in range(len(dataset))]
    assert slice_names(dataset) == names
    assert slice_names(dataset.select([2, 0, 1])) == [names[2], names[0], names[1]]

    class Index:  # fastMRI's SliceDataset answers from raw_samples; loading must not happen
        raw_samples = [type("Raw", (), {"fname": f"/data/{n}"})() for n in names]

        def __len__(self):
            return len(names)

        def __getitem__(self, i):
            raise AssertionError("a slice was loaded to read its name")

    lazy = Split(_Lazy(Index(), range(len(names))), lab.data_config, in_memory=False)
    assert slice_names(lazy) == names
    assert slice_names(lazy.select([1, 2])) == names[1:3]
    assert slice_names(lazy.join(lazy.select([0]))) == names + names[:1]


def test_cost_is_what_the_loop_pushes_through(lab, trained):
    for which in ("oracle", "original"):
        assert lab.cost(lab.job(which)) == trained[which]["timing"]["samples"]
    for method, knobs in (("NL-FT", {}), ("Full FT", {}), ("GA-l1", {}),
                          ("FT", {"retain_fraction": 0.5})):
        record = lab.unlearn(method, **knobs)
        assert lab.cost(lab.job(method, **knobs)) == record["timing"]["samples"], method
    # under paired steps (an unlearning switch: the same G) the longer stream sets the length
    paired = Lab(scale="smoke", results_dir=lab.results, switches={"steps": "paired"})
    record = paired.unlearn("NL-FT", epochs=1)
    n_forget = len(paired.dataset("forget"))
    n_retain = len(paired.loop(paired.job("NL-FT")).retain)
    assert paired.cost(paired.job("NL-FT", epochs=1)) == record["timing"]["samples"] == \
        2 * max(n_forget, n_retain)


def test_run_many_hands_out_the_longest_jobs_first(lab, trained, monkeypatch):
    from concurrent.futures import Future

    submitted = []

    class Recorder:  # a pool that only records the order; the read-back computes the runs
        def submit(self, fn, settings, job):
            submitted.append(job.knobs["retain_fraction"])
            done = Future()
            done.set_result(None)
            return done

    monkeypatch.setattr(lab_lib, "worker_pool", lambda workers: Recorder())
    fractions = (0.13, 0.93, 0.47)  # asked for by no other test: none is in the store yet
    assert all(lab.stored(lab.job("FT", retain_fraction=f)) is None for f in fractions)
    records = lab_lib.run_many([(lab, lab.job("FT", retain_fraction=f)) for f in fractions],
                               workers=2)
    assert submitted == [0.93, 0.47, 0.13]
    assert [r["config"]["knobs"]["retain_fraction"] for r in records] == list(fractions)


def test_run_many_trains_every_g_a_batch_needs_first(lab, tmp_path, monkeypatch):
    """Unlearning jobs wait for their G: a first batch trains the missing Gs (and any other
    training job), a second the unlearning jobs, each costliest first."""
    fresh = Lab(scale="smoke", data_root=lab.data_root, results_dir=tmp_path / "fresh")
    other = Lab(scale="smoke", data_root=lab.data_root, results_dir=tmp_path / "fresh", seed=1)
    batches = []
    monkeypatch.setattr(lab_lib, "_in_workers",
                        lambda jobs, workers: batches.append([(l.seed, j) for l, j in jobs]))
    read_back = []
    for one in (fresh, other):
        monkeypatch.setattr(one, "run", lambda job, one=one: read_back.append((one.seed, job)))
    jobs = [(fresh, fresh.job("NL", lam=2e-5)), (fresh, fresh.job("oracle")),
            (fresh, fresh.job("FT", retain_fraction=0.9)), (other, other.job("NL-FT")),
            (fresh, fresh.job("original"))]
    lab_lib.run_many(jobs, workers=2)
    lab_of = {0: fresh, 1: other}
    g, oracle = Job("train", "original"), Job("train", "oracle")
    assert len(batches) == 2
    first, second = batches
    assert sorted(first, key=str) == sorted([(0, g), (1, g), (0, oracle)], key=str)
    assert sorted(second, key=str) == sorted([(0, jobs[0][1]), (0, jobs[2][1]), (1, jobs[3][1])],
                                             key=str)
    for batch in (first, second):  # longest processing time first
        costs = [lab_of[seed].cost(job) for seed, job in batch]
        assert costs == sorted(costs, reverse=True), batch
    assert read_back == [(l.seed, j) for l, j in jobs]  # then every record, in order


def test_ablation_keys_its_records(lab, trained):
    runs = study.ablation([lab], fractions=(0.15, 0.3), methods=("FT",), workers=1)
    assert set(runs) == {("FT", 0.15, lab.seed), ("FT", 0.3, lab.seed)}
    for (method, fraction, seed), record in runs.items():
        assert record["config"]["method"]["name"] == method
        assert record["config"]["knobs"]["retain_fraction"] == fraction
        assert record["config"]["knobs"]["curve"] is False  # nothing reads its curve
        assert record["config"]["seed"] == seed
        assert all("metrics" not in h for h in record["history"])
        assert {"bta", "kta", "ua"} <= set(record["metrics"])
    # at the default fraction the headline run stands for the ablation's
    assert study.ablation_job(lab, "NL-FT", 0.1) == lab.job("NL-FT")
    assert study.ablation_job(lab, "FT", 1.0) == lab.job("Full FT")
