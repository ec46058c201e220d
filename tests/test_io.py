"""erase.io: a file is written whole or not at all."""
from __future__ import annotations

import json

import pytest

from erase.io import atomic, write_json, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "deep" / "record.json"
    write_json(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == json.dumps({"a": [1, 2], "b": 1}, indent=1, sort_keys=True)
    with pytest.raises(RuntimeError):
        with atomic(path) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("killed while writing")
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]


def test_the_temporary_lies_beside_the_file_until_the_rename(tmp_path):
    path = tmp_path / "page.txt"
    with atomic(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".page.txt.")
        tmp.write_text("whole")
        assert not path.exists()
    assert path.read_text() == "whole" and not tmp.exists()
    write_text(path, "again")
    assert path.read_text() == "again"
