"""What a user takes away: trained weights fastMRI loads, reconstructions fastMRI scores, CSVs.

* ``erase export`` writes a plain state dict that ``fastmri.models.VarNet(**config)`` loads
  strictly, and FILE.json (VarNet kwargs, data, metrics, commit);
  ``erase evaluate --checkpoint FILE`` scores it on the current split;
* ``erase reconstruct`` writes fastMRI's prediction format; fastMRI's own ``evaluate`` on
  those files against the split's targets gives erase's PSNR and SSIM for the same model;
* ``erase results --csv`` writes every record as one tidy table.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
from argparse import Namespace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from erase import data as data_lib
from erase.cli import main
from erase.runs import export
from erase.runs.evaluate import ACCURACY

SMOKE = ["--scale", "smoke"]


def run_cli(capsys, *args):
    code = main([*map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def exported(lab, trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "models" / "g.pt"
    code = main(["export", "--model", "original", *SMOKE, "--results", str(lab.results),
                 "--out", str(out)])
    assert code == 0
    return out


def test_export_loads_into_fastmri_varnet(exported, lab, trained):
    from fastmri.models import VarNet

    info = json.loads(export.sidecar(exported).read_text())
    model = VarNet(**info["varnet"])
    model.load_state_dict(torch.load(exported, weights_only=True))  # strict, as users do
    reference = lab.load_model(trained["original"]).state_dict()
    loaded = model.state_dict()
    assert set(loaded) == set(reference)
    assert all(torch.equal(loaded[k], reference[k].cpu()) for k in reference)
    c = lab.model_config
    assert info["varnet"] == {"num_cascades": c.cascades, "sens_chans": c.sens_chans,
                              "sens_pools": c.sens_pools, "chans": c.chans, "pools": c.pools}


def test_export_describes_its_run_data_metrics_and_commit(exported, lab, trained):
    info = json.loads(export.sidecar(exported).read_text())
    record = trained["original"]
    assert info["run"]["key"] == record["key"] and info["run"]["name"] == "original"
    assert info["run"]["kind"] == "train" and info["run"]["seed"] == 0
    assert info["run"]["scale"] == "smoke"
    assert info["metrics"] == record["summary"]
    assert info["parameters"] == record["parameters"]
    assert info["data"]["manifest"] == lab.manifest_key
    assert info["data"]["source"] == "embedded synthetic data set"
    assert info["data"]["splits"] == data_lib.split_counts(lab.manifest)
    assert info["data"]["rule"] == "random"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=export.PACKAGE_ROOT,
                          capture_output=True, text=True)
    if head.returncode != 0:  # not a checkout: no commit to name
        assert info["git_commit"] is None
    else:  # HEAD when exported (HEAD may have moved on since: it is then an ancestor)
        assert re.fullmatch(r"[0-9a-f]{40}", info["git_commit"])
        assert subprocess.run(["git", "merge-base", "--is-ancestor", info["git_commit"], "HEAD"],
                              cwd=export.PACKAGE_ROOT).returncode == 0
    assert info["weights_sha256"] == hashlib.sha256(exported.read_bytes()).hexdigest()


def test_git_commit_is_none_outside_a_repository(tmp_path):
    assert export.git_commit(tmp_path) is None


def test_evaluate_checkpoint_gives_the_runs_numbers(exported, lab, trained, capsys):
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", exported, *SMOKE,
                             "--results", lab.results, "--json")
    assert code == 0, err
    record = json.loads(out.strip().splitlines()[-1])
    assert record["name"] == "g.pt"
    for key, value in trained["original"]["summary"].items():
        assert record["summary"][key] == pytest.approx(value, abs=2e-4), key
    assert err == ""


def test_evaluate_checkpoint_refuses_a_damaged_file_in_one_line(exported, lab, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(exported.read_bytes()[:100])
    export.sidecar(bad).write_text(export.sidecar(exported).read_text())
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", bad, *SMOKE,
                             "--results", lab.results)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"erase: error: checkpoint {bad} is damaged or truncated")
    assert lines[0].endswith("export the model again with `erase export`")


def test_export_of_an_unlearned_model_says_it_runs_it_first(lab, trained, tmp_path, capsys):
    out = tmp_path / "nl.pt"
    code, printed, err = run_cli(capsys, "export", "--method", "NL", "--lambda", "3.7e-5",
                                 *SMOKE, "--results", lab.results, "--out", out)
    assert code == 0, err
    assert re.search(r"^erase: no stored run of unlearn NL \(scale smoke, seed 0\) in .*; "
                     r"running it now$", err, re.M), err
    info = json.loads(export.sidecar(out).read_text())
    assert info["run"]["kind"] == "unlearn" and info["run"]["knobs"]["lam"] == 3.7e-5
    record = lab.stored(lab.job("NL", lam=3.7e-5))
    assert info["run"]["key"] == record["key"] and info["metrics"] == record["summary"]
    assert f"wrote {out}" in printed


@pytest.mark.parametrize("argv,words", [
    (["export", "--out", "x.pt"], "export needs one of --model (oracle or original) or --method"),
    (["export", "--model", "zero-filled", "--out", "x.pt"], "unknown model 'zero-filled'"),
    (["export", "--model", "oracle", "--method", "NL", "--out", "x.pt"], "needs one of"),
    (["reconstruct", "--model", "oracle", "--split", "val", "--out", "d"], "unknown split 'val'"),
    (["reconstruct", "--method", "Nope", "--out", "d"], "unknown method 'Nope'"),
])
def test_bad_takeaway_input_is_one_error_line(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv, *SMOKE, "--results", tmp_path / "results")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and words in lines[0], err
    assert not (tmp_path / "results").exists()


def test_evaluate_says_when_it_is_about_to_train(lab, trained, capsys):
    code, out, err = run_cli(capsys, "evaluate", "--method", "NL", "--lambda", "7.3e-5",
                             *SMOKE, "--results", lab.results, "--json")
    assert code == 0
    notice = [line for line in err.splitlines() if line.startswith("erase:")]
    assert notice == [f"erase: no stored run of unlearn NL (scale smoke, seed 0) in "
                      f"{lab.results}; running it now"], err
    code, out, err = run_cli(capsys, "evaluate", "--method", "NL", "--lambda", "7.3e-5",
                             *SMOKE, "--results", lab.results, "--json")
    assert code == 0 and err == ""  # stored now: nothing to say


# ------------------------------------------------------------------ reconstructions


def fastmri_means(targets: Path, predictions: Path) -> dict:
    """fastMRI's own evaluation, called as its command line would (see README)."""
    from fastmri.evaluate import evaluate

    args = Namespace(target_path=targets, predictions_path=predictions, challenge="multicoil",
                     acceleration=None, acquisition=None)
    means = evaluate(args, "reconstruction_rss").means()
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in means.items()}


@pytest.mark.parametrize("split", ["brain_test", "knee_test", "forget"])
def test_fastmri_scores_the_reconstructions_as_erase_does(lab, trained, split, tmp_path, capsys):
    out = tmp_path / "recon"
    code, printed, err = run_cli(capsys, "reconstruct", "--model", "original", "--split", split,
                                 "--out", out, *SMOKE, "--results", lab.results)
    assert code == 0, err
    volumes = sorted(Path(e["path"]).name for e in lab.manifest["splits"][split])
    assert sorted(p.name for p in out.iterdir()) == volumes
    for entry in lab.manifest["splits"][split]:
        with h5py.File(out / Path(entry["path"]).name, "r") as f:
            assert list(f) == ["reconstruction"]
            assert f["reconstruction"].dtype == np.float32
            assert f["reconstruction"].shape == (entry["slices"], 32, 32)
    targets = data_lib.split_folder(lab.manifest, split, lab.data_root, lab.results / "work")
    assert sorted(p.name for p in targets.iterdir()) == volumes
    theirs = fastmri_means(targets, out)
    ours = trained["original"]["metrics"][{s: a for a, s in ACCURACY.items()}[split]]
    assert theirs["PSNR"] == pytest.approx(ours["psnr"], abs=1e-4)
    assert theirs["SSIM"] == pytest.approx(ours["ssim"], abs=1e-4)
    assert theirs["NMSE"] == pytest.approx(ours["nmse"], rel=1e-3)
    # erase prints fastMRI's table itself, and its own numbers beside it
    assert re.search(rf"^PSNR\s+= {theirs['PSNR']:.6g} \+/- ", printed, re.M), printed
    assert re.search(rf"^SSIM\s+= {theirs['SSIM']:.6g} \+/- ", printed, re.M), printed
    assert f"PSNR {ours['psnr']:.6g}, SSIM {ours['ssim']:.6g}" in printed


def test_reconstruct_an_unlearned_model_and_the_zero_filled_input(lab, trained, tmp_path,
                                                                  capsys):
    code, printed, err = run_cli(capsys, "reconstruct", "--method", "NL", "--lambda", "3.7e-5",
                                 "--split", "knee_test", "--out", tmp_path / "nl", *SMOKE,
                                 "--results", lab.results, "--json")
    assert code == 0, err
    result = json.loads(printed.strip().splitlines()[-1])
    record = lab.stored(lab.job("NL", lam=3.7e-5))
    assert result["fastmri"]["PSNR"][0] == pytest.approx(record["metrics"]["kta"]["psnr"],
                                                         abs=1e-4)
    assert result["erase"]["ssim"] == record["metrics"]["kta"]["ssim"]
    code, printed, err = run_cli(capsys, "reconstruct", "--model", "zero-filled", "--split",
                                 "forget", "--out", tmp_path / "zf", *SMOKE,
                                 "--results", lab.results, "--json")
    assert code == 0, err
    result = json.loads(printed.strip().splitlines()[-1])
    assert result["fastmri"]["SSIM"][0] == pytest.approx(lab.zero_filled()["metrics"]["ua"]["ssim"],
                                                         abs=1e-4)


def test_fastmri_scores_reads_metrics_means_despite_numpy_2(tmp_path):
    """The workaround itself: fastMRI's SSIM mean is a one-element array under numpy 2."""
    rng = np.random.default_rng(0)
    targets, predictions = tmp_path / "t", tmp_path / "p"
    targets.mkdir()
    predictions.mkdir()
    for name in ("a.h5", "b.h5"):
        target = rng.random((2, 16, 16)).astype(np.float32)
        with h5py.File(targets / name, "w") as f:
            f["reconstruction_rss"] = target
        with h5py.File(predictions / name, "w") as f:
            f["reconstruction"] = target + 0.01 * rng.random((2, 16, 16)).astype(np.float32)
    scores = export.fastmri_scores(targets, predictions)
    assert set(scores) == {"MSE", "NMSE", "PSNR", "SSIM"}
    assert all(isinstance(m, float) and isinstance(s, float) for m, s in scores.values())
    assert 30 < scores["PSNR"][0] < 60 and 0.9 < scores["SSIM"][0] <= 1
    assert export.scores_table(scores).splitlines()[2].startswith("PSNR  = ")


# ------------------------------------------------------------------ tidy results


def test_results_csv_has_one_row_per_run_and_test_volume(lab, trained, tmp_path, capsys):
    lab.unlearn("NL", lam=3.7e-5)  # an unlearning run among the records (stored or run now)
    csv = tmp_path / "out" / "results.csv"
    code, printed, err = run_cli(capsys, "results", "--csv", csv, "--results", lab.results)
    assert code == 0, err
    frame = pd.read_csv(csv)
    records = lab.store.records()  # other tests' records too, some without per-volume metrics
    expected = sum(len(m.get("per_volume") or {}) for r in records
                   for m in (r.get("metrics") or {}).values() if isinstance(m, dict))
    assert len(frame) == expected and f"wrote {expected} rows ({len(records)} runs" in printed
    assert list(frame.columns[:11]) == ["run", "name", "kind", "seed", "protocol",
                                        "retain_fraction", "gamma", "lam", "rho", "epochs",
                                        "manifest"]
    assert list(frame.columns[-6:]) == ["accuracy", "split", "volume", "psnr", "ssim", "nmse"]
    assert not frame.duplicated(["run", "split", "volume"]).any()
    original = trained["original"]
    rows = frame[(frame["run"] == original["key"]) & (frame["split"] == "knee_test")]
    assert set(rows["kind"]) == {"train"} and set(rows["protocol"]) == {"code"}
    assert set(rows["seed"]) == {0}
    per_volume = original["metrics"]["kta"]["per_volume"]
    assert sorted(rows["volume"]) == sorted(per_volume)
    for _, row in rows.iterrows():
        assert row["psnr"] == pytest.approx(per_volume[row["volume"]]["psnr"], rel=1e-12)
        assert row["ssim"] == pytest.approx(per_volume[row["volume"]]["ssim"], rel=1e-12)
        assert row["nmse"] == pytest.approx(per_volume[row["volume"]]["nmse"], rel=1e-12)
    nl = frame[frame["name"] == "NL"]
    assert set(nl["kind"]) == {"unlearn"} and set(nl["lam"]) >= {3.7e-5}
    raw = nl[nl["lam"] == 3.7e-5]  # the noisy label in both units, as the run used it
    assert (raw["rho"] > 0).all() and raw["rho"].nunique() == 1


def test_results_refuses_a_folder_without_a_store(tmp_path, capsys):
    code, out, err = run_cli(capsys, "results", "--csv", tmp_path / "r.csv", "--results",
                             tmp_path / "nothing")
    assert code == 2 and "holds no results store" in err and not (tmp_path / "r.csv").exists()
