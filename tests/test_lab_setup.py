"""A Lab writes nothing when it is made: its data is prepared on first use, once.

``Lab(...)`` checks its settings only; ``prepare_data`` (called by everything that reads the
data, the split or the store) writes the embedded synthetic set, makes and checks the split
and keeps the manifest, and returns at once when called again. Data that cannot be read is
refused at first use, before the store is created.
"""
from __future__ import annotations

import pytest

from erase import data as data_lib
from erase.config import ConfigError
from erase.runs.lab import Lab


def tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def test_a_new_lab_writes_nothing_and_its_first_use_prepares_the_data(tmp_path):
    results = tmp_path / "results"
    lab = Lab(scale="smoke", results_dir=results)
    assert not results.exists()
    assert lab.settings()["data_root"] is None and not results.exists()  # no preparing
    job = lab.job("NL-FT")
    assert lab.cost(job) > 0  # reads the split: prepares it
    manifests = list((results / "manifests").glob("*.json"))
    assert [p.stem for p in manifests] == [lab.manifest_key]
    assert lab.data_root.is_relative_to(results / "data") and any(lab.data_root.rglob("*.h5"))


def test_preparing_is_done_once(tmp_path):
    lab = Lab(scale="smoke", results_dir=tmp_path / "results")
    assert lab.prepare_data() is lab
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "results").rglob("*") if p.is_file()}
    manifest = lab.manifest
    assert lab.prepare_data().manifest is manifest
    assert {p: p.stat().st_mtime_ns for p in written} == written  # nothing written again
    again = Lab(scale="smoke", results_dir=tmp_path / "results").prepare_data()
    assert again.manifest_key == lab.manifest_key and again.data_root == lab.data_root
    data = {p: t for p, t in written.items() if p.is_relative_to(lab.data_root)}
    assert data and {p: p.stat().st_mtime_ns for p in data} == data  # the data set reused


def test_data_that_cannot_be_read_is_refused_at_first_use_leaving_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    results = tmp_path / "results"
    lab = Lab(scale="smoke", data_root=empty, results_dir=results)
    with pytest.raises(data_lib.DataError):
        lab.stored(lab.job("oracle"))
    with pytest.raises(data_lib.DataError):
        lab.store
    assert not results.exists()


def test_a_refused_lab_leaves_nothing(tmp_path):
    with pytest.raises(ConfigError):
        Lab(scale="smoke", results_dir=tmp_path / "results", seed="one")
    with pytest.raises(ConfigError):
        Lab(scale="smoke", results_dir=tmp_path / "results", epochs=0)
    assert tree(tmp_path) == []
