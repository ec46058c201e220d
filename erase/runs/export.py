"""Trained models and reconstructions to take away, in fastMRI's own formats.

``export_model`` writes a run's network as a plain state dict that
``fastmri.models.VarNet(**varnet_kwargs).load_state_dict(...)`` loads directly, plus
``FILE.json`` beside it: the VarNet keyword arguments, the data and split it was trained on,
the run's metrics and the commit of the code. ``load_exported`` and ``evaluate_exported``
read such a file back and score it on a Lab's current split.

``write_reconstructions`` writes one HDF5 file per volume in fastMRI's prediction format (a
``reconstruction`` dataset [slices, H, W], the file named as the volume), so that fastMRI's
own ``evaluate`` scores them against the split's targets (``fastmri_scores``: its function,
called directly, since fastMRI 0.3.0's command line crashes at its final print under numpy 2).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import time
from argparse import Namespace
from pathlib import Path

import h5py
import numpy as np
import torch

from .. import data as data_lib
from ..config import ConfigError, ModelConfig
from ..io import atomic, write_json
from .engine import on_device
from .evaluate import ACCURACY, evaluate_model, reconstruct_volumes, summary_of
from .store import StoreError, checkpoint_errors

EXPORT_FORMAT = 1
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def varnet_kwargs(config: ModelConfig) -> dict:
    """The keyword arguments of ``fastmri.models.VarNet`` for a model config."""
    if config.arch != "varnet":
        raise ConfigError(f"export writes fastMRI VarNet weights; this run's architecture is "
                          f"{config.arch!r} (use --arch varnet)")
    return {"num_cascades": config.cascades, "sens_chans": config.sens_chans,
            "sens_pools": config.sens_pools, "chans": config.chans, "pools": config.pools}


def git_commit(root: Path = PACKAGE_ROOT) -> str | None:
    """``git rev-parse HEAD`` of the code's repository, or None (no git, not a checkout)."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def sidecar(path: Path) -> Path:
    """``FILE.json`` beside ``FILE``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _checkpoint(lab, record: dict) -> Path:
    path = lab.store.run_dir(record["key"]) / "checkpoint.ckpt"
    if not path.is_file():
        raise StoreError(f"run {record['key']} ({record.get('name')}) has a record but no "
                         f"checkpoint {path}; delete {path.parent} to recompute it")
    return path


def state_dict_of(lab, record: dict) -> dict:
    """The trained weights of a stored run, as plain CPU tensors."""
    path = _checkpoint(lab, record)
    with checkpoint_errors(path, f"delete {path.parent} to recompute this run"):
        state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def export_model(lab, record: dict, out: Path) -> dict:
    """Write the weights of ``record``'s run to ``out`` and its description to ``out``.json;
    return the description. Checked before writing: the weights load strictly into
    ``fastmri.models.VarNet(**varnet_kwargs)``."""
    from fastmri.models import VarNet

    out = Path(out)
    kwargs = varnet_kwargs(lab.model_config)
    state = state_dict_of(lab, record)
    VarNet(**kwargs).load_state_dict(state)  # strict: what a user will do
    with atomic(out) as tmp:
        torch.save(state, tmp)
    config = record.get("config", {})
    embedded = lab.data_root.is_relative_to(lab.results / "data")
    info = {
        "format": EXPORT_FORMAT,
        "model": "fastmri.models.VarNet",
        "varnet": kwargs,
        "parameters": record.get("parameters"),
        "weights_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "run": {"key": record["key"], "name": record.get("name"), "kind": config.get("kind"),
                "seed": config.get("seed"), "scale": lab.profile.name,
                "protocol": config.get("protocol"), "knobs": config.get("knobs"),
                "method": config.get("method"), "train": config.get("train")},
        "data": {"data_root": None if embedded else str(lab.data_root.resolve()),
                 "source": "embedded synthetic data set" if embedded else "fastMRI files",
                 "manifest": lab.manifest_key, "rule": lab.manifest.get("rule", "random"),
                 "splits": data_lib.split_counts(lab.manifest),
                 "loading": config.get("loading")},
        "metrics": record.get("summary"),
        "git_commit": git_commit(),
        "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(sidecar(out), info)
    return info


def load_exported(path: Path, fallback: ModelConfig | None = None):
    """(VarNet with the file's weights, its description or None). The VarNet's size comes
    from ``FILE.json``, or from ``fallback`` when there is none."""
    from fastmri.models import VarNet

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist; write one with `erase export`")
    info = None
    if sidecar(path).is_file():
        try:
            info = json.loads(sidecar(path).read_text())
            kwargs = dict(info["varnet"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{sidecar(path)} is not an erase export description ({err}); "
                              "export the model again with `erase export`") from None
    elif fallback is not None:
        kwargs = varnet_kwargs(fallback)
    else:
        raise ConfigError(f"{path} has no {sidecar(path).name} beside it to say the VarNet's "
                          "size")
    remedy = "export the model again with `erase export`"
    with checkpoint_errors(path, remedy):
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "model" in state:
            raise ValueError("not a plain state dict (an erase export holds only the weights); "
                             "state_dict expected")
        model = VarNet(**kwargs)
        model.load_state_dict(state)
    return model.eval(), info


def evaluate_exported(lab, path: Path) -> dict:
    """BTA / KTA / UA of an exported model on the Lab's current split, as a record-like dict
    (name, summary, metrics, and the export's description under ``export``)."""
    model, info = load_exported(path, lab.model_config)
    model = on_device(model, lab.device)  # as the runs were evaluated
    metrics = evaluate_model(model, {s: lab.dataset(s) for s in ACCURACY.values()},
                             lab.device, ACCURACY)
    return {"name": Path(path).name, "summary": summary_of(metrics), "metrics": metrics,
            "export": info, "manifest": lab.manifest_key}


# ------------------------------------------------------------------ reconstructions


def write_reconstructions(model, dataset, out_dir: Path, device="cpu",
                          baseline: bool = False) -> list[Path]:
    """One file per volume of ``dataset`` in fastMRI's prediction format: a ``reconstruction``
    dataset [slices, H, W] (float32), named as the volume. Returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, (_, recon) in sorted(reconstruct_volumes(model, dataset, device,
                                                        baseline).items()):
        path = out_dir / fname
        with atomic(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("reconstruction", data=np.asarray(recon, dtype=np.float32))
        written.append(path)
    return written


def fastmri_scores(target_dir: Path, predictions_dir: Path) -> dict:
    """fastMRI's own evaluation of ``predictions_dir`` against the multi-coil targets in
    ``target_dir``: {metric: (mean, std)} over volumes, for MSE, NMSE, PSNR and SSIM.

    This calls ``fastmri.evaluate.evaluate`` and reads ``Metrics.means()`` / ``stddevs()``:
    fastMRI 0.3.0's ``python -m fastmri.evaluate`` computes the same and then crashes at its
    final print under numpy 2 (its SSIM mean is a one-element array).
    """
    from fastmri import evaluate as fm_eval

    args = Namespace(target_path=Path(target_dir), predictions_path=Path(predictions_dir),
                     challenge="multicoil", acceleration=None, acquisition=None)
    metrics = fm_eval.evaluate(args, "reconstruction_rss")
    means, stds = metrics.means(), metrics.stddevs()
    plain = lambda x: float(np.asarray(x).reshape(-1)[0])  # noqa: E731
    return {name: (plain(means[name]), plain(stds[name])) for name in sorted(means)}


def scores_table(scores: dict) -> str:
    """fastMRI's line (``NAME = mean +/- 2 std``), one metric per line."""
    return "\n".join(f"{name:5s} = {mean:.6g} +/- {2 * std:.4g}"
                     for name, (mean, std) in scores.items())


__all__ = ["EXPORT_FORMAT", "varnet_kwargs", "git_commit", "sidecar", "state_dict_of",
           "export_model", "load_exported", "evaluate_exported", "write_reconstructions",
           "fastmri_scores", "scores_table"]
