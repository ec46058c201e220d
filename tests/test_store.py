"""Results store: reuse without retraining, a new key for any change, refusal of foreign records."""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from erase.config import ConfigError, config_hash
from erase.io import write_json
from erase.runs import lab as lab_lib
from erase.runs.engine import ENGINE_VERSION
from erase.runs.methods import METHODS, METHODS_VERSION
from erase.runs.store import (
    HASH,
    RECORD,
    Store,
    StoreError,
    _first_line,
    check_record,
    check_writable,
    content_hash,
)


class Trained(Exception):
    pass


def key(lab, name, **knobs) -> str:
    """The store key of job ``name`` (a model or a method) with ``knobs``."""
    return config_hash(lab.config(lab.job(name, **knobs)))


def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise Trained("the store should have answered; the loop ran")

    monkeypatch.setattr(lab_lib, "run_loop", refuse)


# ------------------------------------------------------------------ reuse


def test_second_call_comes_from_the_store_without_training(lab, trained, monkeypatch):
    checkpoint = lab.store.run_dir(trained["oracle"]["key"]) / "checkpoint.ckpt"
    mtime = checkpoint.stat().st_mtime_ns
    record_file = lab.store.run_dir(trained["oracle"]["key"]) / RECORD
    stored_text = record_file.read_text()
    no_training(monkeypatch)
    again = lab.train("oracle")
    assert trained["oracle"]["from_store"] is False and again["from_store"] is True
    assert {k: v for k, v in again.items() if k != "from_store"} == \
        {k: v for k, v in trained["oracle"].items() if k != "from_store"}
    assert again["timing"] == trained["oracle"]["timing"]  # not re-timed: not re-run
    assert checkpoint.stat().st_mtime_ns == mtime
    assert record_file.read_text() == stored_text


def test_a_new_lab_on_the_same_results_reuses_them(lab, trained, monkeypatch):
    no_training(monkeypatch)
    other = lab_lib.Lab(scale="smoke", results_dir=lab.results)
    assert other.manifest_key == lab.manifest_key
    for which in ("oracle", "original"):
        record = other.train(which)
        assert record["from_store"] is True and record["key"] == trained[which]["key"]
    assert other.unlearn("Retrain")["key"] == trained["oracle"]["key"]
    assert other.stored(other.job("original"))["key"] == trained["original"]["key"]


def test_an_unfinished_run_is_not_a_result(tmp_path):
    store = Store(tmp_path)
    config = {"kind": "train", "seed": 0}
    with store.lock(config) as run_dir:
        (run_dir / "checkpoint.ckpt").write_bytes(b"half")
    assert store.get(config) is None  # no record.json: not complete
    record = store.put(config, {"metrics": {"x": 1.0}})
    assert record["key"] == config_hash(config) and record["config"] == config
    assert store.get(config) == record
    assert [r["key"] for r in store.records()] == [record["key"]]
    assert not [p for p in (tmp_path / "runs" / record["key"]).iterdir() if "tmp" in p.name]


# ------------------------------------------------------------------ invalidation


def test_any_change_of_config_is_a_new_key(lab, tmp_path):
    manifest = tmp_path / "m.json"
    write_json(manifest, lab.manifest)
    base = key(lab, "oracle")
    same = lab_lib.Lab(scale="smoke", results_dir=lab.results, manifest=manifest)
    assert key(same, "oracle") == base
    variants = {
        "seed (same split)": lab_lib.Lab(scale="smoke", results_dir=lab.results,
                                         manifest=manifest, seed=1),
        "split (seed 1)": lab_lib.Lab(scale="smoke", results_dir=lab.results, seed=1),
        "epochs": lab_lib.Lab(scale="smoke", results_dir=lab.results, epochs=3),
        "architecture": lab_lib.Lab(scale="smoke", results_dir=lab.results, arch="unet"),
        "training masks": lab_lib.Lab(scale="smoke", results_dir=lab.results,
                                      switches={"training_masks": "fixed"}),
        "lr schedule": lab_lib.Lab(scale="smoke", results_dir=lab.results,
                                   switches={"lr_schedule": "constant"}),
    }
    keys = {name: key(v, "oracle") for name, v in variants.items()}
    keys["which"] = key(lab, "original")
    assert base not in keys.values(), keys
    assert len(set(keys.values())) == len(keys), keys
    # an unlearning run starts from G: a different G is a different run
    assert key(variants["epochs"], "FT") != key(lab, "FT")
    assert lab.config(lab.job("FT"))["start"] == key(lab, "original")
    assert variants["epochs"].config(variants["epochs"].job("FT"))["start"] == \
        key(variants["epochs"], "original")


def test_a_split_with_one_file_changed_is_a_new_key(smoke_data, tmp_path):
    """The Lab's keys follow the data's content: a copy of the data gives the same keys, the
    copy with one value of one retain volume changed gives new ones, for every kind of run."""
    import h5py

    copy = tmp_path / "data"
    shutil.copytree(smoke_data, copy)
    results = tmp_path / "results"
    original = lab_lib.Lab(scale="smoke", data_root=smoke_data, results_dir=results)
    same = lab_lib.Lab(scale="smoke", data_root=copy, results_dir=results)
    names = ("oracle", "original", "NL-FT")
    assert [key(same, n) for n in names] == [key(original, n) for n in names]
    volume = copy / same.manifest["splits"]["retain"][0]["path"]
    with h5py.File(volume, "r+") as f:
        f["kspace"][0, 0, 0, 0] = f["kspace"][0, 0, 0, 0] * 2 + 1
    changed = lab_lib.Lab(scale="smoke", data_root=copy, results_dir=results)
    assert changed.manifest_key != same.manifest_key
    for n in names:
        assert key(changed, n) != key(same, n), n
    assert zero_filled_config(changed) != zero_filled_config(same)


def zero_filled_config(lab) -> dict:
    """The config the Lab keys its zero-filled record by (read from the store's lookup)."""
    seen = []
    real = lab.store.get

    def spy(config):
        seen.append(config)
        return {"summary": {}, "metrics": {}}

    lab.store.get = spy
    try:
        lab.zero_filled()
    finally:
        lab.store.get = real
    return seen[-1]


@pytest.mark.parametrize("method,knob,a,b", [
    ("FT", "retain_fraction", 0.1, 0.2), ("NL-FT", "retain_fraction", 0.1, 0.5),
    ("GA-l1", "gamma", 1e-5, 1e-4), ("GA-l1-FT", "gamma", 1e-5, 2e-5),
    ("GA-l1", "gamma", None, 1.0),  # the protocol's own gamma is not an explicit 1
    ("NL", "lam", 1e-5, 4e-5), ("NL-FT", "lam", 1e-5, 2e-5), ("FT", "epochs", 1, 2),
    ("NL-FT", "epochs", None, 6),
])
def test_a_knob_the_method_uses_changes_its_key(lab, method, knob, a, b):
    assert key(lab, method, **{knob: a}) != key(lab, method, **{knob: b})


@pytest.mark.parametrize("method,knob,a,b", [
    ("FT", "gamma", 1e-5, 1.0), ("FT", "lam", 1e-5, 9.0), ("GA-l1", "retain_fraction", 0.1, 0.9),
    ("NL", "gamma", 0.0, 1.0), ("Full FT", "retain_fraction", 0.1, 0.3),
    ("GA-l1", "lam", 1e-5, 0.5), ("NL", "retain_fraction", 0.1, 0.7),
])
def test_a_knob_the_method_ignores_leaves_its_key(lab, method, knob, a, b):
    assert key(lab, method, **{knob: a}) == key(lab, method, **{knob: b})


def test_default_knobs_are_the_papers(lab):
    """Unset knobs are the defaults: 10% of Dr, the paper's rho (noise rms over G's error on
    Df), the protocol's gamma, ascent and unlearning length; a row keeps only the knobs it
    uses; a raw lambda replaces rho, and giving both is refused."""
    assert lab_lib.DEFAULT_KNOBS == {"retain_fraction": 0.1, "gamma": None, "lam": None,
                                     "rho": 1.4, "ascent": None}
    assert key(lab, "NL-FT") == key(lab, "NL-FT", retain_fraction=0.1, rho=1.4,
                                    epochs=lab.protocol.unlearn_epochs)
    assert key(lab, "NL-FT", lam=1e-5) != key(lab, "NL-FT")
    assert lab.job("NL-FT", lam=1e-5).knobs == {"retain_fraction": 0.1, "gamma": None,
                                               "lam": 1e-5, "epochs": 5}
    assert lab.job("GA-l1-FT").knobs == {"retain_fraction": 0.1, "gamma": None, "lam": None,
                                        "epochs": 5}
    assert lab.job("GA-l1-FT", ascent=2.0) == lab.job("GA-l1-FT")  # the code's own weight
    assert lab.job("GA-l1-FT", ascent=0.5).knobs["ascent"] == 0.5
    assert "ascent" not in lab.job("NL", ascent=0.5).knobs  # a knob a row does not use
    assert "rho" not in lab.job("FT", rho=3.0).knobs
    assert lab.job("NL").knobs == {"retain_fraction": None, "gamma": None, "lam": None,
                                  "rho": 1.4, "epochs": 5}
    assert lab.job("NL", curve=False).knobs["curve"] is False
    assert "curve" not in lab.job("SSD", curve=False).knobs  # it trains no epoch
    with pytest.raises(ConfigError, match="not both"):
        lab.job("NL-FT", lam=1e-5, rho=1.4)
    assert lab.job("Retrain") == lab.job("oracle") == lab_lib.Job("train", "oracle")
    assert lab.job("original") == lab_lib.Job("train", "original")


def test_the_engine_version_and_the_method_row_are_part_of_the_key(lab, monkeypatch):
    """Every kind of run, the zero-filled floor included, is keyed by ENGINE_VERSION (what the
    Lab puts in its configs, not a dict built here); an unlearning run also by its row."""
    names = ("oracle", "original", "NL-FT", "SalUn")
    before = {n: key(lab, n) for n in names}
    floor = config_hash(zero_filled_config(lab))
    assert lab.config(lab.job("NL-FT"))["start"] == before["original"]
    monkeypatch.setattr(lab_lib, "ENGINE_VERSION", ENGINE_VERSION + 1)
    after = {n: key(lab, n) for n in names}
    assert all(after[n] != before[n] for n in names), (before, after)
    assert config_hash(zero_filled_config(lab)) != floor
    monkeypatch.setattr(lab_lib, "ENGINE_VERSION", ENGINE_VERSION)
    assert {n: key(lab, n) for n in names} == before
    # a row changed in the table: a new key for its runs, and only for them
    changed = replace(METHODS["NL-FT"], forget="ascent")
    monkeypatch.setitem(METHODS, "NL-FT", changed)
    assert key(lab, "NL-FT") != before["NL-FT"]
    assert key(lab, "oracle") == before["oracle"] and key(lab, "SalUn") == before["SalUn"]
    assert lab.config(lab.job("NL-FT"))["methods_version"] == METHODS_VERSION


def test_precision_is_part_of_the_key(lab):
    other = lab_lib.Lab(scale="smoke", results_dir=lab.results, precision="bf16-mixed")
    for n in ("oracle", "original", "NL-FT"):
        assert key(other, n) != key(lab, n), n


# ------------------------------------------------------------------ foreign records


@pytest.fixture
def stored(tmp_path):
    store = Store(tmp_path / "results")
    config = {"kind": "train", "which": "oracle", "seed": 0}
    store.put(config, {"name": "oracle", "metrics": {"bta": 30.0}})
    return store, config, store.run_dir(config_hash(config))


def test_an_edited_record_is_refused_naming_its_directory(stored):
    store, config, run_dir = stored
    record = json.loads((run_dir / RECORD).read_text())
    record["config"]["seed"] = 1  # its content no longer hashes to its key
    (run_dir / RECORD).write_text(json.dumps(record))
    with pytest.raises(StoreError, match="does not match its config hash") as err:
        store.get(config)
    assert str(run_dir) in str(err.value)


def test_a_moved_record_is_refused(stored):
    store, config, run_dir = stored
    other = {**config, "seed": 7}
    target = store.run_dir(config_hash(other))
    shutil.copytree(run_dir, target)
    with pytest.raises(StoreError, match=str(target)):
        store.get(other)


def test_a_damaged_record_is_refused(stored):
    store, config, run_dir = stored
    (run_dir / RECORD).write_text('{"key": "trunc')
    with pytest.raises(StoreError, match="damaged") as err:
        store.get(config)
    assert str(run_dir) in str(err.value)


def test_the_lab_refuses_a_foreign_record_instead_of_serving_it(lab, trained, tmp_path):
    results = tmp_path / "copy"
    shutil.copytree(lab.results, results, ignore=shutil.ignore_patterns("*.ckpt", "work"))
    other = lab_lib.Lab(scale="smoke", results_dir=results)
    run_dir = other.store.run_dir(trained["oracle"]["key"])
    record = json.loads((run_dir / RECORD).read_text())
    record["config"]["train"]["epochs"] = 50
    (run_dir / RECORD).write_text(json.dumps(record))
    with pytest.raises(StoreError) as err:
        other.train("oracle")
    assert str(run_dir) in str(err.value)


def test_an_unwritable_results_directory_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="not writable"):
        Store(blocker / "results")


# ------------------------------------------------------------------ two processes, one run


def test_a_second_holder_of_a_run_waits_for_the_first(tmp_path, monkeypatch):
    """No sleep: the first holder lets go only once the second has said it is waiting."""
    store = Store(tmp_path)
    config = {"kind": "train", "seed": 0}
    order, said = [], threading.Event()

    class Stderr:
        text = ""

        def write(self, text):
            self.text += text
            if "waiting" in self.text:
                said.set()

        def flush(self):
            pass

    err = Stderr()
    monkeypatch.setattr(sys, "stderr", err)

    def second():
        with store.lock(config):
            order.append("second")

    with store.lock(config):
        thread = threading.Thread(target=second)
        thread.start()
        assert said.wait(30), "the second holder never said it waits"
        order.append("first done")
    thread.join(30)
    assert order == ["first done", "second"]
    assert err.text == (f"run {config_hash(config)} is in use by another process; "
                        "waiting for it\n")


# ------------------------------------------------------------------ the store's parts, exactly


def test_content_hash_is_sha256_of_the_canonical_json_without_itself():
    """Keys sorted, no spaces, as the record reads back from JSON (tuples as lists, keys as
    strings); its own hash left out."""
    record = {"b": (1, 2.5), "a": {"z": 1, "y": None}, 3: "x", HASH: "whatever was there"}
    canonical = '{"3":"x","a":{"y":null,"z":1},"b":[1,2.5]}'
    assert content_hash(record) == hashlib.sha256(canonical.encode()).hexdigest()


def test_a_record_is_checked_against_its_key_and_its_content(tmp_path):
    path = tmp_path / "runs" / "k" / RECORD
    config = {"kind": "train", "seed": 0}
    record = {"key": config_hash(config), "config": config, "metrics": {"x": 1.0}}
    remedy = f"delete {path.parent} to recompute it"
    assert check_record(record, path) is record  # no hash yet: read as it is
    hashed = {**record, HASH: content_hash(record)}
    assert check_record(hashed, path, config_hash(config)) is hashed
    with pytest.raises(StoreError) as err:
        check_record({**hashed, "metrics": {"x": 2.0}}, path)
    assert str(err.value) == (f"{path} is damaged or was edited by hand (its content no longer "
                              f"matches its hash); {remedy}")
    with pytest.raises(StoreError) as err:
        check_record(["not", "a record"], path)
    assert str(err.value) == f"{path} is damaged (not a record); {remedy}"
    with pytest.raises(StoreError) as err:
        check_record(record, path, key="0" * 16)
    assert str(err.value) == (f"{path} does not match its config hash {'0' * 16} (edited or "
                              f"moved?); {remedy}")


def test_the_first_line_of_an_error_is_one_line_of_at_most_240_characters():
    assert _first_line(ValueError("  bad\n\n  thing  \n")) == "ValueError: bad thing"
    assert _first_line(KeyError()) == "KeyError"  # no text: the type alone
    assert _first_line(RuntimeError("x" * 240)) == "RuntimeError: " + "x" * 240
    assert _first_line(RuntimeError("y" * 241)) == "RuntimeError: " + "y" * 237 + "..."


def test_check_writable_names_the_file_in_the_way_or_the_reason(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "results" / "deeper"
    with pytest.raises(ConfigError) as err:
        check_writable(target)
    assert str(err.value) == (f"results directory {target} is not writable ({blocker} is a "
                              "file, not a directory); pass a writable results_dir / --results")
    # where no file can be made even by root (/proc): the system's reason, in words
    with pytest.raises(ConfigError) as err:
        check_writable(Path("/proc/erase-test/results"), what="store", advice="try another")
    text = str(err.value)
    assert text.startswith("store /proc/erase-test/results is not writable (") and \
        text.endswith("); try another") and "[Errno" not in text, text
    check_writable(tmp_path / "new" / "results")  # writable: nothing is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_new_store_holds_only_its_runs_folder_and_says_why_it_cannot_be_made(tmp_path):
    Store(tmp_path / "results")
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["runs"]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as err:
        Store(blocker / "results")
    assert str(err.value) == (f"results directory {blocker / 'results'} is not writable (Not a "
                              "directory); pass a writable results_dir / --results")


def test_put_keeps_the_content_and_writes_its_own_hash(tmp_path):
    store = Store(tmp_path)
    config = {"kind": "train", "seed": 3}
    record = store.put(config, {"metrics": {"x": (1, 2)}, HASH: "stale"})
    assert record["metrics"] == {"x": [1, 2]} and record[HASH] == content_hash(record)
    assert json.loads((store.run_dir(config_hash(config)) / RECORD).read_text()) == record


def test_records_skip_unreadable_files_and_come_in_the_order_they_finished(tmp_path):
    store = Store(tmp_path)
    for seed, finished in ((1, 2.0), (2, None), (3, 0.5)):
        store.put({"seed": seed}, {} if finished is None else {"finished": finished})
    broken = store.run_dir("0000000000000000") / RECORD  # sorts first by its path
    broken.parent.mkdir(parents=True)
    broken.write_text("{half a record")
    assert [r["config"]["seed"] for r in store.records()] == [2, 3, 1]  # unfinished (0) first


def test_a_records_environment_tells_two_machines_apart():
    import os
    import platform
    import re

    import fastmri
    import torch

    from erase.runs.store import environment

    env = environment()
    assert env == {"python": platform.python_version(), "torch": torch.__version__,
                   "fastmri": getattr(fastmri, "__version__", "?"),
                   "machine": platform.machine(),
                   "processor": platform.processor() or platform.machine(),
                   "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                   "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                   "time": env["time"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", env["time"])
