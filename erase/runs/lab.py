"""The protocol as a few calls: a Lab holds the data, the split and the results store.

``Lab(scale="default").train("oracle")`` trains G-hat on Dr (or reuses it from the store),
``train("original")`` trains G on Dr + Df, and ``unlearn("NL-FT")`` runs an unlearning
method from G. Every call returns a record: config, metrics (BTA, KTA, UA per volume and
aggregated, per-slice losses), per-epoch history, timing and environment.

Every run is first described as a ``Job`` (what it is and its knobs). From a job the Lab derives,
each in one place, its config (the key in the results store), its loop (the engine's ``Loop``:
which data, how long, which starting checkpoint: ``loop``) and its cost (``cost``); the Lab,
``run_many``'s scheduler, the command line and Figure 4's replay all go through them.
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import torch

from .. import data as data_lib
from .. import paper
from ..config import check_choice, check_int, config_hash, get_protocol, get_scale, to_dict
from ..data.synthetic import stamp_of, synthesize
from ..io import write_json
from . import noise as noise_lib
from .engine import (
    ENGINE_VERSION,
    Loop,
    check_device,
    epoch_steps,
    make_fabric,
    on_device,
    prepare_reads,
    run_loop,
)
from .evaluate import ACCURACY, evaluate_dataset, evaluate_model, summary_of
from .methods import ascent_weights, get_method, hashed, row_knobs, validate_knobs, version_of
from .models import build_model, count_parameters
from .store import Store, check_writable, checkpoint_errors, environment

MODELS = ("oracle", "original")
RESULTS_VARIABLE = "ERASE_RESULTS"  # the results store when none is named (the book sets it)


def default_results() -> Path:
    """Where results go when no ``results_dir`` is given: $ERASE_RESULTS, else ``_output``."""
    return Path(os.environ.get(RESULTS_VARIABLE, "_output"))
# The paper's knobs: 10% retain data; the noisy label at the paper's strength, rho (noise rms
# over G's RMSE on Df, ``erase.paper.noise_strength``: lambda = 1e-5 read on fastMRI's scale),
# set per seed from G before any unlearning run: a rule fixed before looking (``lam`` gives a
# raw lambda instead); gamma and ascent None: the protocol's (the public code's GA-l1 is
# -2 J + 1 |theta|_1, the text's -J + 1e-5 |theta|_1).
RHO_PAPER = paper.noise_strength()["rho"]
DEFAULT_KNOBS = {"retain_fraction": 0.1, "gamma": None, "lam": None, "rho": RHO_PAPER,
                 "ascent": None}
# The protocol switches that change how G and G-hat are trained (the others act on unlearning
# only, so flipping them must not retrain the models it starts from).
TRAINING_SWITCHES = ("training_masks", "lr_schedule")


@dataclass(frozen=True)
class Job:
    """One run, before it runs: ``train`` a model (``oracle`` or ``original``) or ``unlearn``
    with a method row and its knobs. ``Lab.job`` makes them (Retrain is the oracle)."""

    kind: str
    name: str
    knobs: dict = field(default_factory=dict)  # an unlearning run's knobs, by name


class Lab:
    """One protocol set-up: scale, device, data (embedded or real), split seed, store.

    Constructing a Lab checks its settings and writes nothing. The data it reads is prepared
    on first use (``prepare_data``: the embedded synthetic set written, the split made and
    checked against the files, the manifest kept in the store), so a Lab that is refused, or
    never used, leaves nothing behind.
    """

    def __init__(self, scale: str = "default", device: str = "cpu", data_root=None, seed=0,
                 results_dir=None, manifest=None, epochs=None, arch=None, progress=False,
                 precision: str = "32-true", data_seed: int = 0, protocol="code",
                 switches: dict | None = None):
        self.profile = get_scale(scale)
        self.protocol = get_protocol(protocol, **(switches or {}))
        if self.profile.threads is not None and device == "cpu":
            torch.set_num_threads(self.profile.threads)
        self.seed = check_int("seed", seed)
        self.device = check_device(device)
        self.train_config = self.profile.train
        if epochs is not None:
            self.train_config = replace(self.train_config, epochs=check_int("epochs", epochs, 1))
        self.model_config = self.profile.model
        if arch is not None:
            self.model_config = replace(self.model_config,
                                        arch=check_choice("arch", arch, ("varnet", "unet")))
        self.data_config = self.profile.data
        self.precision, self.progress = precision, progress
        self.results = Path(results_dir) if results_dir is not None else default_results()
        check_writable(self.results)  # probes without leaving anything
        self._user_manifest = None if manifest is None else data_lib.load_manifest(manifest)
        if data_root is None:  # the embedded synthetic set, kept in the store by its stamp
            stamp_key = config_hash(stamp_of(self.data_config, data_seed))
            self._data_root = self.results / "data" / f"synthetic-{scale}-{stamp_key}"
            self._data_seed: int | None = data_seed
        else:
            self._data_root, self._data_seed = Path(data_root), None
        self._manifest: dict | None = None
        self._forget_error: float | None = None
        self._manifest_key: str | None = None
        self._store: Store | None = None
        self._datasets: dict = {}
        self._fabric = None

    # ------------------------------------------------------------ data and models

    def prepare_data(self) -> "Lab":
        """Make the data ready to read, once (later calls return at once): write the embedded
        synthetic set unless a data root was given (``synthesize`` reuses a complete one and
        writes a new one aside, then renames it), make the split (or take the given manifest),
        check it against the files and keep the manifest in the store. Everything that reads
        the data, the split or the store calls it first."""
        if self._manifest is None:
            if self._data_seed is not None:
                synthesize(self._data_root, self.data_config, self._data_seed)
            if self._user_manifest is not None:
                manifest = self._user_manifest
            else:
                volumes = data_lib.scan(self._data_root)
                manifest = data_lib.make_manifest(volumes, self.data_config, self.seed,
                                                  self._data_root)
            data_lib.verify_manifest(manifest, self._data_root)
            key = data_lib.manifest_hash(manifest)
            write_json(self.results / "manifests" / f"{key}.json", manifest)
            self._manifest, self._manifest_key = manifest, key
        return self

    @property
    def data_root(self) -> Path:
        """The folder of fastMRI files the Lab reads (prepared on first use)."""
        self.prepare_data()
        return self._data_root

    @property
    def manifest(self) -> dict:
        """The split: which files are retain, forget, validation and test (prepared on first
        use)."""
        return self.prepare_data()._manifest

    @property
    def manifest_file(self) -> Path:
        """Where the store keeps the split (``--manifest`` of a Lab on the same split)."""
        return self.results / "manifests" / f"{self.manifest_key}.json"

    @property
    def manifest_key(self) -> str:
        """The split's hash, part of every run key (prepared on first use)."""
        return self.prepare_data()._manifest_key

    @property
    def store(self) -> Store:
        """The results store under ``results``, created on first use, after the data is
        prepared (data that cannot be read leaves no empty store behind)."""
        if self._store is None:
            self.prepare_data()
            self._store = Store(self.results)
        return self._store

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
        return on_device(model, self.device).eval()

    def _shared_config(self) -> dict:
        """The part of every run's config that all its kinds share: the split and seed, the
        loading, the network, the training settings, the engine and the precision."""
        # Under torchrun, each of the processes takes its share of every epoch's steps and the
        # gradients are averaged: a different computation, so a different key.
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return {"manifest": self.manifest_key, "seed": self.seed,
                "loading": {"acceleration": self.data_config.acceleration,
                            "center_fraction": self.data_config.center_fraction,
                            "mask": self.data_config.mask},
                "model": to_dict(self.model_config), "train": to_dict(self.train_config),
                "engine": ENGINE_VERSION, "precision": self.precision,
                **({"processes": world} if world > 1 else {})}

    # ------------------------------------------------------------ jobs

    def job(self, name: str, retain_fraction=None, gamma=None, lam=None, epochs=None,
            rho=None, ascent=None, curve=True, **own) -> Job:
        """The job that trains ``oracle`` / ``original`` or unlearns with method ``name``.

        Knobs a row does not use are dropped (FT at gamma 1 is FT), so they never split the
        store; Retrain is the oracle's training job. The noisy label's strength is ``rho``
        (times G's RMSE on Df; default the paper's) or a raw ``lam``. ``ascent``: GA's weight
        of -J (None: the protocol's). ``curve=False``: test metrics only at the end, not after
        every epoch (a run whose learning curve nothing reads; the same final numbers).
        ``own``: the knobs of rows beyond the paper (``methods.ROW_KNOBS``: saliency, alpha,
        dampening, distance, max_epochs), each kept only for the rows that name it; a row that
        does not train runs 0 epochs.
        """
        if name in MODELS:
            return Job("train", name)
        if name == "Retrain":
            return Job("train", "oracle")
        if lam is None and rho is None:
            rho = DEFAULT_KNOBS["rho"]
        fraction, gamma_, lam_, rho_, ascent_ = validate_knobs(
            name, DEFAULT_KNOBS["retain_fraction"] if retain_fraction is None else retain_fraction,
            gamma, lam, rho, ascent)
        epochs = self.protocol.unlearn_epochs if epochs is None else check_int("epochs", epochs, 1)
        row = get_method(name)
        noisy = row.forget == "noisy_label"
        used = {"retain_fraction": fraction if row.retain == "subset" else None,
                "gamma": gamma_ if row.penalty == "l1" else None,
                "lam": lam_ if noisy else None,
                "epochs": epochs if row.trains else 0, **row_knobs(row, own)}
        # knobs grown later enter a key only where they apply, so older keys stay as they were
        if noisy and rho_ is not None:
            used["rho"] = rho_
        if row.forget == "ascent" and ascent_ not in (None, ascent_weights(self.protocol, None)[0]):
            used["ascent"] = ascent_
        if not curve and row.trains:
            used["curve"] = False
        return Job("unlearn", name, dict(sorted(used.items())))

    def config(self, job: Job) -> dict:
        """The complete description of a job's result: its key in the results store."""
        if job.kind == "train":
            order = ({"order": "oracle's retain order, forget slices inserted"}
                     if job.name == "original" else {})
            protocol = {k: getattr(self.protocol, k) for k in TRAINING_SWITCHES}
            return {"kind": "train", "which": job.name, **order, "protocol": protocol,
                    **self._shared_config()}
        return {"kind": "unlearn", "method": hashed(get_method(job.name)),
                "methods_version": version_of(job.name), "knobs": job.knobs,
                "protocol": {k: v for k, v in to_dict(self.protocol).items()
                             if k != "unlearn_epochs"},  # the knob "epochs" holds its value
                "start": config_hash(self.config(Job("train", "original"))),
                **self._shared_config()}

    def loop(self, job: Job, checkpoint: Path | None = None, evaluate=None) -> Loop:
        """The engine's description of a job's run: which data its loop reads, how long, where
        it starts. Decided here and only here (the runs, the scheduler's costs, Figure 4's
        replay). ``checkpoint`` None: the loop keeps none (a replay)."""
        retain = self.dataset("retain")
        shared = dict(train=self.train_config, seed=self.seed, checkpoint=checkpoint,
                      protocol=self.protocol, evaluate=evaluate, progress=self.progress)
        if job.kind == "train":
            row = get_method("Retrain")
            if job.name == "oracle":
                return Loop(row, None, retain, self.train_config.epochs, **shared)
            # G: Dr first, in the oracle's order; Df inserted (engine.epoch_steps)
            return Loop(row, None, retain.join(self.dataset("forget")), self.train_config.epochs,
                        oracle_order_of=len(retain), **shared)
        row, knobs = get_method(job.name), job.knobs
        if row.retain == "subset":
            retain = retain.select(data_lib.retain_subset(len(retain), knobs["retain_fraction"],
                                                          self.seed))
        elif row.retain == "none":
            retain = None
        start = self.store.run_dir(config_hash(self.config(Job("train", "original"))))
        g = start / "checkpoint.ckpt"
        noise = self.noise_of(job)
        return Loop(row, self.dataset("forget"), retain, knobs["epochs"], start_from=g,
                    gamma=knobs["gamma"], lam=noise["lambda"] if noise else 0.0,
                    ascent=knobs.get("ascent"), knobs={k: knobs[k] for k, _ in row.knobs},
                    teacher_from=g if row.teacher == "G" else None,
                    forget_epochs=knobs.get("max_epochs"), **shared)

    def forget_error(self) -> float:
        """G's root-mean-square error on Df (mean over volumes): what the noisy label's rho is
        relative to. Read from G's stored record; G is trained first if it is missing."""
        if self._forget_error is None:
            g = self.run(Job("train", "original"))
            self._forget_error = noise_lib.rmse_from_psnr(
                g["metrics"]["ua"]["per_volume"], noise_lib.volume_maxima(self.dataset("forget")))
        return self._forget_error

    def noise_of(self, job: Job) -> dict | None:
        """The noisy label of an unlearning job in both units (``runs.noise.strength``), or
        None for a row without one: a calibrated job's lambda is rho times G's error."""
        if job.kind != "unlearn" or get_method(job.name).forget != "noisy_label":
            return None
        knobs, error = job.knobs, self.forget_error()
        lam = knobs["lam"] if knobs.get("rho") is None else knobs["rho"] * error
        return noise_lib.strength(lam, error)

    def cost(self, job: Job) -> int:
        """Slices a job will push through the network (its cost, known before it runs), from
        the same plan the loop follows."""
        slices = {name: c["slices"] for name, c in self.counts().items()}
        if job.kind == "train":
            extra = slices["forget"] if job.name == "original" else 0
            return self.train_config.epochs * (slices["retain"] + extra)
        row, knobs = get_method(job.name), job.knobs
        n_forget = slices["forget"] if row.forget != "none" else 0
        n_retain = {"none": 0, "all": slices["retain"]}.get(row.retain)
        if row.retain == "subset":  # Dr', drawn as the run will draw it
            n_retain = len(data_lib.retain_subset(slices["retain"], knobs["retain_fraction"],
                                                  self.seed))

        def epoch_cost(n_f):
            plan = epoch_steps(n_f, n_retain, self.seed, 0, self.train_config.batch_size,
                               self.protocol.steps)
            return sum(len(f) + len(r) for f, r in plan)

        with_forget = min(knobs["epochs"], knobs.get("max_epochs", knobs["epochs"]))
        return (prepare_reads(row, slices["forget"], n_retain) + with_forget * epoch_cost(n_forget)
                + (knobs["epochs"] - with_forget) * epoch_cost(0))

    def stored(self, job: Job) -> dict | None:
        """The job's record if the store holds it (``from_store`` set), else None."""
        config = self.config(job)
        record = self.store.get(config)
        return None if record is None else {**record, "from_store": True}

    # ------------------------------------------------------------ running

    def train(self, which: str = "oracle") -> dict:
        """Train G-hat (``oracle``, on Dr) or G (``original``, on Dr + Df), or reuse it."""
        check_choice("model", which, MODELS)
        return self.run(Job("train", which))

    def unlearn(self, method: str, retain_fraction=None, gamma=None, lam=None,
                epochs=None, rho=None, ascent=None, **own) -> dict:
        """Unlearn Df from G with ``method`` (Retrain gives the oracle), or reuse the result;
        ``rho``, ``ascent`` and ``own`` (the knobs of rows beyond the paper): see ``job``."""
        return self.run(self.job(method, retain_fraction, gamma, lam, epochs, rho=rho,
                                 ascent=ascent, **own))

    def run(self, job: Job) -> dict:
        """The record of a job: from the store, or run now (G first, when unlearning needs it)."""
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # one process: no need to start Fabric
            record = self.stored(job)
            if record is not None:
                return record
        if job.kind == "unlearn":
            self.run(Job("train", "original"))
        return self._run(job)

    def _evaluation(self, job: Job):
        """What the loop evaluates after every epoch, and the final metrics it already has."""
        if job.kind == "train":
            val = self.dataset("val")
            return (lambda model: self._by_anatomy(
                evaluate_dataset(model, val, self.fabric.device), "val")), {}
        if job.knobs.get("curve") is False:  # the end's metrics only (``_record``)
            return None, {}
        tests = {name: self.dataset(split) for name, split in ACCURACY.items() if name != "ua"}
        latest: dict = {}  # the last epoch's test metrics, reused as the final BTA / KTA

        def test(model):
            latest.clear()
            latest.update(evaluate_model(model, tests, self.fabric.device,
                                         {k: k for k in tests}))
            return summary_of(latest)

        return test, latest

    def _run(self, job: Job) -> dict:
        """Run one job's loop under its lock (or reuse what another process finished)."""
        config = self.config(job)
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
            evaluate, last_tests = self._evaluation(job)
            loop = self.loop(job, run_dir / "checkpoint.ckpt", evaluate)
            model = self.new_model()
            params = count_parameters(model)
            if self.progress and fabric.is_global_zero:
                print(f"{job.kind} {job.name}: {self.model_config.arch} with {params:,} "
                      f"parameters, {loop.epochs} epochs")
            started = time.perf_counter()
            result = run_loop(loop, model, fabric)
            if fabric.is_global_zero:
                self.store.put(config, self._record(job, model, params, result, last_tests,
                                                    started))
            fabric.barrier()  # the record is on disk before any rank reads it
            return {**self.store.get(config), "from_store": False}

    def _record(self, job: Job, model, params: int, result: dict, last_tests: dict,
                started: float) -> dict:
        """A finished run's record: final metrics on every test split, history, timing."""
        eval_start = time.perf_counter()
        last_tests = dict(last_tests or {})  # empty when a resumed run trained nothing now
        missing = {a: s for a, s in ACCURACY.items() if a not in last_tests}
        metrics = {**last_tests,
                   **evaluate_model(model, {s: self.dataset(s) for s in missing.values()},
                                    self.fabric.device, missing)}
        metrics = {a: metrics[a] for a in ACCURACY}
        return {
            "name": job.name, "parameters": params,
            "metrics": metrics, "summary": summary_of(metrics), "history": result["history"],
            "timing": {"train_seconds": result["train_seconds"], "steps": result["steps"],
                       "samples": result["samples"],
                       "samples_per_second": result["samples"] / max(result["train_seconds"], 1e-9),
                       **({"prepare_seconds": result["prepare_seconds"]}
                          if result.get("prepare_seconds") else {}),
                       "eval_seconds": time.perf_counter() - eval_start,
                       "wall_seconds": time.perf_counter() - started},
            **({"noise": noise} if (noise := self.noise_of(job)) else {}),
            "environment": environment(), "finished": time.time(),
        }

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
        # no training, but the masks, the transform and the metrics: ENGINE_VERSION covers them
        config = {"kind": "zero_filled", "manifest": self.manifest_key,
                  "loading": self._shared_config()["loading"], "engine": ENGINE_VERSION}
        record = self.store.get(config)
        if record is None:
            metrics = {name: evaluate_dataset(None, self.dataset(split), baseline=True)
                       for name, split in ACCURACY.items()}
            record = self.store.put(config, {"name": "zero-filled", "metrics": metrics,
                                             "summary": summary_of(metrics),
                                             "finished": time.time()})
        return record

    # ------------------------------------------------------------ many runs at once

    def settings(self) -> dict:
        """What it takes to rebuild this Lab in another process."""
        embedded = self._data_root.is_relative_to(self.results / "data")
        return {"scale": self.profile.name, "device": self.device,
                "data_root": None if embedded else str(self._data_root),
                "seed": self.seed, "results_dir": str(self.results),
                "epochs": self.train_config.epochs, "arch": self.model_config.arch,
                "precision": self.precision, "protocol": self.protocol}


_WORKER_LABS: dict = {}  # a worker process keeps its Labs: data loaded once, not once per job


def worker_lab(settings: dict) -> Lab:
    """The Lab of ``settings`` in this worker process, made once (``Lab.settings``)."""
    key = json.dumps(to_dict(settings), sort_keys=True)
    if key not in _WORKER_LABS:
        _WORKER_LABS[key] = Lab(**settings)  # sets the profile's thread count in this worker
    return _WORKER_LABS[key]


def _run_job(settings: dict, job: Job):
    return worker_lab(settings).run(job)


_POOL: dict = {}  # {workers: executor}, kept between calls: start-up and data paid once


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """The worker processes of ``run_many``, started once per kernel (spawned: no forked
    torch state), so that the calls of a chapter or a book share them."""
    if workers not in _POOL:
        shutdown_pool()
        _POOL[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                             initializer=_ignore_interrupts)
    return _POOL[workers]


def _ignore_interrupts() -> None:
    """A worker leaves Ctrl-C to its parent. A terminal's Ctrl-C, a Jupyter interrupt and a
    kernel's shutdown send SIGINT to the whole process group: an idle worker would die with a
    KeyboardInterrupt traceback on stderr, which reads like a crash at the end of a finished
    run. The parent stops its workers itself (``in_workers``, ``shutdown_pool``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@atexit.register
def shutdown_pool(kill: bool = False) -> None:
    """End the worker processes: idle ones at once; running jobs finish first unless ``kill``."""
    while _POOL:
        pool = _POOL.popitem()[1]
        if kill:  # the executor has no public way to stop a running job (Python < 3.14)
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        pool.shutdown(wait=not kill, cancel_futures=True)


def run_many(labs_and_jobs: list[tuple[Lab, Job]], workers: int = 2) -> list[dict]:
    """Run independent jobs in parallel processes (one thread each), then read them back.

    Small VarNets on a CPU are bound by per-operation overhead, not arithmetic: two processes
    with one thread each do about twice the work of one process with two threads. Jobs that
    need G wait for it: every G a batch needs is trained first, then the rest, costliest first
    (longest processing time first, so a long job never starts last while a worker idles).
    """
    # each run once: a batch may name one twice (a frontier's start value that is also a band
    # end), and the second worker would wait on the first one's lock
    missing, keys = [], set()
    for lab, job in labs_and_jobs:
        key = config_hash(lab.config(job))
        if key not in keys and lab.stored(job) is None:
            keys.add(key)
            missing.append((lab, job))
    if missing and workers > 1 and len(missing) > 1:
        originals = {}
        for lab, job in missing:
            if job.kind == "unlearn" or job.name == "original":
                g = Job("train", "original")
                if lab.stored(g) is None:
                    originals[(config_hash(lab.config(g)))] = (lab, g)
        first = list(originals.values()) + [(lab, job) for lab, job in missing
                                            if job.kind == "train"
                                            and config_hash(lab.config(job)) not in originals]
        rest = [(lab, job) for lab, job in missing if job.kind == "unlearn"]
        for batch in (first, rest):
            _in_workers(sorted(batch, key=lambda lab_job: -lab_job[0].cost(lab_job[1])), workers)
    return [lab.run(job) for lab, job in labs_and_jobs]


def _in_workers(labs_and_jobs: list[tuple[Lab, Job]], workers: int) -> None:
    in_workers(_run_job, [(lab.settings(), job) for lab, job in labs_and_jobs], workers)


def in_workers(function, calls: list[tuple], workers: int) -> None:
    """``function(*args)`` for each of ``calls`` in the worker processes (a module-level
    function: spawned workers import it), waiting for all; the first error cancels the rest."""
    main = sys.modules["__main__"]
    if not hasattr(main, "__spec__"):  # a Jupyter kernel's __main__ lacks it; spawn needs it
        main.__spec__ = None
    futures = [worker_pool(workers).submit(function, *args) for args in calls]
    try:
        for future in futures:
            future.result()
    except BaseException as err:
        for future in futures:
            future.cancel()
        if isinstance(err, BrokenProcessPool):  # a worker died: start afresh next time
            shutdown_pool()
        elif isinstance(err, KeyboardInterrupt):  # workers ignore SIGINT: stop their jobs here
            shutdown_pool(kill=True)
        raise
