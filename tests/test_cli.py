"""``python -m erase``: synth, manifest, train, unlearn; one JSON line; one-line errors."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from erase import data as data_lib
from erase.cli import main
from erase.config import config_hash

ROOT = Path(__file__).resolve().parents[1]


def erase(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "erase", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_synth_writes_the_data_and_then_reuses_it(tmp_path, smoke, smoke_data):
    out = tmp_path / "synth"
    first = erase("synth", "--out", out, "--scale", "smoke", "--seed", "0")
    assert first.returncode == 0, first.stderr
    c = smoke.data
    n = c.brain_volumes + c.knee_volumes
    assert re.match(rf"wrote {n} volumes in {re.escape(str(out))}: {c.brain_volumes} brain "
                    rf"\(AXT2\), {c.knee_volumes} knee", first.stdout), first.stdout
    files = sorted(p.relative_to(out) for p in out.rglob("*.h5"))
    assert len(files) == n
    # the same files the library writes for the same seed
    assert files == sorted(p.relative_to(smoke_data) for p in smoke_data.rglob("*.h5"))
    assert (out / files[0]).read_bytes() == (smoke_data / files[0]).read_bytes()
    again = erase("synth", "--out", out, "--scale", "smoke", "--seed", "0")
    assert again.returncode == 0 and again.stdout.startswith(f"reused {n} volumes")


def test_synth_refuses_a_foreign_directory_and_touches_nothing(tmp_path, capsys):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("precious")
    assert main(["synth", "--out", str(out), "--scale", "smoke"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("erase: error:") and "not empty" in err[0]
    assert [p.name for p in out.iterdir()] == ["chapter1.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]


def test_manifest_prints_the_counts_and_writes_the_split(tmp_path, smoke, smoke_data, capsys):
    out = tmp_path / "split" / "manifest.json"
    assert main(["manifest", "--data-root", str(smoke_data), "--out", str(out),
                 "--scale", "smoke", "--seed", "0"]) == 0
    printed = capsys.readouterr().out
    manifest = data_lib.load_manifest(out)
    expected = data_lib.make_manifest(data_lib.scan(smoke_data), smoke.data, 0)
    assert manifest["splits"] == expected["splits"]
    counts = data_lib.split_counts(manifest)
    for name, c in counts.items():
        assert re.search(rf"^{name}\s+{c['volumes']} volumes\s+{c['slices']} slices$", printed,
                         re.M), (name, printed)
    assert re.search(rf"left out: 0 volumes of other brain contrasts, "
                     rf"{manifest['left_out']['unused_knee']} spare knee volumes", printed)
    assert str(out) in printed
    assert not (smoke_data / "erase-manifest.json").exists()


def one_json_line(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text[-2000:]
    return json.loads(lines[0])


def test_train_json_prints_one_record_line(results_dir, trained, capsys):
    assert main(["train", "--model", "oracle", "--scale", "smoke", "--results", str(results_dir),
                 "--json"]) == 0
    record = one_json_line(capsys.readouterr().out)
    assert set(record) >= {"key", "config", "summary", "timing"}
    assert "metrics" not in record  # the slim line leaves per-volume metrics to the store
    assert record["key"] == trained["oracle"]["key"] == config_hash(record["config"])
    assert record["from_store"] is True
    assert record["timing"] == trained["oracle"]["timing"]


def test_unlearn_json_runs_the_method_and_prints_one_line(results_dir, trained, capsys):
    assert main(["unlearn", "--method", "GA-l1", "--gamma", "3e-6", "--scale", "smoke",
                 "--results", str(results_dir), "--json"]) == 0
    record = one_json_line(capsys.readouterr().out)
    assert set(record) >= {"key", "config", "summary", "timing"}
    assert record["key"] == config_hash(record["config"])
    assert record["config"]["method"]["name"] == "GA-l1"
    assert record["config"]["knobs"]["gamma"] == 3e-6
    assert record["config"]["start"] == config_hash(trained["original"]["config"])
    assert record["config"]["knobs"]["epochs"] == 5 == len(record["history"])  # the protocol's
    assert record["config"]["protocol"]["ga_l1"] == "code"  # the default protocol
    assert record["from_store"] is False
    assert record["timing"]["steps"] > 0
    assert all(math.isfinite(v) for v in record["summary"].values())
    stored = json.loads((results_dir / "runs" / record["key"] / "record.json").read_text())
    assert stored["summary"] == record["summary"]


def test_unlearn_epochs_sets_the_unlearning_length(results_dir, trained, capsys):
    assert main(["unlearn", "--method", "NL", "--lambda", "2e-5", "--unlearn-epochs", "2",
                 "--scale", "smoke", "--results", str(results_dir), "--json"]) == 0
    record = one_json_line(capsys.readouterr().out)
    assert record["config"]["knobs"] == {"retain_fraction": None, "gamma": None, "lam": 2e-5,
                                         "epochs": 2}
    assert [h["epoch"] for h in record["history"]] == [1, 2]


def test_unlearn_rho_sets_the_noisy_label_from_gs_error_and_the_record_carries_it(
        results_dir, trained, capsys):
    assert main(["unlearn", "--method", "NL-FT", "--rho", "1.4", "--scale", "smoke",
                 "--results", str(results_dir), "--json"]) == 0
    record = one_json_line(capsys.readouterr().out)
    assert record["config"]["knobs"]["rho"] == 1.4 and record["config"]["knobs"]["lam"] is None
    noise = record["noise"]
    assert noise["rho"] == pytest.approx(1.4)
    assert noise["lambda"] == pytest.approx(1.4 * noise["g_rmse_on_df"])
    # the paper's rho is the default: the same run
    assert main(["unlearn", "--method", "NL-FT", "--scale", "smoke", "--results",
                 str(results_dir), "--json"]) == 0
    assert one_json_line(capsys.readouterr().out)["key"] == record["key"]
    assert main(["unlearn", "--method", "NL-FT", "--rho", "1.4", "--lambda", "1e-5",
                 "--scale", "smoke", "--results", str(results_dir)]) == 2
    assert "not both" in capsys.readouterr().err


def test_train_without_json_prints_a_summary_line(results_dir, trained, capsys):
    assert main(["train", "--model", "original", "--scale", "smoke",
                 "--results", str(results_dir)]) == 0
    out = capsys.readouterr().out
    s = trained["original"]["summary"]
    assert re.search(rf"original: BTA {s['bta_psnr']:.2f} dB / {s['bta_ssim']:.3f}\s+"
                     rf"KTA {s['kta_psnr']:.2f} dB", out), out
    assert "from the store" in out


@pytest.mark.parametrize("argv,words", [
    (["unlearn", "--method", "SISA"], "unknown method 'SISA'"),
    (["unlearn", "--method", "FT", "--retain-fraction", "2"], "retain fraction"),
    (["unlearn", "--method", "NL", "--lambda", "-1"], "lambda"),
    (["train", "--model", "teacher"], "unknown model 'teacher'"),
    (["train", "--scale", "huge"], "unknown scale 'huge'"),
    (["train", "--seed", "x"], "seed"),
])
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(argv, words, tmp_path, capsys):
    results = tmp_path / "results"
    scale = [] if "--scale" in argv else ["--scale", "smoke"]
    assert main([*argv, *scale, "--results", str(results)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("erase: error:") and words in err[0], captured.err
    assert captured.out == ""
    assert not results.exists()
