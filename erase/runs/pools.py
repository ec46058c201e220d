"""Each audited model's per-slice losses on fixed pools of slices: the per-example audit's data.

A run's record holds its losses on its own seed's test splits only. The per-example membership
audit (``erase.measures.per_example``) scores every model on the same slices whatever its seed:
every knee of the data (forget for some seeds, test, validation or unused for others) and a
fixed sample of brains (retain for most seeds, held out for some). Evaluation only, no
training: the losses are kept beside the run's record, so each model is scored once.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import data as data_lib
from .evaluate import reconstruct_volumes, slice_losses
from .lab import Lab, in_workers, worker_lab

BRAIN_SAMPLE = 180  # brain volumes in the pool: the default's 180 knees, as many brains
SAMPLE_SEED = 0  # the brain sample is drawn once, the same for every seed and model
_POOLS: dict = {}  # {data root: pool manifest}: scanned once per process


def pool_manifest(volumes: list[dict], brain_sample: int = BRAIN_SAMPLE) -> dict:
    """The pools as a manifest (``data.load_split`` reads it): ``knee``, every knee volume;
    ``brain``, ``brain_sample`` brain volumes drawn at random (``SAMPLE_SEED``).

    Args:
        volumes: what ``data.scan`` found in the data root.
        brain_sample: how many brain volumes (all of them when there are fewer).
    """
    by_path = lambda vs: sorted(vs, key=lambda v: v["path"])  # noqa: E731
    knee = by_path(v for v in volumes if v["anatomy"] == "knee")
    brain = by_path(v for v in volumes if v["anatomy"] == "brain")
    picked = np.random.default_rng(SAMPLE_SEED).permutation(len(brain))[:brain_sample]
    return {"version": data_lib.MANIFEST_VERSION, "rule": "pool",
            "splits": {"knee": [data_lib.manifest_entry(v) for v in knee],
                       "brain": [data_lib.manifest_entry(brain[i]) for i in sorted(picked)]}}


def pools_of(lab: Lab) -> dict:
    """The pool manifest of the Lab's data root (scanned once per process)."""
    root = str(Path(lab.data_root).resolve())
    if root not in _POOLS:
        _POOLS[root] = pool_manifest(data_lib.scan(lab.data_root))
    return _POOLS[root]


def file_name(pools: dict) -> str:
    """Where a run's folder keeps its losses on these pools (the pools' hash in the name)."""
    return f"pool-losses-{data_lib.manifest_hash(pools)}.json"


def evaluate_pools(lab: Lab, record: dict, pools: dict) -> dict:
    """{pool: {loss: {slice id: value}}} of the record's model: every slice of each pool,
    under the evaluation's fixed masks (a D_f slice scores as in the record's ``ua``)."""
    model = lab.load_model(record)
    out = {}
    for part in pools["splits"]:
        dataset = data_lib.load_split(pools, part, lab.data_root, lab.data_config,
                                      lab.results / "work")
        per_volume = {fname: slice_losses(target, recon, float(target.max()))
                      for fname, (target, recon)
                      in reconstruct_volumes(model, dataset, lab.device).items()}
        losses = next(iter(per_volume.values())).keys() if per_volume else ()
        out[part] = {loss: {f"{fname}#{i}": v for fname, values in sorted(per_volume.items())
                            for i, v in enumerate(values[loss])} for loss in losses}
    return out


def pool_losses(lab: Lab, record: dict) -> dict:
    """The record's model's losses on the pools: from beside its record, or evaluated now and
    kept there."""
    pools = pools_of(lab)
    name = file_name(pools)
    kept = lab.store.get_beside(record["key"], name)
    if kept is None:
        kept = lab.store.put_beside(record["key"], name, {
            "run": record["key"], "pools": data_lib.manifest_hash(pools),
            "losses": evaluate_pools(lab, record, pools)})
    return kept["losses"]


def _in_worker(settings: dict, record: dict) -> None:
    pool_losses(worker_lab(settings), record)


def pool_losses_many(labs_and_records: list[tuple[Lab, dict]], workers: int = 2) -> list[dict]:
    """``pool_losses`` of many models, those not yet scored in the worker processes."""
    kept = [lab.store.get_beside(r["key"], file_name(pools_of(lab)))
            for lab, r in labs_and_records]
    missing = [pair for pair, body in zip(labs_and_records, kept) if body is None]
    if workers > 1 and len(missing) > 1:
        in_workers(_in_worker, [(lab.settings(), r) for lab, r in missing], workers)
    return [pool_losses(lab, r) if body is None else body["losses"]
            for (lab, r), body in zip(labs_and_records, kept)]  # each kept file read once
