"""The protocol as a few calls: a Lab holds the data, the split and the results store.

``Lab(scale="default").train("oracle")`` trains G-hat on Dr (or reuses it from the store),
``train("original")`` trains G on Dr + Df, and ``unlearn("NL-FT")`` runs an unlearning
method from G. Every call returns a record: config, metrics (BTA, KTA, UA per volume and
aggregated), per-epoch history, timing and environment. Chapters and the CLI both use it.
"""
from __future__ import annotations

import atexit
import json
import os
import sys
from contextlib import nullcontext
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset, Subset

from .. import data as data_lib
from ..config import (ConfigError, check_choice, check_int, get_scale, to_dict,
                     unlearning_epochs)
from .engine import ENGINE_VERSION, Loop, make_fabric, run_loop, unlearning_schedule
from .evaluate import ACCURACY, brief, evaluate_dataset, evaluate_model
from .methods import METHODS_VERSION, get_method, validate_knobs
from .models import build_model, count_parameters
from .store import Store, check_writable, checkpoint_errors, environment
from ..data.synthetic import stamp_of, synthesize
from ..config import config_hash

MODELS = ("oracle", "original")
DEFAULT_RESULTS = Path(os.environ.get("ERASE_RESULTS", "_output"))
# The paper's knobs: 10% retain data; lambda = 1e-5 on fastMRI's raw target scale, which our
# synthetic files share (simulate.SIGNAL_SCALE = 5e-4), i.e. 0.02 of a target's maximum;
# gamma is not given in the paper, 1e-5 makes the l1 penalty a few percent of the loss.
DEFAULT_KNOBS = {"retain_fraction": 0.1, "gamma": 1e-5, "lam": 0.02}


class Lab:
    """One protocol set-up: scale, device, data (embedded or real), split seed, store."""

    def __init__(self, scale: str = "default", device: str = "cpu", data_root=None, seed=0,
                 results_dir=None, manifest=None, epochs=None, arch=None, progress=False,
                 precision: str = "32-true", data_seed: int = 0):
        self.profile = get_scale(scale)
        if self.profile.threads is not None and device == "cpu":
            torch.set_num_threads(self.profile.threads)
        self.seed = check_int("seed", seed)
        self.device = check_choice("device", device, ("cpu", "cuda"))
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but no GPU is visible; use device='cpu'")
        self.train_config = self.profile.train
        if epochs is not None:
            self.train_config = replace(self.train_config, epochs=check_int("epochs", epochs, 1))
        self.model_config = self.profile.model
        if arch is not None:
            self.model_config = replace(self.model_config, arch=check_choice("arch", arch, ("varnet", "unet")))
        self.data_config = self.profile.data
        self.precision, self.progress = precision, progress
        self.results = Path(results_dir) if results_dir is not None else DEFAULT_RESULTS
        # Check everything before writing anything: a refused Lab leaves no results behind.
        check_writable(self.results)
        user_manifest = None if manifest is None else data_lib.load_manifest(manifest)
        if data_root is None:  # complete or absent: synthesize writes aside and renames
            stamp_key = config_hash(stamp_of(self.data_config, data_seed))
            self.data_root = self.results / "data" / f"synthetic-{scale}-{stamp_key}"
            synthesize(self.data_root, self.data_config, data_seed)
        else:
            self.data_root = Path(data_root)
        if user_manifest is not None:
            self.manifest = user_manifest
        else:
            volumes = data_lib.scan(self.data_root)
            self.manifest = data_lib.make_manifest(volumes, self.data_config, self.seed,
                                                   self.data_root)
        data_lib.verify_manifest(self.manifest, self.data_root)
        self.store = Store(self.results)
        self.manifest_key = data_lib.manifest_hash(self.manifest)
        data_lib.write_json_atomic(self.results / "manifests" / f"{self.manifest_key}.json",
                                   self.manifest)
        self._datasets: dict = {}
        self._fabric = None

    # ------------------------------------------------------------ data and models

    @property
    def fabric(self):
        if self._fabric is None:
            self._fabric = make_fabric(self.device, self.precision)
        return self._fabric

    def dataset(self, split: str):
        """One split of the manifest, loaded once per Lab."""
        if split not in self._datasets:
            self._datasets[split] = data_lib.load_split(
                self.manifest, split, self.data_root, self.data_config, self.results / "work")
        return self._datasets[split]

    def counts(self) -> dict:
        return data_lib.split_counts(self.manifest)

    def new_model(self):
        torch.manual_seed(self.seed)
        return build_model(self.model_config)

    def load_model(self, record: dict):
        """The trained network of a record, in eval mode on the Lab's device."""
        model = self.new_model()
        path = self.store.run_dir(record["key"]) / "checkpoint.ckpt"
        with checkpoint_errors(path, f"delete {path.parent} to recompute this run"):
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
        return model.to(self.device).eval()

    def _common(self) -> dict:
        return {"manifest": self.manifest_key, "seed": self.seed,
                "loading": {"acceleration": self.data_config.acceleration,
                            "center_fraction": self.data_config.center_fraction},
                "model": to_dict(self.model_config), "train": to_dict(self.train_config),
                "engine": ENGINE_VERSION, "precision": self.precision}

    # ------------------------------------------------------------ configs of runs

    def train_config_of(self, which: str) -> dict:
        check_choice("model", which, MODELS)
        order = {"order": "oracle's retain order, forget slices inserted"} if which == "original" else {}
        return {"kind": "train", "which": which, **order, **self._common()}

    def unlearn_config_of(self, method: str, retain_fraction=None, gamma=None, lam=None,
                          epochs=None) -> dict:
        knobs = {**DEFAULT_KNOBS}
        knobs.update({k: v for k, v in (("retain_fraction", retain_fraction), ("gamma", gamma),
                                        ("lam", lam)) if v is not None})
        fraction, gamma_, lam_, epochs = validate_knobs(method, knobs["retain_fraction"],
                                                        knobs["gamma"], knobs["lam"], epochs)
        row = get_method(method)
        # Knobs a row does not use do not enter its key, so FT at gamma=1 is FT at gamma=0.
        used = {"retain_fraction": fraction if row.retain == "subset" else None,
                "gamma": gamma_ if row.penalty == "l1" else None,
                "lam": lam_ if row.forget == "noisy_label" else None,
                "epochs": unlearning_epochs(self.train_config.epochs, epochs)}
        return {"kind": "unlearn", "method": asdict(row), "methods_version": METHODS_VERSION,
                "knobs": used, "start": config_hash(self.train_config_of("original")),
                **self._common()}

    # ------------------------------------------------------------ running

    def train(self, which: str = "oracle") -> dict:
        """Train G-hat (``oracle``, on Dr) or G (``original``, on Dr + Df), or reuse it."""
        config = self.train_config_of(which)
        retain, shared = self.dataset("retain"), None
        if which == "original":  # Dr first, in the oracle's order; Df inserted (epoch_pairs)
            retain, shared = ConcatDataset([retain, self.dataset("forget")]), len(retain)
        val = self.dataset("val")

        def validate(model):
            return self._by_anatomy(evaluate_dataset(model, val, self.fabric.device), "val")

        return self._run(config, get_method("Retrain"), forget=None, retain=retain,
                         epochs=self.train_config.epochs, evaluate=validate, shared_order=shared)

    def unlearn(self, method: str, retain_fraction=None, gamma=None, lam=None,
                epochs=None) -> dict:
        """Unlearn Df from G with ``method`` (Retrain gives the oracle), or reuse the result."""
        if method == "Retrain":
            return self.train("oracle")
        config = self.unlearn_config_of(method, retain_fraction, gamma, lam, epochs)
        row, knobs = get_method(method), config["knobs"]
        original = self.train("original")
        retain = {"none": None, "all": self.dataset("retain")}.get(row.retain)
        if row.retain == "subset":
            full = self.dataset("retain")
            retain = Subset(full, data_lib.retain_subset(len(full), knobs["retain_fraction"],
                                                         self.seed))
        tests = {name: self.dataset(split) for name, split in ACCURACY.items() if name != "ua"}

        latest: dict = {}  # the last epoch's test metrics, reused as the final BTA / KTA

        def test(model):
            latest.clear()
            latest.update(evaluate_model(model, tests, self.fabric.device,
                                         {k: k for k in tests}))
            return brief(latest)

        return self._run(config, row, forget=self.dataset("forget"), retain=retain,
                         epochs=knobs["epochs"], evaluate=test, gamma=knobs["gamma"] or 0.0,
                         lam=knobs["lam"] or 0.0, known=latest,
                         train=unlearning_schedule(self.train_config),  # paper's constant lr
                         start_from=self.store.run_dir(original["key"]) / "checkpoint.ckpt")

    def _run(self, config, row, forget, retain, epochs, evaluate, gamma=0.0, lam=0.0,
             start_from=None, known: dict | None = None, train=None, shared_order=None) -> dict:
        """Run one loop (or reuse its record). ``known`` holds metrics the loop's last
        epoch already computed on the final model, so they are not computed twice."""
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # one process: no need to start Fabric
            record = self.store.get(config)
            if record is not None:
                return {**record, "from_store": True}
        fabric = self.fabric  # every rank joins the process group before any rank takes a lock
        record = self.store.get(config) if fabric.is_global_zero else None
        if fabric.broadcast(record is not None, src=0):  # all ranks take the same branch
            return {**self.store.get(config), "from_store": True}
        # One lock per run for the whole torchrun job: rank 0 holds it, the others follow it.
        lock = (self.store.lock(config) if fabric.is_global_zero
                else nullcontext(self.store.run_dir(config_hash(config))))
        with lock as run_dir:
            record = self.store.get(config) if fabric.is_global_zero else None
            if fabric.broadcast(record is not None, src=0):  # another job finished it meanwhile
                return {**self.store.get(config), "from_store": True}
            model = self.new_model()
            params = count_parameters(model)
            if self.progress and fabric.is_global_zero:
                print(f"{config['kind']} {config.get('which') or row.name}: "
                      f"{self.model_config.arch} with {params:,} parameters, {epochs} epochs")
            loop = Loop(method=row, forget=forget, retain=retain, epochs=epochs,
                        train=train or self.train_config, seed=self.seed,
                        checkpoint=run_dir / "checkpoint.ckpt", gamma=gamma, lam=lam,
                        start_from=start_from, evaluate=evaluate, progress=self.progress,
                        shared_order=shared_order)
            started = time.perf_counter()
            result = run_loop(loop, model, fabric)
            if fabric.is_global_zero:
                eval_start = time.perf_counter()
                known = dict(known or {})  # empty when a resumed run trained nothing now
                missing = {a: s for a, s in ACCURACY.items() if a not in known}
                metrics = {**known, **evaluate_model(model, {s: self.dataset(s) for s in
                                                             missing.values()}, fabric.device, missing)}
                metrics = {a: metrics[a] for a in ACCURACY}
                record = {
                    "name": config.get("which") or row.name, "parameters": params,
                    "metrics": metrics, "summary": brief(metrics), "history": result["history"],
                    "timing": {"train_seconds": result["train_seconds"], "steps": result["steps"],
                               "samples": result["samples"],
                               "samples_per_second": result["samples"] / max(result["train_seconds"], 1e-9),
                               "eval_seconds": time.perf_counter() - eval_start,
                               "wall_seconds": time.perf_counter() - started},
                    "environment": environment(), "finished": time.time(),
                }
                self.store.put(config, record)
            fabric.barrier()  # the record is on disk before any rank reads it
            return {**self.store.get(config), "from_store": False}

    def _by_anatomy(self, summary: dict, split: str) -> dict:
        """Mean PSNR / SSIM of a mixed split per anatomy (validation holds brain and knee)."""
        anatomy = {Path(v["path"]).name: v["anatomy"] for v in self.manifest["splits"][split]}
        out = {}
        for kind in ("brain", "knee"):
            vols = [m for f, m in summary["per_volume"].items() if anatomy.get(f) == kind]
            if vols:
                out[f"{kind}_psnr"] = sum(v["psnr"] for v in vols) / len(vols)
                out[f"{kind}_ssim"] = sum(v["ssim"] for v in vols) / len(vols)
        return out

    def zero_filled(self) -> dict:
        """BTA / KTA / UA of the zero-filled input: the floor every model must clear."""
        config = {"kind": "zero_filled", "manifest": self.manifest_key,
                  "loading": self._common()["loading"]}
        record = self.store.get(config)
        if record is None:
            metrics = {name: evaluate_dataset(None, self.dataset(split), baseline=True)
                       for name, split in ACCURACY.items()}
            record = self.store.put(config, {"name": "zero-filled", "metrics": metrics,
                                             "summary": brief(metrics), "finished": time.time()})
        return record

    # ------------------------------------------------------------ many runs at once

    def settings(self) -> dict:
        """What it takes to rebuild this Lab in another process."""
        return {"scale": self.profile.name, "device": self.device, "data_root": None
                if self.data_root.is_relative_to(self.results / "data") else str(self.data_root),
                "seed": self.seed, "results_dir": str(self.results),
                "epochs": self.train_config.epochs, "arch": self.model_config.arch,
                "precision": self.precision}


_WORKER_LABS: dict = {}  # a worker process keeps its Labs: data loaded once, not once per job


def _run_job(settings: dict, job: tuple):
    key = json.dumps(settings, sort_keys=True)
    if key not in _WORKER_LABS:
        _WORKER_LABS[key] = Lab(**settings)  # sets the profile's thread count in this worker
    lab = _WORKER_LABS[key]
    kind, kwargs = job
    return lab.train(**kwargs) if kind == "train" else lab.unlearn(**kwargs)


_POOL: dict = {}  # {workers: executor}, kept between calls: start-up and data paid once


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """The worker processes of ``run_many``, started once per kernel (spawned: no forked
    torch state), so that the calls of a chapter or a book share them."""
    if workers not in _POOL:
        shutdown_pool()
        _POOL[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    return _POOL[workers]


@atexit.register
def shutdown_pool() -> None:
    while _POOL:
        _POOL.popitem()[1].shutdown(cancel_futures=True)


def run_many(labs_and_jobs: list[tuple[Lab, tuple]], workers: int = 2) -> list[dict]:
    """Run independent jobs in parallel processes (one thread each), then read them back.

    Small VarNets on a CPU are bound by per-operation overhead, not arithmetic: two processes
    with one thread each do about twice the work of one process with two threads.
    """
    missing = [(lab, job) for lab, job in labs_and_jobs if not _stored(lab, job)]
    if missing and workers > 1 and len(missing) > 1:
        main = sys.modules["__main__"]
        if not hasattr(main, "__spec__"):  # a Jupyter kernel's __main__ lacks it; spawn needs it
            main.__spec__ = None
        missing.sort(key=lambda lab_job: -expected_samples(*lab_job))  # longest first
        futures = [worker_pool(workers).submit(_run_job, lab.settings(), job)
                   for lab, job in missing]
        try:
            for future in futures:
                future.result()
        except BaseException as err:
            for future in futures:
                future.cancel()
            if isinstance(err, BrokenProcessPool):  # a worker died: start afresh next time
                shutdown_pool()
            raise
    return [(lab.train(**job[1]) if job[0] == "train" else lab.unlearn(**job[1]))
            for lab, job in labs_and_jobs]


def expected_samples(lab: Lab, job: tuple) -> int:
    """Samples a job will push through the network: its cost, known before it runs.

    ``run_many`` hands out the costliest jobs first (longest processing time first), so a
    long job never starts last while the other worker has nothing left to do.
    """
    kind, kwargs = job
    slices = {name: c["slices"] for name, c in lab.counts().items()}
    if kind == "train" or kwargs.get("method") == "Retrain":
        which = kwargs.get("which", "oracle")
        return lab.train_config.epochs * (slices["retain"] + (which == "original") * slices["forget"])
    config = lab.unlearn_config_of(**kwargs)
    row, knobs = config["method"], config["knobs"]
    n_forget = slices["forget"] if row["forget"] != "none" else 0
    if row["retain"] == "subset":  # Dr', drawn as the run will draw it
        n_retain = len(data_lib.retain_subset(slices["retain"], knobs["retain_fraction"], lab.seed))
    else:
        n_retain = slices["retain"] if row["retain"] == "all" else 0
    return knobs["epochs"] * max(n_forget, n_retain) * ((n_forget > 0) + (n_retain > 0))


def _stored(lab: Lab, job: tuple) -> bool:
    kind, kwargs = job
    if kind == "train":
        return lab.store.get(lab.train_config_of(**kwargs)) is not None
    if kwargs.get("method") == "Retrain":
        return lab.store.get(lab.train_config_of("oracle")) is not None
    return lab.store.get(lab.unlearn_config_of(**kwargs)) is not None
