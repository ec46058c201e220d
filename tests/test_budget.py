"""No silent disk filler, no silent long run, and the GPU path checked.

* the synthetic set's size is estimated from its DataConfig and a set that does not fit the
  free space is refused before anything is written, naming --data-root and the smaller
  profiles (the free space is injected with ERASE_FREE_BYTES);
* a long run says what it will take before it starts, and the ``paper`` profile on a CPU is
  warned about;
* ``erase check-gpu`` says in one line that no GPU is visible (exit 0), and its code path runs
  through the real Lab and loop on a CPU at smoke scale; ``benchmarks/bench_gpu.py`` skips.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from erase.cli import main
from erase.config import SCALES, ConfigError, DataConfig
from erase.data import synthetic
from erase.runs import gpu_check
from erase.runs import plan as plan_lib

ROOT = Path(__file__).resolve().parents[1]


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# ------------------------------------------------------------------ disk


def test_the_estimate_matches_what_synthesis_writes(smoke_data, smoke):
    written = sum(p.stat().st_size for p in smoke_data.rglob("*") if p.is_file())
    estimate = synthetic.estimate_bytes(smoke.data)
    assert written <= estimate <= 1.15 * written, (written, estimate)


def test_the_estimate_follows_the_config():
    base = DataConfig(image_size=32, coils=2, brain_volumes=10, knee_volumes=0,
                      slices_per_volume=1)
    one = synthetic.estimate_bytes(base)
    assert one == 10 * (32 * 32 * (8 * 2 + 4) + synthetic.FILE_OVERHEAD) + 4096
    assert synthetic.estimate_bytes(replace(base, coils=4)) > one
    assert synthetic.estimate_bytes(replace(base, knee_volumes=10)) - 4096 == 2 * (one - 4096)
    # the paper profile: 1,500 volumes of 8 slices, 320 x 320, 16 coils: ~160 GB of k-space
    assert 150e9 < synthetic.estimate_bytes(SCALES["paper"].data) < 170e9


def test_synthesis_that_does_not_fit_is_refused_before_writing(tmp_path, smoke):
    out = tmp_path / "deep" / "data"
    need = synthetic.estimate_bytes(smoke.data)
    with pytest.raises(ConfigError) as err:
        synthetic.synthesize(out, smoke.data, 0, free=need - 1)
    message = str(err.value)
    assert "--data-root" in message and "needs about 1.6 MB" in message
    assert "none is smaller" in message  # smoke is the smallest profile
    assert tree(tmp_path) == []  # not even the parent folder or the lock file
    synthetic.synthesize(out, smoke.data, 0, free=need)  # exactly enough: made
    assert len(list(out.rglob("*.h5"))) == smoke.data.brain_volumes + smoke.data.knee_volumes


def test_free_space_comes_from_the_environment_or_the_disk(tmp_path, monkeypatch):
    monkeypatch.delenv(synthetic.FREE_BYTES_VARIABLE, raising=False)
    import shutil
    assert synthetic.free_bytes(tmp_path / "not" / "yet") == shutil.disk_usage(tmp_path).free
    monkeypatch.setenv(synthetic.FREE_BYTES_VARIABLE, "12345")
    assert synthetic.free_bytes(tmp_path) == 12345
    monkeypatch.setenv(synthetic.FREE_BYTES_VARIABLE, "lots")
    with pytest.raises(ConfigError, match="ERASE_FREE_BYTES must be a number of bytes"):
        synthetic.free_bytes(tmp_path)


def test_train_at_paper_scale_without_a_data_root_refuses_before_writing(tmp_path, capsys,
                                                                          monkeypatch):
    """The issue's case: `erase train --model oracle --scale paper` without --data-root
    started writing ~160 GB and printed nothing."""
    monkeypatch.setenv(synthetic.FREE_BYTES_VARIABLE, str(20 * 10**9))  # 20 GB free
    results = tmp_path / "results"
    code = main(["train", "--model", "oracle", "--scale", "paper", "--results", str(results)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[0].startswith("warning: the paper profile") and "GPU" in err[0]
    error = err[-1]
    assert len(err) == 2 and error.startswith("erase: error: the synthetic data set (1500 "
                                              "volumes of 8 slices, 320x320, 16 coils) needs "
                                              "about 162.2 GB"), err
    assert "has 20.0 GB free" in error and "--data-root" in error
    assert "--scale default needs 27.5 MB" in error and "--scale smoke needs 1.6 MB" in error
    assert tree(tmp_path) == []


def test_a_large_synthesis_says_what_it_takes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(synthetic, "ANNOUNCE_BYTES", 1)
    config = replace(SCALES["smoke"].data, brain_volumes=2, knee_volumes=1)
    synthetic.synthesize(tmp_path / "d", config, 0)
    err = capsys.readouterr().err
    assert re.search(r"^writing the synthetic data set \(3 volumes of 1 slices, 32x32, 2 "
                     r"coils\): about \d+\.\d kB to .*/d \(.* free\)$", err, re.M), err


# ------------------------------------------------------------------ time


def test_plan_of_a_job_counts_its_runs_and_times_a_step(lab, trained):
    job = lab.job("FT", retain_fraction=0.57)
    estimate = plan_lib.plan(lab, job, step_seconds=2.0)
    assert estimate.runs == ("unlearn FT",)  # G is stored: only the job itself
    assert estimate.slices == lab.cost(job)
    assert estimate.steps == -(-estimate.slices // lab.train_config.batch_size)
    assert estimate.seconds >= estimate.steps * 2.0
    assert "unlearn FT" in estimate.line() and "on cpu" in estimate.line()
    measured = plan_lib.time_step(lab, steps=2)
    assert 0 < measured < 30


def test_plan_includes_g_when_unlearning_needs_it(tmp_path):
    from erase.runs.lab import Lab

    fresh = Lab(scale="smoke", results_dir=tmp_path / "r", progress=False)
    job = fresh.job("NL-FT")
    estimate = plan_lib.plan(fresh, job, step_seconds=1.0)
    assert estimate.runs == ("train original", "unlearn NL-FT")
    assert estimate.slices == fresh.cost(fresh.job("original")) + fresh.cost(job)


def test_a_step_is_timed_in_as_many_processes_at_once_as_the_book_has_workers(lab,
                                                                               monkeypatch):
    """The book's estimate times a step the way its workers will run: two processes at once
    (spawned, each its own Lab from the settings), not one alone in this process."""
    def not_here(*args, **kwargs):
        raise AssertionError("timed in this process instead of in two at once")

    monkeypatch.setattr(plan_lib, "time_step", not_here)  # the spawned processes are unaffected
    seconds = plan_lib.time_step_together(lab, 2, steps=2)
    assert 0 < seconds < 30


def test_durations_read_well():
    assert plan_lib.duration(42) == "42 s"
    assert plan_lib.duration(600) == "10 min"
    assert plan_lib.duration(3 * 3600) == "3.0 h"
    assert plan_lib.duration(5 * 86400) == "5.0 days"


def test_a_long_run_says_what_it_will_take_before_it_starts(lab, trained, capsys, monkeypatch):
    monkeypatch.setattr(plan_lib, "LONG_SECONDS", 0.0)  # every run counts as long
    code = main(["unlearn", "--method", "FT", "--retain-fraction", "0.37", "--scale", "smoke",
                 "--results", str(lab.results), "--json"])
    err = capsys.readouterr().err
    assert code == 0
    assert re.search(r"^plan: unlearn FT: \d[\d,]* training slices in \d[\d,]* steps and "
                     r"\d[\d,]* evaluated; about \d+ s on cpu \(a step took .* s here\)$",
                     err, re.M), err
    code = main(["unlearn", "--method", "FT", "--retain-fraction", "0.37", "--scale", "smoke",
                 "--results", str(lab.results), "--json"])
    assert code == 0 and "plan:" not in capsys.readouterr().err  # stored: nothing to run


def test_paper_on_a_cpu_is_warned_about():
    assert "meant for a GPU" in plan_lib.cpu_warning("paper", "cpu")
    assert plan_lib.cpu_warning("paper", "cuda") is None
    assert plan_lib.cpu_warning("default", "cpu") is None


# ------------------------------------------------------------------ the GPU path


def test_check_gpu_without_a_gpu_says_so_in_one_line_and_exits_0(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["check-gpu"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines() == [gpu_check.NO_GPU]
    assert main(["check-gpu", "--bf16"]) == 0
    assert capsys.readouterr().out.strip() == gpu_check.NO_GPU


def test_check_gpu_as_a_command_without_a_gpu():
    done = subprocess.run([sys.executable, "-m", "erase", "check-gpu"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == gpu_check.NO_GPU
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("bf16", [False, True])
def test_check_gpu_runs_one_epoch_of_training_and_of_unlearning_through_the_lab(bf16,
                                                                                tmp_path):
    """The same code as on the GPU, on a CPU at smoke scale (bf16 autocast on the CPU too)."""
    lines = []
    out = gpu_check.check(device="cpu", bf16=bf16, scale="smoke", workdir=tmp_path,
                          say=lines.append)
    assert [row["run"] for row in out["rows"]] == ["train original", "unlearn NL-FT"]
    assert out["precision"] == ("bf16-mixed" if bf16 else "32-true")
    for row in out["rows"]:
        assert row["steps"] > 0 and row["steps_per_second"] > 0 and row["peak_gib"] is None
    assert lines[0].startswith(f"check-gpu: cpu, {out['precision']}: VarNet 1 cascades")
    assert re.match(r"check-gpu: train original\s+\d+ steps in\s+[\d.]+ s:\s+[\d.]+ steps/s",
                    lines[1]), lines
    assert "peak memory -" in lines[2]
    assert list(tmp_path.iterdir()) == []  # the temporary data and store are gone


def test_check_gpu_data_has_the_paper_acquisition(tmp_path):
    root = gpu_check.write_check_data(tmp_path, "paper", brain=1, knee=1, slices=1)
    from erase import data as data_lib

    volumes = data_lib.scan(root)
    assert sorted(v["anatomy"] for v in volumes) == ["brain", "knee"]
    import h5py
    with h5py.File(next(root.rglob("*.h5")), "r") as f:
        assert f["kspace"].shape == (1, 16, 320, 320)


def test_bench_gpu_skips_with_a_message_without_a_gpu():
    done = subprocess.run([sys.executable, "benchmarks/bench_gpu.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("GPU section skipped: no GPU visible to torch "
                                   "(torch.cuda.is_available() is False)")
