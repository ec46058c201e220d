"""Files written whole or not at all.

Every file ``erase`` writes (records, manifests, data volumes, checkpoints taken away, CSV
files, notebooks) is written to a temporary name beside its place and renamed onto it, which
is atomic on one file system: a reader, a crash or Ctrl-C never sees half a file, and a failed
write leaves the old file (or none). The one exception is the training checkpoint, written by
Fabric on every rank at once (``runs.engine.save_atomic``).
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic(path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends
    without an error, removed when it raises.

    Args:
        path: the file's final place; its folder is made if missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path, text: str) -> None:
    """``text`` to ``path``, atomically."""
    with atomic(path) as tmp:
        tmp.write_text(text)


def write_json(path, payload) -> None:
    """``payload`` as JSON (indented, keys sorted: the same object gives the same bytes), to
    ``path``, atomically."""
    write_text(path, json.dumps(payload, indent=1, sort_keys=True))
