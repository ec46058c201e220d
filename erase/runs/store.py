"""The results store: one directory per run, keyed by the hash of the run's complete config.

A record is reused only when its key matches the config being asked for, so any change in
data, split, model, method table, knobs, seed or engine version means a new run, never a
stale result. ``record.json`` is written last and atomically: its presence means the run is
complete. A lock per run lets two processes share one store: the second waits for the first
and then reuses its result.

A record also carries a hash of its own content (``content_hash``: everything but the hash),
so that a record edited by hand (a metric changed) is refused on load like a damaged one.
Records written before records carried one are read as they are: a missing hash proves
nothing either way (anyone can write a new one), and refusing them would only force every
stored result to be recomputed.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ..config import ConfigError, config_hash, to_dict
from ..io import write_json

RECORD = "record.json"
HASH = "content_hash"


class StoreError(RuntimeError):
    """A stored record or checkpoint is damaged or does not belong to its key."""


def check_writable(path: Path, what: str = "results directory",
                   advice: str = "pass a writable results_dir / --results") -> None:
    """Refuse a directory that cannot be created and written, before anything is created.

    Walks up to the nearest existing ancestor and probes it with a temporary file that is
    removed at once, so a refused path leaves nothing behind. (Permission bits do not stop
    root; a path below a regular file, or on a read-only file system, does.)
    """
    path = Path(path).absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {path} is not writable ({existing} is a file, not a "
                          f"directory); {advice}")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".erase-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"{what} {path} is not writable ({err.strerror or err}); "
                          f"{advice}") from None


def _first_line(err: BaseException) -> str:
    """The error's type and the start of its text, on one line."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    text = text if len(text) <= 240 else text[:237] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@contextmanager
def checkpoint_errors(path: Path, remedy: str | None = None):
    """Turn any failure to read or apply a checkpoint into one StoreError naming the file.

    ``remedy`` says what to delete; by default the checkpoint itself, which restarts its run.
    """
    path = Path(path)
    remedy = remedy or f"delete {path} to restart this run from scratch"
    try:
        yield
    except (KeyboardInterrupt, SystemExit, StoreError):
        raise
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
        text = str(err)
        if "Weights only load failed" in text or "weights_only" in text:
            why = ("holds objects other than tensors and plain values; refusing to unpickle it "
                   "(checkpoints load with weights_only=True)")
        elif isinstance(err, (RuntimeError, ValueError, KeyError)) and (
                "state_dict" in text or "size mismatch" in text or "parameter group" in text
                or isinstance(err, KeyError)):
            why = (f"was written by a different model or run and does not fit this one "
                   f"({_first_line(err)})")
        else:
            why = f"is damaged or truncated ({_first_line(err)})"
        raise StoreError(f"checkpoint {path} {why}; {remedy}") from None


def content_hash(record: dict) -> str:
    """sha256 of a record's content as it reads back from JSON, without its own hash."""
    body = {k: v for k, v in record.items() if k != HASH}
    canonical = json.loads(json.dumps(body))  # tuples, keys and numbers as they read back
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def check_record(record, path: Path, key: str | None = None) -> dict:
    """The record read from ``path`` if it is whole and its own; StoreError otherwise."""
    remedy = f"delete {Path(path).parent} to recompute it"
    if not isinstance(record, dict):
        raise StoreError(f"{path} is damaged (not a record); {remedy}")
    key = key if key is not None else record.get("key")
    if record.get("key") != key or config_hash(record.get("config")) != key:
        raise StoreError(f"{path} does not match its config hash {key} (edited or moved?); "
                         f"{remedy}")
    if HASH in record and record[HASH] != content_hash(record):
        raise StoreError(f"{path} is damaged or was edited by hand (its content no longer "
                         f"matches its hash); {remedy}")
    return record


def finished_keys(root: Path) -> set:
    """Keys of the runs a store at ``root`` holds complete (their record written), read from
    the folder names alone: cheap enough to ask every second."""
    runs = Path(root) / "runs"
    if not runs.is_dir():
        return set()
    return {p.name for p in runs.iterdir() if (p / RECORD).is_file()}


def _read_json(path: Path, remedy: str):
    """The JSON at ``path``, None when there is no file; StoreError saying ``remedy`` when it
    cannot be parsed."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise StoreError(f"{path} is damaged ({err}); {remedy}") from None


def _write_hashed(path: Path, body: dict) -> dict:
    """Write ``body`` as it reads back from JSON, with its content hash (atomically); return it."""
    body = json.loads(json.dumps(body))
    body[HASH] = content_hash(body)
    write_json(path, body)
    return body


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)
        try:
            (self.root / "runs").mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise ConfigError(f"results directory {self.root} is not writable ({err.strerror}); "
                              "pass a writable results_dir / --results") from None

    def run_dir(self, key: str) -> Path:
        return self.root / "runs" / key

    def get(self, config: dict) -> dict | None:
        """The complete record for ``config``, or None; raises if the record is not its own."""
        key = config_hash(config)
        path = self.run_dir(key) / RECORD
        record = _read_json(path, f"delete {path.parent} to recompute")
        return None if record is None else check_record(record, path, key)

    def put(self, config: dict, record: dict) -> dict:
        """Write the record for ``config`` (atomically), with its content hash, and return it
        as it reads back."""
        key = config_hash(config)
        return _write_hashed(self.run_dir(key) / RECORD,
                             {k: v for k, v in record.items() if k != HASH}
                             | {"key": key, "config": to_dict(config)})

    def get_beside(self, key: str, name: str) -> dict | None:
        """A result kept in run ``key``'s folder beside its record (the per-example audit's pool
        losses), or None; refused like a record when damaged or edited by hand."""
        path = self.run_dir(key) / name
        body = _read_json(path, "delete it to recompute it")
        if body is None:
            return None
        if not isinstance(body, dict) or body.get(HASH) != content_hash(body):
            raise StoreError(f"{path} is damaged or was edited by hand (its content no longer "
                             f"matches its hash); delete it to recompute it")
        return body

    def put_beside(self, key: str, name: str, body: dict) -> dict:
        """Write a result beside run ``key``'s record (atomically, with its content hash)."""
        return _write_hashed(self.run_dir(key) / name,
                             {k: v for k, v in body.items() if k != HASH})

    @contextmanager
    def lock(self, config: dict):
        """Hold the run's lock; if another process holds it, say so and wait for it."""
        directory = self.run_dir(config_hash(config))
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"run {directory.name} is in use by another process; waiting for it",
                      file=sys.stderr)
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield directory
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def records(self) -> list[dict]:
        """Every complete record in the store (for the reproducibility appendix); one that
        was edited by hand, or whose key is not its config's, is refused (StoreError)."""
        out = []
        for path in sorted((self.root / "runs").glob(f"*/{RECORD}")):
            try:
                record = json.loads(path.read_text())
            except ValueError:
                continue
            out.append(check_record(record, path))
        return sorted(out, key=lambda r: r.get("finished", 0))


def environment() -> dict:
    """What the run ran on: enough to tell two machines apart in the appendix."""
    import platform

    import fastmri
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "fastmri": getattr(fastmri, "__version__", "?"), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}
