"""Checkpoints and the results store: damaged, foreign or edited files get one clear message.

No training is needed: checkpoints are written with Fabric exactly as the loop writes them
(then damaged), and records with ``Store.put``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from helpers import save_with_code

from erase import cli
from erase.config import ModelConfig, config_hash, get_scale
from erase.data.synthetic import synthesize
from erase.runs.engine import make_scheduler
from erase.runs.evaluate import slice_names
from erase.runs.lab import Lab
from erase.runs.models import build_model
from erase.runs.store import Store, StoreError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("store-data") / "smoke"
    synthesize(root, get_scale("smoke").data, 0)
    return root


@pytest.fixture
def lab(data_root, tmp_path) -> Lab:
    return Lab(scale="smoke", data_root=data_root, results_dir=tmp_path / "results")


def erase(capsys, lab, *argv) -> tuple[int, str]:
    code = cli.main([*map(str, argv), "--scale", "smoke", "--data-root", str(lab.data_root),
                     "--results", str(lab.results)])
    err = capsys.readouterr().err.strip()
    if code:
        assert err.count("\n") == 0 and err.startswith("erase: error: "), err
    return code, err


def save_checkpoint(lab: Lab, path: Path, model=None, epoch: int = 1) -> None:
    """A checkpoint as ``run_loop`` writes it (Fabric, model + optimizer + progress)."""
    model = model if model is not None else lab.new_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    path.parent.mkdir(parents=True, exist_ok=True)
    scheduler = make_scheduler(optimizer, lab.protocol)
    state = {"model": model, "optimizer": optimizer, "epoch": epoch, "history": [],
             "train_seconds": 0.0, "steps": 0, "samples": 0}
    if scheduler is not None:
        state["scheduler"] = scheduler
    lab.fabric.save(path, state)


def original_run(lab: Lab) -> Path:
    return lab.store.run_dir(config_hash(lab.config(lab.job("original"))))


def truncate(path: Path, keep: float) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.97])
def test_truncated_checkpoint(keep, lab, capsys):
    ckpt = original_run(lab) / "checkpoint.ckpt"
    save_checkpoint(lab, ckpt)
    truncate(ckpt, keep)
    code, err = erase(capsys, lab, "train", "--model", "original")
    assert code == 2
    assert re.fullmatch(rf"erase: error: checkpoint {re.escape(str(ckpt))} is damaged or "
                        rf"truncated \(.+\); delete {re.escape(str(ckpt))} to restart this run "
                        "from scratch", err), err
    assert not (ckpt.parent / "record.json").exists()
    print(f"truncated to {keep:.0%}: {err}")


def test_checkpoint_from_another_model_size(lab, capsys):
    ckpt = original_run(lab) / "checkpoint.ckpt"
    bigger = build_model(ModelConfig(cascades=2, chans=8, pools=2, sens_chans=4, sens_pools=2))
    save_checkpoint(lab, ckpt, model=bigger)
    code, err = erase(capsys, lab, "train", "--model", "original")
    assert code == 2
    assert err.startswith(f"erase: error: checkpoint {ckpt} was written by a different model "
                          "or run and does not fit this one (RuntimeError: Error(s) in loading "
                          "state_dict for VarNet"), err
    assert err.endswith(f"delete {ckpt} to restart this run from scratch")
    assert not (ckpt.parent / "record.json").exists()
    print(err)


def test_checkpoint_with_pickled_code_is_not_executed(lab, capsys, tmp_path):
    """weights_only=True: a checkpoint that would run code when unpickled is refused."""
    marker = tmp_path / "pwned"
    ckpt = original_run(lab) / "checkpoint.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    model = lab.new_model()
    save_with_code(ckpt, {"model": model.state_dict(), "optimizer": {}, "epoch": 1,
                          "history": [], "train_seconds": 0.0, "steps": 0, "samples": 0}, marker)
    code, err = erase(capsys, lab, "train", "--model", "original")
    assert code == 2
    assert err == (f"erase: error: checkpoint {ckpt} holds objects other than tensors and "
                   "plain values; refusing to unpickle it (checkpoints load with "
                   f"weights_only=True); delete {ckpt} to restart this run from scratch"), err
    assert not marker.exists(), "the checkpoint's code ran"
    print(err)


def fake_original(lab: Lab) -> dict:
    """A stored record for G, so that ``unlearn`` starts from its checkpoint without training
    (its UA per forget volume: a calibrated noisy label reads G's error on Df)."""
    ua = {"per_volume": {f: {"psnr": 30.0} for f in slice_names(lab.dataset("forget"))}}
    return lab.store.put(lab.config(lab.job("original")),
                         {"name": "original", "summary": {}, "metrics": {"ua": ua}, "history": []})


def test_truncated_start_checkpoint_of_unlearning(lab, capsys):
    fake_original(lab)
    ckpt = original_run(lab) / "checkpoint.ckpt"
    save_checkpoint(lab, ckpt, epoch=2)
    truncate(ckpt, 0.5)
    code, err = erase(capsys, lab, "unlearn", "--method", "NL-FT")
    assert code == 2
    assert err.startswith(f"erase: error: checkpoint {ckpt} is damaged or truncated ("), err
    assert err.endswith(f"delete {ckpt.parent} to retrain the original model it came from")
    unlearn_key = config_hash(lab.config(lab.job("NL-FT")))
    assert not (lab.store.run_dir(unlearn_key) / "record.json").exists()
    assert len(lab.store.records()) == 1  # only the (fake) original
    print(err)


@pytest.mark.parametrize("how", ["bigger model", "extra weight", "missing weight"])
def test_start_checkpoint_that_does_not_fit_is_refused_not_skipped(how, lab, capsys):
    """G is loaded strictly: unlearning never starts from a partly loaded (or fresh) model."""
    fake_original(lab)
    ckpt = original_run(lab) / "checkpoint.ckpt"
    if how == "bigger model":
        save_checkpoint(lab, ckpt, model=build_model(ModelConfig(cascades=2, chans=8, pools=2,
                                                                 sens_chans=4, sens_pools=2)))
    else:
        save_checkpoint(lab, ckpt)
        state = torch.load(ckpt, weights_only=True)
        if how == "extra weight":
            state["model"]["extra.weight"] = torch.zeros(3)
        else:
            state["model"].pop(next(iter(state["model"])))
        torch.save(state, ckpt)
    code, err = erase(capsys, lab, "unlearn", "--method", "NL-FT")
    assert code == 2
    assert err.startswith(f"erase: error: checkpoint {ckpt} was written by a different model "
                          "or run and does not fit this one ("), err
    assert err.endswith(f"delete {ckpt.parent} to retrain the original model it came from")
    assert len(lab.store.records()) == 1  # only the (fake) original
    print(f"{how}: {err}")


def test_load_model_of_a_damaged_checkpoint(lab):
    record = fake_original(lab)
    ckpt = original_run(lab) / "checkpoint.ckpt"
    save_checkpoint(lab, ckpt)
    assert lab.load_model(record) is not None  # intact: loads (weights_only=True)
    truncate(ckpt, 0.3)
    with pytest.raises(StoreError, match=rf"checkpoint {re.escape(str(ckpt))} is damaged or "
                                         rf"truncated .*; delete {re.escape(str(ckpt.parent))}"
                                         " to recompute this run"):
        lab.load_model(record)


# ------------------------------------------------------------------ records


@pytest.mark.parametrize("edit", ["config", "key", "garbage"])
def test_record_that_does_not_match_its_hash(edit, lab, capsys):
    config = lab.config(lab.job("original"))
    stored = lab.store.put(config, {"name": "original", "summary": {}, "metrics": {}})
    path = lab.store.run_dir(stored["key"]) / "record.json"
    record = json.loads(path.read_text())
    if edit == "config":
        record["config"]["seed"] = 7  # edited by hand: the content no longer hashes to its key
    elif edit == "key":
        record["key"] = "0123456789abcdef"
    path.write_text("{half a record" if edit == "garbage" else json.dumps(record))
    with pytest.raises(StoreError) as err:
        Store(lab.results).get(config)
    expected = ("is damaged" if edit == "garbage" else
                f"does not match its config hash {stored['key']} (edited or moved?)")
    assert f"{path} {expected}" in str(err.value) and f"delete {path.parent}" in str(err.value)
    code, cli_err = erase(capsys, lab, "train", "--model", "original")
    assert code == 2 and cli_err == f"erase: error: {err.value}"
    print(f"{edit}: {cli_err}")


def test_record_moved_to_another_key(lab):
    """A complete record copied under another run's key is refused, not served."""
    config = lab.config(lab.job("original"))
    other = lab.config(lab.job("oracle"))
    stored = lab.store.put(config, {"name": "original"})
    target = lab.store.run_dir(config_hash(other)) / "record.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(stored))
    with pytest.raises(StoreError, match="does not match its config hash"):
        lab.store.get(other)


# ------------------------------------------------------------------ safe loading, everywhere


def test_every_checkpoint_load_is_weights_only():
    """grep: every torch.load / fabric.load call in the package passes weights_only=True."""
    calls = []
    for path in sorted((REPO / "erase").rglob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"\b(torch|fabric|self\.fabric|lab\.fabric)\.load\(", text):
            depth, i = 1, match.end()
            while depth and i < len(text):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            call = text[match.start():i]
            calls.append((path.name, call))
            assert "weights_only=True" in call, f"{path.name}: {call}"
    assert len(calls) >= 3, calls  # resume, start from G, load_model
