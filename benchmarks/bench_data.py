"""Benchmark 2: slices per second from HDF5 through the mask transform, against the step rate.

Three ways to feed the loop, each timed over the profile's whole retain split:

- ``hdf5``: ``fastmri.data.SliceDataset`` + ``VarNetDataTransform`` (equispaced mask), the
  path ``erase.data.load_split`` takes, uncached: every slice opens its file, reads k-space
  and the target, draws the mask and builds the sample; plus the default collate the loop does.
- ``hdf5, 2 workers``: the same through a ``DataLoader`` with worker processes.
- ``in-memory``: ``erase.data.InMemory`` (what ``load_split`` returns when the split fits):
  indexing and collating only.

The consumption side is our training step (``bench_step.our_step``) on the same data, measured
in the same process just before. Target: loading >= 5x faster than the model consumes.
"""
from __future__ import annotations

import os
import time

from bench_common import Stopwatch, bench_lab, loadavg, median, quiet, table, time_steps


def sliced_dataset(lab, split="retain"):
    """The uncached fastMRI dataset of one split, built exactly as load_split builds it."""
    from fastmri.data import SliceDataset
    from fastmri.data.transforms import VarNetDataTransform

    from erase import data as data_lib
    folder = data_lib.split_folder(lab.manifest, split, lab.data_root, lab.results / "work")
    return SliceDataset(root=folder, challenge="multicoil",
                        transform=VarNetDataTransform(data_lib.mask_func(lab.data_config),
                                                      use_seed=True))


def rate(get, n: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` items per second of ``get(i)`` over i < n (load noise only slows)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            get(i)
        best = min(best, time.perf_counter() - start)
    return n / best


def loader_rate(dataset, workers: int, repeats: int = 2) -> dict:
    """Slices/s through a DataLoader: first epoch (with worker start-up) and a later one."""
    from torch.utils.data import DataLoader
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=workers,
                        persistent_workers=workers > 0)
    epochs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _batch in loader:
            pass
        epochs.append(time.perf_counter() - start)
    return {"first_epoch": len(dataset) / epochs[0],
            "steady": len(dataset) / min(epochs[1:] or epochs)}


def run(scale="default", results=None, step_count=30) -> dict:
    import torch
    from bench_step import our_step
    from torch.utils.data import default_collate

    from erase import data as data_lib

    quiet()
    lab = bench_lab(scale, results)
    with Stopwatch() as sw:
        dataset = sliced_dataset(lab)
    construct_s = sw.seconds
    n = len(dataset)
    out = {"scale": scale, "slices": n, "threads": torch.get_num_threads(),
           "profile_threads": lab.profile.threads,
           "loadavg_start": loadavg(), "slice_dataset_init_s": construct_s,
           "kspace_shape": list(dataset[0].masked_kspace.shape)}

    # consumption: our training step on the same split, at its fastest thread count (the
    # conservative side for the ratio: a faster model needs faster loading)
    threads = torch.get_num_threads()  # the Lab sets the profile's threads
    rates = {}
    for t in sorted({1, len(os.sched_getaffinity(0))}):
        torch.set_num_threads(t)
        step = our_step(lab.profile, lab.dataset("retain"))
        time_steps(step, 0, 5)
        rates[t] = 1.0 / median(time_steps(step, 5, step_count, budget_s=15))
    torch.set_num_threads(threads)
    out["train_samples_per_s_by_threads"] = rates
    out["train_samples_per_s"] = max(rates.values())

    out["hdf5"] = rate(lambda i: default_collate([dataset[i]]), n)
    out["hdf5_dataset_only"] = rate(lambda i: dataset[i], n)
    cores = len(os.sched_getaffinity(0))
    workers = min(2, cores)
    out["hdf5_workers"] = {"workers": workers, **loader_rate(dataset, workers)}

    # what load_split does for each split of a Lab (per Lab, i.e. per notebook kernel)
    with Stopwatch() as sw:
        cached = data_lib.load_split(lab.manifest, "retain", lab.data_root, lab.data_config,
                                     lab.results / "work")
    out["in_memory_build_s"] = sw.seconds
    out["in_memory"] = rate(lambda i: default_collate([cached[i]]), n, repeats=5)
    splits = {}
    for split in data_lib.SPLITS:
        with Stopwatch() as sw:
            data_lib.load_split(lab.manifest, split, lab.data_root, lab.data_config,
                                lab.results / "work")
        splits[split] = sw.seconds
    out["load_split_s"] = splits
    train = out["train_samples_per_s"]
    out["ratios"] = {"hdf5": out["hdf5"] / train,
                     "hdf5_workers": out["hdf5_workers"]["steady"] / train,
                     "in_memory": out["in_memory"] / train}
    out["loadavg_end"] = loadavg()
    return out


def report(out: dict) -> str:
    train = out["train_samples_per_s"]
    rows = [["hdf5 -> VarNetDataTransform -> collate (uncached, in process)", out["hdf5"],
             out["ratios"]["hdf5"]],
            ["  same, dataset[i] only (no collate)", out["hdf5_dataset_only"],
             out["hdf5_dataset_only"] / train],
            [f"  same, DataLoader with {out['hdf5_workers']['workers']} workers, steady epoch",
             out["hdf5_workers"]["steady"], out["ratios"]["hdf5_workers"]],
            [f"  same, DataLoader with {out['hdf5_workers']['workers']} workers, first epoch "
             "(worker start-up)", out["hdf5_workers"]["first_epoch"],
             out["hdf5_workers"]["first_epoch"] / train],
            ["InMemory -> collate (erase.data.load_split when the split fits)",
             out["in_memory"], out["ratios"]["in_memory"]],
            ["training step (consumption, fastest of "
             + ", ".join(f"{t} thread(s) {r:.1f}/s" for t, r in
                         out["train_samples_per_s_by_threads"].items()) + ")", train, 1.0]]
    lines = [f"{out['slices']} retain slices, k-space {out['kspace_shape']}, "
             f"{out['threads']} threads, load avg {out['loadavg_start']:.1f} -> "
             f"{out['loadavg_end']:.1f}", "",
             table([[r[0], f"{r[1]:.0f}", f"{r[2]:.1f}x"] for r in rows],
                   ["path", "slices/s", "loading / consumption"]), ""]
    lines.append(f"- SliceDataset construction (one header parse per file): "
                 f"{out['slice_dataset_init_s']:.2f} s; building the InMemory retain split: "
                 f"{out['in_memory_build_s']:.2f} s")
    lines.append("- load_split per split (each Lab, i.e. each notebook kernel, pays these once): "
                 + ", ".join(f"{k} {v:.2f} s" for k, v in out["load_split_s"].items())
                 + f"; total {sum(out['load_split_s'].values()):.2f} s")
    target = "meets" if out["ratios"]["hdf5"] >= 5 else "misses"
    lines.append(f"- target loading >= 5x consumption: uncached HDF5 {target} it "
                 f"({out['ratios']['hdf5']:.1f}x); in-memory {out['ratios']['in_memory']:.0f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
