"""Record integrity: a record carries a hash of its own content; an edited one is refused.

A record whose metrics were changed by hand is refused on load (``Store.get`` and
``Store.records``, and so every command and chapter) with the same kind of StoreError as a
damaged one. Records written before records carried a hash are read as they are (see
``erase.runs.store``).
"""
from __future__ import annotations

import json

import pytest

from erase.cli import main
from erase.config import config_hash
from erase.runs.store import HASH, RECORD, Store, StoreError, content_hash

CONFIG = {"kind": "train", "which": "oracle", "seed": 0}
RECORD_BODY = {"name": "oracle", "metrics": {"bta": {"psnr": 31.25, "ssim": 0.91,
                                                     "per_volume": {"a.h5": {"psnr": 31.25}}}},
               "summary": {"bta_psnr": 31.25}, "history": [{"epoch": 1, "loss": 0.5}],
               "finished": 1.5}


def stored(tmp_path):
    store = Store(tmp_path)
    record = store.put(CONFIG, RECORD_BODY)
    return store, record, store.run_dir(record["key"]) / RECORD


def test_a_record_carries_the_hash_of_its_content(tmp_path):
    store, record, path = stored(tmp_path)
    on_disk = json.loads(path.read_text())
    assert on_disk[HASH] == content_hash(on_disk) == record[HASH]
    assert len(record[HASH]) == 64
    assert store.get(CONFIG) == record == on_disk
    assert store.records() == [record]
    # the hash covers everything but itself: any field changes it
    assert content_hash({**on_disk, "finished": 2.5}) != on_disk[HASH]
    assert content_hash({**on_disk, HASH: "x"}) == on_disk[HASH]


@pytest.mark.parametrize("edit", [
    lambda r: r["metrics"]["bta"].update(psnr=35.0),
    lambda r: r["metrics"]["bta"]["per_volume"]["a.h5"].update(psnr=35.0),
    lambda r: r["summary"].update(bta_psnr=35.0),
    lambda r: r["history"].pop(),
    lambda r: r.update(extra="note"),
    lambda r: r.update({HASH: "0" * 64}),
], ids=["metric", "volume", "summary", "history", "new field", "hash"])
def test_an_edited_record_is_refused_on_load(tmp_path, edit):
    store, record, path = stored(tmp_path)
    edited = json.loads(path.read_text())
    edit(edited)
    path.write_text(json.dumps(edited, indent=1))
    with pytest.raises(StoreError) as err:
        store.get(CONFIG)
    message = str(err.value)
    assert message.startswith(f"{path} is damaged or was edited by hand")
    assert message.endswith(f"delete {path.parent} to recompute it")
    with pytest.raises(StoreError, match="edited by hand"):
        store.records()


def test_reformatting_a_record_is_not_an_edit(tmp_path):
    """Whitespace and key order do not matter; the content does."""
    store, record, path = stored(tmp_path)
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4, sort_keys=False))
    assert store.get(CONFIG) == record


def test_a_damaged_record_is_refused_the_same_way(tmp_path):
    store, record, path = stored(tmp_path)
    path.write_text(path.read_text()[:40])
    with pytest.raises(StoreError, match=f"{path} is damaged .*; delete {path.parent} to "
                                         "recompute"):
        store.get(CONFIG)


def test_records_written_before_the_hash_are_read_as_they_are(tmp_path):
    """A record without a hash (written by an earlier erase) is accepted: refusing it would
    recompute every stored result, and a missing hash proves nothing either way."""
    store = Store(tmp_path)
    key = config_hash(CONFIG)
    legacy = {**RECORD_BODY, "key": key, "config": CONFIG}
    path = store.run_dir(key) / RECORD
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(legacy))
    assert HASH not in legacy
    assert store.get(CONFIG) == legacy
    assert store.records() == [legacy]
    # ...but it still has to belong to its key, as before
    path.write_text(json.dumps({**legacy, "config": {**CONFIG, "seed": 1}}))
    with pytest.raises(StoreError, match="does not match its config hash"):
        store.get(CONFIG)


def test_the_command_line_refuses_an_edited_record_in_one_line(lab, trained, capsys):
    path = lab.store.run_dir(trained["oracle"]["key"]) / RECORD
    text = path.read_text()
    try:
        edited = json.loads(text)
        edited["summary"]["bta_psnr"] += 3.0
        path.write_text(json.dumps(edited))
        code = main(["train", "--model", "oracle", "--scale", "smoke",
                     "--results", str(lab.results)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 1 and err[0].startswith(f"erase: error: {path} is damaged or was "
                                                   "edited by hand"), err
    finally:
        path.write_text(text)
    assert lab.stored(lab.job("oracle"))["summary"] == trained["oracle"]["summary"]
